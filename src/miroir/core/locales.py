"""The locales Meilisearch 1.50 accepts (search `locales`, settings `localizedAttributes`)
and its errors for one it does not. Pure module.

A locale names a language as ISO 639-1 or 639-3 (`ja` and `jpn` are the same language);
`canonical` gives the 639-3 code the tokenizer keys on.
"""

from __future__ import annotations

from collections.abc import Iterable

from miroir.core.errors import MeiliError

# 1.50's `Locale` enum in declaration order: deserr lists it so for a JSON body.
_TWO = ["af", "ak", "am", "ar", "az", "be", "bn", "bg", "ca", "cs", "da", "de", "el", "en", "eo", "et", "fi", "fr", "gu", "he", "hi", "hr", "hu", "hy", "id", "it", "jv", "ja", "kn", "ka", "km", "ko", "la", "lv", "lt", "ml", "mr", "mk", "my", "ne", "nl", "nb", "or", "pa", "fa", "pl", "pt", "ro", "ru", "si", "sk", "sl", "sn", "es", "sr", "sv", "ta", "te", "tl", "th", "tk", "tr", "uk", "ur", "uz", "vi", "yi", "zh", "zu"]
_THREE = ["afr", "aka", "amh", "ara", "aze", "bel", "ben", "bul", "cat", "ces", "dan", "deu", "ell", "eng", "epo", "est", "fin", "fra", "guj", "heb", "hin", "hrv", "hun", "hye", "ind", "ita", "jav", "jpn", "kan", "kat", "khm", "kor", "lat", "lav", "lit", "mal", "mar", "mkd", "mya", "nep", "nld", "nob", "ori", "pan", "pes", "pol", "por", "ron", "rus", "sin", "slk", "slv", "sna", "spa", "srp", "swe", "tam", "tel", "tgl", "tha", "tuk", "tur", "ukr", "urd", "uzb", "vie", "yid", "zho", "zul"]
LOCALES: tuple[str, ...] = (*_TWO, *_THREE, "cmn")
_CANONICAL = {**dict(zip(_TWO, _THREE, strict=True)), **{c: c for c in _THREE}, "cmn": "cmn", "zh": "cmn", "zho": "cmn"}
# The JSON body's list (declaration order) and the query string's (each kind sorted).
_BODY_LIST = ", ".join(f"`{loc}`" for loc in LOCALES)
_QUERY_LIST = ", ".join([*sorted(_TWO), *sorted([*_THREE, "cmn"])])


def canonical(locale: str) -> str:
    """`ja` -> `jpn`; Chinese in any spelling -> `cmn` (charabia's Mandarin)."""
    return _CANONICAL[locale]


def check_body(locales: Iterable[str], path: str, code: str) -> None:
    """A JSON body's locales (`path` names the array, e.g. `.locales`)."""
    for i, loc in enumerate(locales):
        if loc not in _CANONICAL:
            raise MeiliError(code, f"Unknown value `{loc}` at `{path}[{i}]`: expected one of {_BODY_LIST}")


def check_query(locales: Iterable[str]) -> None:
    """GET /search's `locales` parameter."""
    for loc in locales:
        if loc not in _CANONICAL:
            raise MeiliError(
                "invalid_search_locales",
                f"Invalid value in parameter `locales`: Unsupported locale `{loc}`, expected one of {_QUERY_LIST}",
            )
