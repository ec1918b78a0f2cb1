"""The choices the ``ecert`` command offers, kept apart from the code that acts on them.

The command line needs these enums to build its help; importing them from here rather than from
``request.py`` or ``deploy.py`` keeps cryptography and the PKCS#12 code out of ``ecert --help``.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["DEFAULT_KEY_TYPE", "DcvMethodChoice", "DeployFormat", "KeyType"]


class KeyType(StrEnum):
    """Key types the CA accepts (BR 6.1.5: RSA ≥ 2048 with a size divisible by 8, P-256 or P-384)."""

    RSA2048 = "rsa2048"
    RSA3072 = "rsa3072"
    RSA4096 = "rsa4096"
    P256 = "p256"
    P384 = "p384"


# RSA-2048 by default: Exchange 2010, IIS on Windows Server 2012 and older Java clients all handle it,
# and it is what the CA's own guide (section B) produces. P-256 is faster and smaller: recommended for
# new servers whose clients are all current.
DEFAULT_KEY_TYPE = KeyType.RSA2048


class DeployFormat(StrEnum):
    """The servers ``ecert deploy`` writes files for."""

    NGINX = "nginx"
    APACHE = "apache"
    HAPROXY = "haproxy"
    PEM = "pem"
    PFX = "pfx"
    JKS = "jks"


class DcvMethodChoice(StrEnum):
    """The domain control validation methods the CA's API offers (BR 3.2.2.4.18, .7 and .4)."""

    HTTP_FILE = "http_file"
    DNS_TXT = "dns_txt"
    EMAIL = "email"
