"""`ecert check` against a Python TLS server on 127.0.0.1 serving a complete chain, the leaf alone, a chain
in the wrong order and a self-signed certificate: completeness is judged on its own, with the reason."""

from __future__ import annotations

import json
import re
import socket
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.integration.test_client_cli import HOST, run
from tests.unit.test_client_pki import TestPKI


@contextmanager
def tls_server(certfile: Path, keyfile: Path) -> Iterator[int]:
    """A TLS server on a free 127.0.0.1 port that sends ``certfile`` as its chain, in file order."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(certfile, keyfile)
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            conn.settimeout(5)
            try:
                with ctx.wrap_socket(conn, server_side=True) as tls:
                    tls.recv(1)  # until the client closes
            except (OSError, ssl.SSLError):
                pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield int(listener.getsockname()[1])
    finally:
        stop.set()
        thread.join(timeout=5)
        listener.close()


def self_signed(key: ec.EllipticCurvePrivateKey) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, HOST)])
    now = datetime.now(UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(hours=1))
        .not_valid_after(now + timedelta(days=90))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(HOST)]), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )


# what the server sends -> complete?, in order?, words in the reason
SERVED = {
    "leaf-and-intermediate": (["leaf", "sub"], True, True, None),
    "leaf-only": (["leaf"], False, True, "sends only its own certificate; the issuing CA 'Test e-Cert SSL CA 3 - 17'"),
    "wrong-order": (["leaf", "root", "sub"], False, False, "out of order"),
    "self-signed": (["self"], False, True, "self-signed and is not a root installed in the store"),
}


@pytest.mark.parametrize(("served", "complete", "in_order", "reason"), SERVED.values(), ids=SERVED.keys())
def test_check_judges_completeness_of_what_the_server_sends(
    tmp_path: Path, served: list[str], complete: bool, in_order: bool, reason: str | None
) -> None:
    pki = TestPKI(start=datetime.now(UTC))
    key = ec.generate_private_key(ec.SECP256R1())
    certs = {"leaf": pki.issue(key.public_key(), [HOST]), "sub": pki.sub, "root": pki.root, "self": self_signed(key)}
    (tmp_path / "chain.pem").write_bytes(pki.pem(*(certs[n] for n in served)))
    (tmp_path / "key.pem").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    store = tmp_path / "store"
    (tmp_path / "root.pem").write_bytes(pki.pem(pki.root))
    assert run(store, "ca", "install", str(tmp_path / "root.pem")).exit_code == 0

    with tls_server(tmp_path / "chain.pem", tmp_path / "key.pem") as port:
        r = run(store, "--json", "check", f"https://127.0.0.1:{port}", "--servername", HOST, "--timeout", "5")
        text = run(store, "check", f"https://127.0.0.1:{port}", "--servername", HOST, "--timeout", "5")
    out = json.loads(r.stdout)
    assert len(out["served"]) == len(served)
    assert out["complete"] is complete and out["in_order"] is in_order
    assert out["hostname_ok"] is True  # judged apart: every case here is for the right host
    if complete:
        assert r.exit_code == 0 and out["incomplete_reason"] is None
        assert re.search(r"│ Complete\s+│ yes ", text.output)
    else:
        assert r.exit_code == 4
        assert reason in out["incomplete_reason"]
        assert re.search(r"│ Complete\s+│ NO: ", text.output)
