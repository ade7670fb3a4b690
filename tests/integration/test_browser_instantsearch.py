"""A browser on another origin searches Miroir with the default search key and with a
tenant token: InstantSearch + `@meilisearch/instant-meilisearch` in headless Chromium.

`miroir dev --master-key` (real process) holds 2,000 Debian packages; a static server on
another port serves `tests/support/data/instantsearch_page.html` and the npm packages (installed
by this test into a cache dir, `MIROIR_NPM_CACHE` or `~/.cache/miroir-tests/npm`).
Chromium (Debian's `chromium`; installed with apt-get when missing and possible, else
the test is skipped saying why) loads the page with `--dump-dom` under a virtual-time
budget; the page types a query, clicks a section, goes to page 2 and searches the
section list, and writes what it saw into `#report`. With the default search key the
hits are highlighted, the refinement and the page apply, the facet search narrows the
list and no error reached the console; with a tenant token whose rule is one section,
only that section is ever shown.
"""

from __future__ import annotations

import contextlib
import functools
import html
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlencode

import httpx
import jwt
import pytest

from tests.integration.test_devmode import Dev
from tests.support.corpus import CORPUS, read_docs
from tests.support.paths import DATA
from tests.support.serving import serving

MASTER = "browser-master-key-0123456789abcdef"
INDEX = "packages"
NPM_PACKAGES = ("@meilisearch/instant-meilisearch@0.31.3", "instantsearch.js@4.118.1")
PAGE = DATA / "instantsearch_page.html"
CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", "--virtual-time-budget=60000", "--enable-logging=stderr", "--v=0",
)
BROWSER_TIMEOUT_S = 60
TENANT_SECTION = "net"

pytestmark = pytest.mark.timeout(300)


def _chromium() -> str:
    for name in ("chromium", "chromium-browser"):
        if found := shutil.which(name):
            return found
    if shutil.which("apt-get") is None or os.geteuid() != 0:
        pytest.skip("no `chromium` and it cannot be installed here (needs apt-get as root): apt-get install -y chromium")
    proc = subprocess.run(["apt-get", "install", "-y", "chromium"], capture_output=True, text=True, timeout=600)
    if proc.returncode != 0 or shutil.which("chromium") is None:
        pytest.skip(f"`apt-get install -y chromium` failed: {proc.stderr.strip()[-300:]}")
    return shutil.which("chromium")  # type: ignore[return-value]


def _npm_packages(
    packages: tuple[str, ...] = NPM_PACKAGES,
    wanted: str = "@meilisearch/instant-meilisearch/dist/index.js",
    subdir: str = "",
    why: str = "the page needs instant-meilisearch and instantsearch.js from npm",
) -> Path:
    # Each package set gets its own folder: `npm install` prunes what it was not asked for.
    cache = Path(os.environ.get("MIROIR_NPM_CACHE") or Path.home() / ".cache" / "miroir-tests" / "npm") / subdir
    wanted_file = cache / "node_modules" / wanted
    marker = cache / "installed.txt"
    if wanted_file.exists() and marker.exists() and marker.read_text() == " ".join(packages):
        return cache
    if shutil.which("npm") is None:
        pytest.skip(f"npm is not installed: {why}")
    cache.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(
        ["npm", "install", "--no-audit", "--no-fund", "--no-save", "--prefix", str(cache), *packages],
        capture_output=True, text=True, timeout=240,
    )
    if proc.returncode != 0 or not wanted_file.exists():
        pytest.skip(f"npm install failed (is the npm registry reachable?): {proc.stderr.strip()[-300:]}")
    marker.write_text(" ".join(packages))
    return cache


@contextlib.contextmanager
def _static_server(root: Path):
    handler = functools.partial(_Quiet, directory=str(root))
    with serving(ThreadingHTTPServer(("127.0.0.1", 0), handler), name="static") as url:
        yield url


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # the test's output stays readable
        pass


def _browse(chromium: str, url: str, profile: Path) -> dict:
    proc = subprocess.run(
        [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--dump-dom", url],
        capture_output=True, text=True, timeout=BROWSER_TIMEOUT_S,
    )
    m = re.search(r'<pre id="report">(.*?)</pre>', proc.stdout, re.DOTALL)
    assert m and m.group(1).strip(), f"no report in the page (rc {proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
    report = json.loads(html.unescape(m.group(1)))
    # What the browser itself printed to its console (CORS refusals, uncaught errors,
    # failed loads are reported there, not to the page's console.error).
    report["console"] = [line for line in proc.stderr.splitlines() if ":CONSOLE" in line]
    return report


def _console_errors(report: dict) -> list[str]:
    bad = ("CORS", "Uncaught", "Failed to load", "ERR_", "error")
    return [line for line in report["console"] if any(b in line for b in bad)]


def _wait(h: httpx.Client, uid: int) -> None:
    deadline = time.monotonic() + 60
    while (task := h.get(f"/tasks/{uid}").json())["status"] in ("enqueued", "processing"):
        assert time.monotonic() < deadline, task
        time.sleep(0.05)
    assert task["status"] == "succeeded", task


@pytest.fixture(scope="module")
def browser_env():
    if not CORPUS.exists():
        pytest.skip(f"the Debian corpus is not at {CORPUS} (MIROIR_CORPUS)")
    chromium = _chromium()
    npm = _npm_packages()
    with tempfile.TemporaryDirectory() as tmp:
        site = Path(tmp) / "site"
        site.mkdir()
        shutil.copy(PAGE, site / "index.html")
        (site / "node_modules").symlink_to(npm / "node_modules")
        dev = Dev("--master-key", MASTER, "--data-dir", str(Path(tmp) / "dev"), "--shards", "4")
        try:
            miroir = dev.wait_banner()["miroir"]
            with httpx.Client(base_url=miroir, headers={"Authorization": f"Bearer {MASTER}"}, timeout=60) as h:
                _wait(h, h.post("/indexes", json={"uid": INDEX, "primaryKey": "id"}).json()["taskUid"])
                settings = {"filterableAttributes": ["section"], "searchableAttributes": ["name", "summary"]}
                _wait(h, h.patch(f"/indexes/{INDEX}/settings", json=settings).json()["taskUid"])
                _wait(h, h.post(f"/indexes/{INDEX}/documents", json=read_docs(2000)).json()["taskUid"])
                search_key = next(k for k in h.get("/keys").json()["results"] if k["name"] == "Default Search API Key")
            with _static_server(site) as origin:
                yield chromium, miroir, origin, search_key, Path(tmp)
        finally:
            dev.stop()


def _page(origin: str, miroir: str, key: str, q: str, facetq: str) -> str:
    return f"{origin}/index.html?" + urlencode({"host": miroir, "key": key, "index": INDEX, "q": q, "facetq": facetq})


def test_instantsearch_with_the_default_search_key(browser_env):
    chromium, miroir, origin, search_key, tmp = browser_env
    report = _browse(chromium, _page(origin, miroir, search_key["key"], "lib", "lo"), tmp / "profile-key")
    steps = report["steps"]
    assert report.get("done") and report["errors"] == [] and _console_errors(report) == [], report
    assert len(steps["initial"]["ids"]) == 5 and len(steps["initial"]["facets"]) > 10
    query = steps["query"]
    assert len(query["ids"]) == 5 and query["nbHits"] > 100 and query["marks"] >= 5, query  # highlighted
    refined = steps["refined"]
    assert refined["value"] == query["facets"][0] and set(refined["sections"]) == {refined["value"]}, refined
    assert refined["nbHits"] < query["nbHits"]
    page2 = steps["page2"]
    assert page2["page"] == 2 and page2["selected"] == ["2"] and set(page2["sections"]) == {refined["value"]}
    assert not set(page2["ids"]) & set(refined["ids"])  # another page of the same refinement
    facet = steps["facetSearch"]
    assert facet["facets"] and all(f.startswith("lo") for f in facet["facets"]), facet  # searchable facet list


def test_instantsearch_with_a_tenant_token_sees_one_section(browser_env):
    chromium, miroir, origin, search_key, tmp = browser_env
    token = jwt.encode(
        {"apiKeyUid": search_key["uid"], "searchRules": {INDEX: {"filter": f"section = {TENANT_SECTION}"}}, "exp": None},
        search_key["key"],
        "HS256",
    )
    report = _browse(chromium, _page(origin, miroir, token, "lib", TENANT_SECTION[:1]), tmp / "profile-token")
    steps = report["steps"]
    assert report.get("done") and report["errors"] == [] and _console_errors(report) == [], report
    for name in ("initial", "query", "refined", "page2"):
        if name in steps:
            assert set(steps[name]["sections"]) == {TENANT_SECTION}, (name, steps[name])
    assert steps["initial"]["facets"] == [TENANT_SECTION] and steps["query"]["facets"] == [TENANT_SECTION]
    assert steps["facetSearch"]["facets"] == [TENANT_SECTION]
