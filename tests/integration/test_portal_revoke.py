"""The subscriber revokes its certificate in the portal: the page flow in both languages, CSRF, refusals,
and what the world sees afterwards (the CRL, OCSP, the blocked key, a new CSR)."""

from __future__ import annotations

import base64
import re
import urllib.parse
from collections.abc import Callable, Iterator

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp
from fastapi.testclient import TestClient
from sqlalchemy import select

from ecert.services import applications as apps
from ecert.services import certificates
from ecert.services.context import Context
from ecert.store.models import CA, Certificate
from tests.integration.dcv_fixtures import KnotDns
from tests.integration.test_portal_pages import _to_csr_step, csrf_of, portal_client, portal_context

SUBSCRIBER_OPTIONS = ["keyCompromise", "superseded", "cessationOfOperation", "affiliationChanged"]


@pytest.fixture
def ctx(make_demo_ctx: Callable[..., Context], knot_dns: KnotDns) -> Context:
    """The same demo CA as the page tests (test_portal_pages)."""
    return portal_context(make_demo_ctx, knot_dns)


@pytest.fixture
def client(ctx: Context) -> Iterator[TestClient]:
    with portal_client(ctx) as c:
        yield c


def csr_for(names: list[str], key: ec.EllipticCurvePrivateKey) -> str:
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, names[0])]))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False)
        .sign(key, hashes.SHA256())
    )
    return csr.public_bytes(serialization.Encoding.PEM).decode()


def submit_csr(client: TestClient, csr_text: str):  # type: ignore[no-untyped-def]
    page = client.get("/portal/csr")
    return client.post("/portal/csr", data={"csrf_token": csrf_of(page.text), "csr_text": csr_text})


def accepted_certificate(
    ctx: Context, client: TestClient, key: ec.EllipticCurvePrivateKey | None = None
) -> tuple[str, apps.RegisteredApplication, str]:
    """Walk to the download page (operator-held example.com: no DCV); returns host, application, serial hex."""
    host, reg = _to_csr_step(ctx, client)
    info = submit_csr(client, csr_for([host], key or ec.generate_private_key(ec.SECP256R1())))
    assert info.url.path == "/portal/certificate", info.text[-2000:]
    accepted = client.post("/portal/certificate", data={"csrf_token": csrf_of(info.text)})
    assert accepted.url.path == "/portal/download"
    cert = certificates.get_certificate(ctx, reg.application_id)
    assert cert is not None and cert.state == "accepted"
    return host, reg, cert.serial_hex


def revoke(
    client: TestClient,
    reason: str = "superseded",
    confirm: str | None = "yes",
    token: str | None = None,
    follow: bool = False,
):  # type: ignore[no-untyped-def]
    data = {"reason": reason, "csrf_token": token if token is not None else csrf_of(client.get("/portal/revoke").text)}
    if confirm is not None:
        data["confirm"] = confirm
    return client.post("/portal/revoke", data=data, follow_redirects=follow)


def cert_row(ctx: Context, serial_hex: str) -> tuple[Certificate, CA]:
    with ctx.sessions() as s:
        row = s.execute(
            select(Certificate, CA).join(CA, CA.id == Certificate.ca_id).where(Certificate.serial_hex == serial_hex)
        ).one()
        return row[0], row[1]


def is_revoked(ctx: Context, serial_hex: str) -> bool:
    return cert_row(ctx, serial_hex)[0].revoked_at is not None


@pytest.mark.parametrize(
    ("lang", "texts"),
    [
        (
            "en",
            [
                "Revoke certificate",
                "My private key was lost or compromised",
                "I understand this cannot be undone",
                "The organisation name or other details in the certificate have changed",
            ],
        ),
        (
            "zh_HK",
            ["撤銷證書", "我的私人密碼匙已遺失或外洩", "我明白撤銷後不能復原", "證書內的機構名稱或其他資料已更改"],
        ),
    ],
)
def test_the_revoke_form_shows_the_certificate_and_only_the_subscriber_reasons(
    ctx: Context, client: TestClient, lang: str, texts: list[str]
) -> None:
    client.get("/notices", params={"lang": lang})
    host, reg, serial = accepted_certificate(ctx, client)
    assert 'href="/portal/revoke"' in client.get("/portal/download").text
    assert 'href="/portal/revoke"' in client.get("/portal/certificate").text
    page = client.get("/portal/revoke")
    assert page.status_code == 200
    spaced = " ".join(re.findall("..", serial.zfill(len(serial) + len(serial) % 2)))
    assert f'<code id="serial">{spaced}</code>' in page.text
    assert host in page.text and reg.reference_number in page.text
    assert re.search(r'id="validity">\d\d/\d\d/\d{4} - \d\d/\d\d/\d{4}', page.text)
    assert re.findall(r'<option value="(\w+)"', page.text) == SUBSCRIBER_OPTIONS
    assert "privilegeWithdrawn" not in page.text
    assert 'type="checkbox" id="confirm" name="confirm"' in page.text
    for text in texts:
        assert text in page.text


@pytest.mark.parametrize(
    ("lang", "done", "live"),
    [
        ("en", "has been revoked", "show it as revoked from now on"),
        ("zh_HK", "已被撤銷", "由現在起"),
    ],
)
def test_revoking_shows_the_result_and_the_subscriber_can_submit_a_new_csr(
    ctx: Context, client: TestClient, lang: str, done: str, live: str
) -> None:
    client.get("/notices", params={"lang": lang})
    host, reg, serial = accepted_certificate(ctx, client)
    posted = revoke(client, "superseded")
    assert (posted.status_code, posted.headers["location"]) == (303, "/portal/revoked")
    result = client.get("/portal/revoked")
    assert result.status_code == 200 and done in result.text and live in result.text
    assert 'id="key-blocked"' not in result.text and 'href="/portal/csr"' in result.text
    assert is_revoked(ctx, serial) and cert_row(ctx, serial)[0].revocation_reason == "superseded"
    assert apps.get_application(ctx, reg.application_id).state == "accepted"  # the subscription goes on
    again = submit_csr(client, csr_for([host], ec.generate_private_key(ec.SECP256R1())))
    assert again.url.path == "/portal/certificate" and 'id="accept"' in again.text


def test_the_revoked_serial_is_on_the_crl_and_ocsp_says_revoked(ctx: Context, client: TestClient) -> None:
    _, _, serial = accepted_certificate(ctx, client)
    leaf = x509.load_pem_x509_certificate(client.get("/portal/download/pem").content)
    row, ca = cert_row(ctx, serial)
    revoke(client, "cessationOfOperation")

    crl = x509.load_der_x509_crl(client.get(f"/crl/{ca.label}.crl").content)
    entry = crl.get_revoked_certificate_by_serial_number(leaf.serial_number)
    assert entry is not None
    assert (
        entry.extensions.get_extension_for_class(x509.CRLReason).value.reason is x509.ReasonFlags.cessation_of_operation
    )

    issuer = x509.load_der_x509_certificate(ca.cert_der)
    request = ocsp.OCSPRequestBuilder().add_certificate(leaf, issuer, hashes.SHA1()).build()
    der = request.public_bytes(serialization.Encoding.DER)
    answer = ocsp.load_der_ocsp_response(
        client.get("/ocsp/" + urllib.parse.quote(base64.b64encode(der).decode(), safe="")).content
    )
    assert answer.certificate_status is ocsp.OCSPCertStatus.REVOKED
    assert answer.revocation_reason is x509.ReasonFlags.cessation_of_operation


def test_key_compromise_blocks_the_key_and_says_a_new_key_is_needed(ctx: Context, client: TestClient) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    host, _, serial = accepted_certificate(ctx, client, key)
    revoke(client, "keyCompromise")
    result = client.get("/portal/revoked", params={"lang": "en"})
    assert 'id="key-blocked"' in result.text and "Generate a new key pair" in result.text
    assert cert_row(ctx, serial)[0].revocation_reason == "keyCompromise"

    same_key = submit_csr(client, csr_for([host], key))
    assert same_key.status_code == 400 and "Your request was refused." in same_key.text
    assert re.search(r"(?i)blocked|compromised", same_key.text)
    new_key = submit_csr(client, csr_for([host], ec.generate_private_key(ec.SECP256R1())))
    assert new_key.url.path == "/portal/certificate"


@pytest.mark.parametrize(
    ("reason", "confirm", "message"),
    [
        ("", "yes", "Please choose the reason"),
        ("privilegeWithdrawn", "yes", "cannot be chosen by a subscriber"),  # the CA's own reason (BR 7.2.2)
        ("unspecified", "yes", "cannot be chosen by a subscriber"),  # BR 7.2.2: never on an entry
        ("certificateHold", "yes", "cannot be chosen by a subscriber"),
        ("cACompromise", "yes", "cannot be chosen by a subscriber"),
        ("<script>x</script>", "yes", "cannot be chosen by a subscriber"),
        ("superseded", None, "Please tick the box"),
        ("superseded", "no", "Please tick the box"),
    ],
)
def test_refused_revocation_forms_change_nothing(
    ctx: Context, client: TestClient, reason: str, confirm: str | None, message: str
) -> None:
    _, _, serial = accepted_certificate(ctx, client)
    refused = revoke(client, reason, confirm, follow=True)
    assert refused.status_code == 400 and message in refused.text
    assert "<script>x</script>" not in refused.text
    assert 'id="revoke-form"' in refused.text  # the form is offered again
    assert not is_revoked(ctx, serial)


@pytest.mark.parametrize("token", [None, "", "forged.token.value", "other-session"])
def test_revocation_without_a_valid_csrf_token_is_refused(ctx: Context, client: TestClient, token: str | None) -> None:
    _, _, serial = accepted_certificate(ctx, client)
    data = {"reason": "keyCompromise", "confirm": "yes"}
    if token == "other-session":
        with TestClient(client.app) as other:
            data["csrf_token"] = csrf_of(other.get("/portal/login").text)
    elif token is not None:
        data["csrf_token"] = token
    refused = client.post("/portal/revoke", data=data)
    assert refused.status_code == 403 and "did not come from this site" in refused.text
    assert not is_revoked(ctx, serial)


def test_revoking_twice_says_it_is_already_revoked(ctx: Context, client: TestClient) -> None:
    accepted_certificate(ctx, client)
    token = csrf_of(client.get("/portal/revoke").text)
    assert revoke(client, token=token).status_code == 303
    again = revoke(client, "keyCompromise", token=token)
    assert again.status_code == 409 and "already been revoked" in again.text
    page = client.get("/portal/revoke", params={"lang": "zh_HK"})
    assert "此證書已被撤銷" in page.text and 'id="revoke-form"' not in page.text


def test_without_an_accepted_certificate_there_is_nothing_to_revoke(ctx: Context, client: TestClient) -> None:
    host, reg = _to_csr_step(ctx, client)
    page = client.get("/portal/revoke", params={"lang": "en"})
    assert "no certificate that can be revoked" in page.text and 'id="revoke-form"' not in page.text
    submit_csr(client, csr_for([host], ec.generate_private_key(ec.SECP256R1())))  # issued, not yet accepted
    waiting = client.get("/portal/revoke")
    assert "has not been accepted yet" in waiting.text and 'href="/portal/certificate"' in waiting.text
    refused = client.post(
        "/portal/revoke", data={"csrf_token": csrf_of(waiting.text), "reason": "superseded", "confirm": "yes"}
    )
    assert refused.status_code == 409
    cert = certificates.get_certificate(ctx, reg.application_id)
    assert cert is not None and not is_revoked(ctx, cert.serial_hex)


def test_the_revoke_pages_need_a_session(client: TestClient) -> None:
    for path in ("/portal/revoke", "/portal/revoked"):
        response = client.get(path, follow_redirects=False)
        assert (response.status_code, response.headers["location"]) == (303, "/portal/login")


def test_when_publishing_fails_the_result_page_does_not_claim_the_crl_shows_it(
    ctx: Context, client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ecert.services import publication

    def down(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("signer unavailable")

    _, _, serial = accepted_certificate(ctx, client)
    monkeypatch.setattr(publication, "publish_crl", down)
    revoke(client, "affiliationChanged")
    result = client.get("/portal/revoked", params={"lang": "en"})
    assert is_revoked(ctx, serial)
    assert 'id="status-later"' in result.text and "from now on" not in result.text


def test_after_revoking_the_portal_home_leads_to_a_new_csr(ctx: Context, client: TestClient) -> None:
    accepted_certificate(ctx, client)
    revoke(client)
    seen = []
    response = client.get("/portal", follow_redirects=False)
    while response.status_code == 303 and len(seen) < 5:
        seen.append(response.headers["location"])
        response = client.get(seen[-1], follow_redirects=False)
    assert seen[-1] == "/portal/csr" and response.status_code == 200
