"""PKCS#12 both ways with OpenSSL 3 (`-legacy` for the 3DES export), and the refusals on import."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from tests.unit.test_client_pki import TestPKI

from ecert.client.errors import ClientError
from ecert.client.pkcs12 import MAX_KDF_ITERATIONS, export_pfx, import_pfx, kdf_iterations, mac_iterations


@pytest.fixture(scope="module")
def material(tmp_path_factory) -> tuple[Path, TestPKI, ec.EllipticCurvePrivateKey, object]:
    d = tmp_path_factory.mktemp("p12")
    pki = TestPKI()
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = pki.issue(key, ["www.example.com"])
    (d / "key.pem").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    (d / "cert.pem").write_bytes(pki.pem(leaf))
    (d / "chain.pem").write_bytes(pki.pem(pki.sub))
    return d, pki, key, leaf


def openssl(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["openssl", *args], capture_output=True, timeout=30)


@pytest.mark.parametrize("legacy", [False, True], ids=["aes256", "legacy-3des"])
def test_openssl_reads_our_pfx(material, legacy: bool) -> None:
    d, pki, key, leaf = material
    pfx = d / f"ours-{legacy}.pfx"
    pfx.write_bytes(export_pfx(key, leaf, [pki.sub], b"pw", friendly_name="web", legacy=legacy))
    args = ["pkcs12", "-in", str(pfx), "-passin", "pass:pw", "-nodes", "-info"]
    r = openssl(*args, *(["-legacy"] if legacy else []))
    assert r.returncode == 0, r.stderr
    assert r.stdout.count(b"BEGIN CERTIFICATE") == 2
    info = r.stderr.decode()
    if legacy:
        assert "pbeWithSHA1And3-KeyTripleDES-CBC" in info and "sha1" in info
    else:
        assert "AES-256-CBC" in info and "sha256" in info


@pytest.mark.parametrize("legacy", [False, True], ids=["aes256", "legacy-rc2-3des"])
def test_we_read_openssl_pfx(material, legacy: bool) -> None:
    d, _, key, leaf = material
    pfx = d / f"theirs-{legacy}.pfx"
    r = openssl(
        "pkcs12",
        "-export",
        "-inkey",
        str(d / "key.pem"),
        "-in",
        str(d / "cert.pem"),
        "-certfile",
        str(d / "chain.pem"),
        "-passout",
        "pass:pw",
        "-out",
        str(pfx),
        *(["-legacy"] if legacy else []),
    )
    assert r.returncode == 0, r.stderr
    restored = import_pfx(pfx.read_bytes(), b"pw")
    assert restored.cert == leaf and len(restored.chain) == 1


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (["-nomac"], "no integrity MAC"),
        (["-iter", "2048", "-maciter"], None),  # sane: accepted
    ],
    ids=["no-mac", "normal"],
)
def test_mac_presence(material, make: list[str], message: str | None) -> None:
    d, *_ = material
    pfx = d / "m.pfx"
    r = openssl(
        "pkcs12",
        "-export",
        "-inkey",
        str(d / "key.pem"),
        "-in",
        str(d / "cert.pem"),
        "-passout",
        "pass:pw",
        "-out",
        str(pfx),
        *make,
    )
    assert r.returncode == 0, r.stderr
    if message is None:
        assert import_pfx(pfx.read_bytes(), b"pw").cert is not None
    else:
        with pytest.raises(ClientError, match=message):
            import_pfx(pfx.read_bytes(), b"pw")


def _with_mac_iterations(pfx: bytes, iterations: int) -> bytes:
    """Re-encode the PFX with another MacData iteration count (the MAC then no longer matches)."""
    from pyasn1.codec.der import decoder, encoder
    from pyasn1_alt_modules import rfc7292

    obj, _ = decoder.decode(pfx, asn1Spec=rfc7292.PFX())
    obj["macData"]["iterations"] = iterations
    return encoder.encode(obj)


def test_absurd_iteration_count_is_refused_before_any_derivation(material) -> None:
    d, pki, key, leaf = material
    pfx = _with_mac_iterations(export_pfx(key, leaf, [], b"pw", friendly_name="x"), 2**31 - 1)
    assert mac_iterations(pfx) == 2**31 - 1
    with pytest.raises(ClientError, match="MAC iterations"):
        import_pfx(pfx, b"pw")


def _with_kdf_iterations(pfx: bytes, iterations: int, part: str) -> bytes:
    """Re-encode the PFX with another PBKDF2 count in its key bag (``key``) or its encrypted safe (``certs``).

    pyca derives keys for both with the same rounds, so an absurd count cannot be made by pyca cheaply;
    the DER is patched instead (the MAC then no longer matches, which is checked only after the caps).
    """
    from pyasn1.codec.der import decoder, encoder
    from pyasn1.type import univ
    from pyasn1_alt_modules import rfc5652, rfc7292, rfc8018

    def patch_alg(alg) -> None:
        pbes2, _ = decoder.decode(bytes(alg["parameters"]), asn1Spec=rfc8018.PBES2_params())
        kdf, _ = decoder.decode(bytes(pbes2["keyDerivationFunc"]["parameters"]), asn1Spec=rfc8018.PBKDF2_params())
        kdf["iterationCount"] = iterations
        pbes2["keyDerivationFunc"]["parameters"] = encoder.encode(kdf)
        alg["parameters"] = encoder.encode(pbes2)

    obj, _ = decoder.decode(pfx, asn1Spec=rfc7292.PFX())
    octets, _ = decoder.decode(bytes(obj["authSafe"]["content"]), asn1Spec=univ.OctetString())
    safes, _ = decoder.decode(bytes(octets), asn1Spec=rfc7292.AuthenticatedSafe())
    for info in safes:
        if part == "certs" and info["contentType"] == rfc5652.id_encryptedData:
            enc, _ = decoder.decode(bytes(info["content"]), asn1Spec=rfc5652.EncryptedData())
            patch_alg(enc["encryptedContentInfo"]["contentEncryptionAlgorithm"])
            info["content"] = encoder.encode(enc)
        elif part == "key" and info["contentType"] == rfc5652.id_data:
            inner, _ = decoder.decode(bytes(info["content"]), asn1Spec=univ.OctetString())
            bags, _ = decoder.decode(bytes(inner), asn1Spec=rfc7292.SafeContents())
            for bag in bags:
                if bag["bagId"] == rfc7292.id_pkcs8ShroudedKeyBag:
                    epki, _ = decoder.decode(bytes(bag["bagValue"]), asn1Spec=rfc7292.EncryptedPrivateKeyInfo())
                    patch_alg(epki["encryptionAlgorithm"])
                    bag["bagValue"] = encoder.encode(epki)
            info["content"] = encoder.encode(univ.OctetString(encoder.encode(bags)))
    obj["authSafe"]["content"] = encoder.encode(univ.OctetString(encoder.encode(safes)))
    return encoder.encode(obj)


@pytest.mark.parametrize("part", ["key", "certs"], ids=["shrouded-key-bag", "encrypted-cert-safe"])
def test_absurd_kdf_iterations_inside_the_bags_are_refused(material, part: str) -> None:
    d, pki, key, leaf = material
    pfx = _with_kdf_iterations(export_pfx(key, leaf, [pki.sub], b"pw", friendly_name="x"), 2**31 - 1, part)
    assert 2**31 - 1 in kdf_iterations(pfx) and mac_iterations(pfx) <= MAX_KDF_ITERATIONS
    with pytest.raises(ClientError, match="key-derivation iterations"):
        import_pfx(pfx, b"pw")


def test_kdf_iterations_of_an_openssl_pfx_are_read(material) -> None:
    d, pki, key, leaf = material
    pfx = d / "iter.pfx"
    r = openssl(
        "pkcs12",
        "-export",
        "-inkey",
        str(d / "key.pem"),
        "-in",
        str(d / "cert.pem"),
        "-out",
        str(pfx),
        "-passout",
        "pass:pw",
        "-iter",
        "4321",
    )
    assert r.returncode == 0, r.stderr
    assert kdf_iterations(pfx.read_bytes()) == [4321, 4321]


@pytest.mark.parametrize(
    ("mangle", "message"),
    [
        (lambda b: b[: len(b) // 2], "truncated"),
        (lambda b: b"garbage", "not a PKCS#12"),
    ],
    ids=["truncated", "garbage"],
)
def test_damaged_pfx_is_refused(material, mangle, message: str) -> None:
    d, pki, key, leaf = material
    with pytest.raises(ClientError, match=message):
        import_pfx(mangle(export_pfx(key, leaf, [], b"pw", friendly_name="x")), b"pw")


def test_key_not_matching_certificate_is_refused(material) -> None:
    d, pki, key, leaf = material
    other = ec.generate_private_key(ec.SECP256R1())
    (d / "other.pem").write_bytes(
        other.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    pfx = d / "mismatch.pfx"
    # OpenSSL and pyca refuse to pair them, so put the certificate in as an extra one beside the key.
    from cryptography.hazmat.primitives.serialization import pkcs12

    data = pkcs12.serialize_key_and_certificates(
        b"x", other, None, [leaf], serialization.BestAvailableEncryption(b"pw")
    )
    pfx.write_bytes(data)
    with pytest.raises(ClientError, match="does not match"):
        import_pfx(pfx.read_bytes(), b"pw")
