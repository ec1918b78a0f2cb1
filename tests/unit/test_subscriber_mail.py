"""The invitation e-mail and the PIN envelope speak both languages (issue 10 point 11), and never leak the PIN."""

from __future__ import annotations

from ecert.services import mailer
from ecert.services.pin_envelope import render_pin_envelope_html


def test_the_invitation_is_in_english_and_chinese_without_the_pin() -> None:
    body = mailer.csr_invitation(
        base_url="https://pki.example.hk",
        reference_number="123456789",
        server_name="www.example.com",
        org_name="Example Ltd",
        org_name_zh="範例有限公司",
    )
    english, chinese = body.split("-" * 40)
    assert "Reference Number: 123456789" in english and "https://pki.example.hk/portal/" in english
    assert "參考編號：123456789" in chinese and "範例有限公司的獲授權代表" in chinese
    assert "https://pki.example.hk/portal/?lang=zh_HK" in chinese  # the link opens the portal in Chinese
    assert "密碼絕不會以電郵發送" in chinese
    assert (
        "遞交證書簽署要求" in mailer.CSR_SUBJECT and "Submission of Certificate Signing Request" in mailer.CSR_SUBJECT
    )


def test_the_pin_envelope_gives_every_instruction_in_both_languages() -> None:
    html = render_pin_envelope_html("123456789", "1234567812345678", "www.example.com", "Example Ltd")
    inside = html.split('class="page inside"')[1]
    assert "Log in with the Server Name" in inside and "請以伺服器名稱" in inside and "毋須輸入空格" in inside
    assert "1234 5678 1234 5678" in inside
    assert "機密：只限獲授權代表開啟" in html.split('class="page inside"')[0]
    assert 'lang="zh-Hant-HK"' in html
