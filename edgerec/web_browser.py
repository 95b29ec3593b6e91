"""Serving an ``edgerec web`` site on 127.0.0.1 and opening it in headless Chromium.

Used by the browser tests and by ``edgerec bench --browser``. The server binds the loopback
address only, on a free port, serves the site's files with the MIME types ES modules and wasm
need, and accepts the self-test's ``POST /report`` (its JSON is kept for the caller). Chromium
is Debian's ``/usr/bin/chromium`` driven by ``web/tools/chromium.mjs`` (playwright-core, which
downloads nothing), headless, in real time, with a fresh profile per run.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from edgerec.web_site import WEB_DIR, WebSiteError

CHROMIUM = os.environ.get("EDGEREC_CHROMIUM", "/usr/bin/chromium")
_MAX_REPORT = 1 << 20


@dataclass
class Served:
    """A running local server: its base URL and the reports POSTed to it."""

    url: str
    reports: list[Any] = field(default_factory=list)


class _Handler(SimpleHTTPRequestHandler):
    extensions_map = {**SimpleHTTPRequestHandler.extensions_map, ".js": "text/javascript",
                      ".mjs": "text/javascript", ".wasm": "application/wasm",
                      ".json": "application/json"}

    def __init__(self, *a: Any, served: Served, **kw: Any) -> None:
        self.served = served
        super().__init__(*a, **kw)

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        n = int(self.headers.get("content-length") or 0)
        if self.path.split("?")[0].rstrip("/").endswith("/report") and 0 < n <= _MAX_REPORT:
            try:
                self.served.reports.append(json.loads(self.rfile.read(n)))
            except ValueError:
                self.send_error(400)
                return
            self.send_response(204)
            self.end_headers()
        else:
            self.send_error(404)

    def end_headers(self) -> None:
        self.send_header("Cache-Control", "no-store")  # every run measures a cold page
        # Cross-origin isolation: performance.now() then ticks in 5 us steps, not 100 us
        # (everything the site loads is same-origin, so nothing is blocked by it).
        self.send_header("Cross-Origin-Opener-Policy", "same-origin")
        self.send_header("Cross-Origin-Embedder-Policy", "require-corp")
        super().end_headers()

    def log_message(self, *a: Any) -> None:  # quiet: the tests and the bench print their own
        pass


@contextmanager
def serve_site(site: str | Path) -> Iterator[Served]:
    """Serve ``site`` on ``http://127.0.0.1:<free port>/`` while the block runs."""
    served = Served(url="")
    server = ThreadingHTTPServer(("127.0.0.1", 0),
                                 partial(_Handler, directory=str(site), served=served))
    served.url = f"http://127.0.0.1:{server.server_address[1]}/"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield served
    finally:
        server.shutdown()
        server.server_close()


def browser_missing(web_dir: Path = WEB_DIR) -> str | None:
    """Why the browser cannot run here (None when it can): no Chromium, node or npm packages."""
    if not Path(CHROMIUM).is_file():
        return f"no Chromium at {CHROMIUM} (apt-get install chromium)"
    if shutil.which("node") is None:
        return "node is not installed (apt-get install nodejs npm)"
    if not (web_dir / "node_modules" / "playwright-core").is_dir():
        return f"npm packages missing in {web_dir} (npm ci --prefix {web_dir})"
    return None


def open_page(url: str, *, wait: str = "body[data-state]", screenshot: Path | None = None,
              cpu_throttle: float = 1, clicks: tuple[str, ...] = (), timeout_s: float = 300,
              web_dir: Path = WEB_DIR) -> dict[str, Any]:
    """Open ``url`` in headless Chromium, wait for ``wait`` and return what the page shows:
    ``{"text", "done", "state", "error", "console_errors", "chromium"}``.

    Args:
        url: The page (on the local server).
        wait: A CSS selector the page sets when it is finished.
        screenshot: Write a full-page PNG here.
        cpu_throttle: DevTools CPU throttling rate (1: none; 4: a mid-range phone, roughly).
        clicks: CSS selectors to click, in order, once the page is finished.
        timeout_s: Give up after this long.
        web_dir: The ``web/`` folder holding ``tools/chromium.mjs`` and its npm packages.
    """
    why = browser_missing(web_dir)
    if why:
        raise WebSiteError(f"cannot run the browser: {why}")
    cmd = ["node", str(web_dir / "tools" / "chromium.mjs"), url, "--wait", wait,
           "--timeout", str(int(timeout_s * 1000)), "--chromium", CHROMIUM,
           "--cpu-throttle", str(cpu_throttle)]
    for sel in clicks:
        cmd += ["--click", sel]
    if screenshot is not None:
        cmd += ["--screenshot", str(screenshot)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s + 60)
    except subprocess.TimeoutExpired:
        raise WebSiteError(f"Chromium did not finish {url} in {timeout_s + 60:.0f} s") from None
    lines = proc.stdout.strip().splitlines()
    try:
        out = json.loads(lines[-1])
    except (IndexError, ValueError):
        err = " ".join(proc.stderr.split())[:300]
        raise WebSiteError(f"Chromium driver failed on {url}: {err or 'no output'}") from None
    if "failure" in out:
        raise WebSiteError(f"Chromium on {url}: {out['failure']}")
    return out
