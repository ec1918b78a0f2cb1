"""CA keys on a PKCS#11 token (softhsm2): certificates, CRLs and OCSP responses signed on the token.

Each signature is checked twice: with cryptography and with the openssl command line, which knows
nothing of our proxy key classes.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes, PublicKeyTypes
from cryptography.x509 import ocsp
from cryptography.x509.oid import NameOID

from ecert.core.errors import KeyBackendError
from ecert.signer import keys_pkcs11
from ecert.signer.keys_pkcs11 import Pkcs11ECPrivateKey, Pkcs11RSAPrivateKey
from ecert.signer.keystore import KeyBackend, KeySpec, Pkcs11KeyBackend, make_backend

# openssl checks validity periods against the wall clock, so these objects are dated from it.
NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)
SPECS = {"rsa2048": "kt-rsa2048", "ec-p256": "kt-p256", "ec-p384": "kt-p384"}


@pytest.fixture(scope="module")
def backend(softhsm_token: tuple[str, str, str]) -> Pkcs11KeyBackend:
    module_path, token_label, user_pin = softhsm_token
    made = make_backend("pkcs11", module_path=module_path, token_label=token_label, user_pin=user_pin)
    assert isinstance(made, Pkcs11KeyBackend)
    return made


@pytest.fixture(scope="module")
def key_refs(backend: Pkcs11KeyBackend) -> dict[str, str]:
    """One key per spec, generated once on the token for the whole module."""
    return {spec: backend.create_key(label, KeySpec.parse(spec)) for spec, label in SPECS.items()}


def _hash_for(key: PrivateKeyTypes | PublicKeyTypes) -> hashes.HashAlgorithm:
    if isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey) and key.curve.key_size == 384:
        return hashes.SHA384()
    return hashes.SHA256()


def ca_certificate(key: PrivateKeyTypes) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"ecert HSM test {type(key).__name__}")])
    usage = x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=True,
        crl_sign=True,
        encipher_only=False,
        decipher_only=False,
    )
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())  # type: ignore[arg-type]
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - dt.timedelta(hours=1))
        .not_valid_after(NOW + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(usage, critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)  # type: ignore[arg-type]
        .sign(key, _hash_for(key))  # type: ignore[arg-type]
    )


def verify_raw(public: PublicKeyTypes, signature: bytes, data: bytes, algorithm: hashes.HashAlgorithm) -> None:
    if isinstance(public, rsa.RSAPublicKey):
        public.verify(signature, data, padding.PKCS1v15(), algorithm)
    else:
        assert isinstance(public, ec.EllipticCurvePublicKey)
        public.verify(signature, data, ec.ECDSA(algorithm))


def openssl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["openssl", *args], capture_output=True, text=True, timeout=30)


def pem(path: Path, obj: x509.Certificate | x509.CertificateRevocationList) -> Path:
    path.write_bytes(obj.public_bytes(serialization.Encoding.PEM))
    return path


@pytest.mark.parametrize("spec", list(SPECS))
def test_token_key_signs_a_certificate_openssl_accepts(
    backend: Pkcs11KeyBackend, key_refs: dict[str, str], spec: str, tmp_path: Path
) -> None:
    key = backend.load_key(key_refs[spec])
    cert = ca_certificate(key)
    cert.verify_directly_issued_by(cert)
    path = pem(tmp_path / "ca.pem", cert)
    result = openssl("verify", "-CAfile", str(path), str(path))
    assert result.returncode == 0 and result.stdout.strip().endswith(": OK"), result.stdout + result.stderr


@pytest.mark.parametrize("spec", list(SPECS))
def test_token_key_signs_a_crl_openssl_accepts(
    backend: Pkcs11KeyBackend, key_refs: dict[str, str], spec: str, tmp_path: Path
) -> None:
    key = backend.load_key(key_refs[spec])
    cert = ca_certificate(key)
    revoked = x509.RevokedCertificateBuilder().serial_number(0x4242).revocation_date(NOW).build()
    crl = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(cert.subject)
        .last_update(NOW)
        .next_update(NOW + dt.timedelta(days=7))
        .add_revoked_certificate(revoked)
        .add_extension(x509.CRLNumber(7), critical=False)
        .sign(key, _hash_for(key))  # type: ignore[arg-type]
    )
    assert crl.is_signature_valid(key.public_key())  # type: ignore[arg-type]
    ca_path, crl_path = pem(tmp_path / "ca.pem", cert), pem(tmp_path / "crl.pem", crl)
    result = openssl("crl", "-in", str(crl_path), "-CAfile", str(ca_path), "-noout")
    assert result.returncode == 0 and "verify OK" in result.stdout + result.stderr, result.stdout + result.stderr


@pytest.mark.parametrize("spec", list(SPECS))
def test_token_key_signs_an_ocsp_response_openssl_accepts(
    backend: Pkcs11KeyBackend, key_refs: dict[str, str], spec: str, tmp_path: Path
) -> None:
    key = backend.load_key(key_refs[spec])
    cert = ca_certificate(key)
    response = (
        ocsp.OCSPResponseBuilder()
        .add_response(
            cert=cert,
            issuer=cert,
            algorithm=hashes.SHA256(),
            cert_status=ocsp.OCSPCertStatus.GOOD,
            this_update=NOW,
            next_update=NOW + dt.timedelta(days=1),
            revocation_time=None,
            revocation_reason=None,
        )
        .responder_id(ocsp.OCSPResponderEncoding.HASH, cert)
        .sign(key, _hash_for(key))  # type: ignore[arg-type]
    )
    assert response.signature_hash_algorithm is not None
    verify_raw(key.public_key(), response.signature, response.tbs_response_bytes, response.signature_hash_algorithm)
    ca_path = pem(tmp_path / "ca.pem", cert)
    (tmp_path / "resp.der").write_bytes(response.public_bytes(serialization.Encoding.DER))
    result = openssl(
        # -sha256 before -cert: openssl builds the CertID it looks up while reading -cert.
        "ocsp", "-respin", str(tmp_path / "resp.der"), "-issuer", str(ca_path),
        "-sha256", "-cert", str(ca_path), "-CAfile", str(ca_path), "-no_nonce",
    )  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode == 0 and "Response verify OK" in output and ": good" in output, output


@pytest.mark.parametrize(
    ("spec", "algorithm"),
    [
        ("rsa2048", hashes.SHA384()),
        ("rsa2048", hashes.SHA512()),
        ("rsa2048", utils.Prehashed(hashes.SHA256())),
        ("ec-p256", hashes.SHA512()),
        ("ec-p384", utils.Prehashed(hashes.SHA384())),
    ],
)
def test_token_key_signs_with_each_sha2_hash(
    backend: Pkcs11KeyBackend, key_refs: dict[str, str], spec: str, algorithm: hashes.HashAlgorithm
) -> None:
    key = backend.load_key(key_refs[spec])
    message = b"tbsCertificate stand-in"
    if isinstance(algorithm, utils.Prehashed):
        digest = hashes.Hash(algorithm._algorithm)
        digest.update(message)
        data = digest.finalize()
    else:
        data = message
    if isinstance(key, rsa.RSAPrivateKey):
        signature = key.sign(data, padding.PKCS1v15(), algorithm)
        key.public_key().verify(signature, data, padding.PKCS1v15(), algorithm)
    else:
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        signature = key.sign(data, ec.ECDSA(algorithm))
        key.public_key().verify(signature, data, ec.ECDSA(algorithm))


@pytest.mark.parametrize(
    ("spec", "attempt"),
    [
        ("rsa2048", lambda k: k.sign(b"x", padding.PSS(padding.MGF1(hashes.SHA256()), 32), hashes.SHA256())),
        ("rsa2048", lambda k: k.sign(b"x", padding.PKCS1v15(), hashes.SHA1())),
        ("ec-p256", lambda k: k.sign(b"x", ec.ECDSA(hashes.SHA1()))),
        (
            "rsa2048",
            lambda k: k.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            ),
        ),
        (
            "ec-p256",
            lambda k: k.private_bytes(
                serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            ),
        ),
        ("rsa2048", lambda k: k.private_numbers()),
        ("ec-p384", lambda k: k.private_numbers()),
        ("rsa2048", lambda k: k.decrypt(b"x" * 256, padding.PKCS1v15())),
        ("ec-p256", lambda k: k.exchange(ec.ECDH(), ec.generate_private_key(ec.SECP256R1()).public_key())),
    ],
    ids=[
        "pss",
        "rsa-sha1",
        "ecdsa-sha1",
        "rsa-export",
        "ec-export",
        "rsa-numbers",
        "ec-numbers",
        "decrypt",
        "ecdh",
    ],
)
def test_token_key_refuses_what_a_ca_key_must_not_do(
    backend: Pkcs11KeyBackend, key_refs: dict[str, str], spec: str, attempt: object
) -> None:
    key = backend.load_key(key_refs[spec])
    with pytest.raises(KeyBackendError):
        attempt(key)  # type: ignore[operator]


def test_load_key_returns_the_token_proxy_types(backend: Pkcs11KeyBackend, key_refs: dict[str, str]) -> None:
    assert isinstance(backend.load_key(key_refs["rsa2048"]), Pkcs11RSAPrivateKey)
    assert isinstance(backend.load_key(key_refs["ec-p384"]), Pkcs11ECPrivateKey)
    assert backend.load_key(key_refs["ec-p384"]).key_size == 384  # type: ignore[union-attr]


@pytest.mark.parametrize("spec", list(SPECS))
def test_keys_survive_a_new_backend_and_the_old_one_closing(
    softhsm_token: tuple[str, str, str], backend: Pkcs11KeyBackend, key_refs: dict[str, str], spec: str
) -> None:
    module_path, token_label, user_pin = softhsm_token
    first = Pkcs11KeyBackend(module_path, token_label, user_pin)
    second = Pkcs11KeyBackend(module_path, token_label, user_pin)
    first.load_key(key_refs[spec])
    first.close()
    key = second.load_key(key_refs[spec])
    assert key.public_key() == backend.public_key(key_refs[spec])
    ca_certificate(key).verify_directly_issued_by(ca_certificate(key))
    second.close()


def test_signing_recovers_after_the_session_is_lost(backend: Pkcs11KeyBackend, key_refs: dict[str, str]) -> None:
    key = backend.load_key(key_refs["ec-p256"])
    backend._session.close()  # as if the token had dropped our session
    signature = key.sign(b"after", ec.ECDSA(hashes.SHA256()))  # type: ignore[union-attr]
    key.public_key().verify(signature, b"after", ec.ECDSA(hashes.SHA256()))  # type: ignore[union-attr]


def test_signing_recovers_after_the_token_logged_us_out(backend: Pkcs11KeyBackend, key_refs: dict[str, str]) -> None:
    key = backend.load_key(key_refs["rsa2048"])
    key.sign(b"before", padding.PKCS1v15(), hashes.SHA256())  # type: ignore[union-attr]
    for login in list(keys_pkcs11._logins.values()):
        login.session.close()  # C_Logout + C_CloseSession: every session of this process is logged out
    signature = key.sign(b"after", padding.PKCS1v15(), hashes.SHA256())  # type: ignore[union-attr]
    key.public_key().verify(signature, b"after", padding.PKCS1v15(), hashes.SHA256())  # type: ignore[union-attr]


def test_concurrent_signers_share_one_backend(backend: Pkcs11KeyBackend, key_refs: dict[str, str]) -> None:
    keys = [backend.load_key(key_refs["ec-p256"]), backend.load_key(key_refs["rsa2048"])]
    failures: list[BaseException] = []

    def worker(index: int) -> None:
        key = keys[index % 2]
        try:
            for n in range(25):
                data = f"thread {index} message {n}".encode()
                if isinstance(key, rsa.RSAPrivateKey):
                    key.public_key().verify(
                        key.sign(data, padding.PKCS1v15(), hashes.SHA256()),
                        data,
                        padding.PKCS1v15(),
                        hashes.SHA256(),
                    )
                else:
                    assert isinstance(key, ec.EllipticCurvePrivateKey)
                    key.public_key().verify(key.sign(data, ec.ECDSA(hashes.SHA256())), data, ec.ECDSA(hashes.SHA256()))
        except BaseException as exc:  # noqa: BLE001 - collected and reported below
            failures.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not failures, failures


def test_existing_label_is_never_replaced(backend: Pkcs11KeyBackend, key_refs: dict[str, str]) -> None:
    before = backend.public_key(key_refs["ec-p256"])
    with pytest.raises(KeyBackendError, match="already exists"):
        backend.create_key(SPECS["ec-p256"], KeySpec.parse("ec-p256"))
    assert backend.public_key(key_refs["ec-p256"]) == before


@pytest.mark.parametrize(
    "key_ref", ["pkcs11:label=absent", "pkcs11:label=../x", "pkcs11:label=", "file:kt-p256.key", "kt-p256"]
)
def test_unknown_or_malformed_key_refs_are_refused(backend: Pkcs11KeyBackend, key_ref: str) -> None:
    with pytest.raises(KeyBackendError):
        backend.load_key(key_ref)


def test_deleted_token_key_is_gone(backend: Pkcs11KeyBackend) -> None:
    key_ref = backend.create_key("kt-doomed", KeySpec.parse("ec-p256"))
    backend.delete_key(key_ref)
    with pytest.raises(KeyBackendError, match="no such key"):
        backend.load_key(key_ref)


def test_a_second_pin_in_the_same_process_is_refused(softhsm_token: tuple[str, str, str], backend: KeyBackend) -> None:
    module_path, token_label, _ = softhsm_token
    with pytest.raises(KeyBackendError) as info:
        Pkcs11KeyBackend(module_path, token_label, "not-the-pin-9876")
    assert "not-the-pin-9876" not in f"{info.value} {info.value!r} {info.value.value!r}"


def test_wrong_pin_is_refused_without_showing_it(softhsm_token: tuple[str, str, str]) -> None:
    """A fresh process, so the login is really attempted (this process is already logged in)."""
    module_path, token_label, _ = softhsm_token
    code = (
        "import sys\n"
        "from ecert.core.errors import KeyBackendError\n"
        "from ecert.signer.keystore import make_backend\n"
        "try:\n"
        f"    make_backend('pkcs11', module_path={module_path!r}, token_label={token_label!r},\n"
        "                 user_pin='wr0ng-pin')\n"
        "except KeyBackendError as exc:\n"
        "    print(f'{exc} | {exc!r} | {exc.value!r}')\n"
        "    sys.exit(3)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=dict(os.environ)
    )
    assert result.returncode == 3, result.stdout + result.stderr
    assert "wrong PIN" in result.stdout
    assert "wr0ng-pin" not in result.stdout + result.stderr


def test_unknown_token_is_refused(softhsm_token: tuple[str, str, str]) -> None:
    module_path, _, user_pin = softhsm_token
    with pytest.raises(KeyBackendError, match="no PKCS#11 token"):
        Pkcs11KeyBackend(module_path, "no-such-token", user_pin)
