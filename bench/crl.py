"""Time and peak memory to sign an N-entry CRL with build_crl, beside `openssl ca -gencrl` on the same rows.

Usage: .venv/bin/python bench/crl.py [--sizes 10000,100000,1000000] [--key p256|p384|rsa] [--repeat K]
                                     [--keep DIR]

Both sides sign with the same CA key and certificate, list the same serials, revocation times and
reasons, and write CRL number, AKI and a 7-day validity. Each run is a fresh process per size so
its peak RSS (ru_maxrss) belongs to that size alone:
- ours: a worker process that streams rows (serial, epoch, reason) as a database cursor would,
  wraps each in a RevokedEntry and calls build_crl; timed from the first row to the DER bytes.
- openssl: `openssl ca -gencrl` reading an index.txt with N `R` lines; timed as the whole process
  (start, key load, index parse, sign, write), which is what an operator would run.
The goal in issue 5 is ours within 2x of openssl's time.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

NOW = datetime(2026, 11, 20, 2, 0, tzinfo=UTC)
# The BR 7.2.2 reasons `openssl ca` can write (its index knows no privilegeWithdrawn).
REASONS = ("keyCompromise", "superseded", "cessationOfOperation", "affiliationChanged")
_MULT = 0x9E3779B97F4A7C15F39CC0605CEDC835  # odd: i -> i*_MULT mod 2^126 is a bijection, so serials are unique


def rows(n: int):
    """N deterministic rows (serial, revoked-at epoch, reason index): 127-bit serials, the last 30 days."""
    base = int(NOW.timestamp())
    span = 30 * 86400
    for i in range(n):
        yield (1 << 126) + ((i + 1) * _MULT) % (1 << 126), base - 60 - (i * 7919) % span, i % len(REASONS)


# --- the worker: our side, in its own process ---------------------------------------------------


def worker(n: int, workdir: Path) -> None:
    from ecert.signer.status import RevokedEntry, build_crl

    key = serialization.load_pem_private_key((workdir / "ca.key").read_bytes(), None)
    cert = x509.load_pem_x509_certificate((workdir / "ca.pem").read_bytes())
    flags = [
        x509.ReasonFlags[name]
        for name in ("key_compromise", "superseded", "cessation_of_operation", "affiliation_changed")
    ]
    from_ts = datetime.fromtimestamp
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start, start_cpu = time.perf_counter(), time.process_time()
    entries = (RevokedEntry(serial, from_ts(ts, UTC), flags[r]) for serial, ts, r in rows(n))
    der = build_crl(
        issuer_cert=cert,
        issuer_key=key,
        entries=entries,
        number=1,
        this_update=NOW,
        next_update=NOW + timedelta(days=7),
    )
    elapsed, cpu = time.perf_counter() - start, time.process_time() - start_cpu
    (workdir / "ours.der").write_bytes(der)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"{elapsed:.6f} {cpu:.6f} {peak} {before} {len(der)}")


# --- the parent: set up, run both, report -------------------------------------------------------


def make_ca(kind: str, workdir: Path) -> None:
    if kind == "rsa":
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    else:
        key = ec.generate_private_key(ec.SECP384R1() if kind == "p384" else ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "HK"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Ecert Demo Trust Services"),
            x509.NameAttribute(NameOID.COMMON_NAME, "Ecert Demo Bench CA"),
        ]
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - timedelta(days=30))
        .not_valid_after(NOW + timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA384() if kind == "p384" else hashes.SHA256())
    )
    (workdir / "ca.key").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    (workdir / "ca.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    md = "sha384" if kind == "p384" else "sha256"
    (workdir / "openssl.cnf").write_text(
        "[ ca ]\ndefault_ca = bench\n"
        "[ bench ]\n"
        f"database = {workdir}/index.txt\ncrlnumber = {workdir}/crlnumber\n"
        f"default_md = {md}\ndefault_crl_days = 7\ncrl_extensions = crl_ext\nunique_subject = no\n"
        "[ crl_ext ]\nauthorityKeyIdentifier = keyid:always\n"
    )


def write_index(n: int, workdir: Path) -> None:
    with open(workdir / "index.txt", "w") as f:
        for serial, ts, r in rows(n):
            when = datetime.fromtimestamp(ts, UTC).strftime("%y%m%d%H%M%SZ")
            f.write(f"R\t301231000000Z\t{when},{REASONS[r]}\t{serial:X}\tunknown\t/CN=x\n")
    (workdir / "index.txt.attr").write_text("unique_subject = no\n")
    (workdir / "crlnumber").write_text("01\n")


def run_measured(args: list[str]) -> tuple[float, float, int, str]:
    """Run a child; return its wall time, its CPU time and peak RSS (KiB, from wait4), and its stdout."""
    with tempfile.TemporaryFile("w+") as err:
        start = time.perf_counter()
        proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=err, text=True)
        out = proc.stdout.read()  # type: ignore[union-attr]
        _, status, usage = os.wait4(proc.pid, 0)  # not proc.wait(): wait4 gives the child's own rusage
        elapsed = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            err.seek(0)
            raise SystemExit(f"{args[0]} failed: {err.read().strip()}")
    return elapsed, usage.ru_utime + usage.ru_stime, usage.ru_maxrss, out


def bench_size(n: int, workdir: Path, repeat: int) -> dict[str, float]:
    """Best of ``repeat`` runs of each side (the machine may be shared), then a like-for-like check."""
    write_index(n, workdir)
    openssl_cmd = ["openssl", "ca", "-gencrl", "-config", str(workdir / "openssl.cnf")]
    openssl_cmd += ["-keyfile", str(workdir / "ca.key"), "-cert", str(workdir / "ca.pem")]
    openssl_cmd += ["-out", str(workdir / "openssl.pem")]
    ours_cmd = [sys.executable, __file__, "--worker", str(n), "--workdir", str(workdir)]
    best: dict[str, float] = {}
    for _ in range(repeat):
        o_wall, o_cpu, o_kib, _ = run_measured(openssl_cmd)
        p_wall, _, p_kib, out = run_measured(ours_cmd)
        build_s, build_cpu, _, before_kib, der_len = (float(v) for v in out.split())
        run = {
            "ours_s": build_s, "ours_cpu": build_cpu, "ours_proc_s": p_wall, "ours_mib": p_kib / 1024,
            "ours_build_mib": (p_kib - before_kib) / 1024, "openssl_s": o_wall, "openssl_cpu": o_cpu,
            "openssl_mib": o_kib / 1024, "der_mib": der_len / 2**20,
        }  # fmt: skip
        best = {k: min(v, best.get(k, v)) for k, v in run.items()}

    # Both lists hold the same N serials: check it, so the figures compare like with like.
    ours = x509.load_der_x509_crl((workdir / "ours.der").read_bytes())
    theirs = x509.load_pem_x509_crl((workdir / "openssl.pem").read_bytes())
    assert len(ours) == len(theirs) == n, (len(ours), len(theirs), n)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--key", choices=["p256", "p384", "rsa"], default="p256")
    parser.add_argument("--repeat", type=int, default=1, help="runs per size; the best of each is shown")
    parser.add_argument("--keep", type=Path, help="write the files here instead of a temporary directory")
    parser.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--workdir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker is not None:
        worker(args.worker, args.workdir)
        return

    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    with tempfile.TemporaryDirectory(prefix="ecert-bench-crl-") as tmp:
        workdir = args.keep or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        make_ca(args.key, workdir)
        version = subprocess.run(["openssl", "version"], capture_output=True, text=True).stdout.strip()
        print(
            f"CRL signing, {args.key} CA key, {version}, Python {sys.version.split()[0]}, "
            f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs, best of {args.repeat}"
        )
        header = (
            f"{'entries':>9} | {'ours s':>6} {'cpu s':>6} {'MiB':>5} | "
            f"{'openssl s':>9} {'cpu s':>6} {'MiB':>5} | {'time':>6} {'cpu':>6} {'memory':>6} | {'DER MiB':>7}"
        )  # fmt: skip
        print(header)
        print("-" * len(header))
        for n in sizes:
            r = bench_size(n, workdir, args.repeat)
            print(
                f"{n:>9} | {r['ours_s']:>6.2f} {r['ours_cpu']:>6.2f} {r['ours_mib']:>5.0f} | "
                f"{r['openssl_s']:>9.2f} {r['openssl_cpu']:>6.2f} {r['openssl_mib']:>5.0f} | "
                f"{r['ours_s'] / r['openssl_s']:>5.2f}x {r['ours_cpu'] / r['openssl_cpu']:>5.2f}x "
                f"{r['ours_mib'] / r['openssl_mib']:>5.2f}x | {r['der_mib']:>7.1f}",
                flush=True,
            )
        print("ratios are ours / openssl; goal (issue 5): time within 2x.")
        print("ours = first row to DER bytes in a fresh worker process; openssl = the whole `openssl ca -gencrl`")
        print("process. cpu = user+system seconds (steadier than wall time on a shared machine); MiB = peak RSS")
        print("of each process (ours includes the interpreter, about 30 MiB).")


if __name__ == "__main__":
    main()
