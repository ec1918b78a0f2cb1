"""Refusals and validation results as a subscriber reads them, in both languages (issue 10 points 11, 12).

The sentences are made by the code that refuses (core/csr.py, core/keys.py, core/names.py, the state
machine), so a reworded refusal that web/messages.py no longer knows fails here, not in front of a subscriber.
"""

from __future__ import annotations

import datetime as dt

import pytest
from babel.messages import pofile
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from tests.i18n_check import english_sentences

from ecert.core import application, csr, names
from ecert.core.errors import EcertError
from ecert.web import i18n, messages


def _csr(names_: list[str], key: object = None, san: list[x509.GeneralName] | None = None) -> str:
    key = key or ec.generate_private_key(ec.SECP256R1())
    builder = x509.CertificateSigningRequestBuilder().subject_name(x509.Name([]))
    general = san if san is not None else [x509.DNSName(n) for n in names_]
    if general:
        builder = builder.add_extension(x509.SubjectAlternativeName(general), critical=False)
    algorithm = None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    return builder.sign(key, algorithm).public_bytes(serialization.Encoding.PEM).decode()  # type: ignore[arg-type]


def _self_signed_pem() -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "x")])
    now = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def _refusal(call: object) -> str:
    with pytest.raises(EcertError) as info:
        call()  # type: ignore[operator]
    return info.value.message


def _key_pem() -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


# (what the subscriber did, the refusal the code makes)
CSR_CASES = {
    "empty": lambda: csr.check_csr(""),
    "garbage": lambda: csr.check_csr("hello"),
    "certificate": lambda: csr.check_csr(_self_signed_pem()),
    "private key": lambda: csr.check_csr(_key_pem()),
    "two CSRs": lambda: csr.check_csr(_csr(["a.example.com"]) + _csr(["b.example.com"])),
    "truncated": lambda: csr.check_csr(_csr(["a.example.com"]).rsplit("-----END", 1)[0]),
    "bad base64": lambda: csr.check_csr(
        "-----BEGIN CERTIFICATE REQUEST-----\nnot base64\n-----END CERTIFICATE REQUEST-----"
    ),
    "RSA 1024": lambda: csr.check_csr(_csr(["a.example.com"], rsa.generate_private_key(65537, 1024))),
    "RSA e=3": lambda: csr.check_csr(_csr(["a.example.com"], rsa.generate_private_key(3, 2048))),
    "secp256k1": lambda: csr.check_csr(_csr(["a.example.com"], ec.generate_private_key(ec.SECP256K1()))),
    "Ed25519": lambda: csr.check_csr(_csr(["a.example.com"], ed25519.Ed25519PrivateKey.generate())),
    "IP SAN": lambda: csr.check_csr(_csr([], san=[x509.IPAddress(__import__("ipaddress").ip_address("192.0.2.1"))])),
    "e-mail SAN": lambda: csr.check_csr(_csr([], san=[x509.RFC822Name("a@example.com")])),
    "no names": lambda: csr.check_csr(_csr([])),
    "public suffix": lambda: csr.check_csr(_csr(["com.hk"])),
    "internal name": lambda: csr.check_csr(_csr(["intranet.local"])),
    "other names": lambda: csr.compare_names(["x.example.org"], ["www.example.com"]),
    "trailing dot": lambda: names.normalize_dns_name("www.example.com."),
    "IP as a name": lambda: names.normalize_dns_name("192.0.2.1"),
    "confirm twice": lambda: application.transition("confirmed", application.Action.CONFIRM),
    "accept twice": lambda: application.transition("accepted", application.Action.ACCEPT),
}

# Validation results as validation/ and services/enrolment.py word them (network needed to make them live;
# tests/browser and tests/integration/test_dcv_* make the real ones).
DCV_REASONS = [
    __import__("ecert.core.dcv_rules", fromlist=["x"]).EMAIL_DISCOURAGED_WARNING,
    "Validation Code found at http://www.example.com/.well-known/pki-validation/fileauth.txt",
    "Validation Code found in TXT at _pki-validation.www.example.com",
    "validated on 2026-11-30, reused (BR 4.2.1)",
    "the file at http://www.example.com/.well-known/pki-validation/fileauth.txt does not hold the Validation Code",
    "could not fetch http://www.example.com/.well-known/pki-validation/fileauth.txt: ConnectError; "
    "could not fetch https://www.example.com/.well-known/pki-validation/fileauth.txt: ConnectError",
    "HTTP 404 at http://www.example.com/.well-known/pki-validation/fileauth.txt",
    "www.example.com has no A or AAAA record",
    "no TXT record at www.example.com or _pki-validation.www.example.com",
    "TXT records at www.example.com and _pki-validation.www.example.com do not hold the Validation Code",
    "code e-mailed to admin@example.com entered back",
    "x.example.org is not among the names of application 123456789 (www.example.com)",
]


@pytest.mark.parametrize("case", sorted(CSR_CASES))
def test_every_refusal_on_the_journey_has_a_plain_sentence_in_both_languages(case: str) -> None:
    english = _refusal(CSR_CASES[case])
    assert messages.kind_of(english), f"no row in web/messages.py for {english!r}"
    zh = messages.plain(english, "zh_HK")
    assert english_sentences(zh) == [], (english, zh)
    en = messages.plain(english, "en")
    starts_with_a_name = "." in en.split()[0]
    assert (starts_with_a_name or not en[:1].islower()) and en.rstrip().endswith("."), en


@pytest.mark.parametrize("reason", DCV_REASONS)
def test_validation_results_read_as_chinese(reason: str) -> None:
    zh = messages.plain(reason, "zh_HK")
    assert english_sentences(zh) == [], (reason, zh)
    assert "Error" not in zh


def test_a_names_mismatch_names_its_kind_so_the_page_can_list_the_covered_names() -> None:
    refusal = _refusal(CSR_CASES["other names"])
    assert messages.kind_of(refusal) == "names_mismatch"
    assert "x.example.org" in messages.plain(refusal, "zh_HK")


def test_every_message_has_a_chinese_translation_with_the_same_placeholders() -> None:
    import re

    with (i18n.LOCALE_DIR / "zh_HK" / "LC_MESSAGES" / "messages.po").open("rb") as fh:
        catalog = pofile.read_po(fh)
    for msgid in messages.msgids():
        entry = catalog.get(msgid)
        assert entry is not None and entry.string, f"no translation for {msgid!r}"
        assert sorted(re.findall(r"%\((\w+)\)s", msgid)) == sorted(re.findall(r"%\((\w+)\)s", entry.string)), msgid


def test_an_unknown_sentence_keeps_its_words_but_loses_exception_class_names() -> None:
    assert messages.plain("the relay broke off: ConnectError", "en") == "The relay broke off"
    assert messages.plain("", "zh_HK") == ""
