"""certbot (PyPI) after its first certificate from ecert: ``renew`` governed by ecert's ARI, and ``revoke``.

A plain ``certbot renew`` asks ecert's renewalInfo (RFC 9773) and renews only once the window has begun; ecert
opens that window in the past when an operator's incident marks the certificate for replacement. ``certbot
revoke`` signs with the account key (``--reason keycompromise``) or with the certificate's own key
(``--key-path``); ecert then shows the certificate revoked, lists it on the CRL and blocks its key at the RA.

Everything runs on 127.0.0.1: ecert over HTTPS (the ``tls_server`` fixture), certbot's standalone http-01
listener, Knot for the names. Every certbot run is bounded by ``acme_interop.CLIENT_TIMEOUT``.
"""

from __future__ import annotations

import datetime as dt
import re
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from sqlalchemy import select
from tests.integration.acme_order_helpers import make_csr, unique_label
from tests.interop.acme_interop import CLIENT_TIMEOUT, TlsServer, certbot_http01, ecert_target, judge, names, run

from ecert.client.acme_renew import ari_cert_id
from ecert.core.acme_ari import RenewalWindow
from ecert.core.errors import EcertError
from ecert.core.profiles import CertType
from ecert.services import acme_ari, incidents, publication, registration
from ecert.store.models import CA, Certificate

CERTBOT = str(Path(sys.executable).parent / "certbot")


def _env(server: TlsServer, workdir: Path) -> dict[str, str]:
    return {"PATH": "/usr/bin:/bin", "HOME": str(workdir), "REQUESTS_CA_BUNDLE": str(server.tls_root)}


def _dirs(workdir: Path) -> list[str]:
    return [
        "--config-dir",
        str(workdir / "conf"),
        "--work-dir",
        str(workdir / "work"),
        "--logs-dir",
        str(workdir / "logs"),
    ]


def _first_certificate(server: TlsServer, workdir: Path, prefix: str) -> tuple[str, Path]:
    """A name in Knot pointing at 127.0.0.1, and certbot's first certificate for it (``certonly``, EAB, http-01)."""
    name = f"{unique_label(prefix)}.example.com"
    server.knot.set_records(name, "A", ["127.0.0.1"])
    fullchain = certbot_http01(ecert_target(server, name), workdir, name, CERTBOT)
    return name, fullchain


def _leaf(fullchain: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificates(fullchain.read_bytes())[0]


def _row(server: TlsServer, cert: x509.Certificate) -> Certificate:
    """ecert's record of ``cert`` (by serial and exact bytes)."""
    der = cert.public_bytes(serialization.Encoding.DER)
    with server.ctx.read() as session:
        found = session.scalars(select(Certificate).where(Certificate.serial_hex == format(cert.serial_number, "x")))
        row = next(r for r in found if r.der == der)
        session.expunge(row)
        return row


def _renew(server: TlsServer, workdir: Path) -> str:
    """A plain ``certbot renew`` (no --force-renewal): certbot itself decides, from ARI, whether to renew."""
    args = [CERTBOT, "renew", "--non-interactive", "--no-random-sleep-on-renew", *_dirs(workdir)]  # else up to 8 min
    done = run(args, _env(server, workdir), workdir)
    return done.stdout + done.stderr


def _as_if_retry_after_passed(workdir: Path) -> None:
    """certbot keeps ecert's Retry-After (6 h) in the renewal conf and skips ARI until then: move it to the past."""
    conf = workdir / "conf" / "renewal" / "t.conf"
    text, count = re.subn(r"(?m)^ari_retry_after = .*$", "ari_retry_after = 2000-01-01T00:00:00", conf.read_text())
    assert count == 1, text
    conf.write_text(text)


@pytest.fixture
def ari_seen(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, RenewalWindow]]:
    """Every renewalInfo request ecert's route serves, as (certificate identifier, the window answered).

    The route looks ``acme_ari.renewal_info`` up at each request, so wrapping it records what the web layer
    handed the service for a request that reached ecert over HTTPS from certbot.
    """
    seen: list[tuple[str, RenewalWindow]] = []
    real = acme_ari.renewal_info

    def recording(ctx: object, cert_id: str) -> RenewalWindow:
        window = real(ctx, cert_id)  # type: ignore[arg-type]
        seen.append((cert_id, window))
        return window

    monkeypatch.setattr(acme_ari, "renewal_info", recording)
    return seen


def test_certbot_renew_waits_for_the_ari_window_then_renews_once_an_incident_marks_it(
    tls_server: TlsServer, tmp_path: Path, ari_seen: list[tuple[str, RenewalWindow]]
) -> None:
    name, fullchain = _first_certificate(tls_server, tmp_path, "certbot-renew")
    first = _leaf(fullchain)
    cert_id = ari_cert_id(first)

    out = _renew(tls_server, tmp_path)
    assert "not yet due for renewal" in out, out
    assert [c for c, _ in ari_seen] == [cert_id]
    assert ari_seen[0][1].start > dt.datetime.now(dt.UTC)  # the window ecert answered is in the future
    assert _leaf(fullchain).serial_number == first.serial_number

    view = incidents.open_incident(
        tls_server.ctx,
        reason="certbot interop: replace this certificate",
        selection=incidents.Selection(serials=(format(first.serial_number, "x"),)),
        actor="operator:test",
        notify=False,
    )
    assert view.progress.pending == 1
    _as_if_retry_after_passed(tmp_path)

    out = _renew(tls_server, tmp_path)
    assert [c for c, _ in ari_seen] == [cert_id, cert_id]
    assert ari_seen[1][1].end < dt.datetime.now(dt.UTC)  # marked: the window ecert answered now lies in the past
    second = judge(tls_server, fullchain, tmp_path)
    assert second.serial_number != first.serial_number, out
    assert names(second) == {name}
    assert (tmp_path / "conf" / "archive" / "t" / "cert2.pem").exists()
    incidents.refresh_progress(tls_server.ctx, view.id or 0)
    assert incidents.show_incident(tls_server.ctx, view.id or 0).progress.replaced == 1  # the operator sees it


def _revoke(server: TlsServer, workdir: Path, cert: Path, *extra: str) -> None:
    args = [CERTBOT, "revoke", "--non-interactive", "--no-delete-after-revoke", *_dirs(workdir)]
    run([*args, "--server", server.directory, "--cert-path", str(cert), *extra], _env(server, workdir), workdir)


def _crl_reason(server: TlsServer, row: Certificate) -> x509.ReasonFlags | None | str:
    """The reason on the issuing CA's latest CRL for ``row``, or "absent"."""
    with server.ctx.read() as session:
        label = session.scalar(select(CA.label).where(CA.id == row.ca_id))
    crl = x509.load_der_x509_crl(publication.latest_crl(server.ctx, str(label)).der)
    entry = crl.get_revoked_certificate_by_serial_number(int(row.serial_hex, 16))
    if entry is None:
        return "absent"
    try:
        return entry.extensions.get_extension_for_class(x509.CRLReason).value.reason
    except x509.ExtensionNotFound:
        return None


def _ra_refuses_the_key(server: TlsServer, row: Certificate, key_pem: Path, name: str) -> str:
    """The RA's answer to a new CSR for ``name`` with the revoked certificate's key (the message it refuses with)."""
    key = serialization.load_pem_private_key(key_pem.read_bytes(), password=None)
    csr = make_csr([name], key).public_bytes(serialization.Encoding.PEM)
    intent = registration.IssuanceIntent(
        requester=registration.Requester(registration.Channel.ACME, "acme:test"),
        cert_type=CertType.SERVER,
        csr=csr,
        names=(name,),
        application_id=row.application_id,
    )
    with pytest.raises(EcertError) as refused:
        registration.authorize(server.ctx, intent)
    return str(refused.value)


def _certbot_csr(server: TlsServer, workdir: Path, key_pem: Path, name: str) -> subprocess.CompletedProcess[str]:
    """certbot certonly --csr with a CSR made on ``key_pem``, from the same account (its result, not checked)."""
    key = serialization.load_pem_private_key(key_pem.read_bytes(), password=None)
    csr = workdir / "again.csr"
    csr.write_bytes(make_csr([name], key).public_bytes(serialization.Encoding.PEM))
    args = [CERTBOT, "certonly", "--non-interactive", "--agree-tos", "--server", server.directory, *_dirs(workdir)]
    args += ["--csr", str(csr), "--cert-path", str(workdir / "again.pem"), "--fullchain-path", str(workdir / "f.pem")]
    args += ["--chain-path", str(workdir / "c.pem"), "--standalone", "--preferred-challenges", "http"]
    args += ["--http-01-address", "127.0.0.1", "--http-01-port", str(server.http01_port)]
    return subprocess.run(
        args, env=_env(server, workdir), cwd=workdir, capture_output=True, text=True, timeout=CLIENT_TIMEOUT
    )


def test_certbot_revoke_with_the_account_key_for_key_compromise_and_with_the_certificate_key(
    tls_server: TlsServer, tmp_path: Path
) -> None:
    by_account, by_key = tmp_path / "account", tmp_path / "key"
    name, fullchain = _first_certificate(tls_server, by_account, "certbot-revoke")
    cert_pem = by_account / "conf" / "live" / "t" / "cert.pem"
    _revoke(tls_server, by_account, cert_pem, "--reason", "keycompromise")
    row = _row(tls_server, _leaf(fullchain))
    assert (row.status, row.revocation_reason) == ("revoked", "keyCompromise")
    assert _crl_reason(tls_server, row) is x509.ReasonFlags.key_compromise
    privkey = by_account / "conf" / "live" / "t" / "privkey.pem"
    assert "blocked" in _ra_refuses_the_key(tls_server, row, privkey, name)
    refused = _certbot_csr(tls_server, by_account, privkey, name)
    assert refused.returncode != 0 and "key is blocked" in refused.stdout + refused.stderr, refused

    _, other = _first_certificate(tls_server, by_key, "certbot-revoke-key")
    other_live = by_key / "conf" / "live" / "t"
    _revoke(tls_server, by_key, other_live / "cert.pem", "--key-path", str(other_live / "privkey.pem"))
    row = _row(tls_server, _leaf(other))
    # certbot sends reason 0 (unspecified, not a BR 7.2.2 code); a request signed by the certificate's own key
    # proves the key is out of the subscriber's sole control, so ecert records keyCompromise
    assert (row.status, row.revocation_reason) == ("revoked", "keyCompromise")
    assert _crl_reason(tls_server, row) is x509.ReasonFlags.key_compromise
