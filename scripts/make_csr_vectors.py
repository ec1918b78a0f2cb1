"""Remake the CSR test vectors in tests/vectors/csr/, each file named after its defect.

Run from the repository root: ``.venv/bin/python scripts/make_csr_vectors.py``. Keys are fresh on every
run (the vectors' private keys are never kept), so the bytes change but every file keeps its defect;
the README beside the vectors is rewritten from the table below, one line per file.
``openssl_plain.pem`` is made by the ``openssl`` command line, the way most admins make a CSR.
"""

from __future__ import annotations

import datetime
import random
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from ipaddress import ip_address
from pathlib import Path

import gmpy2  # type: ignore[import-untyped]  # installed with badkeys
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, ObjectIdentifier

OUT = Path(__file__).resolve().parent.parent / "tests" / "vectors" / "csr"

Key = CertificateIssuerPrivateKeyTypes


def rsa_key(bits: int = 2048, e: int = 65537) -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=e, key_size=bits)


def fermat_key(seed: int = 2986) -> rsa.RSAPrivateKey:
    """RSA-2048 whose primes are neighbours, so Fermat's method factors n at once (badkeys "fermat")."""
    rng = random.Random(seed)
    while True:
        start = rng.getrandbits(1024) | (0b11 << 1022)  # top two bits set: p*q has 2048 bits
        p = int(gmpy2.next_prime(start))
        q = int(gmpy2.next_prime(p + rng.getrandbits(32)))
        phi = (p - 1) * (q - 1)
        if gmpy2.gcd(65537, phi) == 1 and (p * q).bit_length() == 2048:
            break
    d = pow(65537, -1, phi)
    public = rsa.RSAPublicNumbers(65537, p * q)
    numbers = rsa.RSAPrivateNumbers(
        p=p,
        q=q,
        d=d,
        dmp1=rsa.rsa_crt_dmp1(d, p),
        dmq1=rsa.rsa_crt_dmq1(d, q),
        iqmp=rsa.rsa_crt_iqmp(p, q),
        public_numbers=public,
    )
    return numbers.private_key()


def name(*attributes: tuple[ObjectIdentifier, str]) -> x509.Name:
    return x509.Name([x509.NameAttribute(oid, value) for oid, value in attributes])


def csr(
    key: Key,
    cn: str | None,
    sans: Sequence[x509.GeneralName] = (),
    *,
    extra: Callable[[x509.CertificateSigningRequestBuilder], x509.CertificateSigningRequestBuilder]
    | None = None,
    subject: x509.Name | None = None,
) -> x509.CertificateSigningRequest:
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        subject if subject is not None else name(*([(NameOID.COMMON_NAME, cn)] if cn else []))
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(list(sans)), critical=False)
    if extra is not None:
        builder = extra(builder)
    algorithm: hashes.SHA256 | hashes.SHA512 | None = (
        None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    )
    if isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.key_size > 384:
        algorithm = hashes.SHA512()
    return builder.sign(key, algorithm)


def pem(request: x509.CertificateSigningRequest) -> bytes:
    return request.public_bytes(serialization.Encoding.PEM)


def der(request: x509.CertificateSigningRequest) -> bytes:
    return request.public_bytes(serialization.Encoding.DER)


def dns(*names: str) -> list[x509.GeneralName]:
    return [x509.DNSName(n) for n in names]


# --- the vectors -------------------------------------------------------------------------------------


def exchange() -> bytes:
    """What Exchange 2010-2019's New-ExchangeCertificate writes: NEW header, CRLF, MS attributes, an OU."""
    subject = name(
        (NameOID.COUNTRY_NAME, "HK"),
        (NameOID.STATE_OR_PROVINCE_NAME, "Hong Kong"),
        (NameOID.LOCALITY_NAME, "Hong Kong"),
        (NameOID.ORGANIZATION_NAME, "Example Ltd"),
        (NameOID.ORGANIZATIONAL_UNIT_NAME, "IT Dept"),
        (NameOID.COMMON_NAME, "www.example.com"),
    )

    def extra(b: x509.CertificateSigningRequestBuilder) -> x509.CertificateSigningRequestBuilder:
        b = b.add_extension(
            x509.KeyUsage(True, False, True, False, False, False, False, False, False), critical=True
        )
        b = b.add_attribute(ObjectIdentifier("1.3.6.1.4.1.311.13.2.3"), b"10.0.14393.2")  # OS version
        return b.add_attribute(  # client information (machine, user, process), simplified to a string
            ObjectIdentifier("1.3.6.1.4.1.311.21.20"),
            b"5;EXCH01.corp.example.com;EXAMPLE\\admin;powershell.exe",
        )

    request = csr(rsa_key(), None, dns("www.example.com", "mail.example.com"), extra=extra, subject=subject)
    body = pem(request).decode().splitlines()[1:-1]
    lines = ["-----BEGIN NEW CERTIFICATE REQUEST-----", *body, "-----END NEW CERTIFICATE REQUEST-----", ""]
    return "\r\n".join(lines).encode()


def openssl_plain() -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [
                "openssl",
                "req",
                "-new",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                f"{tmp}/key.pem",
                "-out",
                f"{tmp}/req.pem",
                "-subj",
                "/CN=www.example.org",
                "-addext",
                "subjectAltName=DNS:www.example.org,DNS:example.org",
            ],
            check=True,
            capture_output=True,
        )
        return Path(tmp, "req.pem").read_bytes()


def bad_signature() -> bytes:
    data = bytearray(der(csr(rsa_key(), "www.example.com", dns("www.example.com"))))
    data[-20] ^= 0x01  # inside the signature BIT STRING, the last field of the CSR
    return pem(x509.load_der_x509_csr(bytes(data)))


def self_signed_certificate() -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = name((NameOID.COMMON_NAME, "www.example.com"))
    now = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName(dns("www.example.com")), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM)


def ca_true_codesigning() -> bytes:
    def extra(b: x509.CertificateSigningRequestBuilder) -> x509.CertificateSigningRequestBuilder:
        b = b.add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        b = b.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False)
        return b.add_extension(
            x509.NameConstraints(permitted_subtrees=[x509.DNSName("example.com")], excluded_subtrees=None),
            critical=True,
        )

    return pem(
        csr(ec.generate_private_key(ec.SECP256R1()), "www.example.com", dns("www.example.com"), extra=extra)
    )


def many_sans(count: int, label_length: int = 8) -> bytes:
    names = [f"h{i:05d}{'x' * label_length}.example.com" for i in range(count)]
    return pem(csr(ec.generate_private_key(ec.SECP256R1()), None, dns(*names)))


def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


WWW = "www.example.com"

# file name → (defect / what it shows, maker)
def ec_explicit_parameters() -> bytes:
    """A P-256 key written with explicit curve parameters (openssl -param_enc explicit)."""
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(["openssl", "ecparam", "-name", "prime256v1", "-param_enc", "explicit", "-genkey",
                        "-noout", "-out", f"{tmp}/key.pem"], check=True, capture_output=True)
        subprocess.run(["openssl", "req", "-new", "-key", f"{tmp}/key.pem", "-out", f"{tmp}/req.pem", "-subj",
                        "/CN=www.example.com", "-addext", "subjectAltName=DNS:www.example.com"],
                       check=True, capture_output=True)
        return Path(f"{tmp}/req.pem").read_bytes()


VECTORS: dict[str, tuple[str, Callable[[], bytes]]] = {
    "exchange_new_certificate_request_crlf.pem": (
        "accepted: Exchange-style NEW CERTIFICATE REQUEST header, CRLF, MS OS-version/client-info attributes,"
        " OU and keyUsage (ignored); names www.example.com + mail.example.com",
        exchange,
    ),
    "openssl_plain.pem": (
        "accepted: plain `openssl req` RSA-2048 CSR for www.example.org + example.org",
        openssl_plain,
    ),
    "chinese_idn.pem": (
        "accepted: SAN and CN in A-label form of 香港郵政.香港 (xn--5bvv2rbn4a0hh.xn--j6w193g)",
        lambda: pem(csr(ec_key(), "xn--5bvv2rbn4a0hh.xn--j6w193g", dns("xn--5bvv2rbn4a0hh.xn--j6w193g"))),
    ),
    "ca_true_codesigning.pem": (
        "accepted: requests basicConstraints CA:TRUE, codeSigning EKU and nameConstraints (all ignored)",
        ca_true_codesigning,
    ),
    "ec_explicit_parameters.pem": (
        "P-256 key with explicit curve parameters instead of the named curve (BR 6.1.5, RFC 5480 2.1.1)",
        ec_explicit_parameters,
    ),
    "bad_signature.pem": ("one bit of the signature flipped: self-signature does not verify", bad_signature),
    "rsa_1024.pem": (
        "RSA key of 1024 bits (BR 6.1.5 wants >= 2048)",
        lambda: pem(csr(rsa_key(1024), WWW, dns(WWW))),
    ),
    "rsa_exponent_3.pem": (
        "RSA public exponent 3 (BR 6.1.6; ecert takes 65537 only)",
        lambda: pem(csr(rsa_key(2048, 3), WWW, dns(WWW))),
    ),
    "rsa_fermat_close_primes.pem": (
        "RSA-2048 with neighbouring primes: factored by Fermat's method (badkeys fermat, BR 6.1.1.3)",
        lambda: pem(csr(fermat_key(), WWW, dns(WWW))),
    ),
    "dsa_2048.pem": (
        "DSA key (not allowed, BR 6.1.5)",
        lambda: pem(csr(dsa.generate_private_key(2048), WWW, dns(WWW))),
    ),
    "ed25519.pem": (
        "Ed25519 key (not allowed for TLS server certificates, BR 6.1.5)",
        lambda: pem(csr(ed25519.Ed25519PrivateKey.generate(), WWW, dns(WWW))),
    ),
    "p521.pem": (
        "ECDSA P-521 key (ecert takes P-256 and P-384 only)",
        lambda: pem(csr(ec.generate_private_key(ec.SECP521R1()), WWW, dns(WWW))),
    ),
    "email_san.pem": (
        "SAN holds an e-mail address (rfc822Name) besides a DNS name (BR 7.1.2.7.12)",
        lambda: pem(csr(ec_key(), WWW, [*dns(WWW), x509.RFC822Name("admin@example.com")])),
    ),
    "uri_san.pem": (
        "SAN holds a URI (BR 7.1.2.7.12)",
        lambda: pem(
            csr(ec_key(), WWW, [*dns(WWW), x509.UniformResourceIdentifier("https://www.example.com/")])
        ),
    ),
    "ip_san.pem": (
        "SAN holds IP address 10.0.0.1 (BR 7.1.2.7.12)",
        lambda: pem(csr(ec_key(), WWW, [*dns(WWW), x509.IPAddress(ip_address("10.0.0.1"))])),
    ),
    "ip_in_cn.pem": (
        "CN is the IP address 192.0.2.10 (BR 7.1.2.7.12)",
        lambda: pem(csr(ec_key(), "192.0.2.10", dns(WWW))),
    ),
    "internal_name.pem": (
        "SAN and CN hold exch01.example.local, an internal name (BR 7.1.2.7.12)",
        lambda: pem(csr(ec_key(), "exch01.example.local", dns("exch01.example.local", WWW))),
    ),
    "wildcard_on_suffix.pem": (
        "SAN *.com.hk: wildcard directly on a public suffix (BR 3.2.2.6)",
        lambda: pem(csr(ec_key(), None, dns("*.com.hk"))),
    ),
    "two_pem_blocks.pem": (
        "two CSR PEM blocks in one upload",
        lambda: pem(csr(ec_key(), WWW, dns(WWW))) + pem(csr(ec_key(), WWW, dns(WWW))),
    ),
    "certificate_not_csr.pem": (
        "a self-signed certificate where a CSR was expected",
        self_signed_certificate,
    ),
    "truncated.der": ("DER CSR cut in half", lambda: der(csr(ec_key(), WWW, dns(WWW)))[:150]),
    "huge.pem": (
        "valid CSR of more than 64 KiB (2,000 SANs): refused by size before parsing",
        lambda: many_sans(2000, 20),
    ),
    "too_many_sans.pem": ("101 SAN dNSNames, over the cap of 100", lambda: many_sans(101)),
}


def main(argv: Sequence[str] = ()) -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    readme = [
        "# CSR test vectors",
        "",
        "Made by `scripts/make_csr_vectors.py` (fresh keys each run; the defects stay). One line per file:",
        "",
    ]
    for filename, (defect, make) in VECTORS.items():
        (OUT / filename).write_bytes(make())
        readme.append(f"- `{filename}`: {defect}")
    (OUT / "README.md").write_text("\n".join(readme) + "\n", encoding="utf-8")
    print(f"wrote {len(VECTORS)} vectors to {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
