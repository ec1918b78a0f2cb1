"""RFC 8555 7.3: the contact URLs of an ACME account, as newAccount and an account update give them.

Only ``mailto:`` is taken (``unsupportedContact`` otherwise), each one plain address with no header fields and
a domain that could receive mail (``invalidContact`` otherwise), and few of them: the list is stored with the
account and written to the audit log, so a client must not be able to put anything of any size there.
"""

from __future__ import annotations

import re

from .acme_rules import AcmeRefusal, ProblemType
from .errors import BadName
from .names import normalize_dns_name

__all__ = ["MAX_CONTACTS", "MAX_CONTACT_LENGTH", "check_contacts"]

MAX_CONTACTS = 10
MAX_CONTACT_LENGTH = 7 + 254  # "mailto:" and the longest address SMTP carries (RFC 5321 4.5.3.1.3)
# The dot-atom local part of RFC 5322 3.4.1 (no quoted strings: no mail system a CA writes to needs them).
_LOCAL_PART = re.compile(r"[A-Za-z0-9!#$&'*+/=^_`{|}~-]+(\.[A-Za-z0-9!#$&'*+/=^_`{|}~-]+)*\Z")


def check_contacts(contact: object) -> tuple[str, ...]:
    """The account's contact URLs, each checked; raises an :class:`AcmeRefusal` naming the first bad one."""
    if contact is None:
        return ()
    if not isinstance(contact, list | tuple) or not all(isinstance(url, str) for url in contact):
        raise AcmeRefusal(ProblemType.MALFORMED, "contact is a list of URL strings", rule="RFC 8555 7.1.2")
    if len(contact) > MAX_CONTACTS:
        raise AcmeRefusal(
            ProblemType.INVALID_CONTACT, f"at most {MAX_CONTACTS} contacts", rule="RFC 8555 7.3", value=len(contact)
        )
    return tuple(_mailto(url) for url in contact)


def _mailto(url: str) -> str:
    scheme, colon, address = url.partition(":")
    if not colon or scheme.lower() != "mailto":
        raise AcmeRefusal(
            ProblemType.UNSUPPORTED_CONTACT, "only mailto: contacts are taken", rule="RFC 8555 7.3", value=url[:80]
        )
    if len(url) > MAX_CONTACT_LENGTH or not _plain_address(address):
        raise AcmeRefusal(
            ProblemType.INVALID_CONTACT,
            "a contact is mailto: and one plain address, with no header fields",
            rule="RFC 8555 7.3",
            value=url[:80],
        )
    return url


def _plain_address(address: str) -> bool:
    local, at, domain = address.rpartition("@")
    if not at or len(local) > 64 or not _LOCAL_PART.match(local):
        return False
    try:
        normalize_dns_name(domain, allow_wildcard=False)
    except BadName:
        return False
    return True
