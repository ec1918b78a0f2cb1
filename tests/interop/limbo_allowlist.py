"""x509-limbo SERVER cases where `ecert verify` disagrees with the expected result, each with the reason.

Most come from pyca/cryptography's verifier (the same list its own `tests/x509/verification/test_limbo.py`
keeps); a few are choices of ours. Remove an entry when the verifier changes: the test fails on an entry
that now agrees, so this list cannot go stale.
"""

from __future__ import annotations

_PYCA_AKI_SKI = "pyca does not require AKI/SKI presence or check root AKI contents (RFC 5280 4.2.1.1/4.2.1.2 profile)"
_PYCA_CN = (
    "pyca matches on SAN only and ignores the CN; CN/SAN consistency is an issuance rule (BR 7.1.4.3), "
    "not path validation"
)
_PYCA_PSL = "pyca has no public-suffix list; a wildcard on a public suffix is refused at issuance by ecert.core.names"

ALLOWLIST: dict[str, str] = {
    "crl::issuer-no-keyusage-extension": (
        "pyca requires keyUsage on every CA certificate (CABF), stricter than RFC 5280"
    ),
    "pathlen::validation-ignores-pathlen-in-leaf": "pyca refuses a leaf asserting cA (CABF), stricter than RFC 5280",
    "pathlen::self-issued-certs-pathlen": "pyca does not build paths through self-issued re-keyed CA certificates",
    "pathlen::max-chain-depth-1-self-issued": "pyca does not build paths through self-issued re-keyed CA certificates",
    "rfc5280::ca-as-leaf": "pyca refuses a CA certificate as the end entity (CABF), stricter than RFC 5280",
    "rfc5280::eku::ee-without-eku": "a TLS server certificate must carry serverAuth (BR 7.1.2.7.10); "
    "we side with webpki::eku::ee-without-eku, which conflicts with this case",
    "rfc5280::nc::permitted-dn-match": "the case has no peer name; ecert verify always checks a host name",
    "rfc5280::aki::intermediate-missing-aki": _PYCA_AKI_SKI,
    "rfc5280::aki::cross-signed-root-missing-aki": _PYCA_AKI_SKI,
    "rfc5280::ski::root-missing-ski": _PYCA_AKI_SKI,
    "rfc5280::ski::intermediate-missing-ski": _PYCA_AKI_SKI,
    "webpki::aki::root-with-aki-authoritycertissuer": _PYCA_AKI_SKI,
    "webpki::aki::root-with-aki-authoritycertserialnumber": _PYCA_AKI_SKI,
    "webpki::aki::root-with-aki-all-fields": _PYCA_AKI_SKI,
    "webpki::aki::root-with-aki-ski-mismatch": _PYCA_AKI_SKI,
    "rfc5280::nc::permitted-dns-match-noncritical": "pyca accepts a non-critical nameConstraints extension",
    "rfc5280::pc::ica-noncritical-pc": "pyca accepts a non-critical policyConstraints extension",
    "webpki::cn::ipv4-hex-mismatch": _PYCA_CN,
    "webpki::cn::ipv4-leading-zeros-mismatch": _PYCA_CN,
    "webpki::cn::ipv6-uppercase-mismatch": _PYCA_CN,
    "webpki::cn::ipv6-uncompressed-mismatch": _PYCA_CN,
    "webpki::cn::ipv6-non-rfc5952-mismatch": _PYCA_CN,
    "webpki::cn::punycode-not-in-san": _PYCA_CN,
    "webpki::cn::utf8-vs-punycode-mismatch": _PYCA_CN,
    "webpki::cn::not-in-san": _PYCA_CN,
    "webpki::cn::case-mismatch": _PYCA_CN,
    "webpki::eku::root-has-eku": "pyca does not refuse an EKU in a trust anchor (trust anchors are taken as given)",
    "webpki::san::public-suffix-wildcard-san": _PYCA_PSL,
    "webpki::san::public-suffix-multi-label-wildcard-san": _PYCA_PSL,
    "webpki::san::public-suffix-private-namespace-wildcard-san": _PYCA_PSL,
    "webpki::forbidden-rsa-not-divisible-by-8-in-root": (
        "key checks apply to the leaf; trust anchors are taken as given"
    ),
}
