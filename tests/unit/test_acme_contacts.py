"""RFC 8555 7.3 contacts: mailto: only, one plain address each, few (core/acme_contacts.py)."""

from __future__ import annotations

import pytest

from ecert.core.acme_contacts import MAX_CONTACTS, check_contacts
from ecert.core.acme_rules import AcmeRefusal, ProblemType


@pytest.mark.parametrize(
    "contact",
    [None, [], ["mailto:admin@example.com"], ["MAILTO:a.b+tag@sub.example.hk"], ["mailto:o'brien@example.com"]],
)
def test_plain_mail_addresses_are_taken_as_given(contact: list[str] | None) -> None:
    assert check_contacts(contact) == tuple(contact or ())


@pytest.mark.parametrize(
    ("contact", "problem"),
    [
        (["tel:+85221234567"], ProblemType.UNSUPPORTED_CONTACT),
        (["https://example.com/contact"], ProblemType.UNSUPPORTED_CONTACT),
        (["admin@example.com"], ProblemType.UNSUPPORTED_CONTACT),  # no scheme at all
        (["mailto:"], ProblemType.INVALID_CONTACT),
        (["mailto:admin"], ProblemType.INVALID_CONTACT),
        (["mailto:admin@example.com?subject=x"], ProblemType.INVALID_CONTACT),  # header fields
        (["mailto:a@example.com,b@example.com"], ProblemType.INVALID_CONTACT),  # two addresses
        (["mailto:a%40b@example.com"], ProblemType.INVALID_CONTACT),  # percent-encoded
        (["mailto:.a@example.com"], ProblemType.INVALID_CONTACT),
        (["mailto:admin@localhost"], ProblemType.INVALID_CONTACT),  # no public suffix
        (["mailto:admin@*.example.com"], ProblemType.INVALID_CONTACT),
        ([f"mailto:{'a' * 65}@example.com"], ProblemType.INVALID_CONTACT),  # local part over 64
        ([f"mailto:{'a' * 64}@{'b' * 60}.{'c' * 60}.{'d' * 60}.{'e' * 60}.com"], ProblemType.INVALID_CONTACT),  # > 254
        ([f"mailto:a{i}@example.com" for i in range(MAX_CONTACTS + 1)], ProblemType.INVALID_CONTACT),
        ("mailto:admin@example.com", ProblemType.MALFORMED),  # not a list
        ([7], ProblemType.MALFORMED),
    ],
)
def test_a_contact_that_could_not_be_mailed_is_refused_with_its_problem(contact: object, problem: ProblemType) -> None:
    with pytest.raises(AcmeRefusal) as refused:
        check_contacts(contact)
    assert refused.value.problem is problem and refused.value.status == 400
