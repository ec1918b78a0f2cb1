"""The whole CA on a PKCS#11 token (softhsm2): hierarchy made on the token, certificates issued and linted."""

from __future__ import annotations

from pathlib import Path

from cryptography import x509
from sqlalchemy import select

from ecert.core.profiles import CertType, SubjectData
from ecert.services import issuance
from ecert.services.ca_config import load_hierarchy_config
from ecert.services.ceremony import init_hierarchy
from ecert.services.context import build_context
from ecert.settings import load_settings
from ecert.signer.lint import lint_certificate
from ecert.store.models import CA


def test_hierarchy_and_issuance_on_softhsm(tmp_path: Path, softhsm_token: tuple[str, str, str]) -> None:
    module, label, pin = softhsm_token
    settings = load_settings(
        data_dir=tmp_path,
        base_url="http://pki.ecert-demo.hk",
        key_backend="pkcs11",
        pkcs11_module=module,
        pkcs11_token_label=label,
    )
    ctx = build_context(settings, {"ECERT_PKCS11_PIN": pin})
    try:
        config = load_hierarchy_config(None).model_copy(
            update={
                # Labels of their own, so this test never collides with other tests' keys on the shared token.
                "root": load_hierarchy_config(None).root.model_copy(update={"label": "hsm-root-1"}),
                "ov": load_hierarchy_config(None).ov.model_copy(update={"label": "hsm-ov-1"}),
                "ev": load_hierarchy_config(None).ev.model_copy(update={"label": "hsm-ev-1"}),
                "external_root": None,
            }
        )
        init_hierarchy(ctx, config, demo=False)
        with ctx.transaction() as s:
            rows = {r.role: r for r in s.scalars(select(CA))}
        assert all(r.key_ref and r.key_ref.startswith("pkcs11:") for r in rows.values())
        key = ctx.keys.load_key(rows["ov"].key_ref)
        assert key.public_key() == x509.load_der_x509_certificate(rows["ov"].cert_der).public_key()
        from cryptography.hazmat.primitives.asymmetric import ec

        leaf = issuance.issue(
            ctx,
            issuance.IssueRequest(
                cert_type=CertType.SERVER,
                names=("www.example.com",),
                subject=SubjectData("Example Limited"),
                public_key=ec.generate_private_key(ec.SECP256R1()).public_key(),
            ),
        )
        cert = x509.load_der_x509_certificate(leaf.der)
        cert.verify_directly_issued_by(x509.load_der_x509_certificate(rows["ov"].cert_der))
        assert lint_certificate(leaf.der, "OV-FINAL-CERTIFICATE").ok
    finally:
        ctx.close()
