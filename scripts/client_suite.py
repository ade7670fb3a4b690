"""Run an official client's own test suite against `miroir dev` (issue 13's measure).

    python scripts/client_suite.py PATH_TO_CHECKOUT [--port 7700] [--dirs tests/index ...]
        [--junit FILE] [-- extra pytest args]

PATH_TO_CHECKOUT is a checkout of `meilisearch/meilisearch-python` (0.43.0 is the one
measured in the README). The script starts `miroir dev --master-key masterKey` on a
fresh data dir, waits for `/health`, runs pytest inside the checkout with
`MEILISEARCH_URL` pointing at Miroir, prints pytest's summary and stops Miroir. It is not
part of the CI test command: the suite needs the client's checkout, which is not ours.
Exit status: pytest's.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

DEFAULT_DIRS = ("tests/index", "tests/settings", "tests/client", "tests/errors")


def _wait_healthy(url: str, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=1) as answer:
                if answer.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"client_suite: miroir dev did not answer /health at {url} in {timeout_s:.0f} s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkout", type=Path, help="checkout of the client's repository")
    parser.add_argument("--port", type=int, default=7700, help="port for miroir dev (default 7700)")
    parser.add_argument("--dirs", nargs="+", default=list(DEFAULT_DIRS), help="test folders to run")
    parser.add_argument("--junit", type=Path, help="write a JUnit XML report here")
    argv = sys.argv[1:]
    extra = argv[argv.index("--") + 1 :] if "--" in argv else []
    args = parser.parse_args(argv[: len(argv) - len(extra) - (1 if extra or "--" in argv else 0)])
    checkout = args.checkout.resolve()
    if not (checkout / "tests").is_dir():
        print(f"client_suite: {checkout} has no tests/ folder", file=sys.stderr)
        return 2
    url = f"http://127.0.0.1:{args.port}"
    with tempfile.TemporaryDirectory(prefix="miroir-client-suite-") as data_dir:
        with open(Path(data_dir) / "miroir.log", "wb") as miroir_log:  # the child keeps its own copy
            miroir = subprocess.Popen(
                [sys.executable, "-m", "miroir", "dev", "--master-key", "masterKey", "--port", str(args.port),
                 "--data-dir", data_dir, "--log-format", "json"],
                stdout=subprocess.DEVNULL, stderr=miroir_log,
            )
        try:
            _wait_healthy(url)
            cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--timeout", "120", "-o", "addopts=", *args.dirs]
            if args.junit:
                cmd += ["--junitxml", str(args.junit.resolve())]
            cmd += extra
            env = {**os.environ, "MEILISEARCH_URL": url}
            return subprocess.call(cmd, cwd=checkout, env=env)
        finally:
            miroir.send_signal(signal.SIGINT)
            try:
                miroir.wait(timeout=20)
            except subprocess.TimeoutExpired:
                miroir.kill()
                miroir.wait()


if __name__ == "__main__":
    sys.exit(main())
