"""The printable PIN envelope: the reference number on the cover, the PIN inside in four groups of four.

Print-ready HTML (A4, two pages, no script, no external asset); every value is escaped, so a name with
markup or Chinese text prints as typed.
"""

from __future__ import annotations

from html import escape

__all__ = ["render_pin_envelope_html", "group_pin"]


def group_pin(pin: str) -> str:
    """``1234 5678 9012 3456``: the guide says the spaces need not be typed."""
    digits = "".join(ch for ch in pin if ch.isdigit())
    return " ".join(digits[i : i + 4] for i in range(0, len(digits), 4))


_CSS = """
@page { size: A4; margin: 20mm; }
body { font-family: "Noto Sans CJK TC", "Noto Sans", Arial, sans-serif; color: #000; }
.page { page-break-after: always; break-after: page; min-height: 240mm; border: 1px dashed #888; padding: 12mm; }
.page:last-child { page-break-after: auto; break-after: auto; }
h1 { font-size: 18pt; margin: 0 0 8mm; }
.ref { font-size: 28pt; letter-spacing: 0.15em; font-family: "DejaVu Sans Mono", monospace; }
.pin { font-size: 30pt; letter-spacing: 0.1em; font-family: "DejaVu Sans Mono", monospace; padding: 6mm;
       border: 2px solid #000; display: inline-block; }
.note { font-size: 10pt; margin-top: 10mm; }
dl { font-size: 12pt; } dt { font-weight: bold; margin-top: 3mm; }
@media screen { body { max-width: 210mm; margin: 1em auto; } }
@media print { .screen-only { display: none; } .page { border: none; } }
"""


# A reissued envelope says so on both pages, so whoever finds the old one knows it is dead.
_REISSUED_NOTE = (
    '<p class="note reissued">This envelope replaces any earlier one: the earlier PIN no longer '
    "works. / 本信封取代之前發出的信封：之前的密碼已經失效。</p>"
)


def render_pin_envelope_html(
    reference_number: str, pin: str, server_name: str, org: str, *, reissued: bool = False
) -> str:
    """Two printable pages: the cover (reference number, server, organisation) and the inside (the PIN).

    Every sentence is printed in English and in Traditional Chinese: the envelope is made before anyone chose
    a language, and whoever opens it in Hong Kong may read either.
    """
    ref, srv, organisation = escape(reference_number), escape(server_name), escape(org)
    grouped = escape(group_pin(pin))
    note = _REISSUED_NOTE if reissued else ""
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>e-Cert (Server) PIN Envelope {ref}</title>
<style>{_CSS}</style>
</head>
<body>
<p class="screen-only">Print this page and seal the PIN page inside the envelope. Do not save or e-mail it.
<span lang="zh-Hant-HK">請列印本頁，並把密碼頁密封於信封內。切勿儲存或以電郵傳送。</span></p>
<section class="page cover">
<h1>e-Cert (Server) PIN Envelope / <span lang="zh-Hant-HK">電子證書（伺服器）密碼信封</span></h1>
<dl>
<dt>Reference Number / <span lang="zh-Hant-HK">參考編號</span></dt><dd class="ref">{ref}</dd>
<dt>Server Name / <span lang="zh-Hant-HK">伺服器名稱</span></dt><dd>{srv}</dd>
<dt>Organisation / <span lang="zh-Hant-HK">機構</span></dt><dd>{organisation}</dd>
</dl>
<p class="note">Confidential: to be opened by the Authorised Representative only.<br>
<span lang="zh-Hant-HK">機密：只限獲授權代表開啟。</span></p>
{note}
</section>
<section class="page inside">
<h1>e-Cert PIN / <span lang="zh-Hant-HK">電子證書密碼</span></h1>
<p class="pin">{grouped}</p>
<p class="note">Log in with the Server Name, the 9-digit Reference Number on the cover and this 16-digit PIN
(no need to type the spaces) to submit your Certificate Signing Request. Keep the PIN secret; the
Certification Authority will never ask for it by e-mail or telephone.</p>
<p class="note" lang="zh-Hant-HK">請以伺服器名稱、信封封面的 9 位數字參考編號及此 16 位數字密碼（毋須輸入空格）登入，
以遞交證書簽署要求。請將密碼保密；核證機關絕不會以電郵或電話索取密碼。</p>
{note}
</section>
</body>
</html>
"""
