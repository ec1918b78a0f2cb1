"""More real ACME clients against ecert over HTTPS on loopback: dehydrated, Caddy and uacme (all from Debian).

Each obtains a certificate the way its users would (dehydrated and uacme write http-01 files to a webroot
the test serves; Caddy answers its own challenges as the web server it is), with the External Account
Binding ecert requires, and each certificate is judged like certbot's and lego's in test_acme_clients.py:
pkilint (no ERROR/FATAL) and ``openssl verify`` through our root and through the cross-certificate.
"""

from __future__ import annotations

from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from josepy.b64 import b64encode
from josepy.jwk import JWK
from sqlalchemy import select
from tests.integration.acme_order_helpers import unique_label
from tests.interop.acme_interop import (
    TlsServer,
    ca_pems,
    caddy,
    dehydrated,
    ecert_target,
    judge,
    names,
    pem,
    s_client_chain,
    uacme,
    uacme_issue,
    wait_for_certificate,
    webroot,
)

from ecert.store.models_acme import AcmeAccount


def test_dehydrated_http01_webroot_with_rsa_account_key(tls_server: TlsServer, tmp_path: Path) -> None:
    name = f"{unique_label('dehydrated')}.example.com"
    tls_server.knot.set_records(name, "A", ["127.0.0.1"])
    fullchain = dehydrated(ecert_target(tls_server, name), tmp_path, name)
    assert names(judge(tls_server, fullchain, tmp_path)) == {name}
    account_key = next((tmp_path / "dehydrated" / "accounts").glob("*/account_key.pem")).read_bytes()
    assert isinstance(serialization.load_pem_private_key(account_key, None), rsa.RSAPrivateKey)


def test_dehydrated_preferred_chain_takes_the_alternate_chain_through_the_cross(
    tls_server: TlsServer, tmp_path: Path
) -> None:
    name = f"{unique_label('dehydrated')}.example.com"
    tls_server.knot.set_records(name, "A", ["127.0.0.1"])
    external = next(c for k, c in ca_pems(tls_server.ctx).items() if k.startswith("external-root:"))
    common_name = str(external.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value)
    fullchain = dehydrated(ecert_target(tls_server, name), tmp_path, name, preferred_chain=common_name)
    chain = x509.load_pem_x509_certificates(fullchain.read_bytes())
    assert chain[-1].issuer == external.subject  # the last certificate is the cross, signed by the external root
    assert names(judge(tls_server, fullchain, tmp_path)) == {name}


def test_uacme_eab_http01_then_newkey_and_issue_again(tls_server: TlsServer, tmp_path: Path) -> None:
    name = f"{unique_label('uacme')}.example.com"
    tls_server.knot.set_records(name, "A", ["127.0.0.1"])
    target = ecert_target(tls_server, name)
    first = judge(tls_server, uacme_issue(target, tmp_path, name), tmp_path)
    confdir = tmp_path / "uacme"
    key_before = (confdir / "private" / "key.pem").read_bytes()
    [account] = accounts_holding(tls_server, key_before)
    with webroot(tmp_path / "docroot", target.http01_port) as challenges:
        uacme(target, confdir, challenges, "newkey")
        key_after = (confdir / "private" / "key.pem").read_bytes()
        # RFC 8555 7.3.5: the same account now answers to the new key only
        assert (accounts_holding(tls_server, key_before), accounts_holding(tls_server, key_after)) == ([], [account])
        uacme(target, confdir, challenges, "-t", "EC", "--force", "issue", name)  # the rolled key still speaks
    second = judge(tls_server, confdir / name / "cert.pem", tmp_path)
    assert names(first) == names(second) == {name}
    assert first.serial_number != second.serial_number


def accounts_holding(server: TlsServer, key_pem: bytes) -> list[int]:
    """Ids of ecert's ACME accounts whose key is the one in ``key_pem`` (by RFC 7638 thumbprint)."""
    thumb = b64encode(JWK.load(key_pem).thumbprint(hash_function=hashes.SHA256)).decode()
    with server.ctx.read() as session:
        return list(session.scalars(select(AcmeAccount.id).where(AcmeAccount.key_thumbprint == thumb)))


def test_caddy_gets_a_certificate_for_its_loopback_site(tls_server: TlsServer, tmp_path: Path) -> None:
    name = f"{unique_label('caddy')}.example.com"
    tls_server.knot.set_records(name, "A", ["127.0.0.1"])
    target = ecert_target(tls_server, name)
    with caddy(target, tmp_path, name, tls_server.tlsalpn_port) as running:
        stored = wait_for_certificate(running, name)
        listening = running.listeners()
        assert listening and all(addr.startswith("127.0.0.1:") for addr in listening), listening
        root = next(c for k, c in ca_pems(tls_server.ctx).items() if k.startswith("root:"))
        (tmp_path / "ecert-root.pem").write_bytes(pem(root))
        served, transcript = s_client_chain(tls_server.tlsalpn_port, name, tmp_path / "ecert-root.pem")
    issuing = {c.subject for k, c in ca_pems(tls_server.ctx).items() if k.split(":")[0] in ("ov", "ev")}
    assert served[0].issuer in issuing and names(served[0]) == {name}
    assert "Verify return code: 0 (ok)" in transcript, transcript[-2000:]
    assert served[0] == judge(tls_server, stored, tmp_path)
