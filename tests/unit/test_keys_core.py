"""core/keys.py: key derivation, actions, patterns, bodies, search rules (pure, no I/O)."""

from __future__ import annotations

import datetime as dt

import jwt
import pytest

from miroir.core import keys
from miroir.core.errors import MeiliError

NOW = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
NIL = "00000000-0000-0000-0000-000000000000"


def err(fn, *args) -> MeiliError:
    with pytest.raises(MeiliError) as e:
        fn(*args)
    return e.value


def test_key_derivation_matches_meilisearch():
    # crates/meilisearch/tests/auth/errors.rs: the nil uid under the master key `MASTER_KEY`.
    assert keys.derive_key(NIL, "MASTER_KEY") == "aeb94973e0b6e912d94165430bbe87dee91a7c4f891ce19050c3910ec96977e9"


def test_wildcards_expand():
    assert keys.expand(["documents.*"]) == {"documents.add", "documents.get", "documents.delete"}
    every = keys.expand(["*"])
    assert {"keys.create", "search", "dumps.create", "indexes.swap"} <= every and "*.get" not in every
    reads = keys.expand(["*.get"])
    assert "search" in reads and "settings.get" in reads and "keys.get" not in reads and "documents.add" not in reads


def test_patterns():
    assert keys.pattern_matches("prod*", "products") and not keys.pattern_matches("prod*", "sales")
    assert keys.pattern_matches("*", "x") and keys.pattern_matches("sales", "sales")
    assert keys.valid_pattern("a_b-1*") and not keys.valid_pattern("good doggo") and not keys.valid_pattern("a*b")


@pytest.mark.parametrize(
    "body, code, message",
    [
        ({"description": ["doggo"]}, "invalid_api_key_description",
         'Invalid value type at `.description`: expected a string, but found an array: `["doggo"]`'),
        ({"uid": "doggo"}, "invalid_api_key_uid", "Invalid value at `.uid`: invalid character: found `o` at 1"),
        ({"actions": "doggo"}, "invalid_api_key_actions",
         'Invalid value type at `.actions`: expected an array, but found a string: `"doggo"`'),
        ({"indexes": ["good doggo"]}, "invalid_api_key_indexes",
         "Invalid value at `.indexes[0]`: `good doggo` is not a valid index uid pattern. Index uid patterns can be an "
         "integer or a string containing only alphanumeric characters, hyphens (-), underscores (_), and optionally end with a star (*)."),
        ({"expires_at": "doggo"}, "bad_request",
         "Unknown field `expires_at`: did you mean `expiresAt`? expected one of `description`, `name`, `uid`, `actions`, `indexes`, `expiresAt`"),
        ({"indexes": ["doggo"], "expiresAt": None}, "missing_api_key_actions", "Missing field `actions`"),
        ({"uid": NIL, "actions": ["*"], "expiresAt": None}, "missing_api_key_indexes", "Missing field `indexes`"),
        ({"uid": NIL, "actions": ["*"], "indexes": ["doggo"]}, "missing_api_key_expires_at", "Missing field `expiresAt`"),
        ({"actions": ["version"], "indexes": ["products"], "expiresAt": None}, "index_scoped_api_key_with_global_action",
         'cannot create index-scoped API key with global action `"version"`\n  - Hint: remove action `"version"` from the '
         "action list, or remove `indexes` to make the key global"),
        ({"actions": ["*"], "indexes": ["*"], "expiresAt": "2010-11-13T00:00:00Z"}, "invalid_api_key_expires_at",
         "Invalid value at `.expiresAt`: `2010-11-13T00:00:00Z` is not a valid date. It should follow the RFC 3339 format "
         "to represents a date or datetime in the future or specified as a null value. e.g. 'YYYY-MM-DD' or 'YYYY-MM-DD HH:MM:SS'.\n"),
    ],
)
def test_create_body_errors_as_meilisearch(body, code, message):
    e = err(keys.decode_create, body, NOW)
    assert (e.code, e.message, e.status) == (code, message, 400)


def test_unknown_action_lists_every_action():
    e = err(keys.decode_create, {"actions": ["doggo"]}, NOW)
    assert e.message.startswith("Unknown value `doggo` at `.actions[0]`: expected one of `*`, `search`, `documents.*`,")
    assert e.message.endswith("`dynamicSearchRules.delete`, `dynamicSearchRules.*`")


def test_create_and_dates():
    k = keys.decode_create({"uid": NIL.upper(), "actions": ["search"], "indexes": ["dog"], "expiresAt": "2031-02-03"}, NOW)
    assert (k.uid, k.expires_at, k.created_at) == (NIL, "2031-02-03T00:00:00Z", "2030-01-01T00:00:00Z")
    view = keys.key_view(k, "MASTER_KEY")
    assert list(view) == ["name", "description", "key", "uid", "actions", "indexes", "expiresAt", "createdAt", "updatedAt"]
    assert keys.is_expired(k, dt.datetime(2031, 2, 3, tzinfo=dt.UTC)) and not keys.is_expired(k, NOW)


def test_patch_body():
    assert keys.decode_patch({"name": None, "description": "d"}) == {"name": None, "description": "d"}
    e = err(keys.decode_patch, {"uid": "x"})
    assert (e.code, e.message) == ("immutable_api_key_uid", "Immutable field `uid`: expected one of `description`, `name`")
    assert err(keys.decode_patch, {"doggo": 1}).message == "Unknown field `doggo`: expected one of `description`, `name`"


def test_default_keys_are_1_50s():
    names = [k.name for k in keys.default_keys(NOW)]
    assert names == ["Default Chat API Key", "Default Read-Only Admin API Key", "Default Admin API Key", "Default Search API Key"]


def test_search_rules_and_filters():
    a = keys.Access(["*"], {"prod*": {"filter": "a = 1"}, "products": {"filter": ["b = 2"]}, "sales": None})
    assert a.rule_filter("products") == ["b = 2"]  # the exact name wins over the prefix
    assert a.rule_filter("prodx") == "a = 1" and a.rule_filter("sales") is None
    assert not a.allows("other") and a.allows("prodx")
    assert keys.fuse_filters("x = 1", ["b = 2"]) == ["x = 1", "b = 2"]
    assert keys.fuse_filters([["x = 1", "y = 2"]], "a = 1") == [["x = 1", "y = 2"], "a = 1"]
    assert keys.fuse_filters(None, "a = 1") == "a = 1" and keys.fuse_filters("x", None) == "x"
    e = err(keys.Access(["dog"], ["doggo", "catto"]).check_index, "dog")
    assert e.message == 'The provided tenant token cannot acces the index `dog`, allowed indexes are ["catto", "doggo"].'
    e = err(keys.Access(["dog"], ["doggo", "catto"]).check_index, "doggo")
    assert e.message == "The API key used to generate this tenant token cannot acces the index `doggo`."


def test_tenant_tokens():
    key = keys.derive_key(NIL, "MASTER_KEY")
    for alg in ("HS256", "HS384", "HS512"):
        token = jwt.encode({"searchRules": ["*"], "apiKeyUid": NIL, "exp": None}, key, alg)
        assert keys.token_key_uid(token) == NIL
        assert keys.verify_tenant_token(token, key, 0) == (["*"], None)
    assert keys.token_key_uid("not-a-jwt") is None
    token = jwt.encode({"searchRules": ["*"], "apiKeyUid": NIL, "exp": 100}, key, "HS256")
    e = err(keys.verify_tenant_token, token, key, 101)
    assert e.message == "Tenant token expired. Was valid up to `100` and we're now `101`."
    assert err(keys.verify_tenant_token, token, "k" * 64, 0).message == "Could not decode tenant token, InvalidSignature."
    bad = jwt.encode({"searchRules": "kefir"}, "t" * 32, "HS256")
    assert err(keys.token_key_uid, bad).message.startswith(
        "Could not decode tenant token, JSON error: data did not match any variant of untagged enum SearchRules")
