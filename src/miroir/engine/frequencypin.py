"""`matchingStrategy: "frequency"` searches: the index-wide term frequencies learnt from
the shards, and the strategy each node is sent so that it answers as one node holding
every document would (core/frequency.py says when a strategy can pin that decision)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from miroir.core import frequency
from miroir.core.errors import MeiliError
from miroir.core.model import IndexMeta
from miroir.core.searchplan import SearchRequest, subquery_for_shards
from miroir.engine.cluster import Cluster
from miroir.engine.scatter import scatter
from miroir.net.node import NodeClient


@dataclass
class FrequencyPlan:
    uid: str
    words: list[str]
    prefix: bool
    order: list[list[int]]  # the index-wide removal groups
    search_on: list[str] | None
    splittable: bool  # answer_split may rebuild a node's answer
    primary_key: str | None
    placeholder: str | None  # frequency.PLACEHOLDER when no document holds it
    local: dict[str, list[list[int]]] = field(default_factory=dict)  # node id -> its own groups


def _count_body(q: str, search_on: list[str] | None) -> dict[str, Any]:
    body: dict[str, Any] = {"q": q, "limit": 0, "matchingStrategy": "all"}
    if search_on is not None:
        body["attributesToSearchOn"] = search_on
    return body


async def _counts(client: NodeClient, uid: str, bodies: list[dict], timeout_s: float) -> list[int]:
    """Each body's total on one node, in one multi-search."""
    got = await client.call("POST", "/multi-search", json={"queries": [{"indexUid": uid, **b} for b in bodies]},
                            timeout_s=timeout_s)
    return [int(r.get("estimatedTotalHits") or 0) for r in got["results"]]


async def plan(
    cluster: Cluster, meta: IndexMeta, uid: str, req: SearchRequest, settings: Mapping[str, Any], distinct: Any,
    search_on: list[str] | None, affinity: int, ranking_rules: list[str],
) -> FrequencyPlan | None:
    """The index-wide removal order of `req`'s terms, and each asked node's own, or None
    when the terms cannot be named or some shard could not be counted."""
    words = frequency.terms(req.q, settings, locales=req.locales, distinct=distinct)
    if words is None or req.q is None:
        return None
    prefix = frequency.prefix_last(req.q)
    bodies = [_count_body(frequency.term_query(words, i, prefix), search_on) for i in range(len(words))]
    bodies.append(_count_body(frequency.PLACEHOLDER + " ", None))

    async def send(client: NodeClient, shards: list[int] | None, timeout_s: float) -> list[int]:
        # the node's shards (summed: the index's counts), then its whole index (its own order)
        own = [subquery_for_shards(b, None, shards) for b in bodies]
        return await _counts(client, uid, own + bodies, timeout_s)

    try:
        gathered = await scatter(cluster, meta, send, hedge=False, affinity=affinity)
    except MeiliError:
        return None  # the search itself reports it
    if gathered.unavailable:
        return None
    n = len(words)
    totals = [0] * (n + 1)
    local: dict[str, list[list[int]]] = {}
    for part in gathered.parts:
        counts = part.result
        for i in range(n + 1):
            totals[i] += counts[i]
        local[part.node_id] = frequency.groups(counts[n + 1:2 * n + 1])
    placeholder = frequency.PLACEHOLDER if totals[n] == 0 else None
    totals = totals[:n]
    order = frequency.groups(totals)
    splittable = (
        bool(ranking_rules) and ranking_rules[0] == "words" and all(len(g) == 1 for g in order[:-1])
        and req.ranking_score_threshold is None and meta.primary_key is not None
    )
    return FrequencyPlan(uid, words, prefix, order, search_on, splittable, meta.primary_key, placeholder, local)


async def strategy(client: NodeClient, fp: FrequencyPlan, timeout_s: float) -> str:
    """The `matchingStrategy` to send this node: one that gives the index-wide decision's
    answer, else `split` (ask `answer_split`) when the plan allows it, else `frequency`
    (the node decides alone)."""
    local = fp.local.get(client.node_id)
    if local is None:  # a node the counting round did not ask (another copy answers now)
        bodies = [_count_body(frequency.term_query(fp.words, i, fp.prefix), fp.search_on) for i in range(len(fp.words))]
        try:
            local = fp.local[client.node_id] = frequency.groups(await _counts(client, fp.uid, bodies, timeout_s))
        except MeiliError:
            return "frequency"  # the node's own answer to the search reports it
    chosen = frequency.pin(fp.order, local)
    if chosen is not None:
        return chosen
    return "split" if fp.splittable else "frequency"


def _window(body: dict) -> str:
    """The key holding the node's window (sub-queries ask from the first hit)."""
    return "hitsPerPage" if "hitsPerPage" in body else "limit"


async def answer_split(client: NodeClient, fp: FrequencyPlan, body: dict, path: str, timeout_s: float) -> dict:
    """The node's answer under the index-wide decision when no strategy can pin it
    (core/frequency.py): its `words` buckets one by one, each the query of the terms the
    bucket keeps searched with `last` and cut to the documents holding them all, the
    documents of the better buckets (listed whole, as the window was not filled) left
    out; then the decision's candidates (the last group's terms, `all`) for the totals
    and facets."""
    key = _window(body)
    wanted = int(body.get(key, 20))
    pk = fp.primary_key
    assert pk is not None
    fields = body.get("attributesToRetrieve")
    add_pk = isinstance(fields, list) and "*" not in fields and pk not in fields
    shown: list[Any] = fields if isinstance(fields, list) else []
    keep_details = body.get("showRankingScoreDetails") is True
    n = len(fp.words)
    kept = list(range(n))
    hits: list[dict] = []
    seen: set[str] = set()
    for j in range(len(fp.order)):
        if j:
            kept = [i for i in kept if i not in fp.order[j - 1]]
        if len(hits) >= wanted:
            break
        sub = {**body, "q": frequency.kept_query(fp.words, kept, fp.prefix, fp.placeholder), "matchingStrategy": "last",
               key: wanted + len(seen), "showRankingScoreDetails": True}
        sub.pop("facets", None)
        if add_pk:
            sub["attributesToRetrieve"] = [*shown, pk]
        got = await client.call("POST", path, json=sub, timeout_s=timeout_s)
        for h in got.get("hits") or ():
            if not frequency.matches_every_term(h, len(kept)):
                break  # `words` first: the rest dropped some of these terms
            ident = str(h.get(pk))
            if ident in seen:
                continue
            seen.add(ident)
            if len(hits) < wanted:
                if len(kept) < n:
                    frequency.reweighed(h, len(kept), n)
                if add_pk:
                    h.pop(pk, None)
                if not keep_details:
                    h.pop("_rankingScoreDetails", None)
                hits.append(h)
    final = {**body, "q": frequency.kept_query(fp.words, fp.order[-1], fp.prefix), "matchingStrategy": "all", key: 0}
    answer = await client.call("POST", path, json=final, timeout_s=timeout_s)
    answer["hits"] = hits
    return answer
