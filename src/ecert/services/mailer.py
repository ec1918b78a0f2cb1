"""Outgoing notices to subscribers over SMTP (the relay named in settings; an aiosmtpd sink in tests)."""

from __future__ import annotations

import smtplib
import socket
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from ..core.errors import EcertError, StorageFailure
from ..core.names import to_unicode
from ..settings import Settings

__all__ = ["CSR_SUBJECT", "SentMail", "send_mail", "csr_invitation", "why_not_sent"]

# The subject line the seed's applicants look for (user guide, A and C.1), in both languages: the invitation
# goes out before anyone has chosen a language, so it is written in English and Traditional Chinese.
CSR_SUBJECT = "Submission of Certificate Signing Request (CSR) / 遞交證書簽署要求 (CSR)"


@dataclass(frozen=True)
class SentMail:
    to: str
    subject: str
    message_id: str


def send_mail(settings: Settings, *, to: str, subject: str, body: str, timeout: float = 10.0) -> SentMail:
    """Send one plain-text UTF-8 message through ``settings.smtp_host:smtp_port``.

    Raises StorageFailure (HTTP 500 at the edge, detail stripped) if the relay cannot be reached or refuses.
    """
    msg = EmailMessage()
    msg["From"] = settings.mail_from
    msg["To"] = to
    msg["Subject"] = subject
    msg["Date"] = formatdate(usegmt=True)
    msg["Message-ID"] = make_msgid(domain=settings.mail_from.rpartition("@")[2] or None)
    msg.set_content(body)
    try:
        with smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=timeout) as smtp:
            smtp.send_message(msg, from_addr=settings.mail_from, to_addrs=[to])
    except (smtplib.SMTPException, OSError) as exc:
        raise StorageFailure(f"could not send mail to {to}: {why_not_sent(exc, settings)}", value=to) from exc
    return SentMail(to=to, subject=subject, message_id=str(msg["Message-ID"]))


def why_not_sent(exc: BaseException, settings: Settings) -> str:
    """One line saying why the relay did not take a message: what an operator can act on, no secrets."""
    relay = f"{settings.smtp_host}:{settings.smtp_port}"
    if isinstance(exc, ConnectionRefusedError):
        return f"the mail relay {relay} refused the connection"
    if isinstance(exc, TimeoutError | socket.timeout):
        return f"the mail relay {relay} did not answer in time"
    if isinstance(exc, socket.gaierror):
        return f"the mail relay host {settings.smtp_host} could not be resolved"
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = sorted({str(code) for code, _ in exc.recipients.values()})
        return f"the mail relay {relay} refused the recipient (SMTP {', '.join(codes)})"
    if isinstance(exc, smtplib.SMTPResponseException):
        return f"the mail relay {relay} refused the message (SMTP {exc.smtp_code})"
    if isinstance(exc, smtplib.SMTPException):
        return f"the mail relay {relay} broke off the conversation ({type(exc).__name__})"
    return f"the mail relay {relay} could not be reached ({type(exc).__name__})"


def _display_name(name: str) -> str:
    """An IDN as people read it and as their DNS holds it: ``香港郵政.hk (xn--...)``; other names unchanged."""
    try:
        shown = to_unicode(name)
    except EcertError:
        return name
    return f"{shown} ({name})" if shown != name else name


def csr_invitation(
    *, base_url: str, reference_number: str, server_name: str, org_name: str, org_name_zh: str | None = None
) -> str:
    """The body of the CSR invitation in English, then Traditional Chinese: the portal link and the reference
    number, never the PIN (it travels only in the sealed PIN Envelope)."""
    portal = base_url.rstrip("/") + "/portal/"
    server = _display_name(server_name)
    english = (
        "Submission of Certificate Signing Request (CSR)\n\n"
        f"Dear Authorised Representative of {org_name},\n\n"
        f"Your application for an e-Cert (Server) certificate for {server} has been approved.\n"
        f"Reference Number: {reference_number}\n\n"
        f"Please submit your Certificate Signing Request (CSR) at:\n{portal}\n\n"
        "Log in with the Server Name, the Reference Number above and the 16-digit e-Cert PIN printed "
        "inside your PIN Envelope. The PIN is never sent by e-mail.\n\n"
        "This is an automated message; please do not reply.\n"
    )
    chinese = (
        "遞交證書簽署要求 (CSR)\n\n"
        f"{org_name_zh or org_name}的獲授權代表：\n\n"
        f"閣下為 {server} 申請的電子證書（伺服器）已獲批核。\n"
        f"參考編號：{reference_number}\n\n"
        f"請於以下網址遞交證書簽署要求 (CSR)：\n{portal}?lang=zh_HK\n\n"
        "請以伺服器名稱、上述參考編號及密碼信封內印有的 16 位數字電子證書密碼登入。"
        "密碼絕不會以電郵發送。\n\n"
        "此乃自動發出的訊息，請勿回覆。\n"
    )
    return f"{english}\n----------------------------------------\n\n{chinese}"
