"""OCSP responses/second from ecert beside nginx serving the same pre-signed response file.

Three servers, one worker process each, on 127.0.0.1 in the same run: nginx serving the response
as a static file (the baseline), the main app's OCSP endpoint (uvicorn, httptools, uvloop), and the
dedicated responder ``ecert-ca ocsp serve``. Each is loaded by ``wrk`` (bounded: 1 thread, 32
connections, 5 s) with the RFC 6960 GET URL; the script prints the rates and their ratios to nginx
(issue 5's goal: at least 0.5).

    .venv/bin/python bench/ocsp.py [--seconds 5] [--connections 32] [--workers 1] [--rounds 1]

With ``--rounds N`` the three are loaded in turn N times and the best rate of each is kept, which
evens out a machine that other work keeps busy.
"""

from __future__ import annotations

import argparse
import base64
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

PASSPHRASE = {"ECERT_KEY_PASSPHRASE": "bench-passphrase"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(url: str, timeout: float = 20.0) -> bytes:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:  # noqa: S310 - loopback only
                return resp.read()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def _settings(data_dir: Path):  # type: ignore[no-untyped-def]
    from ecert.settings import load_settings

    return load_settings(data_dir=data_dir, base_url="http://pki.ecert-demo.hk", ocsp_enabled=True)


def serve(data_dir: Path, port: int, workers: int) -> None:
    """Child mode: the ecert app under uvicorn (httptools + uvloop), access log off, jobs off."""
    import uvicorn

    os.environ.update(PASSPHRASE)
    os.environ["ECERT_JOBS"] = "off"
    os.environ["ECERT_BENCH_DATA"] = str(data_dir)
    uvicorn.run(
        "bench.ocsp:app_factory",
        factory=True,
        host="127.0.0.1",
        port=port,
        workers=workers,
        log_level="warning",
        access_log=False,
        http="httptools",
        loop="uvloop",
    )


def app_factory():  # type: ignore[no-untyped-def]
    from ecert.web.app import create_app

    return create_app(_settings(Path(os.environ["ECERT_BENCH_DATA"])), dict(os.environ))


def prepare(data_dir: Path) -> str:
    """A demo CA with one certificate and its pre-signed response; returns the GET path."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509 import ocsp

    from ecert.core.profiles import CertType, SubjectData
    from ecert.services import issuance, publication
    from ecert.services.ca_config import load_hierarchy_config
    from ecert.services.ceremony import init_hierarchy
    from ecert.services.context import build_context
    from ecert.signer.status import issuer_hashes
    from ecert.store.models import CA

    ctx = build_context(_settings(data_dir), PASSPHRASE)
    try:
        init_hierarchy(ctx, load_hierarchy_config(None), demo=True)
        row = issuance.issue(
            ctx,
            issuance.IssueRequest(
                cert_type=CertType.SERVER,
                names=("www.example.com",),
                subject=SubjectData("Example Limited"),
                public_key=ec.generate_private_key(ec.SECP256R1()).public_key(),
            ),
        )
        with ctx.transaction() as s:
            ca = s.get(CA, row.ca_id)
            label, issuer = ca.label, x509.load_der_x509_certificate(ca.cert_der)
        publication.refresh_ocsp(ctx, label)
        name_hash, key_hash = issuer_hashes(issuer, hashes.SHA1())
        req = (
            ocsp.OCSPRequestBuilder()
            .add_certificate_by_hash(name_hash, key_hash, int(row.serial_hex, 16), hashes.SHA1())
            .build()
        )
        der = req.public_bytes(serialization.Encoding.DER)
        return "/ocsp/" + urllib.parse.quote(base64.b64encode(der).decode(), safe="")
    finally:
        ctx.close()


NGINX_CONF = """worker_processes {workers};
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {dir}/body; proxy_temp_path {dir}/proxy; fastcgi_temp_path {dir}/fcgi;
    uwsgi_temp_path {dir}/uwsgi; scgi_temp_path {dir}/scgi;
    server {{
        listen 127.0.0.1:{port};
        location = /ocsp.der {{
            root {dir}/www;
            default_type application/ocsp-response;
            add_header Cache-Control "max-age=300, public, no-transform, must-revalidate";
        }}
    }}
}}
"""


def serve_responder(data_dir: Path, port: int, root: Path) -> subprocess.Popen[bytes]:
    """``ecert-ca ocsp serve`` on the bench's data directory (polling every 30 s, its default)."""
    env = {
        **os.environ,
        **PASSPHRASE,
        "PYTHONPATH": str(root / "src"),
        "ECERT_DATA_DIR": str(data_dir),
        "ECERT_BASE_URL": "http://pki.ecert-demo.hk",
        "ECERT_OCSP_ENABLED": "true",
    }
    env.pop("ECERT_DATABASE_URL", None)
    return subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from ecert.cli.ca import main; main()",
            "ocsp",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        cwd=root,
        env=env,
        stdout=subprocess.DEVNULL,
    )


def wrk(url: str, seconds: int, connections: int) -> float:
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", url],
        capture_output=True,
        text=True,
        timeout=seconds + 30,
        check=True,
    ).stdout
    match = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if not match or "Non-2xx" in out or "Socket errors" in out:
        raise SystemExit(f"wrk output unexpected:\n{out}")
    return float(match.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=1, help="load each server this many times; keep the best")
    parser.add_argument("--serve", nargs=2, metavar=("DATA_DIR", "PORT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(Path(args.serve[0]), int(args.serve[1]), args.workers)
        return
    for tool in ("wrk", "nginx"):
        if shutil.which(tool) is None and not Path("/usr/sbin/nginx").exists():
            raise SystemExit(f"{tool} is missing: apt-get install -y {tool}")
    root = Path(__file__).resolve().parents[1]
    with tempfile.TemporaryDirectory(prefix="ecert-bench-ocsp-") as tmp:
        tmp_path = Path(tmp)
        tmp_path.chmod(0o755)  # nginx workers run as an unprivileged user and must read www/
        data_dir = tmp_path / "data"
        path = prepare(data_dir)
        port = _free_port()
        env = {**os.environ, "PYTHONPATH": f"{root}:{root / 'src'}"}
        server = subprocess.Popen(
            [
                sys.executable,
                str(Path(__file__).resolve()),
                "--serve",
                str(data_dir),
                str(port),
                "--workers",
                str(args.workers),
            ],
            cwd=root,
            env=env,
        )
        nginx = responder = None
        try:
            body = _wait(f"http://127.0.0.1:{port}{path}")
            (tmp_path / "www").mkdir()
            (tmp_path / "www" / "ocsp.der").write_bytes(body)
            nport = _free_port()
            conf = tmp_path / "nginx.conf"
            conf.write_text(NGINX_CONF.format(workers=args.workers, dir=tmp_path, port=nport))
            nginx = subprocess.Popen([shutil.which("nginx") or "/usr/sbin/nginx", "-c", str(conf), "-p", str(tmp_path)])
            assert _wait(f"http://127.0.0.1:{nport}/ocsp.der") == body
            rport = _free_port()
            responder = serve_responder(data_dir, rport, root)
            assert _wait(f"http://127.0.0.1:{rport}{path}") == body
            urls = {
                "nginx": f"http://127.0.0.1:{nport}/ocsp.der",
                "app": f"http://127.0.0.1:{port}{path}",
                "responder": f"http://127.0.0.1:{rport}{path}",
            }
            best = dict.fromkeys(urls, 0.0)
            for _ in range(max(1, args.rounds)):
                for name, url in urls.items():
                    best[name] = max(best[name], wrk(url, args.seconds, args.connections))
            nginx_rps, ecert_rps, responder_rps = best["nginx"], best["app"], best["responder"]
        finally:
            for proc in (server, nginx, responder):
                if proc is not None:
                    proc.terminate()
                    try:
                        proc.wait(10)
                    except subprocess.TimeoutExpired:
                        proc.kill()
    print(
        f"OCSP GET, wrk -t1 -c{args.connections} -d{args.seconds}s on 127.0.0.1, best of {max(1, args.rounds)} "
        f"(nginx and the app: {args.workers} worker(s); the responder: one process)"
    )
    print(f"  nginx static file       : {nginx_rps:10.0f} responses/s  (baseline)")
    print(f"  main app /ocsp          : {ecert_rps:10.0f} responses/s  ratio {ecert_rps / nginx_rps:5.2f}")
    print(
        f"  ecert-ca ocsp serve     : {responder_rps:10.0f} responses/s  ratio {responder_rps / nginx_rps:5.2f}"
        "  (goal >= 0.50)"
    )


if __name__ == "__main__":
    main()
