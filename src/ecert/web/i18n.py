"""Language negotiation and translations for the server-rendered pages (English and Traditional Chinese).

The ``.po`` sources under ``web/locale`` are compiled in memory on first use (babel's pofile/mofile), so
no build step can be forgotten between editing a catalog and serving it. The catalog is named ``zh_HK``:
with ``zh_Hant_HK`` Babel's negotiation of ``zh_HK`` falls back to English (stack.md, i18n gotcha).
"""

from __future__ import annotations

import gettext
import io
from datetime import date, datetime
from functools import cache
from pathlib import Path

from babel import Locale
from babel.messages import mofile, pofile
from starlette.requests import Request

__all__ = [
    "LANGUAGES",
    "DEFAULT_LANGUAGE",
    "LANG_COOKIE",
    "LANG_PARAM",
    "negotiate",
    "from_request",
    "translations",
    "html_lang",
    "dmy",
    "other_language",
]

LOCALE_DIR = Path(__file__).with_name("locale")
LANGUAGES = ("en", "zh_HK")
DEFAULT_LANGUAGE = "en"
LANG_COOKIE = "ecert_lang"
LANG_PARAM = "lang"

# Tags Babel does not map onto our catalog by itself: Traditional Chinese from Taiwan, Macao or
# script-tagged, all read the zh_HK catalog; Simplified Chinese does not (it would read as foreign).
_ALIASES = {
    "zh_hk": "zh_HK",
    "zh_tw": "zh_HK",
    "zh_mo": "zh_HK",
    "zh_hant": "zh_HK",
    "zh_hant_hk": "zh_HK",
    "zh_hant_tw": "zh_HK",
    "zh_hant_mo": "zh_HK",
    "zh": "zh_HK",
    "en": "en",
}
_HTML_LANG = {"en": "en", "zh_HK": "zh-Hant-HK"}


def _canonical(tag: str | None) -> str | None:
    """One language tag (``zh-TW``, ``zh_Hant``, ``en-GB``...) mapped onto a catalog, or None."""
    if not tag:
        return None
    key = tag.strip().replace("-", "_").lower()
    if key in _ALIASES:
        return _ALIASES[key]
    if key.startswith("en_"):
        return "en"
    if key.startswith("zh_hant"):
        return "zh_HK"
    found = Locale.negotiate([tag.replace("-", "_")], list(LANGUAGES))
    return str(found) if found is not None else None


def _accept_language(header: str) -> list[str]:
    """The tags of an Accept-Language header, best first (RFC 9110 12.5.4); q=0 means "not this"."""
    weighted: list[tuple[float, int, str]] = []
    for index, part in enumerate(header.split(",")):
        tag, _, params = part.strip().partition(";")
        q = 1.0
        if params.strip().startswith("q="):
            try:
                q = float(params.strip()[2:])
            except ValueError:
                q = 0.0
        if tag and q > 0:
            weighted.append((-q, index, tag.strip()))
    return [tag for _, _, tag in sorted(weighted)]


def negotiate(query: str | None, cookie: str | None, accept_language: str | None) -> str:
    """The page language: an explicit ``?lang=`` wins, then the remembered cookie, then the browser's list."""
    for choice in (query, cookie):
        found = _canonical(choice)
        if found:
            return found
    for tag in _accept_language(accept_language or ""):
        found = _canonical(tag)
        if found:
            return found
    return DEFAULT_LANGUAGE


def from_request(request: Request) -> str:
    return negotiate(
        request.query_params.get(LANG_PARAM), request.cookies.get(LANG_COOKIE), request.headers.get("accept-language")
    )


def other_language(lang: str) -> str:
    """The language the switch link on every page offers."""
    return "zh_HK" if lang == "en" else "en"


def html_lang(lang: str) -> str:
    """The BCP 47 tag for the ``lang`` attribute (screen readers pick the voice from it)."""
    return _HTML_LANG.get(lang, "en")


@cache
def translations(lang: str) -> gettext.NullTranslations:
    """The compiled catalog for ``lang``; English is the source language, so its catalog may stay empty."""
    po_path = LOCALE_DIR / lang / "LC_MESSAGES" / "messages.po"
    if not po_path.exists():
        return gettext.NullTranslations()
    with po_path.open("rb") as fh:
        catalog = pofile.read_po(fh, locale=lang)
    buffer = io.BytesIO()
    mofile.write_mo(buffer, catalog)
    buffer.seek(0)
    return gettext.GNUTranslations(buffer)


def dmy(value: date | datetime | None) -> str:
    """Hong Kong's DD/MM/YYYY, the form the guide uses in both languages."""
    if value is None:
        return ""
    return value.strftime("%d/%m/%Y")
