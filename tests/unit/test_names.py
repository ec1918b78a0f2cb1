"""Domain-name policy: what a subscriber may ask for, and what is refused with which rule."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ecert.core.errors import BadName
from ecert.core.names import (
    base_domain,
    is_wildcard,
    names_under,
    needs_manual_review,
    normalize_dns_name,
    normalize_names,
    registrable_domain,
    to_unicode,
)

ACCEPTED = [
    ("www.example.com", "www.example.com"),
    ("WWW.Example.COM", "www.example.com"),
    ("  www.example.com\t\n", "www.example.com"),
    ("example.com", "example.com"),
    ("example.com.hk", "example.com.hk"),
    ("www.hongkongpost.gov.hk", "www.hongkongpost.gov.hk"),
    ("*.example.com", "*.example.com"),
    ("*.EXAMPLE.com.hk", "*.example.com.hk"),
    ("香港郵政.香港", "xn--5bvv2rbn4a0hh.xn--j6w193g"),
    ("xn--5bvv2rbn4a0hh.xn--j6w193g", "xn--5bvv2rbn4a0hh.xn--j6w193g"),
    ("*.香港郵政.香港", "*.xn--5bvv2rbn4a0hh.xn--j6w193g"),
    ("bücher.de", "xn--bcher-kva.de"),
    ("faß.de", "xn--fa-hia.de"),  # IDNA 2008, non-transitional: ß is kept
    ("ｗｗｗ.example.com", "www.example.com"),  # UTS 46 maps full-width letters
    ("www。example。com", "www.example.com"),  # ideographic full stop is a dot
    ("a-b.example.com", "a-b.example.com"),
    ("123.example.com", "123.example.com"),
    ("pаypal.com", "xn--pypal-4ve.com"),  # homograph: accepted here, flagged for review below
    ("www.ck", "www.ck"),  # PSL exception rule "!www.ck"
    ("a" * 63 + ".com", "a" * 63 + ".com"),
    (".".join(["a" * 63] * 3) + "." + "b" * 57 + ".com", ".".join(["a" * 63] * 3) + "." + "b" * 57 + ".com"),
]


@pytest.mark.parametrize(("raw", "expected"), ACCEPTED)
def test_accepted_names_normalise_to_lowercase_a_labels(raw: str, expected: str) -> None:
    assert normalize_dns_name(raw) == expected


REFUSED = [
    # (name, rule, distinctive part of the message)
    ("", "RFC 5890 §2.3.1 (LDH)", "empty"),
    ("   ", "RFC 5890 §2.3.1 (LDH)", "empty"),
    ("example.com.", "RFC 5280 §4.2.1.6", "ends with a dot"),
    ("www.example.com。", "RFC 5280 §4.2.1.6", "ends with a dot"),
    (".example.com", "RFC 5890 §2.3.1 (LDH)", "starts with a dot"),
    ("a..b.example.com", "RFC 5890 §2.3.1 (LDH)", "empty label"),
    ("a" * 64 + ".com", "RFC 1035 §2.3.4", "limit is 63"),
    (".".join(["a" * 63] * 4) + ".com", "RFC 1035 §2.3.4", "limit is 253"),
    ("-www.example.com", "RFC 5890 §2.3.1 (LDH)", "hyphen"),
    ("www-.example.com", "RFC 5890 §2.3.1 (LDH)", "hyphen"),
    ("a_b.example.com", "RFC 5890 §2.3.1 (LDH)", "'_'"),
    ("_acme-challenge.example.com", "RFC 5890 §2.3.1 (LDH)", "'_'"),
    ("www example.com", "RFC 5890 §2.3.1 (LDH)", "a space"),
    ("www.exa\x00mple.com", "RFC 5890 §2.3.1 (LDH)", "NUL"),
    ("www.example.com%00", "RFC 5890 §2.3.1 (LDH)", "'%'"),
    ("www.example.com/evil", "RFC 5890 §2.3.1 (LDH)", "'/'"),
    ("user@example.com", "RFC 5890 §2.3.1 (LDH)", "'@'"),
    ("xn--zz.example.com", "RFC 5891 (IDNA 2008, UTS 46)", "not a valid IDN A-label"),
    ("xn--a.com", "RFC 5891 (IDNA 2008, UTS 46)", "not a valid IDN A-label"),
    ("ab--x.example.com", "RFC 5891 (IDNA 2008, UTS 46)", "positions 3-4"),
    ("💩.example.com", "RFC 5891 (IDNA 2008, UTS 46)", "internationalised"),
    ("a\u200db.example.com", "RFC 5891 (IDNA 2008, UTS 46)", "internationalised"),
    ("*.*.example.com", "BR 3.2.2.6", "whole leftmost label"),
    ("w*.example.com", "BR 3.2.2.6", "whole leftmost label"),
    ("a.*.example.com", "BR 3.2.2.6", "whole leftmost label"),
    ("*", "BR 3.2.2.6", "whole leftmost label"),
    ("*.com", "BR 3.2.2.6", "public suffix 'com'"),
    ("*.com.hk", "BR 3.2.2.6", "public suffix 'com.hk'"),
    ("*.香港", "BR 3.2.2.6", "public suffix"),
    ("*.foo.ck", "BR 3.2.2.6", "public suffix"),
    ("com.hk", "BR 3.2.2.4 (Public Suffix List)", "is a public suffix"),
    ("com", "BR 3.2.2.4 (Public Suffix List)", "is a public suffix"),
    ("gov.hk", "BR 3.2.2.4 (Public Suffix List)", "is a public suffix"),
    ("localhost", "BR 7.1.2.7.12", "internal name"),
    ("intranet", "BR 7.1.2.7.12", "internal name"),
    ("mail.corp", "BR 7.1.2.7.12", "internal name"),
    ("exch01.example.local", "BR 7.1.2.7.12", "internal name"),
    ("x.local", "BR 7.1.2.7.12", "internal name"),
    ("www.example.test", "BR 7.1.2.7.12", "internal name"),
    ("www.example", "BR 7.1.2.7.12", "internal name"),
    ("foo.invalid", "BR 7.1.2.7.12", "internal name"),
    ("app.localhost", "BR 7.1.2.7.12", "internal name"),
    ("db.internal", "BR 7.1.2.7.12", "internal name"),
    ("abc.onion", "BR 7.1.2.7.12", "internal name"),
    ("printer.home.arpa", "BR 7.1.2.7.12", "internal name"),
    ("1.0.0.127.in-addr.arpa", "BR 7.1.2.7.12", "internal name"),
    ("www.example.notatld", "BR 7.1.2.7.12", "does not end in a public top-level domain"),
    ("192.168.1.1", "BR 7.1.2.7.12", "IP address"),
    ("10.0.0.1", "BR 7.1.2.7.12", "IP address"),
    ("::1", "BR 7.1.2.7.12", "IP address"),
    ("[2001:db8::1]", "BR 7.1.2.7.12", "IP address"),
    ("169.254.0.1", "BR 7.1.2.7.12", "IP address"),
    ("1.2.3.4.5", "BR 7.1.2.7.12", "looks like an IP address"),
]


@pytest.mark.parametrize(("raw", "rule", "message"), REFUSED)
def test_refused_names_name_the_rule_and_the_value(raw: str, rule: str, message: str) -> None:
    with pytest.raises(BadName) as caught:
        normalize_dns_name(raw)
    assert caught.value.rule == rule
    assert message in caught.value.message
    assert caught.value.value == raw


def test_control_characters_are_escaped_in_the_message() -> None:
    with pytest.raises(BadName) as caught:
        normalize_dns_name("www.exa\x00mple.com")
    assert "\x00" not in caught.value.message
    assert "\\x00" in caught.value.message


def test_wildcard_refused_where_not_allowed() -> None:
    with pytest.raises(BadName, match="not allowed here"):
        normalize_dns_name("*.example.com", allow_wildcard=False)


def test_non_text_is_refused() -> None:
    with pytest.raises(BadName):
        normalize_dns_name(b"example.com")  # type: ignore[arg-type]


def test_normalize_names_deduplicates_keeping_first_position() -> None:
    names = [
        "WWW.example.com",
        "mail.example.com",
        "www.example.com",
        "香港郵政.香港",
        "xn--5bvv2rbn4a0hh.xn--j6w193g",
    ]
    assert normalize_names(names) == ("www.example.com", "mail.example.com", "xn--5bvv2rbn4a0hh.xn--j6w193g")


def test_normalize_names_refuses_the_whole_list_for_one_bad_name() -> None:
    with pytest.raises(BadName, match="mail.corp"):
        normalize_names(["www.example.com", "mail.corp"])


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("xn--pypal-4ve.com", "Cyrillic, Latin"),  # pаypal.com with Cyrillic а
        (normalize_dns_name("αpple.com"), "Greek, Latin"),
    ],
)
def test_mixed_script_labels_need_manual_review(name: str, reason: str) -> None:
    why = needs_manual_review(name)
    assert why is not None
    assert reason in why
    assert "BR 4.2.1" in why


@pytest.mark.parametrize(
    "name",
    [
        "www.example.com",
        "xn--5bvv2rbn4a0hh.xn--j6w193g",  # 香港郵政.香港
        normalize_dns_name("香港郵政2026.香港"),  # Han with digits
        normalize_dns_name("香港post.香港"),  # Han with Latin (UTS 39 highly restrictive)
        normalize_dns_name("bücher.de"),
        normalize_dns_name("пример.рф"),  # all Cyrillic
        normalize_dns_name("日本語テスト.jp"),  # Han + Katakana
    ],
)
def test_single_script_and_cjk_names_need_no_review(name: str) -> None:
    assert needs_manual_review(name) is None


def test_helpers_for_display_and_grouping() -> None:
    assert to_unicode("*.xn--5bvv2rbn4a0hh.xn--j6w193g") == "*.香港郵政.香港"
    assert is_wildcard("*.example.com") and not is_wildcard("www.example.com")
    assert base_domain("*.example.com") == "example.com"
    assert base_domain("www.example.com") == "www.example.com"
    assert registrable_domain("a.b.example.com.hk") == "example.com.hk"
    assert registrable_domain("*.www.example.co.uk") == "example.co.uk"


@pytest.mark.parametrize(
    ("namespace", "name", "under"),
    [
        ("example.com", "example.com", True),
        ("example.com", "www.example.com", True),
        ("example.com", "*.example.com", True),
        ("example.com", "a.b.example.com", True),
        ("example.com", "badexample.com", False),
        ("example.com", "example.com.evil.net", False),
        ("www.example.com", "example.com", False),
    ],
)
def test_names_under_is_label_wise(namespace: str, name: str, under: bool) -> None:
    assert names_under(namespace, name) is under


_LABEL = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-ü香港ß", min_size=1, max_size=20)
_CANDIDATES = st.builds(
    lambda wildcard, labels, suffix: ("*." if wildcard else "") + ".".join([*labels, suffix]),
    st.booleans(),
    st.lists(_LABEL, min_size=1, max_size=4),
    st.sampled_from(["com", "com.hk", "hk", "香港", "de", "co.uk", "local", "test"]),
)


@settings(max_examples=300, deadline=None)
@given(_CANDIDATES)
def test_normalisation_is_idempotent_on_accepted_names(candidate: str) -> None:
    try:
        once = normalize_dns_name(candidate)
    except BadName:
        return
    assert normalize_dns_name(once) == once
    assert once == once.lower() and once.isascii()
