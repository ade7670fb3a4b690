"""The devnode's checks of the array-of-rules settings (`localizedAttributes`,
`foreignKeys`), worded and ordered as 1.50's deserr reads them: an unknown key or a
bad value where it stands in the object, a missing key only after the whole object."""

from __future__ import annotations

import pytest

from miroir.core.errors import MeiliError
from miroir.devnode.settings import validate_settings


def _refused(body: dict) -> tuple[str, str]:
    with pytest.raises(MeiliError) as e:
        validate_settings(body)
    return e.value.code, e.value.message


def test_localized_attributes_accepted_in_canonical_key_order():
    got = validate_settings({"localizedAttributes": [{"locales": ["fra"], "attributePatterns": ["title"]}]})
    assert got == {"localizedAttributes": [{"attributePatterns": ["title"], "locales": ["fra"]}]}
    assert list(got["localizedAttributes"][0]) == ["attributePatterns", "locales"]


@pytest.mark.parametrize(
    ("rules", "message"),
    [
        ("x", "Invalid value type at `.localizedAttributes`: expected an array, but found a string: `\"x\"`"),
        ([1], "Invalid value type at `.localizedAttributes[0]`: expected an object, but found a positive integer: `1`"),
        ([{"locales": ["fra"]}], "Missing field `attributePatterns` inside `.localizedAttributes[0]`"),
        (
            [{"attributePatterns": ["a"], "other": 1}],  # unknown before the missing `locales`
            "Unknown field `other` inside `.localizedAttributes[0]`: expected one of `attributePatterns`, `locales`",
        ),
        (
            [{"attributePatterns": 5}],  # a bad value before the missing `locales`
            "Invalid value type at `.localizedAttributes[0].attributePatterns`: expected an array, but found a positive integer: `5`",
        ),
        (
            [{"attributePatterns": ["a"], "locales": None}],  # null is not missing
            "Invalid value type at `.localizedAttributes[0].locales`: expected an array, but found null",
        ),
    ],
)
def test_localized_attributes_refused(rules, message):
    assert _refused({"localizedAttributes": rules}) == ("invalid_settings_localized_attributes", message)


def test_foreign_keys():
    fk = {"fieldName": "b", "foreignIndexUid": "a"}
    assert validate_settings({"foreignKeys": [fk]}) == {"foreignKeys": [{"foreignIndexUid": "a", "fieldName": "b"}]}
    assert _refused({"foreignKeys": [{"fieldName": 3}]}) == (
        "invalid_settings_foreign_keys",
        "Invalid value type at `.foreignKeys[0].fieldName`: expected a string, but found a positive integer: `3`",
    )
    assert _refused({"foreignKeys": [{"fieldName": "b"}]}) == (
        "invalid_settings_foreign_keys", "Missing field `foreignIndexUid` inside `.foreignKeys[0]`",
    )
    assert _refused({"foreignKeys": [{"x": 1}]}) == (
        "invalid_settings_foreign_keys",
        "Unknown field `x` inside `.foreignKeys[0]`: expected one of `foreignIndexUid`, `fieldName`",
    )
