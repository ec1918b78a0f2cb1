"""Time DCV and CAA for a 50-name multi-domain application on loopback (Knot DNS, HTTP, 5 perspectives).

Baseline measured here: the same checks run one name at a time (max_workers=1). Run:
    .venv/bin/python bench/dcv50.py
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.integration.dcv_fixtures import (  # noqa: E402
    HttpFileServer,
    KnotDns,
    dcv_settings,
    free_port,
    start_asgi,
)

from ecert.cli.perspective import build_app  # noqa: E402
from ecert.core.dcv_rules import new_validation_code  # noqa: E402
from ecert.validation.validator import Validator  # noqa: E402

N = 50
SECRET = b"bench-secret"


def timed(label: str, fn) -> float:
    started = time.perf_counter()
    results = fn()
    elapsed = time.perf_counter() - started
    ok = sum(1 for r in results if getattr(r, "passed", getattr(r, "permitted", False)))
    print(f"  {label:<44} {elapsed * 1000:8.0f} ms  ({ok}/{len(results)} passed)")
    return elapsed


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="dcv50-"))
    knot = KnotDns(work / "knot", free_port())
    knot.start()
    http = HttpFileServer(work)
    http.start()
    running = []
    try:
        names = [f"n{i:02d}.bench.example.com" for i in range(N)]
        codes = {n: new_validation_code() for n in names}
        for n in names:
            knot.add_txt(n, codes[n])
            knot.set_records(n, "A", ["127.0.0.1"])
            http.serve_file(n, codes[n])
        knot.set_records("bench.example.com", "CAA", ['0 issue "ecert.example.hk"'])
        items = [(n, codes[n]) for n in names]

        settings = dcv_settings(knot.resolver_addr, http=http)
        running = [start_asgi(build_app(SECRET, settings, name=f"p{i}")) for i in range(5)]
        mpic = dcv_settings(knot.resolver_addr, http=http, perspective_urls=tuple(r.url for r in running))

        print(f"{N}-name multi-domain application on loopback")
        for label, s, secret in (
            ("primary only", settings, None),
            ("primary + 5 remote perspectives", mpic, SECRET),
        ):
            print(f" {label}:")
            seq = Validator(s, perspective_secret=secret, max_workers=1)
            par = Validator(s, perspective_secret=secret, max_workers=16)
            for method in ("dns", "http_file"):
                base = timed(f"{method} sequential (baseline)", lambda v=seq, m=method: v.check_many(m, items))
                fast = timed(f"{method} concurrent (16 workers)", lambda v=par, m=method: v.check_many(m, items))
                print(f"  {'ratio baseline/concurrent':<44} {base / fast:8.1f}x")
            base = timed("CAA sequential (baseline)", lambda v=seq: v.check_caa(names))
            fast = timed("CAA concurrent (16 workers)", lambda v=par: v.check_caa(names))
            print(f"  {'ratio baseline/concurrent':<44} {base / fast:8.1f}x")
            both = timed(
                "DNS DCV + CAA, concurrent, end to end",
                lambda v=par: v.check_many("dns", items) + v.check_caa(names),
            )
            print(f"  => {N} names validated and CAA-checked in {both:.2f} s")
            seq.close()
            par.close()
    finally:
        for r in running:
            r.server.should_exit = True
        for r in running:
            r.stop()
        http.stop()
        knot.stop()


if __name__ == "__main__":
    main()
