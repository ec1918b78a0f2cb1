"""Domain-name policy: normalisation to A-labels, syntax, public suffix, wildcard and internal-name rules.

One place decides whether a name may appear in a certificate (as Boulder's ``policy/pa.go`` does), so the
portal, the API, CSR intake and the signer's final check all agree. Every refusal raises :class:`BadName`
naming the rule and the offending name.
"""

from __future__ import annotations

import ipaddress
import re
import unicodedata
from collections.abc import Iterable
from functools import lru_cache

import idna
from publicsuffixlist import PublicSuffixList

from ecert.core.errors import BadName
from ecert.core.text import printable

__all__ = [
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
]

# RFC 1035 §2.3.4: 63 octets per label, 255 octets on the wire = 253 characters in text form.
MAX_NAME_LENGTH = 253
MAX_LABEL_LENGTH = 63

# Names that never resolve on the public internet, so no CA may certify them (BR 7.1.2.7.12, "Internal
# Name" in BR 1.6.1). Most are absent from the ICANN section of the Public Suffix List anyway; "onion",
# "arpa" and "home.arpa" are listed there, so they are named explicitly.
INTERNAL_SUFFIXES: frozenset[str] = frozenset(
    {
        "test",  # RFC 6761 §6.2
        "example",  # RFC 6761 §6.5
        "invalid",  # RFC 6761 §6.4
        "localhost",  # RFC 6761 §6.3
        "local",  # RFC 6762 (mDNS)
        "onion",  # RFC 7686
        "internal",  # ICANN board resolution 2024.07.29.06
        "alt",  # RFC 9476
        "home.arpa",  # RFC 8375
        "arpa",  # infrastructure zone: reverse DNS, never a subscriber's name
    }
)

# Rule citations used in the messages below.
_R_SYNTAX = "RFC 5890 §2.3.1 (LDH)"
_R_LENGTH = "RFC 1035 §2.3.4"
_R_IDNA = "RFC 5891 (IDNA 2008, UTS 46)"
_R_PREFERRED = "RFC 5280 §4.2.1.6"
_R_WILDCARD = "BR 3.2.2.6"
_R_SUFFIX = "BR 3.2.2.4 (Public Suffix List)"
_R_INTERNAL = "BR 7.1.2.7.12"

# Characters that UTS 46 treats as full stops; mapped to "." before we look at labels so that
# "example。com" cannot hide an empty or trailing label from the checks.
_DOTS = str.maketrans({"\u3002": ".", "\uff0e": ".", "\uff61": "."})
_LDH_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?\Z")
_ALLOWED_ASCII = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-.*")


@lru_cache(maxsize=1)
def _psl() -> PublicSuffixList:
    """The packaged Public Suffix List, ICANN section only; unknown TLDs are not suffixes.

    Read from the installed ``publicsuffixlist`` package, never fetched: core/ does no network I/O.
    """
    return PublicSuffixList(accept_unknown=False, only_icann=True)


def _refuse(message: str, rule: str, name: str) -> BadName:
    return BadName(message, rule=rule, value=name)


def _describe_char(ch: str) -> str:
    if ch == "\x00":
        return "NUL"
    if ch.isspace():
        return "a space"
    return repr(ch)


def looks_like_ip_address(text: str) -> bool:
    """True if ``text`` is a textual IPv4 or IPv6 address (brackets and zone index tolerated)."""
    candidate = text.strip()
    if candidate.startswith("[") and candidate.endswith("]"):
        candidate = candidate[1:-1]
    candidate = candidate.split("%", 1)[0]
    try:
        ipaddress.ip_address(candidate)
    except ValueError:
        return False
    return True


def _check_a_label(label: str, name: str) -> None:
    """LDH shape, length and, for ``xn--`` labels, a clean round trip through IDNA 2008."""
    if not label:
        raise _refuse(f"'{name}' has an empty label", _R_SYNTAX, name)
    if len(label) > MAX_LABEL_LENGTH:
        raise _refuse(
            f"label '{label}' in '{name}' is {len(label)} characters; the limit is {MAX_LABEL_LENGTH}",
            _R_LENGTH,
            name,
        )
    if not _LDH_LABEL.match(label):
        if label.startswith("-") or label.endswith("-"):
            raise _refuse(f"label '{label}' in '{name}' starts or ends with a hyphen", _R_SYNTAX, name)
        raise _refuse(f"label '{label}' in '{name}' is not letters, digits and hyphens", _R_SYNTAX, name)
    if label[2:4] == "--":
        # RFC 5891 §4.2.3.1: hyphens in positions 3-4 are reserved for A-labels ("xn--").
        if not label.startswith("xn--"):
            raise _refuse(
                f"label '{label}' in '{name}' has '--' in positions 3-4 but is not an IDN A-label",
                _R_IDNA,
                name,
            )
        try:
            round_trip = idna.encode(idna.decode(label), uts46=False).decode("ascii")
        except (idna.IDNAError, UnicodeError) as exc:
            raise _refuse(f"label '{label}' in '{name}' is not a valid IDN A-label: {exc}", _R_IDNA, name) from exc
        if round_trip != label:
            raise _refuse(f"label '{label}' in '{name}' is not a canonical IDN A-label", _R_IDNA, name)


def _to_a_labels(text: str, name: str) -> str:
    """Map a (possibly Unicode) name to lower-case A-labels with IDNA 2008 + UTS 46."""
    if text.isascii():
        # Refuse characters outside LDH ourselves so the message names the character.
        for ch in text:
            if ch not in _ALLOWED_ASCII:
                raise _refuse(
                    f"'{name}' contains {_describe_char(ch)}; only letters, digits, '-' and '.' are allowed",
                    _R_SYNTAX,
                    name,
                )
        return text
    try:
        return idna.encode(text, uts46=True).decode("ascii")
    except (idna.IDNAError, UnicodeError) as exc:
        raise _refuse(f"'{name}' is not a valid internationalised domain name: {exc}", _R_IDNA, name) from exc


def normalize_dns_name(name: str, *, allow_wildcard: bool = True) -> str:
    """Return the name as it will appear in a certificate (lower-case A-labels) or raise :class:`BadName`.

    Nothing is silently repaired except surrounding whitespace and letter case: a trailing dot, an empty
    label or a stray character is refused, because a subscriber who typed it may have meant something else.
    """
    if not isinstance(name, str):
        raise BadName("a domain name must be text", rule=_R_SYNTAX, value=name)
    try:
        return _normalize(name, printable(name), allow_wildcard)
    except BadName as exc:
        exc.value = name  # the caller's input exactly; the message shows it with control characters escaped
        raise


def _normalize(name: str, original: str, allow_wildcard: bool) -> str:
    """The checks in the order a subscriber should hear about them: shape, wildcard, labels, length, suffix."""
    text = name.strip().lower().translate(_DOTS)
    _check_shape(text, original)
    wildcard, rest = _split_wildcard(text, original, allow_wildcard)
    ascii_rest = _to_a_labels(rest, original)
    labels = ascii_rest.split(".")
    for label in labels:
        _check_a_label(label, original)
    result = f"*.{ascii_rest}" if wildcard else ascii_rest
    _check_length_and_form(result, ascii_rest, labels, original)
    _check_public(ascii_rest, wildcard, original)
    return result


def _check_shape(text: str, original: str) -> None:
    """Refuse what is not a dotted name at all: empty, an IP address, NUL, stray or doubled dots."""
    if not text:
        raise _refuse("the domain name is empty", _R_SYNTAX, original)
    if looks_like_ip_address(text):
        raise _refuse(f"'{original}' is an IP address; only domain names are certified", _R_INTERNAL, original)
    if "\x00" in text:
        raise _refuse(f"'{original}' contains NUL", _R_SYNTAX, original)
    if text.endswith("."):
        raise _refuse(f"'{original}' ends with a dot; remove it", _R_PREFERRED, original)
    if text.startswith("."):
        raise _refuse(f"'{original}' starts with a dot", _R_SYNTAX, original)
    if ".." in text:
        raise _refuse(f"'{original}' has an empty label ('..')", _R_SYNTAX, original)


def _split_wildcard(text: str, original: str, allow_wildcard: bool) -> tuple[bool, str]:
    """Whether the name is a wildcard, and the rest after ``*.``; a ``*`` anywhere else is refused."""
    wildcard = text.startswith("*.")
    rest = text[2:] if wildcard else text
    if "*" in rest:
        raise _refuse(f"'{original}': a wildcard may only be the whole leftmost label ('*.')", _R_WILDCARD, original)
    if wildcard and not allow_wildcard:
        raise _refuse(f"'{original}': a wildcard name is not allowed here", _R_WILDCARD, original)
    return wildcard, rest


def _check_length_and_form(result: str, ascii_rest: str, labels: list[str], original: str) -> None:
    """The whole name fits the DNS limit, and after IDNA it still is not an IP address in disguise."""
    if len(result) > MAX_NAME_LENGTH:
        raise _refuse(
            f"'{original}' is {len(result)} characters long; the limit is {MAX_NAME_LENGTH}",
            _R_LENGTH,
            original,
        )
    if labels[-1].isdigit() or looks_like_ip_address(ascii_rest):
        raise _refuse(f"'{original}' looks like an IP address; only domain names are certified", _R_INTERNAL, original)


def _check_public(base: str, wildcard: bool, original: str) -> None:
    """The name must sit under an ICANN public suffix, with at least one label of its own."""
    for suffix in INTERNAL_SUFFIXES:
        if base == suffix or base.endswith("." + suffix):
            raise _refuse(
                f"'{original}' is an internal name (.{suffix} never resolves publicly)", _R_INTERNAL, original
            )
    suffix_found = _psl().publicsuffix(base)
    if suffix_found is None:
        raise _refuse(
            f"'{original}' is an internal name: it does not end in a public top-level domain",
            _R_INTERNAL,
            original,
        )
    if suffix_found == base:
        if wildcard:
            raise _refuse(
                f"'{original}': a wildcard directly on the public suffix '{base}' is not allowed",
                _R_WILDCARD,
                original,
            )
        raise _refuse(f"'{original}' is a public suffix, not a domain anyone can own", _R_SUFFIX, original)


def normalize_names(names: Iterable[str], *, allow_wildcard: bool = True) -> tuple[str, ...]:
    """Normalise every name and drop duplicates, keeping the first occurrence's position."""
    seen: dict[str, None] = {}
    for name in names:
        seen.setdefault(normalize_dns_name(name, allow_wildcard=allow_wildcard), None)
    return tuple(seen)


def is_wildcard(name: str) -> bool:
    """True for a wildcard domain name (``*.`` as the whole leftmost label)."""
    return name.startswith("*.")


def base_domain(name: str) -> str:
    """The name without a leading ``*.``: the domain whose control proves the wildcard (BR 3.2.2.6)."""
    return name[2:] if is_wildcard(name) else name


def to_unicode(a_label_name: str) -> str:
    """Show a normalised name to people: A-labels back to U-labels, keeping a leading ``*.``."""
    prefix = "*." if is_wildcard(a_label_name) else ""
    base = base_domain(a_label_name)
    try:
        return prefix + idna.decode(base)
    except (idna.IDNAError, UnicodeError) as exc:
        raise BadName(f"'{a_label_name}' cannot be shown in Unicode: {exc}", rule=_R_IDNA, value=a_label_name) from exc


def registrable_domain(name: str) -> str:
    """The eTLD+1 of a normalised name (ICANN section of the PSL), e.g. ``www.example.com.hk`` →
    ``example.com.hk``; used to group names per subscriber and for rate limits."""
    base = base_domain(name)
    result = _psl().privatesuffix(base)
    if result is None:
        raise BadName(f"'{name}' has no registrable domain", rule=_R_SUFFIX, value=name)
    return str(result)


def names_under(namespace: str, name: str) -> bool:
    """True if ``name`` equals ``namespace`` or is a subdomain of it (label-wise, not string-wise).

    ``namespace`` is a plain domain (an Authorization Domain Name); a wildcard ``name`` is under it
    when its base is.
    """
    namespace = namespace.lower()
    name = name.lower()
    return name == namespace or name.endswith("." + namespace)


# --- homograph review (BR 4.2.1: high-risk requests get extra review) -------------------------------

# UTS 39 "Highly Restrictive": one script, or Latin with the scripts of Chinese, Japanese or Korean.
_ALLOWED_SCRIPT_SETS: tuple[frozenset[str], ...] = (
    frozenset({"Latin", "Han", "Hiragana", "Katakana"}),
    frozenset({"Latin", "Han", "Bopomofo"}),
    frozenset({"Latin", "Han", "Hangul"}),
)
_NAME_PREFIX_SCRIPTS = {
    "CJK": "Han",
    "IDEOGRAPHIC": "Han",
    "KATAKANA-HIRAGANA": "Katakana",
    "HALFWIDTH": "Katakana",
}
_COMMON_PREFIXES = frozenset({"DIGIT", "HYPHEN-MINUS", "COMBINING", "ZERO", "MIDDLE", "FULLWIDTH"})


def _script_of(ch: str) -> str | None:
    """A coarse Unicode script for ``ch`` (None for digits, hyphen and marks, which every script uses).

    Derived from the character name, which is enough to tell Latin from Cyrillic or Greek without a
    script-property library.
    """
    if unicodedata.category(ch).startswith("M"):
        return None
    uname = unicodedata.name(ch, "")
    if not uname:
        return "Unknown"
    first = uname.split(" ", 1)[0]
    if first in _COMMON_PREFIXES:
        return None
    return _NAME_PREFIX_SCRIPTS.get(first, first.title())


def needs_manual_review(name: str) -> str | None:
    """Return why a normalised name needs a person to look at it, or None.

    A label that mixes scripts (e.g. ``pаypal.com`` with a Cyrillic "а") is the classic homograph; it is
    not refused outright, because a legitimate owner may exist, but BR 4.2.1 wants high-risk requests
    reviewed before issuance. Chinese, Japanese and Korean labels may mix with Latin (UTS 39).
    """
    try:
        unicode_name = to_unicode(name)
    except BadName:
        return f"'{name}' cannot be decoded for homograph review"
    for label in base_domain(unicode_name).split("."):
        scripts = {s for s in (_script_of(ch) for ch in label) if s is not None}
        if len(scripts) <= 1:
            continue
        if any(scripts <= allowed for allowed in _ALLOWED_SCRIPT_SETS):
            continue
        listed = ", ".join(sorted(scripts))
        return f"label '{label}' of '{unicode_name}' mixes scripts ({listed}); possible homograph (BR 4.2.1)"
    return None
