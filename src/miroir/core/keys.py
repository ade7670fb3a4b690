"""API keys and tenant tokens, as Meilisearch 1.50 defines them. Pure: no I/O.

- `ACTIONS`: every 1.50 action, in Meilisearch's order (its error texts list them so);
  `expand` turns a key's actions (`*`, `*.get`, `documents.*`...) into the plain ones.
- Index patterns: an index uid, `prefix*`, or `*`.
- `derive_key`: a key's value is `hex(HMAC-SHA256(master_key, uid))`, uid in lower-case
  hyphenated form, so it survives a restart without being stored and equals what a
  Meilisearch with the same master key gives.
- `decode_create` / `decode_patch`: the request bodies, field by field in the order the
  client sent them, with deserr's codes and texts (msgspec's own texts differ).
- `Access`: what an authenticated request may touch (the key's indexes, a tenant
  token's search rules); `verify_tenant_token` checks a JWT signed with a key.
"""

from __future__ import annotations

import base64
import copy
import datetime as _dt
import functools
import hashlib
import hmac
import json
import re
import uuid as _uuid
from collections.abc import Iterable
from typing import Any

import msgspec

from miroir.core.errors import MeiliError, json_kind
from miroir.core.index_uid import valid_index_uid

# Every 1.50 action, in the order of Meilisearch's `Action` enum.
ACTIONS: tuple[str, ...] = (
    "*", "search", "documents.*", "documents.add", "documents.get", "documents.delete",
    "indexes.*", "indexes.create", "indexes.get", "indexes.update", "indexes.delete", "indexes.swap",
    "tasks.*", "tasks.cancel", "tasks.delete", "tasks.get", "settings.*", "settings.get",
    "settings.update", "stats.*", "stats.get", "metrics.*", "metrics.get", "dumps.*", "dumps.create",
    "snapshots.*", "snapshots.create", "version", "keys.create", "keys.get", "keys.update",
    "keys.delete", "experimental.get", "experimental.update", "export", "network.get",
    "network.update", "chatCompletions", "chats.*", "chats.get", "chats.delete", "chatsSettings.*",
    "chatsSettings.get", "chatsSettings.update", "*.get", "webhooks.get", "webhooks.update",
    "webhooks.delete", "webhooks.create", "webhooks.*", "indexes.compact", "fields.post",
    "tasks.compact", "dynamicSearchRules.get", "dynamicSearchRules.create",
    "dynamicSearchRules.update", "dynamicSearchRules.delete", "dynamicSearchRules.*",
)
_ACTION_SET = frozenset(ACTIONS)

# `group.*` -> the actions it grants (Meilisearch's auth store expansion).
_GROUPS: dict[str, tuple[str, ...]] = {
    "documents.*": ("documents.get", "documents.delete", "documents.add"),
    "indexes.*": ("indexes.create", "indexes.delete", "indexes.get", "indexes.update", "indexes.swap", "indexes.compact"),
    "settings.*": ("settings.get", "settings.update"),
    "dumps.*": ("dumps.create",),
    "snapshots.*": ("snapshots.create",),
    "tasks.*": ("tasks.get", "tasks.delete", "tasks.cancel", "tasks.compact"),
    "stats.*": ("stats.get",),
    "metrics.*": ("metrics.get",),
    "chats.*": ("chats.get", "chats.delete"),
    "chatsSettings.*": ("chatsSettings.get", "chatsSettings.update"),
    "webhooks.*": ("webhooks.get", "webhooks.update", "webhooks.delete", "webhooks.create"),
    "dynamicSearchRules.*": (
        "dynamicSearchRules.get", "dynamicSearchRules.create", "dynamicSearchRules.update", "dynamicSearchRules.delete",
    ),
}
# What `*.get` grants (Meilisearch's `is_read`; `keys.get` is left out on purpose there).
READ_ACTIONS = frozenset({
    "search", "documents.get", "export", "indexes.get", "tasks.get", "settings.get", "stats.get",
    "metrics.get", "version", "experimental.get", "network.get", "chats.get", "chatsSettings.get",
    "webhooks.get", "fields.post", "dynamicSearchRules.get",
})
# Global actions: an index-scoped key may not hold them (Meilisearch's DenyIndexScope).
GLOBAL_ACTIONS = frozenset({
    "metrics.*", "metrics.get", "dumps.*", "dumps.create", "snapshots.*", "snapshots.create",
    "version", "keys.create", "keys.get", "keys.update", "keys.delete", "experimental.get",
    "experimental.update", "export", "network.get", "network.update", "chats.*", "chats.get",
    "chats.delete", "chatsSettings.*", "chatsSettings.get", "chatsSettings.update", "webhooks.get",
    "webhooks.update", "webhooks.delete", "webhooks.create", "webhooks.*", "tasks.compact",
    "dynamicSearchRules.get", "dynamicSearchRules.create", "dynamicSearchRules.update",
    "dynamicSearchRules.delete", "dynamicSearchRules.*",
})
# Actions whose index the route checks itself (list, multi-search, swap, stats, tasks):
# on a route without an index they only need the key to grant them on some index.
HANDLER_CHECKED = frozenset({
    "documents.get", "search", "indexes.create", "indexes.get", "indexes.swap", "tasks.cancel",
    "tasks.delete", "tasks.get", "settings.get", "stats.*", "stats.get", "chatCompletions",
})
KEYS_ACTIONS = frozenset({"keys.create", "keys.get", "keys.update", "keys.delete"})


def expand(actions: Iterable[str]) -> frozenset[str]:
    """The plain actions a key's action list grants."""
    return _expand(tuple(actions))


@functools.lru_cache(maxsize=1024)  # asked on every request made with an API key
def _expand(actions: tuple[str, ...]) -> frozenset[str]:
    out: set[str] = set()
    for a in actions:
        if a == "*":
            out.update(x for x in ACTIONS if x != "*.get")
        elif a == "*.get":
            out.update(READ_ACTIONS)
        else:
            out.update(_GROUPS.get(a, (a,)))
    return frozenset(out)


# --- index patterns --------------------------------------------------------------------

def valid_pattern(p: object) -> bool:
    if not isinstance(p, str):
        return False
    if p.endswith("*"):
        return p == "*" or valid_index_uid(p[:-1])
    return valid_index_uid(p)


def pattern_matches(pattern: str, index: str) -> bool:
    if pattern.endswith("*"):
        return index.startswith(pattern[:-1])
    return pattern == index


def any_matches(patterns: Iterable[str], index: str) -> bool:
    return any(pattern_matches(p, index) for p in patterns)


# --- keys ------------------------------------------------------------------------------

class ApiKey(msgspec.Struct, kw_only=True):
    """One API key as journaled. The key's value is derived, never stored."""

    uid: str  # lower-case hyphenated uuid
    name: str | None = None
    description: str | None = None
    actions: list[str]
    indexes: list[str]
    expires_at: str | None = None  # RFC 3339, UTC
    created_at: str
    updated_at: str


def derive_key(uid: str, master_key: str) -> str:
    return hmac.new(master_key.encode(), uid.encode(), hashlib.sha256).hexdigest()


def key_digest(token: str) -> bytes:
    """What keys are looked up by: a digest of the value, so the lookup's timing says
    nothing about the secret (a dict probe compares the bytes it is given)."""
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).digest()


def rfc3339(ts: _dt.datetime) -> str:
    """`time`'s RFC 3339 as Meilisearch prints it: UTC `Z`, fraction only when non-zero."""
    ts = ts.astimezone(_dt.UTC)
    text = ts.strftime("%Y-%m-%dT%H:%M:%S")
    if ts.microsecond:
        text += f".{ts.microsecond:06d}".rstrip("0")
    return text + "Z"


def parse_rfc3339(text: str) -> _dt.datetime:
    return _dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def is_expired(key: ApiKey, now: _dt.datetime) -> bool:
    return key.expires_at is not None and not now < parse_rfc3339(key.expires_at)


def key_view(key: ApiKey, master_key: str | None) -> dict[str, Any]:
    """`GET /keys/{key}`'s answer (Meilisearch's KeyView, same field order)."""
    return {
        "name": key.name,
        "description": key.description,
        "key": derive_key(key.uid, master_key) if master_key else "",
        "uid": key.uid,
        "actions": key.actions,
        "indexes": key.indexes,
        "expiresAt": key.expires_at,
        "createdAt": key.created_at,
        "updatedAt": key.updated_at,
    }


# The keys 1.50 creates on first start, in its creation order.
DEFAULT_KEYS: tuple[tuple[str, str, list[str]], ...] = (
    ("Default Chat API Key", "Use it to chat and search from the frontend", ["chatCompletions", "search"]),
    (
        "Default Read-Only Admin API Key",
        "Use it to read information across the whole database. Caution! Do not expose this key on a public frontend",
        ["*.get", "keys.get"],
    ),
    (
        "Default Admin API Key",
        "Use it for anything that is not a search operation. Caution! Do not expose it on a public frontend",
        ["*"],
    ),
    ("Default Search API Key", "Use it to search from the frontend", ["search"]),
)


def default_keys(now: _dt.datetime) -> list[ApiKey]:
    """Fresh default keys; each a microsecond after the previous so the newest-first
    listing is the one Meilisearch gives (search first)."""
    out = []
    for i, (name, description, actions) in enumerate(DEFAULT_KEYS):
        ts = rfc3339(now + _dt.timedelta(microseconds=i))
        out.append(ApiKey(uid=str(_uuid.uuid4()), name=name, description=description, actions=actions,
                          indexes=["*"], created_at=ts, updated_at=ts))
    return out


# --- request bodies --------------------------------------------------------------------

_CREATE_FIELDS = ("description", "name", "uid", "actions", "indexes", "expiresAt")
_PATCH_FIELDS = ("description", "name")
_IMMUTABLE = {
    "uid": "immutable_api_key_uid",
    "actions": "immutable_api_key_actions",
    "indexes": "immutable_api_key_indexes",
    "expiresAt": "immutable_api_key_expires_at",
    "createdAt": "immutable_api_key_created_at",
    "updatedAt": "immutable_api_key_updated_at",
}


def _shown(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _type_error(code: str, field: str, value: Any, expected: str) -> MeiliError:
    return MeiliError(
        code, f"Invalid value type at `.{field}`: expected {expected}, but found {json_kind(value)}: `{_shown(value)}`"
    )


def _listed(names: Iterable[str]) -> str:
    return ", ".join(f"`{n}`" for n in names)


def _unknown_field(field: str, accepted: tuple[str, ...]) -> MeiliError:
    hint = ""
    close = _did_you_mean(field, accepted)
    if close:
        hint = f" did you mean `{close}`?"
    return MeiliError("bad_request", f"Unknown field `{field}`:{hint} expected one of {_listed(accepted)}")


def _did_you_mean(field: str, accepted: tuple[str, ...]) -> str | None:
    # deserr suggests the accepted name when only case and `_` differ (`expires_at`).
    norm = field.replace("_", "").lower()
    for a in accepted:
        if a.lower() == norm and a != field:
            return a
    return None


_UUID_CHARS = re.compile(r"[0-9a-fA-F-]")


def _parse_uid(text: str) -> str:
    try:
        return str(_uuid.UUID(text))
    except ValueError:
        pass
    # The `uuid` crate's wording for the first problem it meets.
    for i, c in enumerate(text):
        if not _UUID_CHARS.fullmatch(c):
            raise MeiliError("invalid_api_key_uid", f"Invalid value at `.uid`: invalid character: found `{c}` at {i}")
    raise MeiliError("invalid_api_key_uid", f"Invalid value at `.uid`: invalid length: found {len(text)}")


def _parse_expiry(text: str, now: _dt.datetime) -> str:
    bad = MeiliError(
        "invalid_api_key_expires_at",
        f"Invalid value at `.expiresAt`: `{text}` is not a valid date. It should follow the RFC 3339 format to "
        "represents a date or datetime in the future or specified as a null value. e.g. 'YYYY-MM-DD' or "
        "'YYYY-MM-DD HH:MM:SS'.\n",
    )
    when: _dt.datetime | None = None
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})", text):
        try:
            when = _dt.datetime.fromisoformat(text.upper().replace("Z", "+00:00"))
        except ValueError:
            when = None
    else:
        for fmt in ("%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S", "%Y-%m-%d"):
            try:
                when = _dt.datetime.strptime(text, fmt).replace(tzinfo=_dt.UTC)
                break
            except ValueError:
                continue
    if when is None or not when > now:
        raise bad
    return rfc3339(when)


def decode_create(body: Any, now: _dt.datetime) -> ApiKey:
    """`POST /keys`'s body -> a new key (not yet checked against existing keys)."""
    if not isinstance(body, dict):
        raise MeiliError("bad_request", f"Invalid value type: expected an object, but found {json_kind(body)}: `{_shown(body)}`")
    out: dict[str, Any] = {}
    for field, value in body.items():
        if field not in _CREATE_FIELDS:
            raise _unknown_field(field, _CREATE_FIELDS)
        if field in ("description", "name"):
            if value is not None and not isinstance(value, str):
                raise _type_error(f"invalid_api_key_{field}", field, value, "a string")
            out[field] = value
        elif field == "uid":
            if not isinstance(value, str):
                raise _type_error("invalid_api_key_uid", field, value, "a string")
            out["uid"] = _parse_uid(value)
        elif field == "actions":
            if not isinstance(value, list):
                raise _type_error("invalid_api_key_actions", field, value, "an array")
            for i, a in enumerate(value):
                if not isinstance(a, str):
                    raise MeiliError(
                        "invalid_api_key_actions",
                        f"Invalid value type at `.actions[{i}]`: expected a string, but found {json_kind(a)}: `{_shown(a)}`",
                    )
                if a not in _ACTION_SET:
                    raise MeiliError(
                        "invalid_api_key_actions",
                        f"Unknown value `{a}` at `.actions[{i}]`: expected one of {_listed(ACTIONS)}",
                    )
            out["actions"] = list(dict.fromkeys(value))
        elif field == "indexes":
            if not isinstance(value, list):
                raise _type_error("invalid_api_key_indexes", field, value, "an array")
            for i, p in enumerate(value):
                if not isinstance(p, str):
                    raise MeiliError(
                        "invalid_api_key_indexes",
                        f"Invalid value type at `.indexes[{i}]`: expected a string, but found {json_kind(p)}: `{_shown(p)}`",
                    )
                if not valid_pattern(p):
                    raise MeiliError(
                        "invalid_api_key_indexes",
                        f"Invalid value at `.indexes[{i}]`: `{p}` is not a valid index uid pattern. Index uid patterns "
                        "can be an integer or a string containing only alphanumeric characters, hyphens (-), "
                        "underscores (_), and optionally end with a star (*).",
                    )
            out["indexes"] = list(dict.fromkeys(value))
        else:  # expiresAt
            if value is not None and not isinstance(value, str):
                raise _type_error("invalid_api_key_expires_at", field, value, "a string")
            out["expires_at"] = None if value is None else _parse_expiry(value, now)
    for field, code in (("actions", "missing_api_key_actions"), ("indexes", "missing_api_key_indexes"),
                        ("expires_at", "missing_api_key_expires_at")):
        if field not in out:
            name = "expiresAt" if field == "expires_at" else field
            raise MeiliError(code, f"Missing field `{name}`")
    indexes = out["indexes"]
    if indexes and "*" not in indexes:
        for a in out["actions"]:
            if a in GLOBAL_ACTIONS:
                raise MeiliError(
                    "index_scoped_api_key_with_global_action",
                    f"cannot create index-scoped API key with global action `\"{a}\"`\n  - Hint: remove action "
                    f"`\"{a}\"` from the action list, or remove `indexes` to make the key global",
                )
    ts = rfc3339(now)
    return ApiKey(
        uid=out.get("uid") or str(_uuid.uuid4()),
        name=out.get("name"),
        description=out.get("description"),
        actions=out["actions"],
        indexes=indexes,
        expires_at=out["expires_at"],
        created_at=ts,
        updated_at=ts,
    )


def decode_patch(body: Any) -> dict[str, str | None]:
    """`PATCH /keys/{key}`'s body -> the fields to change (only name and description)."""
    if not isinstance(body, dict):
        raise MeiliError("bad_request", f"Invalid value type: expected an object, but found {json_kind(body)}: `{_shown(body)}`")
    out: dict[str, str | None] = {}
    for field, value in body.items():
        if field in _IMMUTABLE:
            raise MeiliError(_IMMUTABLE[field], f"Immutable field `{field}`: expected one of {_listed(_PATCH_FIELDS)}")
        if field not in _PATCH_FIELDS:
            raise _unknown_field(field, _PATCH_FIELDS)
        if value is not None and not isinstance(value, str):
            raise _type_error(f"invalid_api_key_{field}", field, value, "a string")
        out[field] = value
    return out


# --- what a request may touch ----------------------------------------------------------

class Access:
    """The rights of one authenticated request (Meilisearch's AuthFilter).

    `indexes` None: every index (master key, no master key, or a key on `*`). `rules`:
    a tenant token's search rules, None for an API key.
    """

    __slots__ = ("indexes", "rules")

    def __init__(self, indexes: list[str] | None = None, rules: list[str] | dict[str, Any] | None = None):
        self.indexes = None if indexes is None or "*" in indexes else list(indexes)
        self.rules = rules

    @property
    def is_tenant_token(self) -> bool:
        return self.rules is not None

    def key_allows(self, index: str) -> bool:
        return self.indexes is None or any_matches(self.indexes, index)

    def token_allows(self, index: str) -> bool:
        return self.rules is None or any_matches(self.rules, index)

    def allows(self, index: str) -> bool:
        return self.key_allows(index) and self.token_allows(index)

    @property
    def all_indexes(self) -> bool:
        return self.indexes is None and (self.rules is None or "*" in self.rules)

    def token_indexes(self) -> list[str]:
        return sorted(self.rules) if self.rules is not None else []

    def rule_filter(self, index: str) -> Any:
        """The tenant token's filter for `index` (None: no filter). The most specific
        pattern wins: an exact name over a prefix, a longer prefix over a shorter one."""
        if not isinstance(self.rules, dict):
            return None
        matching = [p for p in self.rules if pattern_matches(p, index)]
        if not matching:
            return None
        best = max(matching, key=lambda p: (not p.endswith("*"), len(p)))
        rule = self.rules[best]
        return rule.get("filter") if isinstance(rule, dict) else None

    def check_index(self, index: str) -> None:
        """Meilisearch's errors for a request naming an index this access cannot touch."""
        if not self.token_allows(index):
            raise MeiliError(
                "invalid_api_key",
                f"The provided tenant token cannot acces the index `{index}`, allowed indexes are {_rust_list(self.token_indexes())}.",
            )
        if not self.key_allows(index):
            if self.is_tenant_token:
                raise MeiliError("invalid_api_key", f"The API key used to generate this tenant token cannot acces the index `{index}`.")
            raise MeiliError(
                "invalid_api_key",
                f"The API key cannot acces the index `{index}`, authorized indexes are {_rust_list(sorted(self.indexes or []))}.",
            )


def _rust_list(items: list[str]) -> str:
    return "[" + ", ".join(json.dumps(i) for i in items) + "]"


def fuse_filters(left: Any, right: Any) -> Any:
    """The request's filter ANDed with a search rule's (Meilisearch's `fuse_filters`)."""
    # The rule's filter is copied: rules are shared by every request with the token.
    right = copy.deepcopy(right) if isinstance(right, list) else right
    if left is None:
        return right
    if right is None:
        return left
    lhs = left if isinstance(left, list) else [left]
    rhs = right if isinstance(right, list) else [right]
    return lhs + rhs


# --- tenant tokens ---------------------------------------------------------------------

def invalid_api_key() -> MeiliError:
    return MeiliError("invalid_api_key", "The provided API key is invalid.")


def _b64(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


@functools.lru_cache(maxsize=4096)  # a browser sends the same token with every search
def token_key_uid(token: str) -> str | None:
    """The `apiKeyUid` of a token that looks like a JWT (unverified), None when it is not
    a JWT at all (then it is tried as an API key, as Meilisearch does). A JWT whose
    claims do not decode is Meilisearch's "Could not decode tenant token" error."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        header = json.loads(_b64(parts[0]))
        raw = _b64(parts[1])
        claims = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(header, dict) or not isinstance(claims, dict):
        return None
    column = len(raw.decode("utf-8", "replace").rstrip())
    if "searchRules" not in claims:
        raise _cannot_decode(f"JSON error: missing field `searchRules` at line 1 column {column}")
    rules = claims["searchRules"]
    if not _valid_rules(rules):
        raise _cannot_decode(f"JSON error: data did not match any variant of untagged enum SearchRules at line 1 column {column}")
    exp = claims.get("exp")
    if exp is not None and (not isinstance(exp, int) or isinstance(exp, bool)):
        raise _cannot_decode(f"JSON error: invalid type: {json_kind(exp)}, expected i64 at line 1 column {column}")
    uid = claims.get("apiKeyUid")
    if uid is None:
        raise _cannot_decode(f"JSON error: missing field `apiKeyUid` at line 1 column {column}")
    try:
        return str(_uuid.UUID(uid if isinstance(uid, str) else ""))
    except ValueError:
        raise _cannot_decode(f"JSON error: invalid apiKeyUid at line 1 column {column}") from None


def _valid_rules(rules: Any) -> bool:
    if isinstance(rules, list):
        return all(isinstance(p, str) and valid_pattern(p) for p in rules)
    if isinstance(rules, dict):
        return all(valid_pattern(p) and (r is None or isinstance(r, dict)) for p, r in rules.items())
    return False


def _cannot_decode(detail: str) -> MeiliError:
    return MeiliError("invalid_api_key", f"Could not decode tenant token, {detail}.")


_ALGORITHMS = ["HS256", "HS384", "HS512"]


def verify_tenant_token(token: str, key: str, now: int) -> tuple[list[str] | dict[str, Any], int | None]:
    """Check a tenant token's signature with its parent key's value; its search rules
    and expiry. Signature errors are Meilisearch's texts (jsonwebtoken's kinds)."""
    rules, exp = _verified(token, key)
    if exp is not None and now > exp:
        raise MeiliError(
            "invalid_api_key", f"Tenant token expired. Was valid up to `{exp}` and we're now `{now}`."
        )
    return rules, exp


@functools.lru_cache(maxsize=4096)  # verified once (~0.2 ms); the expiry is checked each time
def _verified(token: str, key: str) -> tuple[list[str] | dict[str, Any], int | None]:
    import jwt  # PyJWT: HS256/384/512 verification (see pyproject.toml)

    try:
        claims = jwt.decode(
            token,
            key,
            algorithms=_ALGORITHMS,
            options={"verify_exp": False, "verify_aud": False, "verify_iat": False, "verify_nbf": False,
                     "verify_iss": False, "verify_sub": False, "verify_jti": False, "require": []},
        )
    except jwt.InvalidAlgorithmError:
        raise _cannot_decode("InvalidAlgorithm") from None
    except jwt.InvalidSignatureError:
        raise _cannot_decode("InvalidSignature") from None
    except jwt.PyJWTError:
        raise _cannot_decode("InvalidToken") from None
    return claims["searchRules"], claims.get("exp")

