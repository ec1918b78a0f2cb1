"""Refusals and validation results as a subscriber reads them: a plain sentence in the page's language.

Why a table here, at the edge: core/ and services/ refuse in one English sentence that names the rule and the
bad value (core/errors.py); that sentence is also the API's problem detail and the audit log's wording, so it
stays as it is. A page needs the same fact written for a person, in English or Traditional Chinese: what is
wrong, then what to do. So the English sentence is the *key*: each row below matches one service sentence (a
regular expression; its parameters are named groups) and names the catalog message (a gettext msgid,
translated in ``locale/*/messages.po``) that the page shows instead. A group named ``sub_*`` holds a nested
sentence and is translated in turn. A sentence no row knows is shown as it came, without exception class
names (a subscriber cannot act on "ConnectError"). ``tests/unit/test_web_messages.py`` renders the real
sentences through the services' own code and checks that each one has a row and a Chinese translation.
"""

from __future__ import annotations

import gettext
import re
from dataclasses import dataclass

from . import i18n

__all__ = ["Sentence", "SENTENCES", "plain", "kind_of", "msgids", "citation"]


@dataclass(frozen=True)
class Sentence:
    """One service sentence (``pattern``, full match) and the catalog message that says it to a person."""

    key: str
    pattern: re.Pattern[str]
    msgid: str


def _row(key: str, pattern: str, msgid: str) -> Sentence:
    return Sentence(key, re.compile(pattern, re.S), msgid)


_ANY = r"(?:.*)"

SENTENCES: tuple[Sentence, ...] = (
    # --- CSR intake (core/csr.py, services/certificates.py) ---------------------------------------
    _row(
        "csr_empty",
        r"the CSR is empty; paste it including the BEGIN and END lines",
        "The CSR is empty. Paste it including the BEGIN and END lines.",
    ),
    _row(
        "csr_invalid_characters",
        r"not a CSR: the text contains invalid characters",
        "The text is not a CSR: it holds characters a CSR cannot have. Copy the CSR again from the file your "
        "server made.",
    ),
    _row(
        "csr_several_blocks",
        r"several PEM blocks found \((?P<count>\d+)\); paste exactly one CSR",
        "The text holds %(count)s PEM blocks. Paste exactly one CSR.",
    ),
    _row(
        "csr_no_begin",
        r"not a CSR: no '-----BEGIN CERTIFICATE REQUEST-----' line",
        "The text is not a CSR: the BEGIN CERTIFICATE REQUEST line is missing. Copy the whole CSR, including "
        "its BEGIN and END lines.",
    ),
    _row(
        "csr_is_certificate",
        r"this is a certificate, not a certificate request \(CSR\); " + _ANY,
        "This is a certificate, not a certificate request (CSR). Paste the CSR your server made.",
    ),
    _row(
        "csr_is_private_key",
        r"this is a private key, not a CSR; " + _ANY,
        "This is a private key, not a CSR. Keep the key secret and paste the CSR instead.",
    ),
    _row(
        "csr_other_block",
        r"not a CSR: the PEM block is a '(?P<label>[^']*)'",
        'The text is not a CSR: it is a "%(label)s". Paste the CSR your server made.',
    ),
    _row(
        "csr_truncated",
        r"not a CSR: the PEM block is truncated \(no END line\)",
        "The CSR is cut short: its END line is missing. Copy the whole CSR again.",
    ),
    _row(
        "csr_begin_end",
        r"not a CSR: BEGIN (?P<begin>.*) does not match END (?P<end>.*)",
        "The BEGIN and END lines of the CSR do not match. Copy the whole CSR again.",
    ),
    _row(
        "csr_base64",
        r"not a CSR: the PEM block is not valid base64" + _ANY,
        "The CSR is damaged: its content is not valid base64 (cut short or altered). Copy the whole CSR again.",
    ),
    _row(
        "csr_garbled",
        r"not a CSR: the data is garbled or truncated",
        "The CSR is damaged or cut short. Copy the whole CSR again.",
    ),
    _row(
        "csr_not_pem",
        r"not a CSR: expected a PEM block" + _ANY,
        "The text is not a CSR. Paste the CSR including its BEGIN and END lines.",
    ),
    _row(
        "csr_key_type",
        r"the CSR's public key is of an unsupported type or curve" + _ANY,
        "The key in the CSR is of a type this certification authority does not certify. Make a new key (RSA "
        "2048, 3072 or 4096 bits, or ECDSA P-256 or P-384) and a new CSR.",
    ),
    _row(
        "csr_signature",
        r"the CSR's signature (?:cannot be checked|is invalid)" + _ANY,
        "The signature of the CSR is not valid: it was changed after signing, or not signed by its key. Make "
        "the CSR again.",
    ),
    _row(
        "csr_unreadable",
        r"the CSR's (?:subject|attributes|requested extensions) cannot be parsed" + _ANY,
        "Part of the CSR cannot be read. Make the CSR again with your server's usual tool.",
    ),
    _row(
        "csr_too_many_names",
        r"too many names: (?P<count>\d+) in the CSR; the limit is (?P<limit>\d+)",
        "The CSR lists %(count)s names; at most %(limit)s are allowed.",
    ),
    _row(
        "csr_not_dns_san",
        r"(?:e-mail address|URI|IP address) '?(?P<value>[^' ]*)'? in the SAN is not allowed" + _ANY,
        "The CSR lists %(value)s, which is not a domain name. A server certificate carries domain names only: "
        "make the CSR again with domain names only.",
    ),
    _row(
        "csr_san_type",
        r"SAN entry of type (?P<kind>\S+) is not allowed" + _ANY,
        "The CSR lists an entry that is not a domain name. Make the CSR again with domain names only.",
    ),
    _row(
        "csr_explicit_curve",
        r"the EC key is given with explicit curve parameters" + _ANY,
        "The key in the CSR spells out its curve instead of naming it. Make a new key on the named curve P-256 "
        "or P-384 and a new CSR.",
    ),
    _row(
        "csr_common_names",
        r"the CSR has (?P<count>\d+) common names" + _ANY,
        "The CSR has %(count)s common names. Use one (or none) and list the names in the Subject Alternative Name.",
    ),
    _row(
        "csr_ip_cn",
        r"IP address '(?P<value>[^']*)' in the CN is not allowed" + _ANY,
        "The common name of the CSR is an IP address (%(value)s). This certification authority certifies "
        "domain names only.",
    ),
    _row(
        "csr_no_domain",
        r"the CSR names no domain" + _ANY,
        "The CSR names no domain. Put the server's names in the Subject Alternative Name and make the CSR again.",
    ),
    _row(
        "csr_name_refused",
        r"a name in the CSR is refused: (?P<sub_reason>.*)",
        "A name in the CSR is refused: %(sub_reason)s",
    ),
    _row(
        "names_mismatch",
        r"the CSR names domains that are not in the application: (?P<names>.*)",
        "The CSR names domains that this application does not cover: %(names)s. Make a new CSR that lists "
        "only the names of the application.",
    ),
    _row(
        "names_mismatch",
        r"(?P<names>.+) is not among the names of application (?P<reference>\S+) \((?P<allowed>.*)\)",
        "The CSR names domains that this application does not cover: %(names)s. Make a new CSR that lists "
        "only the names of the application.",
    ),
    _row(
        "already_accepted",
        r"a certificate was already issued and accepted for this application" + _ANY,
        "A certificate was already issued and accepted for this application. To get another one (a new key, a "
        "lost key, a renewal), use Replace certificate.",
    ),
    _row(
        "waiting_for_accept",
        r"a certificate is waiting for your Accept or Reject",
        "A certificate is waiting for you to accept or reject it.",
    ),
    _row(
        "csr_too_large",
        r"the CSR is (?P<size>\d+) bytes; at most (?P<limit>\d+) are accepted",
        "The text pasted is too large to be a Certificate Signing Request.",
    ),
    _row(
        "dcv_missing",
        r"domain control has not been shown, or its validation is older than the reuse period, for: "
        r"(?P<names>.*); complete domain validation first",
        "Domain control has not been shown for %(names)s, or its validation is too old to reuse. Complete the "
        "domain control validation first.",
    ),
    _row(
        "subscription_ended",
        r"the subscription period has ended; apply again",
        "The subscription period has ended. Please apply again.",
    ),
    # --- keys (core/keys.py) -------------------------------------------------------------------------
    _row(
        "rsa_size",
        r"RSA key of (?P<bits>\d+) bits is not allowed" + _ANY,
        "The key in the CSR is an RSA key of %(bits)s bits. Make a new key of 2048, 3072 or 4096 bits and a new CSR.",
    ),
    _row(
        "rsa_exponent",
        r"RSA public exponent (?P<exponent>\d+) is not allowed" + _ANY,
        "The key in the CSR has the public exponent %(exponent)s; it must be 65537. Make a new key and a new CSR.",
    ),
    _row(
        "ec_curve",
        r"elliptic curve (?P<curve>\S+) is not allowed" + _ANY,
        "The key in the CSR is on the curve %(curve)s. Make a new key on P-256 or P-384 and a new CSR.",
    ),
    _row(
        "key_type",
        r"(?P<kind>\S+) keys are not allowed; use RSA" + _ANY,
        "The key in the CSR is a %(kind)s key. Make a new RSA (2048, 3072 or 4096 bits) or ECDSA (P-256 or "
        "P-384) key and a new CSR.",
    ),
    _row(
        "key_weak",
        r"key rejected: (?:weak key found|it cannot be checked)" + _ANY,
        "The key in the CSR is known to be weak. Make a new key pair and a new CSR.",
    ),
    _row(
        "key_blocked",
        r"key is blocked \(compromised\)",
        "The key in the CSR was reported as compromised and is blocked. Make a new key pair and a new CSR.",
    ),
    # --- names (core/names.py) ----------------------------------------------------------------------
    _row(
        "name_public_suffix",
        r"'(?P<name>[^']*)' is a public suffix, not a domain anyone can own",
        "%(name)s is a public suffix, not a domain anyone can own.",
    ),
    _row("name_trailing_dot", r"'(?P<name>[^']*)' ends with a dot; remove it", "%(name)s ends with a dot; remove it."),
    _row(
        "name_internal",
        r"'(?P<name>[^']*)' is an internal name" + _ANY,
        "%(name)s is an internal name that never resolves on the internet; only public domain names are certified.",
    ),
    _row(
        "name_ip",
        r"'(?P<name>[^']*)' (?:is|looks like) an IP address; only domain names are certified",
        "%(name)s is an IP address; only domain names are certified.",
    ),
    _row(
        "name_syntax",
        r"(?:label '[^']*' in )?'(?P<name>[^']*)' (?:has an empty label|starts with a dot|"
        r"contains |starts or ends with a hyphen|is not letters)" + _ANY,
        "%(name)s is not a valid domain name.",
    ),
    _row(
        "name_wildcard",
        r"'(?P<name>[^']*)': a wildcard" + _ANY,
        "%(name)s: a wildcard is allowed only as the whole leftmost label, and only for a wildcard certificate.",
    ),
    # --- application steps (core/application.py, services/certificates.py) --------------------------
    _row(
        "already_confirmed",
        r"the application data can only be confirmed once" + _ANY,
        "The application data has already been confirmed.",
    ),
    _row(
        "already_rejected",
        r"the application can only be rejected before it is confirmed" + _ANY,
        "The application data has already been confirmed, so it can no longer be rejected here.",
    ),
    _row(
        "already_issuing",
        r"a certificate is already being issued for this application",
        "A certificate is already being issued for this application.",
    ),
    _row(
        "csr_not_now",
        r"a CSR (?:cannot|can) (?:be submitted now|only be submitted)" + _ANY,
        "A CSR cannot be submitted at this step.",
    ),
    _row(
        "no_waiting_certificate",
        r"there is no certificate waiting for acceptance" + _ANY,
        "There is no certificate waiting for acceptance.",
    ),
    # --- domain control validation results (validation/, services/enrolment.py) ---------------------
    _row("dcv_file_found", r"Validation Code found at (?P<url>\S+)", "Validation Code found at %(url)s."),
    _row(
        "dcv_txt_found",
        r"Validation Code found in TXT at (?P<name>\S+)",
        "Validation Code found in the TXT record at %(name)s.",
    ),
    _row(
        "dcv_email_passed",
        r"code e-mailed to (?P<address>\S+) entered back",
        "The Validation Code sent to %(address)s was entered correctly.",
    ),
    _row(
        "dcv_reused",
        r"validated on (?P<date>[0-9-]+), reused" + _ANY,
        "Validated on %(date)s; that validation is still valid and is reused.",
    ),
    _row(
        "dcv_file_wrong",
        r"the file at (?P<url>\S+) does not hold the Validation Code",
        "The file at %(url)s does not hold the Validation Code. Upload the fileauth.txt from this page unchanged.",
    ),
    _row(
        "dcv_http_status",
        r"HTTP (?P<status>\d+) at (?P<url>\S+)",
        "The web server answered %(status)s at %(url)s. Check that the file is at that address.",
    ),
    _row(
        "dcv_fetch_failed",
        r"could not (?:fetch|read) (?P<url>\S+): \S+",
        "Could not fetch %(url)s. Check that the web server is running and can be reached from the internet.",
    ),
    _row(
        "dcv_timeout",
        r"(?:no answer from (?P<url>\S+) within \S+ s|reading (?P<url2>\S+) timed out|"
        r"time limit of \S+ s reached" + _ANY + ")",
        "The web server did not answer in time. Check that it is running and can be reached from the internet.",
    ),
    _row(
        "dcv_no_address",
        r"(?P<host>\S+) has no A or AAAA record",
        "%(host)s has no address in the DNS (A or AAAA record).",
    ),
    _row(
        "dcv_lookup_failed",
        r"DNS lookup (?:of (?P<host>\S+) )?failed: (?P<detail>.*)",
        "The DNS lookup failed (%(detail)s). Check that the name servers of the domain answer, then try again.",
    ),
    _row(
        "dcv_private_address",
        r"(?P<host>\S+) resolves to non-public address (?P<address>\S+);" + _ANY,
        "%(host)s resolves to a private address (%(address)s) that cannot be reached from the internet.",
    ),
    _row(
        "dcv_redirect",
        r"(?:redirect to |HTTP \d+ redirect at |HTTP \d+ without Location|more than \d+ "
        r"redirects)" + _ANY,
        "The web server redirected the request to an address that is not allowed (another port, scheme or "
        "too many hops). Serve the file directly at the address shown.",
    ),
    _row(
        "dcv_file_large",
        r"the file at (?P<url>\S+) is larger than (?P<limit>\d+) bytes",
        "The file at %(url)s is too large to be the Validation File. Upload the fileauth.txt from this page unchanged.",
    ),
    _row(
        "dcv_txt_wrong",
        r"TXT records at (?P<name>\S+) and (?P<other>\S+) do not hold the Validation Code",
        "The TXT records at %(name)s and %(other)s do not hold the Validation Code. Check the value you entered.",
    ),
    _row(
        "dcv_txt_missing",
        r"no TXT record at (?P<name>\S+) or (?P<other>\S+)",
        "There is no TXT record at %(name)s or %(other)s yet. Add the record, wait for it to be published, "
        'then click "Confirm" again.',
    ),
    _row(
        "dcv_code_expired",
        r"the Validation Code is older than 30 days" + _ANY,
        "The Validation Code is older than 30 days. Choose the method again for a new code.",
    ),
    _row(
        "dcv_send_first",
        r"send the Validation Code to one of the designated e-mail addresses first",
        "Send the Validation Code to one of the designated e-mail addresses first.",
    ),
    _row(
        "dcv_not_started",
        r"no (?P<method>.+) Validation Code was issued for this domain" + _ANY,
        "No Validation Code of this method was issued for this domain yet. Open the method's instructions first.",
    ),
    _row(
        "dcv_not_adn",
        r"(?P<address>\S+) is not (?:a constructed address|an Authorization Domain Name)" + _ANY,
        "%(address)s is not one of the designated e-mail addresses of this domain.",
    ),
    _row(
        "dcv_email_local_part",
        r"Only admin, administrator, webmaster, hostmaster or postmaster" + _ANY,
        "Only admin, administrator, webmaster, hostmaster or postmaster may receive the code.",
    ),
    _row(
        "email_discouraged",
        r"Constructed e-mail validation is discouraged by the Baseline Requirements from (?P<since>[0-9-]+) and "
        r"will be withdrawn on (?P<until>[0-9-]+)" + _ANY,
        "The Baseline Requirements discourage this method from %(since)s and withdraw it on %(until)s. Prefer "
        "the DNS or website method.",
    ),
    _row(
        "dcv_not_now",
        r"domain validation is not (?:expected now|expected at this step)" + _ANY,
        "Domain control validation is not needed at this step.",
    ),
    _row(
        "caa_forbids",
        r"CAA at (?P<name>\S+) does not permit this CA" + _ANY,
        "The CAA record of %(name)s does not allow this certification authority to issue certificates for it. "
        "Ask the domain's administrator to add this certification authority to the CAA record.",
    ),
    _row("corroboration", r"(?P<sub_primary>.+), but (?P<sub_quorum>.+)", "%(sub_primary)s However, %(sub_quorum)s"),
)

# "ConnectError", "ReadTimeout", "gaierror"...: the name of a Python exception is not a reason a person can act on.
_CLASS_NAME = re.compile(r"\s*[:(]?\s*\b(?:[A-Z][A-Za-z0-9]*(?:Error|Exception|Timeout)|gaierror|timeout)\b\)?")


def msgids() -> list[str]:
    """Every catalog message this module can show (the catalog test checks each has a translation)."""
    return [s.msgid for s in SENTENCES]


def _match(text: str) -> tuple[Sentence, dict[str, str]] | None:
    for sentence in SENTENCES:
        found = sentence.pattern.fullmatch(text)
        if found:
            return sentence, {k: v for k, v in found.groupdict().items() if v is not None}
    return None


def kind_of(text: str) -> str:
    """The key of the row that matches the whole sentence ("" if none): pages choose extra help by it."""
    found = _match(text.strip())
    return found[0].key if found else ""


def _one(text: str, tr: gettext.NullTranslations) -> str | None:
    found = _match(text)
    if found is None:
        return None
    sentence, params = found
    for name in [k for k in params if k.startswith("sub_")]:
        params[name] = plain(params[name], tr)
    try:
        return tr.gettext(sentence.msgid) % params
    except (KeyError, ValueError, TypeError):  # a translation with a broken placeholder: the source wording
        return sentence.msgid % params


def _unknown(text: str) -> str:
    cleaned = _CLASS_NAME.sub("", text).strip()
    return cleaned[:1].upper() + cleaned[1:] if cleaned else cleaned


def _parts(text: str, tr: gettext.NullTranslations) -> list[str]:
    """Several sentences joined by "; " (one per URL tried, say): the longest known run first, then the rest."""
    pieces = text.split("; ")
    out: list[str] = []
    i = 0
    while i < len(pieces):
        for j in range(len(pieces), i, -1):
            said = _one("; ".join(pieces[i:j]), tr)
            if said is not None:
                out.append(said)
                i = j
                break
        else:
            out.append(_unknown(pieces[i]))
            i += 1
    return out


def plain(text: str | None, tr: gettext.NullTranslations | str | None = None) -> str:
    """``text`` (a service's English sentence) as the page says it, in the language of ``tr``.

    ``tr`` is a translations object or a language code ("en", "zh_HK"); English when omitted.
    """
    if not text:
        return ""
    if tr is None or isinstance(tr, str):
        tr = i18n.translations(tr or i18n.DEFAULT_LANGUAGE)
    whole = _one(text.strip(), tr)
    if whole is not None:
        return whole
    return " ".join(_parts(text.strip(), tr))


_NOTE = re.compile(r"\s*\([^)]*[a-z]{3,}[^)]*\)")


def citation(rule: str | None, lang: str) -> str:
    """The rule a refusal cites, for the small print: "BR 3.2.2.4 (only validated names)" in English; in
    Chinese the section alone ("BR 3.2.2.4"), since the note in brackets is the English sentence's gloss."""
    if not rule:
        return ""
    return rule if lang == i18n.DEFAULT_LANGUAGE else _NOTE.sub("", rule).strip()
