"""The key spec, the passphrase lookup and the encrypted-file key backend."""

from __future__ import annotations

import datetime as dt
import os
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.x509.oid import NameOID

from ecert.core.errors import BadKey, ConfigError, KeyBackendError
from ecert.settings import Settings
from ecert.signer.keystore import (
    FileKeyBackend,
    KeySpec,
    backend_from_settings,
    make_backend,
    resolve_passphrase,
)

NOW = dt.datetime(2026, 11, 20, 9, 30, tzinfo=dt.UTC)
PASSPHRASE = b"correct horse battery staple 2026"


def _hash_for(key: PrivateKeyTypes) -> hashes.HashAlgorithm:
    if isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.key_size == 384:
        return hashes.SHA384()
    return hashes.SHA256()


def self_signed(key: PrivateKeyTypes) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ecert test root")])
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())  # type: ignore[arg-type]
        .serial_number(0x1234)
        .not_valid_before(NOW)
        .not_valid_after(NOW + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, _hash_for(key))  # type: ignore[arg-type]
    )


def crl_signed_by(key: PrivateKeyTypes, issuer: x509.Certificate) -> x509.CertificateRevocationList:
    revoked = x509.RevokedCertificateBuilder().serial_number(0x99).revocation_date(NOW - dt.timedelta(hours=1)).build()
    return (
        x509.CertificateRevocationListBuilder()
        .issuer_name(issuer.subject)
        .last_update(NOW)
        .next_update(NOW + dt.timedelta(days=7))
        .add_revoked_certificate(revoked)
        .add_extension(x509.CRLNumber(1), critical=False)
        .sign(key, _hash_for(key))  # type: ignore[arg-type]
    )


@pytest.fixture
def backend(tmp_path: Path) -> FileKeyBackend:
    return FileKeyBackend(tmp_path / "keys", PASSPHRASE)


# --- KeySpec -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("rsa2048", KeySpec("RSA", size=2048)),
        ("RSA-3072", KeySpec("RSA", size=3072)),
        ("rsa4096", KeySpec("RSA", size=4096)),
        ("ec-p256", KeySpec("EC", curve="P-256")),
        ("p384", KeySpec("EC", curve="P-384")),
        ("P-256", KeySpec("EC", curve="P-256")),
        ("secp384r1", KeySpec("EC", curve="P-384")),
        ("prime256v1", KeySpec("EC", curve="P-256")),
    ],
)
def test_key_spec_reads_the_forms_operators_type(text: str, expected: KeySpec) -> None:
    assert KeySpec.parse(text) == expected


@pytest.mark.parametrize("spec", ["rsa2048", "rsa3072", "rsa4096", "ec-p256", "ec-p384"])
def test_key_spec_prints_a_form_it_reads_back(spec: str) -> None:
    assert str(KeySpec.parse(spec)) == spec


@pytest.mark.parametrize("text", ["rsa1024", "rsa2047", "rsa8192", "ec-p521", "ed25519", "dsa2048", "p-255", ""])
def test_key_spec_refuses_keys_outside_br_6_1_5(text: str) -> None:
    with pytest.raises(BadKey) as info:
        KeySpec.parse(text)
    assert info.value.rule == "BR 6.1.5"


@pytest.mark.parametrize(
    ("algorithm", "size", "curve"),
    [
        ("RSA", 1024, None),
        ("RSA", 2048, "P-256"),
        ("EC", None, "P-521"),
        ("EC", 256, "P-256"),
        ("DSA", 2048, None),
    ],
)
def test_key_spec_refuses_inconsistent_fields(algorithm: str, size: int | None, curve: str | None) -> None:
    with pytest.raises(BadKey):
        KeySpec(algorithm, size=size, curve=curve)  # type: ignore[arg-type]


# --- passphrase --------------------------------------------------------------------------------


def test_passphrase_file_wins_over_the_environment(tmp_path: Path) -> None:
    file = tmp_path / "pass"
    file.write_bytes(b"from-file\n")
    assert resolve_passphrase({"ECERT_KEY_PASSPHRASE": "from-env"}, "ECERT_KEY_PASSPHRASE", file) == b"from-file"


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"secret\n", b"secret"),
        (b"secret\r\n", b"secret"),
        (b"secret", b"secret"),
        (b"secret\n\n", b"secret\n"),
    ],
)
def test_passphrase_file_loses_one_trailing_newline(tmp_path: Path, content: bytes, expected: bytes) -> None:
    file = tmp_path / "pass"
    file.write_bytes(content)
    assert resolve_passphrase({}, "ECERT_KEY_PASSPHRASE", file) == expected


def test_passphrase_comes_from_the_named_variable_without_a_file() -> None:
    assert resolve_passphrase({"MY_PASS": "über"}, "MY_PASS", None) == "über".encode()


def test_missing_passphrase_says_where_to_put_it() -> None:
    with pytest.raises(KeyBackendError) as info:
        resolve_passphrase({}, "ECERT_KEY_PASSPHRASE", None)
    assert str(info.value) == "no passphrase: set ECERT_KEY_PASSPHRASE or key_passphrase_file"


@pytest.mark.parametrize("content", [None, b"", b"\n"])
def test_unusable_passphrase_file_is_refused(tmp_path: Path, content: bytes | None) -> None:
    file = tmp_path / "pass"
    if content is not None:
        file.write_bytes(content)
    with pytest.raises(KeyBackendError):
        resolve_passphrase({"ECERT_KEY_PASSPHRASE": "env"}, "ECERT_KEY_PASSPHRASE", file)


# --- file backend ------------------------------------------------------------------------------


@pytest.mark.parametrize("spec", ["rsa2048", "ec-p256", "ec-p384"])
def test_file_key_signs_a_certificate_and_a_crl_after_reloading(backend: FileKeyBackend, spec: str) -> None:
    key_ref = backend.create_key("root-2026", KeySpec.parse(spec))
    assert key_ref == "file:root-2026.key"

    reloaded = FileKeyBackend(backend.directory, PASSPHRASE).load_key(key_ref)
    cert = self_signed(reloaded)
    cert.verify_directly_issued_by(cert)
    crl = crl_signed_by(reloaded, cert)
    assert crl.is_signature_valid(cert.public_key())  # type: ignore[arg-type]
    assert backend.public_key(key_ref) == cert.public_key()


@pytest.mark.parametrize(("spec", "kind"), [("rsa3072", rsa.RSAPrivateKey), ("p384", ec.EllipticCurvePrivateKey)])
def test_file_key_has_the_requested_algorithm(backend: FileKeyBackend, spec: str, kind: type) -> None:
    key = backend.load_key(backend.create_key("k", KeySpec.parse(spec)))
    assert isinstance(key, kind)
    assert key.key_size == (3072 if spec == "rsa3072" else 384)


def test_key_file_is_private_and_encrypted(backend: FileKeyBackend) -> None:
    backend.create_key("issuing-1", KeySpec.parse("ec-p256"))
    path = backend.directory / "issuing-1.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    pem = path.read_bytes()
    assert pem.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    assert PASSPHRASE not in pem
    assert sorted(p.name for p in backend.directory.iterdir()) == ["issuing-1.key"]  # no temp file, no passphrase


def test_wrong_passphrase_is_refused_without_revealing_either_passphrase(backend: FileKeyBackend) -> None:
    key_ref = backend.create_key("root", KeySpec.parse("ec-p256"))
    wrong = b"tr0ub4dor&3-not-it"
    with pytest.raises(KeyBackendError) as info:
        FileKeyBackend(backend.directory, wrong).load_key(key_ref)
    shown = f"{info.value} {info.value!r} {info.value.value!r} {info.value.__context__!r}"
    assert "wrong passphrase" in str(info.value)
    for secret in (wrong, PASSPHRASE):
        assert secret.decode() not in shown
    assert info.value.__cause__ is None


def test_existing_key_is_never_overwritten(backend: FileKeyBackend) -> None:
    key_ref = backend.create_key("root", KeySpec.parse("ec-p256"))
    before = (backend.directory / "root.key").read_bytes()
    with pytest.raises(KeyBackendError, match="already exists"):
        backend.create_key("root", KeySpec.parse("rsa2048"))
    assert (backend.directory / "root.key").read_bytes() == before
    assert isinstance(backend.load_key(key_ref), ec.EllipticCurvePrivateKey)


@pytest.mark.parametrize(
    "key_ref",
    [
        "file:../outside.key",
        "file:../../etc/passwd",
        "file:/etc/ssl/private/x.key",
        "file:sub/dir.key",
        "file:.hidden.key",
        "file:root.pem",
        "file:",
        "root.key",
        "pkcs11:label=root",
    ],
)
def test_key_refs_that_leave_the_directory_are_refused(backend: FileKeyBackend, key_ref: str) -> None:
    with pytest.raises(KeyBackendError):
        backend.load_key(key_ref)


def test_symlink_out_of_the_key_directory_is_refused(backend: FileKeyBackend, tmp_path: Path) -> None:
    outside = FileKeyBackend(tmp_path / "elsewhere", PASSPHRASE)
    outside.create_key("stolen", KeySpec.parse("ec-p256"))
    backend.directory.mkdir(parents=True)
    (backend.directory / "root.key").symlink_to(outside.directory / "stolen.key")
    with pytest.raises(KeyBackendError, match="outside the key directory"):
        backend.load_key("file:root.key")


@pytest.mark.parametrize("label", ["", "../x", "a/b", ".hidden", "x" * 65, "sp ace", "ünï"])
def test_unsafe_labels_are_refused(backend: FileKeyBackend, label: str) -> None:
    with pytest.raises(KeyBackendError):
        backend.create_key(label, KeySpec.parse("ec-p256"))


def test_unencrypted_key_file_is_refused(backend: FileKeyBackend) -> None:
    backend.directory.mkdir(parents=True)
    plain = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    path = backend.directory / "plain.key"
    path.write_bytes(plain)
    path.chmod(0o600)
    with pytest.raises(KeyBackendError, match="not encrypted"):
        backend.load_key("file:plain.key")


def test_key_file_readable_by_others_is_refused(backend: FileKeyBackend) -> None:
    key_ref = backend.create_key("root", KeySpec.parse("ec-p256"))
    os.chmod(backend.directory / "root.key", 0o644)
    with pytest.raises(KeyBackendError, match="0644"):
        backend.load_key(key_ref)


def test_deleted_key_is_gone(backend: FileKeyBackend) -> None:
    key_ref = backend.create_key("old", KeySpec.parse("ec-p256"))
    backend.delete_key(key_ref)
    with pytest.raises(KeyBackendError, match="no such key"):
        backend.load_key(key_ref)


def test_backend_repr_hides_the_passphrase(backend: FileKeyBackend) -> None:
    assert PASSPHRASE.decode() not in repr(backend)


# --- factory -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {"kind": "vault"},
        {"kind": "file", "passphrase": b"x"},
        {"kind": "file", "directory": Path("/tmp")},
        {"kind": "pkcs11", "module_path": "/usr/lib/softhsm/libsofthsm2.so", "token_label": "ecert"},
    ],
)
def test_factory_refuses_incomplete_configuration(kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        make_backend(**kwargs)  # type: ignore[arg-type]


def test_settings_build_a_file_backend_under_the_data_dir(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, key_backend="file")
    backend = backend_from_settings(settings, {"ECERT_KEY_PASSPHRASE": "pw-from-env"})
    key_ref = backend.create_key("root", KeySpec.parse("ec-p256"))
    assert (tmp_path / "keys" / "root.key").is_file()
    assert isinstance(FileKeyBackend(tmp_path / "keys", b"pw-from-env").load_key(key_ref), ec.EllipticCurvePrivateKey)


def test_settings_without_a_passphrase_are_refused(tmp_path: Path) -> None:
    with pytest.raises(KeyBackendError, match="no passphrase"):
        backend_from_settings(Settings(data_dir=tmp_path), {})
