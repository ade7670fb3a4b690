"""Geo points as Meilisearch 1.50 reads them: a document's ``_geo``, the distance milli
measures, and the ``_geoPoint(lat, lng):asc|desc`` sort criterion with its errors.

Shared by the devnode (which sorts and filters) and Miroir (which merges by the
distance). Pure module: no I/O.

- A document's point is ``_geo.lat`` and ``_geo.lng``, each a number or a string that
  parses as one (Meilisearch's own geo test indexes ``"45.4777599"``).
- Distances are geoutils' haversine on a 6,371,000 m sphere, which milli uses both for
  ``_geoRadius`` and for the geo sort (a point 89° away is 9,896,348 m in 1.50's
  snapshot, not the 9,896,361 m of the 6,371,008.8 m mean radius).
- Numbers print as Rust's ``{}`` prints an f64 (``0`` for 0.0, never an exponent): the
  ranking details key ``_geoPoint(0, 0):asc`` and the bad latitude texts use it.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal
from typing import Any

EARTH_RADIUS_M = 6_371_000.0

GEO_POINT = "_geoPoint("

# Rust's `f64::from_str`: an optional sign, then digits with an optional point and
# exponent, or inf/infinity/nan in any case. Python's float() also takes `1_0`.
_RUST_FLOAT = re.compile(r"[+-]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|inf|infinity|nan)", re.IGNORECASE)

# milli's reserved names (`is_reserved_keyword`).
RESERVED = ("_geo", "_geojson", "_geoDistance", "_geoPoint", "_geoRadius", "_geoBoundingBox", "_geoPolygon")

_SORT_WITH_GEO_POINT = (
    "`{}` is a reserved keyword and thus can't be used as a sort expression. "
    "Use the _geoPoint(latitude, longitude) built-in rule to sort on _geo field coordinates."
)


def parse_rust_float(text: str) -> float | None:
    """`text` as Rust's f64 parser reads it (no surrounding space); None when it fails."""
    if not _RUST_FLOAT.fullmatch(text):
        return None
    return float(text)


def rust_f64(x: float) -> str:
    """Rust's `{}` of an f64: `0`, `-0`, `45.4777599`, `0.0000001`, `NaN`, `inf`."""
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    s = format(Decimal(repr(x)), "f")
    if "." in s:
        s = s.rstrip("0").rstrip(".")
    return s


def bad_latitude(lat: float) -> str:
    return f"Bad latitude `{rust_f64(lat)}`. Latitude must be contained between -90 and 90 degrees."


def bad_longitude(lng: float) -> str:
    # Rust's rem_euclid with a positive divisor is Python's %.
    normalized = (lng + 180.0) % 360.0 - 180.0 if math.isfinite(lng) else math.nan
    return (
        f"Bad longitude `{rust_f64(lng)}`. Longitude must be contained between -180 and 180 degrees. "
        f"Hint: try using `{rust_f64(normalized)}` instead."
    )


def _coordinate(v: Any) -> float | None:
    if isinstance(v, bool):
        return None
    if isinstance(v, (int, float)):
        return float(v)
    if isinstance(v, str):
        return parse_rust_float(v.strip())
    return None


def point_of(doc: dict[str, Any]) -> tuple[float, float] | None:
    """The document's `_geo` point (lat, lng), None when it has none."""
    g = doc.get("_geo")
    if type(g) is not dict:
        return None
    lat, lng = _coordinate(g.get("lat")), _coordinate(g.get("lng"))
    if lat is None or lng is None:
        return None
    return lat, lng


def distance_m(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Haversine distance in meters between two (lat, lng) points, as geoutils computes it."""
    p1, p2 = math.radians(a[0]), math.radians(b[0])
    dp, dl = p2 - p1, math.radians(b[1] - a[1])
    h = (1.0 - math.cos(dp)) / 2.0 + math.cos(p1) * math.cos(p2) * (1.0 - math.cos(dl)) / 2.0
    return 2.0 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(max(0.0, h))))


class SortError(ValueError):
    """A sort criterion milli's `AscDesc` parser refuses; the text is 1.50's."""


def parse_sort_member(member: str) -> tuple[float, float] | None:
    """The point of a `_geoPoint(lat, lng)` member, None for a plain field name.

    Raises SortError with 1.50's text for a malformed geo point or a reserved name."""
    if member.startswith(GEO_POINT) and member.endswith(")"):
        lat_text, comma, lng_text = member[len(GEO_POINT) : -1].partition(",")
        lat = parse_rust_float(lat_text.strip()) if comma else None
        lng = parse_rust_float(lng_text.strip()) if comma else None
        if lat is None or lng is None:
            raise SortError(_bad_geo_point_usage(member))
        if not -90.0 <= lat <= 90.0:
            raise SortError(bad_latitude(lat))
        if not -180.0 <= lng <= 180.0:
            raise SortError(bad_longitude(lng))
        return lat, lng
    if member in RESERVED or member.startswith(("_geoRadius(", "_geoBoundingBox(", "_geo(", "_geoDistance(")):
        if member.startswith("_geoPoint"):
            raise SortError(_bad_geo_point_usage(member))
        if member == "_geo":
            raise SortError(_SORT_WITH_GEO_POINT.format("_geo"))
        for name in ("_geoRadius", "_geoBoundingBox"):
            if member.startswith(name):
                raise SortError(_SORT_WITH_GEO_POINT.format(name))
        raise SortError(f"`{member}` is a reserved keyword and thus can't be used as a sort expression.")
    return None


def _bad_geo_point_usage(member: str) -> str:
    return (
        "Invalid syntax for the geo parameter: expected expression formated like "
        f"`_geoPoint(latitude, longitude)` and ending by `:asc` or `:desc`, found `{member}`."
    )


def details_key(point: tuple[float, float], ascending: bool) -> str:
    """The `_rankingScoreDetails` key of a geo sort criterion (milli prints the point)."""
    return f"_geoPoint({rust_f64(point[0])}, {rust_f64(point[1])}):{'asc' if ascending else 'desc'}"


# The point `_geoDistance` is measured from: the first sort criterion 1.50's pattern
# finds (digits, points and minus signs only; `1e3` is sorted by but not measured).
_DISTANCE_FROM = re.compile(r"_geoPoint\(\s*([0-9.\-]+)\s*,\s*([0-9.\-]+)\s*\)")


def distance_origin(sort: list[str] | None) -> tuple[float, float] | None:
    for criterion in sort or ():
        m = _DISTANCE_FROM.search(criterion)
        if m:
            lat, lng = parse_rust_float(m.group(1)), parse_rust_float(m.group(2))
            if lat is not None and lng is not None:
                return lat, lng
    return None


def geo_distance(origin: tuple[float, float], hit: dict[str, Any]) -> int | None:
    """`_geoDistance` of a hit as 1.50 adds it: read from the hit's own (retrieved) `_geo`,
    rounded to whole meters; None when the hit shows no point."""
    pt = point_of(hit)
    if pt is None:
        return None
    return math.floor(distance_m(origin, pt) + 0.5)


# ---------------------------------------------------------------- `_geojson` shapes
#
# `_geoPolygon` (and `_geoRadius` / `_geoBoundingBox` on `_geojson`) select the shapes
# that meet the query area. milli indexes shapes in cells of the sphere, where the
# area's edges are great circles: a box's top edge bows toward the pole (the box over
# middle Europe whose top is at 50.54° reaches the Netherlands in 1.50's snapshot) and an
# edge from 152° to -148° crosses the antimeridian. Here the area's edges are followed
# along their great circles in small steps, with longitudes kept continuous, and shapes
# are compared in the plane of (lng, lat), also shifted by a turn when the area passes
# ±180°.

Ring = list[tuple[float, float]]  # (lng, lat) vertices, closing edge implied


def _parts(shape: Any) -> tuple[list[tuple[float, float]], list[tuple[tuple[float, float], tuple[float, float]]], list[list[Ring]]]:
    """(points, segments, polygons as [exterior, holes...]) of a GeoJSON value."""
    points: list[tuple[float, float]] = []
    segments: list[tuple[tuple[float, float], tuple[float, float]]] = []
    polygons: list[list[Ring]] = []

    def pt(c: Any) -> tuple[float, float] | None:
        if isinstance(c, list) and len(c) >= 2 and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in c[:2]):
            return float(c[0]), float(c[1])
        return None

    def line(cs: Any, closed: bool) -> Ring:
        ring = [p for p in (pt(c) for c in (cs if isinstance(cs, list) else [])) if p is not None]
        points.extend(ring)
        pairs = zip(ring, ring[1:] + ring[:1] if closed else ring[1:])
        segments.extend(pairs)
        return ring

    def walk(g: Any) -> None:
        if not isinstance(g, dict):
            return
        kind, cs = g.get("type"), g.get("coordinates")
        if kind == "Feature":
            walk(g.get("geometry"))
        elif kind == "FeatureCollection":
            for f in g.get("features") or []:
                walk(f)
        elif kind == "GeometryCollection":
            for sub in g.get("geometries") or []:
                walk(sub)
        elif kind == "Point":
            p = pt(cs)
            if p is not None:
                points.append(p)
        elif kind == "MultiPoint":
            points.extend(p for p in (pt(c) for c in cs or []) if p is not None)
        elif kind == "LineString":
            line(cs, closed=False)
        elif kind == "MultiLineString":
            for ls in cs or []:
                line(ls, closed=False)
        elif kind == "Polygon":
            polygons.append([line(r, closed=True) for r in cs or []])
        elif kind == "MultiPolygon":
            for poly in cs or []:
                polygons.append([line(r, closed=True) for r in poly or []])

    walk(shape)
    return points, segments, polygons


def _in_ring(p: tuple[float, float], ring: Ring) -> bool:
    x, y = p
    inside = False
    n = len(ring)
    for i in range(n):
        (x1, y1), (x2, y2) = ring[i], ring[(i + 1) % n]
        if (y1 > y) != (y2 > y) and x < x1 + (y - y1) * (x2 - x1) / (y2 - y1):
            inside = not inside
    return inside


def _in_polygon(p: tuple[float, float], rings: list[Ring]) -> bool:
    return bool(rings) and _in_ring(p, rings[0]) and not any(_in_ring(p, h) for h in rings[1:])


def _cross(o: tuple[float, float], a: tuple[float, float], b: tuple[float, float]) -> float:
    return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])


def _segments_meet(p1: tuple[float, float], p2: tuple[float, float], q1: tuple[float, float], q2: tuple[float, float]) -> bool:
    d1, d2 = _cross(q1, q2, p1), _cross(q1, q2, p2)
    d3, d4 = _cross(p1, p2, q1), _cross(p1, p2, q2)
    if ((d1 > 0) != (d2 > 0)) and ((d3 > 0) != (d4 > 0)) and d1 and d2 and d3 and d4:
        return True

    def on(a: tuple[float, float], b: tuple[float, float], c: tuple[float, float], d: float) -> bool:
        return d == 0 and min(a[0], b[0]) <= c[0] <= max(a[0], b[0]) and min(a[1], b[1]) <= c[1] <= max(a[1], b[1])

    return on(q1, q2, p1, d1) or on(q1, q2, p2, d2) or on(p1, p2, q1, d3) or on(p1, p2, q2, d4)


def _unit(p: tuple[float, float]) -> tuple[float, float, float]:
    lng, lat = math.radians(p[0]), math.radians(p[1])
    return math.cos(lat) * math.cos(lng), math.cos(lat) * math.sin(lng), math.sin(lat)


_STEP = math.radians(0.25)


def _great_circle_ring(area: Ring) -> Ring:
    """`area` with points every quarter degree along each edge's great circle, longitudes
    unwrapped (an edge from 152 to -148 goes on to 212)."""
    out: Ring = []
    n = len(area)
    for i in range(n):
        a, b = area[i], area[(i + 1) % n]
        ua, ub = _unit(a), _unit(b)
        dot = max(-1.0, min(1.0, sum(x * y for x, y in zip(ua, ub))))
        angle = math.acos(dot)
        steps = max(1, math.ceil(angle / _STEP)) if angle > 1e-12 else 1
        for k in range(steps):
            t = k / steps
            if angle > 1e-12 and k:
                sa, sb = math.sin((1 - t) * angle), math.sin(t * angle)
                v = [(sa * x + sb * y) / math.sin(angle) for x, y in zip(ua, ub)]
                p = (math.degrees(math.atan2(v[1], v[0])), math.degrees(math.asin(max(-1.0, min(1.0, v[2])))))
            else:
                p = a
            if out:
                lng = p[0]
                while lng - out[-1][0] > 180.0:
                    lng -= 360.0
                while lng - out[-1][0] < -180.0:
                    lng += 360.0
                p = (lng, p[1])
            out.append(p)
    return out


def shape_intersects(shape: Any, area: Ring) -> bool:
    """Whether the GeoJSON `shape` meets the polygon `area` ((lng, lat) vertices)."""
    ring = _great_circle_ring(area)
    lo, hi = min(p[0] for p in ring), max(p[0] for p in ring)
    shifts = [0.0] + ([360.0] if lo < -180.0 else []) + ([-360.0] if hi > 180.0 else [])
    points, segments, polygons = _parts(shape)
    for shift in shifts:
        moved = [(x - shift, y) for x, y in ring] if shift else ring
        if _meets(points, segments, polygons, moved):
            return True
    return False


Point = tuple[float, float]


def _meets(points: list[Point], segments: list[tuple[Point, Point]], polygons: list[list[Ring]], area: Ring) -> bool:
    lo_x, hi_x = min(p[0] for p in area), max(p[0] for p in area)
    lo_y, hi_y = min(p[1] for p in area), max(p[1] for p in area)

    def near(p: tuple[float, float]) -> bool:
        return lo_x <= p[0] <= hi_x and lo_y <= p[1] <= hi_y

    if any(near(p) and _in_ring(p, area) for p in points):
        return True
    edges = list(zip(area, area[1:] + area[:1]))
    for a, b in segments:
        if max(a[0], b[0]) < lo_x or min(a[0], b[0]) > hi_x or max(a[1], b[1]) < lo_y or min(a[1], b[1]) > hi_y:
            continue
        if any(_segments_meet(a, b, c, d) for c, d in edges):
            return True
    return any(_in_polygon(area[0], rings) for rings in polygons)


def circle(origin: tuple[float, float], radius: float, resolution: int = 125) -> Ring:
    """The (lng, lat) ring of `resolution` points at `radius` meters around `origin`."""
    lat1, lng1 = math.radians(origin[0]), math.radians(origin[1])
    d = radius / EARTH_RADIUS_M
    ring = []
    for i in range(resolution):
        bearing = 2 * math.pi * i / resolution
        lat2 = math.asin(math.sin(lat1) * math.cos(d) + math.cos(lat1) * math.sin(d) * math.cos(bearing))
        lng2 = lng1 + math.atan2(
            math.sin(bearing) * math.sin(d) * math.cos(lat1), math.cos(d) - math.sin(lat1) * math.sin(lat2)
        )
        ring.append((math.degrees(lng2), math.degrees(lat2)))
    return ring


def shape_within_distance(shape: Any, origin: tuple[float, float], radius: float, resolution: int = 125) -> bool:
    """Whether the GeoJSON `shape` meets the disc of `radius` meters around `origin`."""
    points, _segments, polygons = _parts(shape)
    if any(distance_m(origin, (p[1], p[0])) <= radius for p in points):
        return True
    if any(_in_polygon((origin[1], origin[0]), rings) for rings in polygons):
        return True
    return shape_intersects(shape, circle(origin, radius, resolution))
