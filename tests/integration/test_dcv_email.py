"""Constructed e-mail (BR 3.2.2.4.4) delivered to an aiosmtpd sink on loopback."""

from __future__ import annotations

import re

import pytest

from ecert.core.dcv_rules import new_validation_code
from ecert.core.errors import PolicyViolation, ValidationFailed
from ecert.validation.validator import Validator
from tests.integration.dcv_fixtures import dcv_settings, free_port


@pytest.fixture()
def validator(smtp_sink):
    return Validator(dcv_settings("127.0.0.1:1", smtp=smtp_sink))


def _code_in(message: dict) -> str:
    return re.search(r"Validation Code: (\S+)", message["content"]).group(1)


def test_sink_receives_the_code_and_entering_it_passes(validator, smtp_sink):
    code = new_validation_code()
    validator.send_email_code("example.com", "webmaster", code, "APP-0001")
    [message] = smtp_sink.messages
    assert message["to"] == ["webmaster@example.com"]
    assert "APP-0001" in message["content"]
    received = _code_in(message)
    result = validator.check("email", "example.com", code, email_address="webmaster@example.com", entered_code=received)
    assert result.passed, result.reason


def test_each_email_carries_a_fresh_code(validator, smtp_sink):
    for local in ("admin", "admin"):
        validator.send_email_code("example.com", local, new_validation_code(), "APP-0002")
    first, second = (_code_in(m) for m in smtp_sink.messages)
    assert first != second


def test_wildcard_mail_goes_to_the_base_domain(validator, smtp_sink):
    validator.send_email_code("*.example.com", "hostmaster", new_validation_code(), "APP-0003")
    assert smtp_sink.messages[0]["to"] == ["hostmaster@example.com"]


@pytest.mark.parametrize("local_part", ["ceo", "root", "admin@evil.example", "info"])
def test_non_constructed_address_is_refused_before_sending(validator, smtp_sink, local_part):
    with pytest.raises(PolicyViolation) as err:
        validator.send_email_code("example.com", local_part, new_validation_code(), "APP-0004")
    assert err.value.rule == "BR 3.2.2.4.4"
    assert smtp_sink.messages == []


@pytest.mark.parametrize(
    ("address", "entered", "reason_part"),
    [
        ("webmaster@example.com", "wrong", "does not match"),
        ("webmaster@example.com", None, "does not match"),
        ("ceo@example.com", "SENT", "not a constructed address"),
        ("webmaster@other.example", "SENT", "not a constructed address"),
    ],
)
def test_email_check_failures(validator, address, entered, reason_part):
    result = validator.check("email", "example.com", "SENT", email_address=address, entered_code=entered)
    assert not result.passed and reason_part in result.reason


def test_relay_down_is_a_validation_failure():
    validator = Validator(dcv_settings("127.0.0.1:1", smtp_port_for_dcv=free_port()))
    with pytest.raises(ValidationFailed):
        validator.send_email_code("example.com", "admin", new_validation_code(), "APP-0005")
