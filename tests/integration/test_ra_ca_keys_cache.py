"""The registration authority keeps this instance's CA-key set per process: a new CA or responder is refused
from the very next request (BR 6.1.1.3), whichever process made it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from ecert.core.errors import EcertError
from ecert.core.profiles import CertType, SubjectData
from ecert.services import publication, registration
from ecert.services.ca_config import load_hierarchy_config
from ecert.services.ceremony import rollover
from ecert.services.context import Context
from ecert.store import db as store_db
from ecert.store.models import ResponderCert


def _csr(key: Any) -> bytes:
    return (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([]))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("www.example.com")]), critical=False)
        .sign(key, hashes.SHA256())
        .public_bytes(serialization.Encoding.PEM)
    )


def _ask(ctx: Context, vetting: int, key: Any) -> str:
    """The RA's refusal for a CSR with ``key`` (there is no DCV evidence, so even a good key is refused later)."""
    intent = registration.IssuanceIntent(
        requester=registration.Requester(registration.Channel.OPERATOR_CLI, "operator:test"),
        cert_type=CertType.SERVER,
        csr=_csr(key),
        names=("www.example.com",),
        vetting_id=vetting,
    )
    with pytest.raises(EcertError) as refused:
        registration.authorize(ctx, intent)
    return refused.value.message


def _second_process(ctx: Context) -> Context:
    """Another process's view: its own engine and memory on the same database and key store."""
    engine = store_db.make_engine(ctx.settings.effective_database_url)
    return Context(
        settings=ctx.settings,
        engine=engine,
        sessions=store_db.session_factory(engine),
        readers=store_db.read_only_session_factory(engine),
        keys_factory=ctx.keys_factory,
    )


def test_a_new_ca_key_is_refused_at_once_after_the_set_was_cached(make_demo_ctx: Callable[..., Context]) -> None:
    ctx = make_demo_ctx()
    vetting = registration.record_vetting(ctx, SubjectData("Example Limited"), source="test", actor="operator:test")
    good = _ask(ctx, vetting, ec.generate_private_key(ec.SECP256R1()))
    assert "belongs to the CA certificate" not in good  # refused later, for want of DCV evidence: the set is cached

    other = _second_process(ctx)
    try:
        new, _old = rollover(other, load_hierarchy_config(None), "ov")  # made by another process
        refused = _ask(ctx, vetting, ctx.keys.load_key(new.key_ref))
        assert f"belongs to the CA certificate {new.label!r}" in refused

        with other.read() as s:
            responder = s.query(ResponderCert).filter(ResponderCert.ca_id == new.id).one()
        assert publication.ensure_responder(other, new.label)  # made at rollover, before any OCSP request
        refused = _ask(ctx, vetting, ctx.keys.load_key(responder.key_ref))
        assert "OCSP responder" in refused
    finally:
        other.close()
