"""The peers bench/issue.py measures ecert against, on the same CSRs in the same run.

* ``openssl ca -batch``, once per certificate (a process per call, as a shell script would run it) and once
  for the whole batch (``-infiles``), with a P-256 CA and the usual server-certificate extensions;
* django-ca's Python API (``Certificate.objects.create_cert``, no linting), in a bench-only virtualenv under
  /tmp that this module creates on first use (``pip install django-ca psycopg``) with a throwaway Django
  project on SQLite and on PostgreSQL (a schema of its own), so django-ca's dependencies never enter ecert's
  environment.

Each function returns certificates per second; with ``processes=2`` the work is split over two processes
(openssl: each its own CA directory, since ``openssl ca`` has no locking of its index).
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import NamedTuple

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

__all__ = ["Rate", "make_csrs", "openssl_per_call", "openssl_batched", "django_ca", "DJANGO_CA_VENV"]


class Rate(NamedTuple):
    """Certificates per second (wall clock) and CPU milliseconds per certificate (all processes, user+system).

    The CPU figure barely moves with the machine's load (other processes on the 2 cores change the wall
    clock a lot), so its ratio is the one to compare across runs.
    """

    per_second: float
    cpu_ms: float


def _children_cpu() -> float:
    """CPU seconds of every finished child (and their waited-for children) of this process."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


DJANGO_CA_VENV = Path("/tmp/ecert-bench-djangoca")

_OPENSSL_CNF = """
[ ca ]
default_ca = bench
[ bench ]
dir = {dir}
database = $dir/index.txt
new_certs_dir = $dir/new
serial = $dir/serial
certificate = $dir/ca.pem
private_key = $dir/ca.key
default_md = sha256
default_days = 397
policy = anything
unique_subject = no
copy_extensions = copy
x509_extensions = leaf
rand_serial = yes
[ anything ]
commonName = optional
[ leaf ]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
certificatePolicies = 2.23.140.1.2.2
"""


def make_csrs(directory: Path, count: int) -> list[Path]:
    """``count`` P-256 CSRs, each for its own name, as PEM files: the one input every contestant gets."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        key = ec.generate_private_key(ec.SECP256R1())
        name = f"www{i}.example.com"
        csr = (
            x509.CertificateSigningRequestBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
            .sign(key, hashes.SHA256())
        )
        path = directory / f"{i:05d}.csr"
        path.write_bytes(csr.public_bytes(serialization.Encoding.PEM))
        paths.append(path)
    return paths


def _openssl_ca_dir(directory: Path) -> Path:
    """A fresh P-256 CA for ``openssl ca``: key, self-signed certificate, empty index."""
    (directory / "new").mkdir(parents=True, exist_ok=True)
    (directory / "index.txt").write_text("")
    (directory / "openssl.cnf").write_text(_OPENSSL_CNF.format(dir=directory))
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            str(directory / "ca.key"),
            "-out",
            str(directory / "ca.pem"),
            "-days",
            "3650",
            "-subj",
            "/CN=Bench CA",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
        check=True,
        capture_output=True,
    )
    return directory / "openssl.cnf"


def _openssl_one_by_one(job: tuple[str, list[str]]) -> int:
    directory, csrs = Path(job[0]), job[1]
    cnf = _openssl_ca_dir(directory)
    for i, csr in enumerate(csrs):
        subprocess.run(
            [
                "openssl",
                "ca",
                "-batch",
                "-config",
                str(cnf),
                "-notext",
                "-in",
                csr,
                "-out",
                str(directory / f"{i}.pem"),
            ],
            check=True,
            capture_output=True,
        )
    return len(csrs)


def _openssl_all_at_once(job: tuple[str, list[str]]) -> int:
    directory, csrs = Path(job[0]), job[1]
    cnf = _openssl_ca_dir(directory)
    subprocess.run(
        [
            "openssl",
            "ca",
            "-batch",
            "-config",
            str(cnf),
            "-notext",
            "-out",
            str(directory / "all.pem"),
            "-infiles",
            *csrs,
        ],
        check=True,
        capture_output=True,
    )
    return len(csrs)


def _split(csrs: Sequence[Path], processes: int) -> list[list[str]]:
    return [[str(p) for p in csrs[i::processes]] for i in range(processes)]


def _timed(worker: object, work: Path, csrs: Sequence[Path], processes: int) -> Rate:
    jobs = [(str(work / f"p{i}"), part) for i, part in enumerate(_split(csrs, processes))]
    cpu0, t0 = _children_cpu(), time.perf_counter()
    if processes == 1:
        done = worker(jobs[0])  # type: ignore[operator]
    else:
        with ProcessPoolExecutor(processes) as pool:
            done = sum(pool.map(worker, jobs))  # type: ignore[arg-type]
    elapsed, cpu = time.perf_counter() - t0, _children_cpu() - cpu0
    return Rate(float(done) / elapsed, 1000.0 * cpu / float(done))


def openssl_per_call(work: Path, csrs: Sequence[Path], processes: int = 1) -> Rate:
    """Certificates/second with one ``openssl ca -batch`` process per certificate (the timing includes making
    each process's CA directory, about one certificate's worth)."""
    return _timed(_openssl_one_by_one, work, csrs, processes)


def openssl_batched(work: Path, csrs: Sequence[Path], processes: int = 1) -> Rate:
    """Certificates/second with one ``openssl ca -batch -infiles ...`` per process."""
    return _timed(_openssl_all_at_once, work, csrs, processes)


# --- django-ca -----------------------------------------------------------------------------------------

_DJANGO_SCRIPT = r"""
import json, sys, time, os
from pathlib import Path
work = Path(sys.argv[1]); csr_paths = json.loads(sys.argv[2]); pg = json.loads(sys.argv[3])
(work / "bench_urls.py").write_text("from django.urls import include, path\n"
                                    "urlpatterns = [path('django_ca/', include('django_ca.urls'))]\n")
sys.path.insert(0, str(work))
import django
from django.conf import settings
settings.configure(
    DEBUG=False, SECRET_KEY="bench", USE_TZ=True, TIME_ZONE="UTC",
    DATABASES={"default": (
        {"ENGINE": "django.db.backends.sqlite3", "NAME": str(work / "db.sqlite3")} if pg is None else
        {"ENGINE": "django.db.backends.postgresql", "NAME": pg["database"], "USER": pg["user"],
         "HOST": pg["host"], "PORT": pg["port"], "OPTIONS": {"options": "-c search_path=" + pg["schema"]}})},
    INSTALLED_APPS=["django.contrib.contenttypes", "django.contrib.auth", "django_ca"],
    CA_DIR=str(work / "files"), CA_DEFAULT_HOSTNAME="ca.example.com", CA_MIN_KEY_SIZE=1024,
    CACHES={"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}, ROOT_URLCONF="bench_urls",
    STORAGES={"django-ca": {"BACKEND": "django.core.files.storage.FileSystemStorage",
                            "OPTIONS": {"location": str(work / "files")}},
              "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"}},
)
django.setup()
if pg is not None:
    from django.db import connection
    with connection.cursor() as cursor:
        cursor.execute('CREATE SCHEMA IF NOT EXISTS "%s"' % pg["schema"])
from django.core.management import call_command
call_command("migrate", verbosity=0)
from cryptography import x509
from cryptography.x509.oid import NameOID
from django_ca.key_backends import key_backends
from django_ca.models import Certificate, CertificateAuthority
backend = key_backends["default"]
name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Bench CA")])
key_opts = backend.get_create_private_key_options("EC", key_size=None, elliptic_curve="secp256r1",
                                                  options={"path": "ca", "password": None})
from datetime import datetime, timedelta, timezone
ca = CertificateAuthority.objects.init(name="bench", key_backend=backend, key_backend_options=key_opts,
                                       subject=name, key_type="EC",
                                       not_after=datetime.now(timezone.utc) + timedelta(days=3650))
use = backend.get_use_private_key_options(ca, {})
csrs = [x509.load_pem_x509_csr(Path(p).read_bytes()) for p in csr_paths]
def issue(csr):
    cn = csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    san = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    return Certificate.objects.create_cert(ca, key_backend_options=use, csr=csr, profile=None, extensions=[san],
                                           subject=x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
issue(csrs[0])
c0, t0 = time.process_time(), time.perf_counter()
for csr in csrs:
    issue(csr)
result = {"count": len(csrs), "seconds": time.perf_counter() - t0, "cpu": time.process_time() - c0}
if pg is not None:
    with connection.cursor() as cursor:
        cursor.execute('DROP SCHEMA "%s" CASCADE' % pg["schema"])
print(json.dumps(result))
"""


def _django_ready() -> Path | None:
    """The bench venv's python with django-ca importable, creating the venv on first use; None if it fails."""
    python = DJANGO_CA_VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(DJANGO_CA_VENV)], check=True)
    probe = subprocess.run([str(python), "-c", "import django_ca, psycopg"], capture_output=True)
    if probe.returncode != 0:
        installed = subprocess.run(
            [str(python), "-m", "pip", "install", "-q", "django-ca", "psycopg[binary]"], capture_output=True, text=True
        )
        if installed.returncode != 0:
            print(f"  django-ca: install failed: {installed.stderr.strip()[-300:]}", file=sys.stderr)
            return None
    return python


def _django_run(job: tuple[str, list[str], str | None]) -> tuple[int, float, float]:
    python = DJANGO_CA_VENV / "bin" / "python"
    work = Path(job[0])
    work.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        [str(python), "-c", _DJANGO_SCRIPT, str(work), json.dumps(job[1]), json.dumps(_pg_settings(job[2], work))],
        capture_output=True,
        text=True,
        env={k: v for k, v in os.environ.items() if not k.startswith("DJANGO")},
    )
    if done.returncode != 0:
        raise RuntimeError(done.stderr.strip()[-800:])
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return int(result["count"]), float(result["seconds"]), float(result["cpu"])


def _pg_settings(url: str | None, work: Path) -> dict[str, object] | None:
    """Django's connection settings for a PostgreSQL URL (postgresql+psycopg://user@host:port/db), with a schema
    of the run's own (made and dropped by the script); None for SQLite."""
    if url is None:
        return None
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    schema = f"bench_django_{abs(hash(str(work))) % 10**8}"
    return {
        "database": parsed.database,
        "user": parsed.username or "postgres",
        "host": parsed.host or "127.0.0.1",
        "port": parsed.port or 5432,
        "schema": schema,
    }


def django_ca(work: Path, csrs: Sequence[Path], processes: int = 1, pg_url: str | None = None) -> Rate | None:
    """Certificates/second through django-ca's ``create_cert`` (no lint); each process its own CA and database:
    SQLite, or with ``pg_url`` a schema of its own on that PostgreSQL (the database ecert runs on in the same run).

    Only the issuing loop is timed (Django start-up and migrations are not); None if django-ca cannot run.
    """
    if _django_ready() is None:
        return None
    jobs = [(str(work / f"django{i}"), part, pg_url) for i, part in enumerate(_split(csrs, processes))]
    try:
        if processes == 1:
            results = [_django_run(jobs[0])]
        else:
            with ProcessPoolExecutor(processes) as pool:
                results = list(pool.map(_django_run, jobs))
    except RuntimeError as exc:
        print(f"  django-ca failed: {exc}", file=sys.stderr)
        return None
    count = sum(r[0] for r in results)
    return Rate(count / max(r[1] for r in results), 1000.0 * sum(r[2] for r in results) / count)


def cleanup(work: Path) -> None:
    shutil.rmtree(work, ignore_errors=True)
