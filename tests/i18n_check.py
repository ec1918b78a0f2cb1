"""Finds English sentences in text that should be Traditional Chinese (issue 10 point 11).

A Chinese page may still show proper nouns, names and codes in Latin letters: domain names, URLs, serial
numbers, "CSR", "PEM", "RSA", "e-Cert". What it must not show is an English *sentence*. So the check removes
what is allowed (the list below, anything with a dot, slash, digit or "@", and ALL-CAPS codes) and then
reports any run of three or more Latin words left over.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = ["ALLOWED", "english_sentences"]

# Proper nouns, product names and codes a Chinese page keeps in Latin letters, longest first.
ALLOWED = (
    "Subject Alternative Name",
    "Example Company Limited",
    "IT Department",
    "Confirm Opt with Chinese",
    "BEGIN NEW CERTIFICATE REQUEST",
    "END NEW CERTIFICATE REQUEST",
    "BEGIN CERTIFICATE REQUEST",
    "END CERTIFICATE REQUEST",
    "e-Cert (Server)",
    "e-Cert",
    "ecert",
    "base64",
    "PKCS#10",
    "PKCS#7",
    "Exchange",
    "Complete Pending Request",
    "nginx",
    "Apache",
    "IIS",
    "OpenAPI",
    "REST",
    "DEMO",
    "Demo",
    "Ltd",
    "Limited",
    "admin",
    "administrator",
    "webmaster",
    "hostmaster",
    "postmaster",
    "English",
    "fileauth",
    "txt",
)
_TOKEN_WITH_SYMBOLS = re.compile(r"\S*[./@:\d_]\S*")
_CODES = re.compile(r"\b[A-Z][A-Z0-9-]+\b")
_HEX_PAIRS = re.compile(r"\b[0-9a-fA-F]{2}\b")  # serial numbers printed in byte pairs
_RUN = re.compile(r"[A-Za-z][A-Za-z'’-]*(?:[\s,;()]+[A-Za-z][A-Za-z'’-]*){2,}")


def english_sentences(text: str, names: Iterable[str] = ()) -> list[str]:
    """The runs of three or more English words in ``text`` once allowed names and codes are taken out.

    ``names`` adds proper nouns of the instance (CA names, organisation names) to :data:`ALLOWED`.
    """
    for allowed in sorted((*names, *ALLOWED), key=len, reverse=True):
        text = text.replace(allowed, " ")
    text = _TOKEN_WITH_SYMBOLS.sub(" ", text)
    text = _CODES.sub(" ", text)
    text = _HEX_PAIRS.sub(" ", text)
    return [m.group(0) for m in _RUN.finditer(text)]
