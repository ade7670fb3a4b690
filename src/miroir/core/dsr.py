"""1.50's dynamic search rules (`/dynamic-search-rules`): validation, updates, listing.

Pure module. Miroir owns the rules (journaled, core/model.py `dynamic_search_rules`);
nodes never see them. A rule is kept as its 1.50 view (a JSON object, keys in 1.50's
order). Validation follows 1.50's deserr structs (meilisearch-types
`dynamic_search_rules.rs`): unknown fields are `bad_request`, a value of the wrong kind
is the field's `invalid_dynamic_search_rule_*` code, `null` resets a field.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import msgspec

from miroir.core.errors import MeiliError, type_error, type_text

FEATURE_DISCUSSION = "https://github.com/orgs/meilisearch/discussions/884"
UPDATE_FIELDS = ("description", "precedence", "active", "conditions", "actions")
LIST_FIELDS = ("offset", "limit", "filter")
LIST_FILTER_FIELDS = ("query", "active")
DEFAULT_LIMIT = 20
U64_MAX = 2**64 - 1
U32_MAX = 2**32 - 1
_EPOCH = datetime.min.replace(tzinfo=UTC)
_WORD = re.compile(r"\w+", re.UNICODE)


def feature_not_enabled(action: str) -> MeiliError:
    return MeiliError(
        "feature_not_enabled",
        f"{action} requires enabling the `dynamic search rules` experimental feature. See {FEATURE_DISCUSSION}",
    )


def rule_not_found(uid: str) -> MeiliError:
    return MeiliError("dynamic_search_rule_not_found", f"Dynamic search rule `{uid}` not found.", status=404)


def _shown(value: Any) -> str:
    return msgspec.json.encode(value).decode()


def _unknown(key: str, where: str, expected: tuple[str, ...], code: str = "bad_request") -> MeiliError:
    listed = ", ".join(f"`{k}`" for k in expected)
    at = f" inside `{where}`" if where else ""
    return MeiliError(code, f"Unknown field `{key}`{at}: expected one of {listed}")


def _object(value: Any, where: str, code: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        if where:
            raise type_error(code, where, value, "an object")
        raise MeiliError(code, type_text("", value, "an object"))
    return value


def _uint(value: Any, where: str, code: str, top: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0 or value > top:
        raise type_error(code, where, value, "a positive integer")
    return value


def _rfc3339(value: Any, where: str, code: str) -> str:
    if not isinstance(value, str):
        raise type_error(code, where, value, "a string")
    ok = bool(re.fullmatch(r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})", value))
    if ok:
        try:
            datetime.fromisoformat(value.replace("z", "Z").replace("Z", "+00:00"))
        except ValueError:
            ok = False
    if not ok:
        # 1.50's ParseOffsetDateTimeError text (its trailing newline included).
        raise MeiliError(
            code,
            f"Invalid value at `{where}`: `{value}` is not a valid date. It should follow the RFC 3339 format to "
            "represents a date or datetime in the future or specified as a null value. e.g. 'YYYY-MM-DD' or "
            "'YYYY-MM-DD HH:MM:SS'.\n",
        )
    return value


def _canonical(value: str) -> str:
    """The datetime as 1.50 writes it back (the `time` crate's RFC 3339: `T` and `Z` in
    capitals, a fraction without trailing zeros)."""
    value = value[:10] + "T" + value[11:]
    if value[-1] in "zZ":
        value = value[:-1] + "Z"
    m = re.match(r"^(.{19})\.(\d+)(.*)$", value)
    if m:
        frac = m.group(2).rstrip("0")
        value = m.group(1) + (f".{frac}" if frac else "") + m.group(3)
    return value


def _display(value: str) -> str:
    """The `time` crate's Display of a datetime (1.50's start/end error text):
    `2025-11-28 0:00:00.0 +00:00:00`."""
    moment = _instant(value)
    frac = f"{moment.microsecond:06d}".rstrip("0") or "0"
    offset = moment.utcoffset()
    total = int(offset.total_seconds()) if offset is not None else 0
    sign = "-" if total < 0 else "+"
    total = abs(total)
    return (
        f"{moment:%Y-%m-%d} {moment.hour}:{moment:%M:%S}.{frac} "
        f"{sign}{total // 3600:02d}:{total % 3600 // 60:02d}:{total % 60:02d}"
    )


def _instant(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("z", "Z").replace("Z", "+00:00").replace(" ", "T").replace("t", "T"))


def _conditions(value: Any) -> dict[str, Any]:
    code = "invalid_dynamic_search_rule_conditions"
    body = _object(value, ".conditions", code)
    out: dict[str, Any] = {}
    for key in body:
        if key not in ("time", "query", "filter"):
            raise _unknown(key, ".conditions", ("time", "query", "filter"), code)
    time = body.get("time")
    if time is not None:
        time = _object(time, ".conditions.time", code)
        t: dict[str, str] = {}
        for key, v in time.items():
            if key not in ("start", "end"):
                raise _unknown(key, ".conditions.time", ("start", "end"), code)
            if v is not None:
                t[key] = _canonical(_rfc3339(v, f".conditions.time.{key}", code))
        if "start" in t and "end" in t and _instant(t["start"]) > _instant(t["end"]):
            raise MeiliError(
                "bad_request",
                f"Invalid value at `.conditions.time`: `end` (`{_display(t['end'])}`) should be later than "
                f"`start` (`{_display(t['start'])}`)",
            )
        out["time"] = {k: t[k] for k in ("start", "end") if k in t}
    query = body.get("query")
    if query is not None:
        query = _object(query, ".conditions.query", code)
        q: dict[str, Any] = {}
        for key, v in query.items():
            if key not in ("isEmpty", "words"):
                raise _unknown(key, ".conditions.query", ("isEmpty", "words"), code)
            if v is None:
                continue
            if key == "isEmpty" and not isinstance(v, bool):
                raise type_error(code, ".conditions.query.isEmpty", v, "a boolean")
            if key == "words" and not isinstance(v, str):
                raise type_error(code, ".conditions.query.words", v, "a string")
            q[key] = v
        if q.get("isEmpty") is True and "words" in q:
            raise MeiliError(
                "bad_request", "Invalid value at `.conditions.query`: either `isEmpty` or `words` can be used, not both at once"
            )
        out["query"] = {k: q[k] for k in ("isEmpty", "words") if k in q}
    filt = body.get("filter")
    if filt is not None:
        filt = _object(filt, ".conditions.filter", code)
        for key in filt:
            if key != "values":
                raise _unknown(key, ".conditions.filter", ("values",), code)
        values = filt.get("values") or {}
        values = _object(values, ".conditions.filter.values", code)
        out["filter"] = {"values": {k: values[k] for k in sorted(values)}}
    return out


def _actions(value: Any) -> list[dict[str, Any]]:
    code = "invalid_dynamic_search_rule_actions"
    if not isinstance(value, list):
        raise type_error(code, ".actions", value, "an array")
    out = []
    for i, item in enumerate(value):
        at = f".actions[{i}]"
        item = _object(item, at, code)
        for key in item:
            if key not in ("selector", "action"):
                raise _unknown(key, at, ("selector", "action"), code)
        for key in ("selector", "action"):
            if key not in item:
                raise MeiliError(code, f"Missing field `{key}` inside `{at}`")
        sel = _object(item["selector"], f"{at}.selector", code)
        for key in sel:
            if key not in ("indexUid", "id"):
                raise _unknown(key, f"{at}.selector", ("indexUid", "id"), code)
        if "id" not in sel:
            raise MeiliError(code, f"Missing field `id` inside `{at}.selector`")
        if not isinstance(sel["id"], str):
            raise type_error(code, f"{at}.selector.id", sel["id"], "a string")
        selector: dict[str, Any] = {}
        if sel.get("indexUid") is not None:
            if not isinstance(sel["indexUid"], str):
                raise type_error(code, f"{at}.selector.indexUid", sel["indexUid"], "a string")
            selector["indexUid"] = sel["indexUid"]
        selector["id"] = sel["id"]
        act = _object(item["action"], f"{at}.action", code)
        if act.get("type") != "pin":
            shown = act.get("type")
            raise MeiliError(code, f"Invalid value at `{at}.action`: unknown action type `{shown}`, expected `pin`")
        for key in act:
            if key not in ("type", "position"):
                raise _unknown(key, f"{at}.action", ("position",), code)
        if "position" not in act:
            raise MeiliError(code, f"Missing field `position` inside `{at}.action`")
        position = _uint(act["position"], f"{at}.action.position", code, U32_MAX)
        out.append({"selector": selector, "action": {"type": "pin", "position": position}})
    return out


def validate_update(body: Any) -> dict[str, Any]:
    """A `PATCH /dynamic-search-rules/{uid}` body, checked; `null` values mean reset."""
    body = _object(body, "", "bad_request")
    out: dict[str, Any] = {}
    for key, value in body.items():
        if key not in UPDATE_FIELDS:
            raise _unknown(key, "", UPDATE_FIELDS)
        if value is None:
            out[key] = None
        elif key == "description":
            if not isinstance(value, str):
                raise type_error("invalid_dynamic_search_rule_description", ".description", value, "a string")
            out[key] = value
        elif key == "precedence":
            out[key] = _uint(value, ".precedence", "invalid_dynamic_search_rule_priority", U64_MAX)
        elif key == "active":
            if not isinstance(value, bool):
                raise type_error("invalid_dynamic_search_rule_active", ".active", value, "a boolean")
            out[key] = value
        elif key == "conditions":
            out[key] = _conditions(value)
        else:
            out[key] = _actions(value)
    return {k: out[k] for k in UPDATE_FIELDS if k in out}


def apply_update(current: Mapping[str, Any] | None, uid: str, update: Mapping[str, Any], now: str) -> dict[str, Any]:
    """The rule after `update` (1.50's `apply_update`: absent keeps, null resets), as its view."""
    old = dict(current) if current is not None else {"uid": uid, "active": True, "conditions": {}, "actions": []}

    def pick(key: str, reset: Any) -> Any:
        if key not in update:
            return old.get(key, reset)
        return reset if update[key] is None else update[key]

    rule: dict[str, Any] = {"uid": uid}
    description = pick("description", None)
    if description is not None:
        rule["description"] = description
    rule["lastUpdatedAt"] = now
    precedence = pick("precedence", None)
    if precedence is not None:
        rule["precedence"] = precedence
    rule["active"] = pick("active", True)
    rule["conditions"] = pick("conditions", {})
    rule["actions"] = pick("actions", [])
    return rule


def update_details(update: Mapping[str, Any]) -> dict[str, Any]:
    return {"rule": dict(update), "updatedRules": 1}


def validate_list(body: Any) -> tuple[int, int, str | None, bool | None]:
    """`POST /dynamic-search-rules`: offset, limit, filter.query, filter.active."""
    body = _object(body, "", "bad_request")
    offset, limit, query, active = 0, DEFAULT_LIMIT, None, None
    for key, value in body.items():
        if key not in LIST_FIELDS:
            raise _unknown(key, "", LIST_FIELDS)
        if key == "offset" and value is not None:
            offset = _uint(value, ".offset", "invalid_dynamic_search_rule_offset", U64_MAX)
        elif key == "limit" and value is not None:
            limit = _uint(value, ".limit", "invalid_dynamic_search_rule_limit", U64_MAX)
        elif key == "filter" and value is not None:
            code = "invalid_dynamic_search_rule_filter"
            filt = _object(value, ".filter", code)
            for fkey, fvalue in filt.items():
                if fkey not in LIST_FILTER_FIELDS:
                    raise _unknown(fkey, ".filter", LIST_FILTER_FIELDS, code)
                if fvalue is None:
                    continue
                if fkey == "query":
                    if not isinstance(fvalue, str):
                        raise type_error("invalid_dynamic_search_rule_filter_query", ".filter.query", fvalue, "a string")
                    query = fvalue
                else:
                    if not isinstance(fvalue, bool):
                        raise type_error("invalid_dynamic_search_rule_filter_active", ".filter.active", fvalue, "a boolean")
                    active = fvalue
    return offset, limit, query, active


def _words(text: str) -> list[str]:
    return [w.lower() for w in _WORD.findall(text)]


def _match_depth(rule: Mapping[str, Any], query_words: list[str]) -> int:
    """How many leading query words the rule's description and `words` condition hold
    (1.50 searches them with the default `last` matching strategy: the last word is a
    prefix, words are dropped from the end). 0: no match."""
    text = (rule.get("description") or "") + " " + ((rule.get("conditions") or {}).get("query") or {}).get("words", "")
    have = set(_words(text))
    depth = 0
    for i, word in enumerate(query_words):
        last = i == len(query_words) - 1
        found = word in have or (last and any(h.startswith(word) for h in have))
        if not found:
            break
        depth = i + 1
    return depth


def list_rules(
    rules: Mapping[str, Mapping[str, Any]], offset: int, limit: int, query: str | None, active: bool | None
) -> dict[str, Any]:
    """1.50's listing: matching rules, most recently updated first (its sort on
    `lastUpdatedAt` desc; with a query, better word matches first), then paginated."""
    order = {uid: i for i, uid in enumerate(rules)}
    chosen = [r for r in rules.values() if active is None or bool(r.get("active", True)) == active]
    words = _words(query) if query else []
    depth: dict[str, int] = {}
    if words:
        depth = {r["uid"]: _match_depth(r, words) for r in chosen}
        chosen = [r for r in chosen if depth[r["uid"]] > 0]
    # Newest first; same instant: the rule created first comes first (1.50's internal id).
    chosen.sort(key=lambda r: order[r["uid"]])
    chosen.sort(key=lambda r: _instant(r["lastUpdatedAt"]) if r.get("lastUpdatedAt") else _EPOCH, reverse=True)
    chosen.sort(key=lambda r: -depth.get(r["uid"], 0))
    return {"results": [dict(r) for r in chosen[offset : offset + limit]], "offset": offset, "limit": limit, "total": len(chosen)}
