"""core/jsonlimits: serde_json's nesting limit and integer semantics (issue 20 point 9)."""

from __future__ import annotations

import pytest

from miroir.core.errors import MeiliError
from miroir.core.jsonlimits import MAX_DEPTH, as_serde_numbers, nesting_error


def message(err: MeiliError | None) -> str | None:
    return None if err is None else err.body().message


def test_depth_127_passes_128_is_refused_with_serdes_position():
    assert nesting_error(b"[" * 127 + b"]" * 127) is None
    err = nesting_error(b"[" * MAX_DEPTH + b"]" * MAX_DEPTH)
    assert err is not None and err.status == 400 and err.code == "malformed_payload"
    assert message(err) == "The json payload provided is malformed. `recursion limit exceeded at line 1 column 128`."
    # Lines and columns count from the last newline; brackets inside strings do not nest.
    body = b'{"q": "[[[{{{\\"[",\n "f":\n' + b"[" * 127 + b"]" * 127 + b"}"
    assert message(nesting_error(body)) == "The json payload provided is malformed. `recursion limit exceeded at line 3 column 127`."
    # Many brackets side by side are not deep.
    assert nesting_error(b"[" + b"[1]," * 1000 + b"[1]]") is None


def test_integers_beyond_64_bits_become_floats():
    assert as_serde_numbers({"a": [2**64 - 1, -(2**63)]}, b"18446744073709551615") == {"a": [2**64 - 1, -(2**63)]}
    out = as_serde_numbers({"a": [2**64, -(2**63) - 1, True]}, b"18446744073709551616")
    assert out == {"a": [float(2**64), float(-(2**63) - 1), True]} and isinstance(out["a"][0], float)
    # Below i64 in 19 digits (a 20-digit trigger let it through, unencodable by msgpack).
    out = as_serde_numbers({"a": -9999999999999999999}, b'{"a": -9999999999999999999}')
    assert out == {"a": -1e19} and isinstance(out["a"], float)
    value = {"a": 10**30}
    assert as_serde_numbers(value, b'{"b": 1}') is value  # no 19-digit run: not walked
    with pytest.raises(MeiliError) as exc:
        as_serde_numbers([10**400], b"1" + b"0" * 400)
    assert exc.value.code == "malformed_payload"
