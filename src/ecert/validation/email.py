"""Constructed e-mail (BR 3.2.2.4.4): send a Validation Code to one of the five addresses, check it back."""

from __future__ import annotations

import smtplib
from collections.abc import Callable
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import make_msgid

from ecert.core.dcv_rules import (
    DcvMethod,
    DomainResult,
    codes_equal,
    constructed_addresses,
    dns_name_for_validation,
    ensure_constructed_address,
)
from ecert.core.errors import ValidationFailed

__all__ = ["send_code", "check_email_code"]


def send_code(
    *,
    smtp_host: str,
    smtp_port: int,
    mail_from: str,
    domain: str,
    local_part: str,
    code: str,
    reference: str,
    timeout: float = 10.0,
) -> dict[str, str]:
    """Deliver the code to ``local_part@domain`` through the CA's relay; return what was sent.

    ``domain`` is the Authorization Domain Name the subscriber chose (the services check it against the
    name with ``core.dcv_rules.ensure_authorization_domain_name``); which addresses count is core's rule.

    The relay (``smtp_host``) performs the MX lookup of the domain, as any mail submission does; in
    tests it is the loopback sink. Raises ValidationFailed if the relay refuses the message.
    """
    base = dns_name_for_validation(domain)
    address = ensure_constructed_address(base, f"{local_part}@{base}")
    msg = EmailMessage()
    msg["From"] = mail_from
    msg["To"] = address
    msg["Subject"] = f"Domain control validation code for {base} (application {reference})"
    msg["Message-ID"] = make_msgid(domain=mail_from.rpartition("@")[2] or None)
    msg.set_content(
        f"A certificate application ({reference}) asks to prove control of {base}.\n\n"
        f"Validation Code: {code}\n\n"
        "Enter this code in the application page within 30 days if you approve. "
        "If you did not expect this message, ignore it: no certificate is issued without the code.\n"
    )
    try:
        with smtplib.SMTP(smtp_host, smtp_port, timeout=timeout) as smtp:
            smtp.send_message(msg, from_addr=mail_from, to_addrs=[address])
    except (smtplib.SMTPException, OSError) as exc:
        raise ValidationFailed(
            f"could not send the validation e-mail to {address}: {type(exc).__name__}",
            rule="BR 3.2.2.4.4",
            value=address,
        ) from exc
    return {"to": address, "message_id": str(msg["Message-ID"]), "relay": f"{smtp_host}:{smtp_port}"}


def check_email_code(
    domain: str,
    expected: str,
    entered: str | None,
    email_address: str | None,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> DomainResult:
    """Compare the code typed back with the one e-mailed to a constructed address (constant time)."""
    evidence = {
        "address": email_address,
        "checked_at": clock().isoformat(),
        "allowed_addresses": list(constructed_addresses(domain)),
    }
    method = DcvMethod.EMAIL.value
    if not email_address or email_address.strip().lower() not in constructed_addresses(domain):
        return DomainResult(
            domain,
            method,
            False,
            f"{email_address} is not a constructed address of {domain} (BR 3.2.2.4.4)",
            evidence,
        )
    if not entered or not codes_equal(expected, entered):
        return DomainResult(domain, method, False, "the code entered does not match the code e-mailed", evidence)
    return DomainResult(domain, method, True, f"code e-mailed to {email_address} entered back", evidence)
