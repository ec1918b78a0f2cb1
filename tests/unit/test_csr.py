"""CSR intake: the vectors in tests/vectors/csr/ and the forms admins actually paste."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ecert.core.csr import (
    MAX_CSR_BYTES,
    CSRInfo,
    CSRTooLarge,
    check_csr,
    compare_names,
    load_csr,
    missing_names,
)
from ecert.core.errors import BadCSR, BadKey, BadName, EcertError, PolicyViolation
from ecert.core.keys import spki_sha256

VECTORS = Path(__file__).resolve().parent.parent / "vectors" / "csr"


def vector(name: str) -> bytes:
    return (VECTORS / name).read_bytes()


def make_csr(cn: str | None, sans: list[str], *, pem: bool = True) -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)] if cn is not None else [])
    builder = x509.CertificateSigningRequestBuilder().subject_name(subject)
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in sans]), False)
    request = builder.sign(key, hashes.SHA256())
    return request.public_bytes(serialization.Encoding.PEM if pem else serialization.Encoding.DER)


def test_every_vector_is_documented_in_the_readme() -> None:
    readme = (VECTORS / "README.md").read_text(encoding="utf-8")
    files = sorted(p.name for p in VECTORS.iterdir() if p.name != "README.md")
    assert files, "no vectors: run scripts/make_csr_vectors.py"
    for name in files:
        assert f"`{name}`" in readme


REFUSED_VECTORS = [
    # (file, error class, code, rule, distinctive part of the message)
    ("bad_signature.pem", BadCSR, "bad-csr", "RFC 2986", "signature is invalid"),
    ("rsa_1024.pem", BadKey, "bad-key", "BR 6.1.5", "1024 bits"),
    ("rsa_exponent_3.pem", BadKey, "bad-key", "BR 6.1.6", "exponent 3 "),
    ("rsa_fermat_close_primes.pem", BadKey, "bad-key", "BR 6.1.1.3", "badkeys check 'fermat'"),
    ("dsa_2048.pem", BadKey, "bad-key", "BR 6.1.5", "DSA keys are not allowed"),
    ("ed25519.pem", BadKey, "bad-key", "BR 6.1.5", "Ed25519 keys are not allowed"),
    ("p521.pem", BadKey, "bad-key", "BR 6.1.5", "secp521r1"),
    ("ec_explicit_parameters.pem", BadKey, "bad-key", "BR 6.1.5 / RFC 5480 2.1.1", "explicit curve parameters"),
    ("email_san.pem", BadCSR, "bad-csr", "BR 7.1.2.7.12", "e-mail address 'admin@example.com'"),
    ("uri_san.pem", BadCSR, "bad-csr", "BR 7.1.2.7.12", "URI 'https://www.example.com/'"),
    ("ip_san.pem", BadCSR, "bad-csr", "BR 7.1.2.7.12", "IP address 10.0.0.1 in the SAN"),
    ("ip_in_cn.pem", BadCSR, "bad-csr", "BR 7.1.2.7.12", "IP address '192.0.2.10' in the CN"),
    ("internal_name.pem", BadName, "bad-name", "BR 7.1.2.7.12", "'exch01.example.local'"),
    ("wildcard_on_suffix.pem", BadName, "bad-name", "BR 3.2.2.6", "'*.com.hk'"),
    ("two_pem_blocks.pem", BadCSR, "bad-csr", "RFC 7468", "several PEM blocks"),
    (
        "certificate_not_csr.pem",
        BadCSR,
        "bad-csr",
        "RFC 2986",
        "this is a certificate, not a certificate request",
    ),
    ("truncated.der", BadCSR, "bad-csr", "RFC 2986", "not a CSR"),
    ("huge.pem", CSRTooLarge, "csr-too-large", "RFC 2986", "too large"),
    (
        "too_many_sans.pem",
        BadCSR,
        "bad-csr",
        "ecert policy (at most 100 names, as Boulder)",
        "too many names: 101",
    ),
]


@pytest.mark.parametrize(
    ("filename", "error", "code", "rule", "message"), REFUSED_VECTORS, ids=[v[0] for v in REFUSED_VECTORS]
)
def test_refused_vectors_say_why(filename: str, error: type[EcertError], code: str, rule: str, message: str) -> None:
    with pytest.raises(error) as caught:
        check_csr(vector(filename))
    assert caught.value.code == code
    assert caught.value.rule == rule
    assert message in caught.value.message


def test_huge_csr_is_a_413_and_still_a_bad_csr() -> None:
    with pytest.raises(BadCSR) as caught:
        load_csr(vector("huge.pem"))
    assert caught.value.status == 413


def test_exchange_csr_with_new_header_and_crlf_is_accepted() -> None:
    info = check_csr(vector("exchange_new_certificate_request_crlf.pem"))
    assert info.dns_names == ("www.example.com", "mail.example.com")
    assert info.common_name == "www.example.com"
    assert info.key.description == "RSA 2048"
    assert "OU 'IT Dept' ignored (BR 7.1.2.7.4)" in info.ignored
    assert "attribute Microsoft OS version ignored" in info.ignored
    assert "attribute Microsoft client information ignored" in info.ignored
    assert any(note.startswith("requested extension keyUsage ignored") for note in info.ignored)
    assert info.requested_subject["O"] == "Example Ltd"
    assert info.requested_subject["C"] == "HK"


def test_openssl_csr_is_accepted_with_nothing_ignored() -> None:
    info = check_csr(vector("openssl_plain.pem"))
    assert info.dns_names == ("www.example.org", "example.org")
    assert info.ignored == ()
    assert info.der == info.csr.public_bytes(serialization.Encoding.DER)


def test_chinese_idn_csr_keeps_the_a_label() -> None:
    info = check_csr(vector("chinese_idn.pem"))
    assert info.dns_names == ("xn--5bvv2rbn4a0hh.xn--j6w193g",)


def test_requested_ca_and_code_signing_extensions_are_ignored_with_a_note() -> None:
    info = check_csr(vector("ca_true_codesigning.pem"))
    assert info.dns_names == ("www.example.com",)
    notes = " | ".join(info.ignored)
    assert "basicConstraints (CA:TRUE) ignored" in notes
    assert "extendedKeyUsage (codeSigning) ignored" in notes
    assert "nameConstraints ignored" in notes


# --- the forms a pasted CSR takes --------------------------------------------------------------------


def _pem_lines() -> list[str]:
    return vector("openssl_plain.pem").decode().strip().splitlines()


PASTED_FORMS = {
    "crlf": "\r\n".join(_pem_lines()) + "\r\n",
    "new-header": "\n".join(_pem_lines()).replace("CERTIFICATE REQUEST", "NEW CERTIFICATE REQUEST"),
    "indented": "\n".join("    " + line + "  " for line in _pem_lines()),
    "blank-lines-and-tabs": "\n\n".join("\t" + line for line in _pem_lines()) + "\n\n\n",
    "one-long-line": _pem_lines()[0] + "".join(_pem_lines()[1:-1]) + _pem_lines()[-1],
    "text-around": "Here is our CSR, thanks!\n" + "\n".join(_pem_lines()) + "\n-- \nIT Dept, 香港\n",
}


@pytest.mark.parametrize("text", PASTED_FORMS.values(), ids=PASTED_FORMS.keys())
def test_pasted_forms_are_accepted(text: str) -> None:
    assert check_csr(text).dns_names == ("www.example.org", "example.org")
    assert check_csr(text.encode()).dns_names == ("www.example.org", "example.org")


def test_der_is_accepted() -> None:
    der = make_csr("www.example.com", ["www.example.com"], pem=False)
    info = check_csr(der)
    assert info.dns_names == ("www.example.com",)
    assert info.der == der


def _body() -> str:
    return "".join(_pem_lines()[1:-1])


def _private_key_pem() -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


HOSTILE_INPUTS = [
    ("empty", b"", "empty"),
    ("whitespace", "  \r\n\t ", "empty"),
    ("garbage", b"hello, this is not a CSR", "not a CSR"),
    ("garbage-der", b"\x30\x82\x01\x00" + b"\x00" * 50, "not a CSR"),
    ("base64-without-header", _body(), "not a CSR"),
    ("no-end-line", "\n".join(_pem_lines()[:-1]), "truncated"),
    ("mismatched-end", "\n".join(_pem_lines()[:-1]) + "\n-----END CERTIFICATE-----", "does not match"),
    ("bad-base64", "\n".join(_pem_lines()).replace(_body()[10:14], "!!!!"), "not valid base64"),
    (
        "truncated-body",
        "\n".join([_pem_lines()[0], _body()[: len(_body()) // 2 // 4 * 4], _pem_lines()[-1]]),
        "not a CSR",
    ),
    ("private-key", _private_key_pem(), "private key"),
    ("public-key-label", "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n", "'PUBLIC KEY'"),
    ("too-large-text", "A" * (MAX_CSR_BYTES + 1), "too large"),
    ("too-large-bytes", b"\x30" * (MAX_CSR_BYTES + 1), "too large"),
]


@pytest.mark.parametrize(("data", "message"), [h[1:] for h in HOSTILE_INPUTS], ids=[h[0] for h in HOSTILE_INPUTS])
def test_hostile_inputs_are_refused_saying_which(data: bytes | str, message: str) -> None:
    with pytest.raises(BadCSR) as caught:
        load_csr(data)
    assert message in caught.value.message


def test_blocked_key_is_refused() -> None:
    data = make_csr("www.example.com", ["www.example.com"])
    blocked = {spki_sha256(load_csr(data).public_key())}
    with pytest.raises(BadKey, match="blocked"):
        check_csr(data, blocked_spki=blocked)


# --- names from the CSR -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cn", "sans", "names"),
    [
        ("www.example.com", ["www.example.com", "mail.example.com"], ("www.example.com", "mail.example.com")),
        ("WWW.EXAMPLE.COM", ["mail.example.com"], ("mail.example.com", "www.example.com")),  # CN added last
        ("www.example.com", [], ("www.example.com",)),  # CN-only CSR (old IIS)
        (None, ["*.example.com", "example.com"], ("*.example.com", "example.com")),
        (None, ["www.example.com", "WWW.example.com"], ("www.example.com",)),  # duplicates dropped
        ("My Web Server", ["www.example.com"], ("www.example.com",)),  # CN is a label, not a name
    ],
)
def test_names_come_from_the_san_then_the_cn(cn: str | None, sans: list[str], names: tuple[str, ...]) -> None:
    assert check_csr(make_csr(cn, sans)).dns_names == names


def test_cn_that_is_not_a_domain_is_noted() -> None:
    info = check_csr(make_csr("My Web Server", ["www.example.com"]))
    assert info.common_name == "My Web Server"
    assert "CN 'My Web Server' is not a domain name; ignored" in info.ignored


@pytest.mark.parametrize(
    ("cn", "sans", "error", "message"),
    [
        (None, [], BadCSR, "names no domain"),
        ("My Web Server", [], BadCSR, "names no domain"),
        ("localhost", ["www.example.com"], BadName, "'localhost'"),
        ("www.example.com", ["www.example.com", "example.com."], BadName, "'example.com.'"),
        ("2001:db8::1", ["www.example.com"], BadCSR, "IP address '2001:db8::1' in the CN"),
    ],
)
def test_bad_names_in_a_csr_are_named(cn: str | None, sans: list[str], error: type[EcertError], message: str) -> None:
    with pytest.raises(error) as caught:
        check_csr(make_csr(cn, sans))
    assert message in caught.value.message


def test_several_common_names_are_refused() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, "a.example.com"),
            x509.NameAttribute(NameOID.COMMON_NAME, "b.example.com"),
        ]
    )
    data = x509.CertificateSigningRequestBuilder().subject_name(subject).sign(key, hashes.SHA256())
    with pytest.raises(BadCSR, match="2 common names"):
        check_csr(data.public_bytes(serialization.Encoding.PEM))


def test_exactly_one_hundred_names_are_accepted() -> None:
    names = [f"h{i}.example.com" for i in range(100)]
    assert len(check_csr(make_csr(None, names)).dns_names) == 100


def test_csr_info_is_immutable() -> None:
    info = check_csr(make_csr("www.example.com", ["www.example.com"]))
    assert isinstance(info, CSRInfo)
    with pytest.raises(AttributeError):
        info.dns_names = ()  # type: ignore[misc]
    with pytest.raises(TypeError):
        info.requested_subject["CN"] = "evil.example.com"  # type: ignore[index]


def test_pem_of_a_certificate_says_so_not_just_garbage() -> None:
    pem = vector("certificate_not_csr.pem")
    der = base64.b64decode(b"".join(pem.splitlines()[1:-1]))
    with pytest.raises(BadCSR, match="this is a certificate"):
        load_csr(der)


# --- CSR names against the application ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("csr_names", "allowed", "left_out"),
    [
        (("www.example.com",), ("www.example.com", "mail.example.com"), ("mail.example.com",)),
        (("*.example.com", "example.com"), ("*.example.com",), ()),
        (("example.com",), ("*.example.com",), ("*.example.com",)),
        ((), ("www.example.com",), ("www.example.com",)),
    ],
)
def test_csr_names_within_the_application_pass(
    csr_names: tuple[str, ...], allowed: tuple[str, ...], left_out: tuple[str, ...]
) -> None:
    """Passing means no refusal; the application's names the CSR leaves out only make a warning."""
    try:
        compare_names(csr_names, allowed)
    except PolicyViolation as exc:
        pytest.fail(f"refused a CSR whose names the application covers: {exc}")
    assert missing_names(csr_names, allowed) == left_out


@pytest.mark.parametrize(
    ("csr_names", "allowed", "extra"),
    [
        (("www.example.com", "evil.example.net"), ("www.example.com",), "evil.example.net"),
        (
            ("www.example.com",),
            ("*.example.com",),
            "www.example.com",
        ),  # the cert would list it: not applied for
        (("*.example.com",), ("example.com",), "*.example.com"),
        (("a.example.com", "b.example.com"), ("example.com",), "a.example.com, b.example.com"),
    ],
)
def test_csr_names_outside_the_application_are_listed(
    csr_names: tuple[str, ...], allowed: tuple[str, ...], extra: str
) -> None:
    with pytest.raises(PolicyViolation) as caught:
        compare_names(csr_names, allowed)
    assert caught.value.message.endswith(extra)


def test_missing_names_lists_application_names_absent_from_the_csr() -> None:
    allowed = ("www.example.com", "mail.example.com", "example.com")
    assert missing_names(("www.example.com",), allowed) == ("mail.example.com", "example.com")
    assert missing_names(allowed, allowed) == ()


def test_a_nul_in_a_san_is_refused_and_escaped_in_the_message() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    request = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([]))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("www.exa\x00mple.com")]), False)
        .sign(key, hashes.SHA256())
    )
    with pytest.raises(BadName) as caught:
        check_csr(request.public_bytes(serialization.Encoding.PEM))
    assert "NUL" in caught.value.message and "\x00" not in caught.value.message
    assert caught.value.value == "www.exa\x00mple.com"


def test_public_surface_is_pinned() -> None:
    from ecert.core import csr, keys, names

    assert set(csr.__all__) == {
        "MAX_CSR_BYTES",
        "MAX_SANS",
        "CSRTooLarge",
        "CSRInfo",
        "load_csr",
        "check_csr",
        "compare_names",
        "missing_names",
    }
    assert set(keys.__all__) == {
        "KeyInfo",
        "ALLOWED_RSA_SIZES",
        "REQUIRED_RSA_EXPONENT",
        "ALLOWED_CURVES",
        "spki_sha256",
        "check_public_key",
    }
    assert set(names.__all__) == {
        "MAX_NAME_LENGTH",
        "MAX_LABEL_LENGTH",
        "INTERNAL_SUFFIXES",
        "normalize_dns_name",
        "normalize_names",
        "needs_manual_review",
        "to_unicode",
        "is_wildcard",
        "base_domain",
        "registrable_domain",
        "names_under",
        "looks_like_ip_address",
    }
