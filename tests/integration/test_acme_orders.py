"""ACME orders to certificates (RFC 8555 7.4-7.5, 8): the refusals a client meets, and the way through.

Every refusal checks the problem type, the status, a fresh Replay-Nonce and that no order, authorization,
challenge, validation or certificate changed. The happy paths are walked by certbot's ``acme.ClientV2``:
dns-01 against the loopback Knot, http-01 against a loopback listener, tls-alpn-01 against a loopback TLS
responder, with four remote perspectives corroborating (BR 3.2.2.9).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import socket
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from acme import challenges as acme_challenges
from acme import client as acme_client
from acme import messages
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from josepy.b64 import b64encode
from josepy.jwa import ES256
from josepy.jwk import JWK, JWKEC
from sqlalchemy import select

from ecert.cli.perspective import build_app
from ecert.core import rule_dates
from ecert.services import acme_challenges as challenge_jobs
from ecert.services.acme_accounts import make_eab
from ecert.services.ca_config import load_hierarchy_config
from ecert.services.ceremony import init_hierarchy
from ecert.store import acme_orders as store_orders
from ecert.store import certificates as cert_store
from ecert.store.models import AuditEvent, Certificate, DomainValidation
from tests.conftest import FIXED_NOW
from tests.integration.acme_fixtures import EAB_SECRET, AcmeServer, Client, Clock, assert_refused, nonce_of, serve
from tests.integration.acme_order_helpers import (
    add_named_application,
    b64_csr,
    make_csr,
    order_state,
    publish_dns01,
    ready_order,
    unique_label,
    wait_status,
)
from tests.integration.dcv_fixtures import HttpFileServer, KnotDns, dcv_settings, start_asgi
from tests.integration.foundation_fixtures import make_ctx

PERSPECTIVE_SECRET = "acme-orders-perspective-secret"


@pytest.fixture(scope="module")
def perspectives(knot_dns: KnotDns, _http_file_server_session: HttpFileServer) -> Iterator[tuple[str, ...]]:
    """Four honest remote perspectives on loopback (BR 3.2.2.9 on the test day): `ecert-ca perspective serve`."""
    settings = dcv_settings(knot_dns.resolver_addr, _http_file_server_session)
    running = [start_asgi(build_app(PERSPECTIVE_SECRET, settings, name=f"p{i}")) for i in range(4)]
    yield tuple(r.url for r in running)
    for r in running:
        r.stop()


@pytest.fixture
def order_server(
    tmp_path: Path, db_url: str, knot_dns: KnotDns, http_file_server: HttpFileServer, perspectives: tuple[str, ...]
) -> Iterator[AcmeServer]:
    """ecert's ACME server with the demo hierarchy, DCV pointed at the loopback DNS and HTTP fixtures."""
    ctx = make_ctx(
        tmp_path,
        db_url,
        dns_resolvers=(knot_dns.resolver_addr,),
        allow_private_addresses=True,
        caa_identities=("ecert.example.hk",),
        http_port=http_file_server.http_port,
        https_port=http_file_server.https_port,
        perspective_urls=perspectives,
    )
    ctx.perspective_secret = PERSPECTIVE_SECRET
    ctx.acme_secret = EAB_SECRET  # wraps EAB keys and seals nonces
    clock = Clock(FIXED_NOW)
    ctx.clock = clock
    init_hierarchy(ctx, load_hierarchy_config(None), demo=True)
    running = serve(ctx)
    try:
        yield AcmeServer(ctx, running, clock)
    finally:
        running.stop()
        ctx.close()


def _account(server: AcmeServer, names: tuple[str, ...], cert_type: str = "server") -> Client:
    reference = add_named_application(server.ctx, names[0], names[1:], cert_type=cert_type)
    made = make_eab(server.ctx, reference, wrap_secret=EAB_SECRET, actor="operator:test")
    client = Client(server.running.url)
    assert client.register(made).status_code == 201
    return client


def _name(zone: str = "example.com") -> str:
    return f"{unique_label()}.{zone}"


def _new_order(client: Client, names: list[str], **extra: Any) -> tuple[dict[str, Any], Any]:
    jws = client.jws(client.url("new-order"), {"identifiers": [{"type": "dns", "value": n} for n in names], **extra})
    return jws, client.post(client.url("new-order"), jws)


# --- refusals -------------------------------------------------------------------------------------------------


def test_order_for_a_name_outside_the_application_is_rejected_identifier(order_server: AcmeServer) -> None:
    name = _name()
    client = _account(order_server, (name,))
    before = order_state(order_server.ctx)
    jws, response = _new_order(client, [_name()])
    assert_refused(response, 400, "rejectedIdentifier", nonce_of(jws))
    assert order_state(order_server.ctx) == before


@pytest.mark.parametrize(("profile", "problem"), [("platinum", "invalidProfile"), ("ev", "invalidProfile")])
def test_unknown_or_unvetted_profile_is_invalid_profile(order_server: AcmeServer, profile: str, problem: str) -> None:
    name = _name()
    client = _account(order_server, (name,))
    before = order_state(order_server.ctx)
    jws, response = _new_order(client, [name], profile=profile)
    assert_refused(response, 400, problem, nonce_of(jws))
    assert order_state(order_server.ctx) == before


def test_a_wildcard_is_offered_dns01_only_and_refused_in_a_plain_profile(order_server: AcmeServer) -> None:
    base = _name()
    client = _account(order_server, (f"*.{base}",), cert_type="wildcard")
    _, response = _new_order(client, [f"*.{base}"])
    assert response.status_code == 201, response.text
    assert response.json()["profile"] == "wildcard"
    authz_url = response.json()["authorizations"][0]
    authz = client.post(authz_url, client.jws(authz_url, None)).json()
    assert authz["wildcard"] is True and authz["identifier"]["value"] == base
    assert [c["type"] for c in authz["challenges"]] == ["dns-01"], "http-01 and tls-alpn-01 never for a wildcard"
    before = order_state(order_server.ctx)
    jws, refused = _new_order(client, [f"*.{base}"], profile="server")
    assert_refused(refused, 400, "invalidProfile", nonce_of(jws))
    assert order_state(order_server.ctx) == before


def test_finalize_before_ready_is_order_not_ready(order_server: AcmeServer) -> None:
    name = _name()
    client = _account(order_server, (name,))
    _, response = _new_order(client, [name])
    finalize_url = response.json()["finalize"]
    before = order_state(order_server.ctx)
    jws = client.jws(finalize_url, {"csr": b64_csr(make_csr([name]))})
    assert_refused(client.post(finalize_url, jws), 403, "orderNotReady", nonce_of(jws))
    assert order_state(order_server.ctx) == before


def test_csr_names_not_the_orders_are_bad_csr(order_server: AcmeServer, knot_dns: KnotDns) -> None:
    name, other = _name(), _name()
    client = _account(order_server, (name, other), cert_type="multi")
    _, order = ready_order(client, knot_dns, [name])
    before = order_state(order_server.ctx)
    jws = client.jws(order["finalize"], {"csr": b64_csr(make_csr([name, other]))})
    assert_refused(client.post(order["finalize"], jws), 400, "badCSR", nonce_of(jws))
    assert order_state(order_server.ctx) == before


def test_csr_with_the_account_key_is_bad_csr(order_server: AcmeServer, knot_dns: KnotDns) -> None:
    name = _name()
    client = _account(order_server, (name,))
    _, order = ready_order(client, knot_dns, [name])
    before = order_state(order_server.ctx)
    jws = client.jws(order["finalize"], {"csr": b64_csr(make_csr([name], key=client.key.key._wrapped))})
    response = client.post(order["finalize"], jws)
    assert_refused(response, 400, "badCSR", nonce_of(jws))
    assert "account key" in response.json()["detail"]
    assert order_state(order_server.ctx) == before
    with order_server.ctx.read() as session:  # the registration authority refused it, and said so
        refusal = session.scalars(select(AuditEvent).where(AuditEvent.event == "issuance.refused")).all()[-1]
    assert refusal.details["channel"] == "acme"


def test_a_failed_challenge_invalidates_the_authorization_and_the_order(
    order_server: AcmeServer, knot_dns: KnotDns
) -> None:
    name = _name()
    client = _account(order_server, (name,))
    _, response = _new_order(client, [name])
    order_url = response.headers["Location"]
    authz_url = response.json()["authorizations"][0]
    authz = client.post(authz_url, client.jws(authz_url, None)).json()
    challenge = next(c for c in authz["challenges"] if c["type"] == "dns-01")
    knot_dns.set_records(f"_acme-challenge.{name}", "TXT", ['"not-the-digest"'])
    started = client.post(challenge["url"], client.jws(challenge["url"], {}))
    assert started.json()["status"] == "processing" and started.headers["Retry-After"] == "1"
    assert wait_status(client, order_url, {"invalid", "ready"})["status"] == "invalid"
    failed = client.post(challenge["url"], client.jws(challenge["url"], None)).json()
    assert failed["status"] == "invalid"
    assert failed["error"]["type"] == "urn:ietf:params:acme:error:incorrectResponse"
    with order_server.ctx.read() as session:
        assert session.scalars(select(DomainValidation).where(DomainValidation.domain == name)).first() is None


# --- the way through ------------------------------------------------------------------------------------------


def _client_v2(
    server: AcmeServer, names: tuple[str, ...], cert_type: str = "server"
) -> tuple[acme_client.ClientV2, JWK]:
    reference = add_named_application(server.ctx, names[0], names[1:], cert_type=cert_type)
    made = make_eab(server.ctx, reference, wrap_secret=EAB_SECRET, actor="operator:test")
    key = JWKEC(key=ec.generate_private_key(ec.SECP256R1()))
    net = acme_client.ClientNetwork(key, alg=ES256, user_agent="ecert-test")
    directory = acme_client.ClientV2.get_directory(server.directory_url, net)
    client = acme_client.ClientV2(directory, net)
    eab = messages.ExternalAccountBinding.from_data(key.public_key(), made.kid, made.hmac_key, directory)
    client.new_account(messages.NewRegistration.from_data(terms_of_service_agreed=True, external_account_binding=eab))
    return client, key


def _csr_pem(names: list[str]) -> tuple[bytes, Any]:
    key = ec.generate_private_key(ec.SECP256R1())
    return make_csr(names, key).public_bytes(serialization.Encoding.PEM), key


def _finish(server: AcmeServer, client: acme_client.ClientV2, order: messages.OrderResource) -> list[x509.Certificate]:
    deadline = dt.datetime.now() + dt.timedelta(seconds=60)
    done = client.poll_and_finalize(order, deadline)
    return x509.load_pem_x509_certificates(done.fullchain_pem.encode())


def _answer(client: acme_client.ClientV2, order: messages.OrderResource, kind: type, publish: Any) -> None:
    for authz in order.authorizations:
        challenge = next(c for c in authz.body.challenges if isinstance(c.chall, kind))
        publish(authz.body.identifier.value, authz.body.wildcard, challenge)
        client.answer_challenge(challenge, challenge.response(client.net.key))


def test_client_v2_dns01_with_a_wildcard_gets_a_certificate_with_its_evidence(
    order_server: AcmeServer, knot_dns: KnotDns
) -> None:
    base = _name()
    client, key = _client_v2(order_server, (f"*.{base}",), cert_type="wildcard")
    csr, _ = _csr_pem([f"*.{base}", base])
    order = client.new_order(csr, profile="wildcard")

    def publish(value: str, wildcard: bool | None, challenge: messages.ChallengeBody) -> None:
        publish_dns01(knot_dns, value, challenge.chall.encode("token"), key)

    _answer(client, order, acme_challenges.DNS01, publish)
    chain = _finish(order_server, client, order)
    names = chain[0].extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert set(names.get_values_for_type(x509.DNSName)) == {f"*.{base}", base}
    org = chain[0].subject.get_attributes_for_oid(x509.NameOID.ORGANIZATION_NAME)[0].value
    assert org == "Example Company Limited", "the subject comes from the application, never the CSR"
    assert chain[1].subject == chain[0].issuer
    with order_server.ctx.read() as session:
        rows = session.scalars(select(DomainValidation).where(DomainValidation.domain == base)).all()
        cert = session.scalars(select(Certificate).order_by(Certificate.id.desc())).first()
        assert cert is not None
        record = cert_store.record_for(session, cert.ca_id, cert.serial_hex)
    assert len(rows) == 2, "one validation per authorization: the wildcard's and its base name's"
    for row in rows:
        assert row.method == "acme-dns-01" and row.evidence["source"] == "acme"
        assert row.evidence["authorization"].startswith(order_server.running.url + "/acme/authz/")
        assert row.perspectives is not None and len(row.perspectives) == 4, (
            "every remote perspective corroborated (BR 3.2.2.9)"
        )
    assert cert.status == "accepted", "no portal Accept step for ACME"
    assert record is not None and record.channel == "acme" and record.evidence is not None
    assert record.evidence["domains"][base]["source"] == "acme", "the RA relied on the ACME validation"


def test_client_v2_http01_multi_domain_and_the_alternate_chain(
    order_server: AcmeServer, http_file_server: HttpFileServer, knot_dns: KnotDns
) -> None:
    names = [_name(), _name("example.net")]
    for name in names:
        knot_dns.set_records(name, "A", ["127.0.0.1"])
    client, _ = _client_v2(order_server, tuple(names), cert_type="multi")
    csr, _ = _csr_pem(names)
    order = client.new_order(csr)

    def publish(value: str, wildcard: bool | None, challenge: messages.ChallengeBody) -> None:
        http_file_server.serve_file(value, challenge.chall.validation(client.net.key))

    _answer(client, order, acme_challenges.HTTP01, publish)
    deadline = dt.datetime.now() + dt.timedelta(seconds=60)
    order = client.poll_authorizations(order, deadline)
    done = client.finalize_order(order, deadline, fetch_alternative_chains=True)
    chain = x509.load_pem_x509_certificates(done.fullchain_pem.encode())
    leaf = chain[0]
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert set(san.get_values_for_type(x509.DNSName)) == set(names)
    assert ("http", names[0]) in {(s, h) for s, h, p in http_file_server.requests if "/acme-challenge/" in p}
    assert len(chain) == 2 and chain[1].subject == leaf.issuer
    # RFC 8555 7.4.2: the chain through the cross-certificate is an alternate (Link rel="alternate").
    assert len(done.alternative_fullchains_pem) == 1
    alt_chain = x509.load_pem_x509_certificates(done.alternative_fullchains_pem[0].encode())
    assert alt_chain[:2] == chain and len(alt_chain) == 3
    assert alt_chain[2].subject == alt_chain[1].issuer and alt_chain[2].issuer != alt_chain[2].subject


def _tls_alpn_responder(name: str, key_authz: str, workdir: Path) -> tuple[int, threading.Event]:
    """A loopback TLS server answering ALPN acme-tls/1 with the RFC 8737 certificate for ``name``."""
    key = ec.generate_private_key(ec.SECP256R1())
    digest = hashlib.sha256(key_authz.encode()).digest()
    subject = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(
            x509.UnrecognizedExtension(x509.ObjectIdentifier("1.3.6.1.5.5.7.1.31"), b"\x04\x20" + digest), critical=True
        )
        .sign(key, hashes.SHA256())
    )
    (workdir / "alpn.pem").write_bytes(
        cert.public_bytes(serialization.Encoding.PEM)
        + key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(workdir / "alpn.pem")
    context.set_alpn_protocols(["acme-tls/1"])
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    stop = threading.Event()

    def serve_forever() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            try:
                with context.wrap_socket(conn, server_side=True):
                    pass
            except (OSError, ssl.SSLError):
                pass
        listener.close()

    threading.Thread(target=serve_forever, daemon=True).start()
    return listener.getsockname()[1], stop


def test_tls_alpn01_on_a_loopback_port(tmp_path: Path, db_url: str, knot_dns: KnotDns) -> None:
    """RFC 8737 against a loopback responder (ECERT_HTTPS_PORT is the port tls-alpn-01 connects to)."""
    name = _name()
    knot_dns.set_records(name, "A", ["127.0.0.1"])
    ctx = make_ctx(
        tmp_path,
        db_url,
        dns_resolvers=(knot_dns.resolver_addr,),
        allow_private_addresses=True,
        caa_identities=("ecert.example.hk",),
    )
    clock = Clock(FIXED_NOW)
    ctx.clock = clock
    ctx.acme_secret = EAB_SECRET
    init_hierarchy(ctx, load_hierarchy_config(None), demo=True)
    running = serve(ctx)
    server = AcmeServer(ctx, running, clock)
    try:
        client = _account(server, (name,))
        _, response = _new_order(client, [name])
        authz_url = response.json()["authorizations"][0]
        authz = client.post(authz_url, client.jws(authz_url, None)).json()
        challenge = next(c for c in authz["challenges"] if c["type"] == "tls-alpn-01")
        key_authz = f"{challenge['token']}.{b64encode(client.key.thumbprint(hash_function=hashes.SHA256)).decode()}"
        port, stop = _tls_alpn_responder(name, key_authz, tmp_path)
        object.__setattr__(ctx, "settings", ctx.settings.model_copy(update={"https_port": port}))
        ctx.validator = None
        try:
            client.post(challenge["url"], client.jws(challenge["url"], {}))
            body = wait_status(client, response.headers["Location"], {"ready", "invalid"})
        finally:
            stop.set()
        assert body["status"] == "ready", body
        with ctx.read() as session:
            row = session.scalars(select(DomainValidation).where(DomainValidation.domain == name)).one()
        assert row.method == "acme-tls-alpn-01" and row.br_version
    finally:
        running.stop()
        ctx.close()


# --- reuse, concurrency, CAA, audit ---------------------------------------------------------------------------


def test_a_valid_authorization_is_reused_inside_the_br_period_and_not_after(
    order_server: AcmeServer, knot_dns: KnotDns
) -> None:
    name = _name()
    client = _account(order_server, (name,))
    _, first = ready_order(client, knot_dns, [name])
    _, again = _new_order(client, [name])
    assert again.status_code == 201
    assert again.json()["status"] == "ready", "BR 4.2.1: the validation is reused, no new challenge"
    assert again.json()["authorizations"] == first["authorizations"]
    order_server.clock.advance(dt.timedelta(days=rule_dates.dcv_reuse_days(order_server.clock.now) + 1))
    _, later = _new_order(client, [name])
    assert later.json()["status"] == "pending", "past the reuse period the name is validated again"
    assert later.json()["authorizations"] != first["authorizations"]


def test_two_orders_of_one_application_finalized_at_once_both_issue(
    order_server: AcmeServer, knot_dns: KnotDns
) -> None:
    """The pipeline allows one 'signing' certificate per application; the second finalize waits its turn."""
    names = [_name(), _name()]
    client = _account(order_server, tuple(names), cert_type="multi")
    orders = [ready_order(client, knot_dns, [n])[1] for n in names]
    bodies = [client.jws(o["finalize"], {"csr": b64_csr(make_csr([n]))}) for o, n in zip(orders, names, strict=True)]
    results: list[Any] = [None, None]

    def finalize(i: int) -> None:
        results[i] = client.post(orders[i]["finalize"], bodies[i])

    threads = [threading.Thread(target=finalize, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert [r.status_code for r in results] == [200, 200], [r.text for r in results]
    assert [r.json()["status"] for r in results] == ["valid", "valid"]
    with order_server.ctx.read() as session:
        issued = session.scalars(select(Certificate).where(Certificate.status == "accepted")).all()
    assert {tuple(c.names) for c in issued} >= {(names[0],), (names[1],)}


def test_caa_naming_another_ca_refuses_finalize_with_caa(order_server: AcmeServer, knot_dns: KnotDns) -> None:
    name = _name()
    client = _account(order_server, (name,))
    _, order = ready_order(client, knot_dns, [name])
    knot_dns.set_records(name, "CAA", ['0 issue "other-ca.example"'])
    before = order_state(order_server.ctx)
    jws = client.jws(order["finalize"], {"csr": b64_csr(make_csr([name]))})
    assert_refused(client.post(order["finalize"], jws), 403, "caa", nonce_of(jws))
    assert order_state(order_server.ctx) == before
    knot_dns.delete(name, "CAA")


def test_every_challenge_attempt_is_audited_per_perspective(order_server: AcmeServer, knot_dns: KnotDns) -> None:
    name = _name()
    client = _account(order_server, (name,))
    ready_order(client, knot_dns, [name])
    with order_server.ctx.read() as session:
        events = session.scalars(
            select(AuditEvent).where(AuditEvent.event == "acme.challenge.attempt", AuditEvent.subject == name)
        ).all()
    assert sorted(e.details["perspective"] for e in events)[-1] == "primary"
    assert len(events) == 1 + 4, "the primary and each of the four remote perspectives"
    assert all(e.details["passed"] for e in events)


def test_finalize_waits_while_another_certificate_of_the_application_is_signing(
    order_server: AcmeServer, knot_dns: KnotDns, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The pipeline's Conflict (one 'signing' row per application) is retried, not shown to the client."""
    from ecert.core.errors import Conflict
    from ecert.services import acme_orders

    name = _name()
    client = _account(order_server, (name,))
    _, order = ready_order(client, knot_dns, [name])
    real, calls = acme_orders.issue_vetted, []

    def busy_twice(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) <= 2:
            raise Conflict("a certificate for this application is already issued or being issued")
        return real(*args, **kwargs)

    monkeypatch.setattr(acme_orders, "issue_vetted", busy_twice)
    response = client.post(order["finalize"], client.jws(order["finalize"], {"csr": b64_csr(make_csr([name]))}))
    assert response.status_code == 200 and response.json()["status"] == "valid", response.text
    assert len(calls) == 3


def test_an_expired_order_reads_invalid_and_cannot_be_finalized(order_server: AcmeServer, knot_dns: KnotDns) -> None:
    name = _name()
    client = _account(order_server, (name,))
    order_url, order = ready_order(client, knot_dns, [name])
    order_server.clock.advance(dt.timedelta(days=8))  # RFC 8555 7.1.3: ecert's orders live 7 days
    assert client.post(order_url, client.jws(order_url, None)).json()["status"] == "invalid"
    before = order_state(order_server.ctx)
    jws = client.jws(order["finalize"], {"csr": b64_csr(make_csr([name]))})
    assert_refused(client.post(order["finalize"], jws), 403, "orderNotReady", nonce_of(jws))
    assert order_state(order_server.ctx) == before


def test_the_account_lists_its_orders_and_no_one_elses(order_server: AcmeServer) -> None:
    name = _name()
    client = _account(order_server, (name,))
    made = [_new_order(client, [name])[1].headers["Location"] for _ in range(2)]
    assert client.kid is not None
    account = client.post(client.kid, client.jws(client.kid, None)).json()
    orders_url = account["orders"]
    listed = client.post(orders_url, client.jws(orders_url, None))
    assert listed.status_code == 200 and listed.json()["orders"] == made[::-1]
    other = _account(order_server, (_name(),))
    jws = other.jws(orders_url, None)
    assert_refused(other.post(orders_url, jws), 403, "unauthorized", nonce_of(jws))


def test_a_challenge_left_processing_by_a_stopped_worker_is_validated_by_the_jobs(
    order_server: AcmeServer, knot_dns: KnotDns
) -> None:
    """RFC 8555 7.5.1 durability: the database says processing, no worker has it; the jobs' pass takes it."""
    from ecert.services import acme_challenges as challenge_jobs
    from ecert.store import acme_orders as order_store

    name = _name()
    client = _account(order_server, (name,))
    _, response = _new_order(client, [name])
    authz_url = response.json()["authorizations"][0]
    authz = client.post(authz_url, client.jws(authz_url, None)).json()
    challenge = next(c for c in authz["challenges"] if c["type"] == "dns-01")
    publish_dns01(knot_dns, name, challenge["token"], client.key)
    challenge_id = int(challenge["url"].rsplit("/", 1)[-1])
    ctx = order_server.ctx
    with ctx.transaction() as session:  # as a crashed process leaves it: processing, started long ago
        assert order_store.move_challenge(
            session,
            challenge_id,
            source="pending",
            target="processing",
            now=ctx.clock(),
            started_at=ctx.clock() - dt.timedelta(minutes=10),
        )
    assert challenge_jobs.retake_stale(ctx) == [challenge_id]
    assert wait_status(client, response.headers["Location"], {"ready", "invalid"})["status"] == "ready"
    assert challenge_jobs.retake_stale(ctx) == [], "nothing is left to retake"


@pytest.mark.parametrize(
    "path", ["new-order", "order/1", "order/1/finalize", "orders/1", "authz/1", "chall/1", "cert/1", "cert/1/1"]
)
def test_get_on_an_order_resource_is_405_with_a_nonce(order_server: AcmeServer, path: str) -> None:
    client = Client(order_server.running.url)
    response = client.http.get(client.url(path))
    assert_refused(response, 405, "malformed")
    assert response.headers["Allow"] == "POST"


@pytest.mark.parametrize("method", ["HEAD", "PUT", "DELETE", "OPTIONS"])
def test_any_other_method_on_an_acme_resource_is_405_with_a_nonce(order_server: AcmeServer, method: str) -> None:
    """RFC 8555 6.5: a nonce on every answer. certbot's acme library, asked to post without the newNonce URL,
    takes its nonce with a HEAD on the target; Starlette's own 405 carried none."""
    client = Client(order_server.running.url)
    response = client.http.request(method, client.url("order/1"))
    assert response.status_code == 405 and response.headers["Allow"] == "POST"
    assert response.headers.get("Replay-Nonce")


@pytest.mark.parametrize(
    "path",
    [
        "order/99999999999999999999",
        "orders/99999999999999999999",
        "authz/99999999999999999999",
        "chall/99999999999999999999",
        "cert/99999999999999999999",
        "acct/99999999999999999999",
        "order/abc",
    ],
)
def test_an_id_no_database_key_can_hold_is_a_malformed_problem_not_a_500(order_server: AcmeServer, path: str) -> None:
    """SQLite raised OverflowError on such an id (PostgreSQL a range error): the client got a 500."""
    client = _account(order_server, (_name(),))
    url = client.url(path)
    sent = client.nonce()
    assert_refused(client.post(url, client.jws(url, None, nonce=sent)), 400, "malformed", sent)


def test_a_path_that_is_no_acme_resource_is_a_404_problem_with_a_nonce(order_server: AcmeServer) -> None:
    client = Client(order_server.running.url)
    for method in ("GET", "POST"):
        assert_refused(client.http.request(method, client.url("no-such-resource")), 404, "malformed")


def test_post_on_the_directory_names_the_methods_it_takes(order_server: AcmeServer) -> None:
    client = Client(order_server.running.url)
    response = client.http.post(client.url("directory"), content=b"{}")
    assert_refused(response, 405, "malformed")
    assert response.headers["Allow"] == "GET, HEAD"


def test_a_head_on_the_directory_has_its_headers_a_nonce_and_no_body(order_server: AcmeServer) -> None:
    """RFC 9110 9.1 (HEAD wherever GET) over the real server: it was a 405."""
    client = Client(order_server.running.url)
    got, head = client.http.get(client.url("directory")), client.http.head(client.url("directory"))
    assert head.status_code == 200 and head.content == b""
    assert head.headers["Content-Length"] == got.headers["Content-Length"] == str(len(got.content))
    assert head.headers["Replay-Nonce"] and head.headers["Replay-Nonce"] != got.headers["Replay-Nonce"]


def test_a_wildcard_alone_is_issued_with_its_base_as_the_wildcard_profile_carries_it(
    order_server: AcmeServer, knot_dns: KnotDns
) -> None:
    base = _name()
    client = _account(order_server, (f"*.{base}",), cert_type="wildcard")
    order_url, order = ready_order(client, knot_dns, [f"*.{base}"])
    done = client.post(order["finalize"], client.jws(order["finalize"], {"csr": b64_csr(make_csr([f"*.{base}"]))}))
    assert done.status_code == 200 and done.json()["status"] == "valid", done.text
    cert_url = done.json()["certificate"]
    pem = client.post(cert_url, client.jws(cert_url, None))
    assert pem.headers["content-type"].startswith("application/pem-certificate-chain")
    leaf = x509.load_pem_x509_certificates(pem.content)[0]
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == [f"*.{base}", base]


def test_two_authorizations_of_one_order_settled_at_once_make_it_ready(order_server: AcmeServer) -> None:
    """The two challenges of an order are validated by two job threads at once: each transaction moves its
    authorization to valid and looks at the order's others. The second must see the first (it waits for the
    order's lock), or neither moves the order to ready and it stays pending for good (seen on PostgreSQL)."""
    names = [_name(), _name("example.net")]
    client = _account(order_server, tuple(names), cert_type="multi")
    _, created = _new_order(client, names)
    assert created.status_code == 201, created.text
    order_id = int(created.headers["Location"].rsplit("/", 1)[1])
    first, second = (int(url.rsplit("/", 1)[1]) for url in created.json()["authorizations"])
    ctx = order_server.ctx

    def validate(session: Any, authz_id: int) -> None:
        assert store_orders.move_authorization(session, authz_id, source="pending", target="valid", now=ctx.clock())
        challenge_jobs.settle_orders(session, authz_id, ctx.clock())

    with ctx.transaction() as session:
        validate(session, first)
        other = threading.Thread(target=lambda: _in_transaction(ctx, validate, second))
        other.start()
        other.join(timeout=1.0)  # it reads (or waits) while the first is not yet committed
    other.join(timeout=30)
    assert not other.is_alive()
    with ctx.read() as session:
        settled = store_orders.order(session, order_id)
    assert settled is not None and settled.status == "ready"


def _in_transaction(ctx: Any, step: Any, *args: Any) -> None:
    with ctx.transaction() as session:
        step(session, *args)
