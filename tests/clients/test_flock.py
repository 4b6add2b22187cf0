"""npm @tinybirdco/flock.js 1.4.1 in a real page, in Debian's headless Chromium driven by playwright-core (SPEC §11
[Flock]). The page is served from another loopback port, so the tracker's POST is cross-origin and Chromium sends a
CORS preflight first (Content-Type: application/json is not a simple request)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from tests.clients.proxy import RecordingProxy
from tests.clients.support import (
    CHROMIUM,
    FLOCK,
    NODE_DIR,
    NODE_MODULES,
    auth,
    broke,
    json_lines,
    output_of,
    run,
    wait_for_flushed_rows,
)
from tests.server import LocalServer

pytestmark = pytest.mark.usefixtures("clients")

CLIENT = f"{FLOCK} in headless Chromium"
FLOCK_JS = NODE_MODULES / "@tinybirdco" / "flock.js" / "dist" / "index.js"


class PageServer:
    """Serves one HTML page embedding flock.js, and flock.js itself, on its own loopback port."""

    def __init__(self, html: str, script: Path) -> None:
        body = html.encode()
        code = script.read_bytes()

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                return

            def do_GET(self) -> None:
                if self.path.startswith("/flock.js"):
                    payload, kind = code, "text/javascript"
                elif self.path.endswith(".html"):
                    payload, kind = body, "text/html; charset=utf-8"
                else:
                    self.send_response(204)
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.origin = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, name="flock-page", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def tracker(server: LocalServer) -> str:
    """The `tracker` token the analytics_events datafile declares (TOKEN "tracker" APPEND)."""
    response = httpx.get(f"{server.url}/v0/tokens/tracker", headers=auth(server.admin), timeout=10)
    assert response.status_code == 200, response.text
    token: str = response.json()["token"]
    return token


@pytest.fixture
def page(proxy: RecordingProxy, tracker: str) -> Iterator[tuple[PageServer, str]]:
    path = f"/shop-{time.time_ns()}.html"
    html = (
        "<!doctype html><html><head><meta charset='utf-8'><title>birdhouse flock.js test</title>"
        f'<script defer src="/flock.js" data-host="{proxy.url}/" data-token="{tracker}"></script>'
        "</head><body><h1>Hello from a page that tracks</h1></body></html>"
    )
    served = PageServer(html, FLOCK_JS)
    try:
        yield served, path
    finally:
        served.close()


def test_page_hit_reaches_analytics_events(
    server: LocalServer, proxy: RecordingProxy, tracker: str, page: tuple[PageServer, str]
) -> None:
    assert CHROMIUM.exists(), f"{CLIENT}: {CHROMIUM} missing (scripts/install-clients installs Debian's chromium)"
    served, path = page
    started = datetime.now(UTC).replace(microsecond=0)
    config = {"page": served.origin + path, "customEvent": True, "timeoutMs": 20000}
    result = run(["node", NODE_DIR / "flock_page.mjs", json.dumps(config)], timeout=90, cwd=NODE_DIR)
    reports = json_lines(result.stdout)
    assert result.returncode == 0 and reports, broke(CLIENT, "the browser run failed", proxy, output_of(result))
    seen = reports[-1]
    assert not seen["pageErrors"], broke(CLIENT, f"page errors: {seen['pageErrors']}", proxy)
    posts = [e for e in seen["events"] if e["method"] == "POST"]
    assert len(posts) == 2, broke(CLIENT, f"tracker POSTs seen by the browser: {seen}", proxy, output_of(result))
    for post in posts:
        assert post["status"] == 202, broke(CLIENT, f"POST answered {post['status']}", proxy)
        assert post["requestHeaders"]["content-type"] == "application/json", broke(CLIENT, "Content-Type", proxy)
        assert post["requestHeaders"]["origin"] == served.origin, broke(CLIENT, "not cross-origin", proxy)

    # The preflight reached birdhouse and allowed the POST (any origin, the requested header echoed).
    preflights = proxy.recorded("OPTIONS", "/v0/events")
    assert preflights, broke(CLIENT, "no CORS preflight (OPTIONS /v0/events) reached birdhouse", proxy)
    preflight = preflights[0]
    assert preflight.header("Origin") == served.origin, broke(CLIENT, "preflight Origin", proxy)
    assert preflight.header("Access-Control-Request-Method") == "POST", broke(CLIENT, "preflight method", proxy)
    assert 200 <= preflight.status < 300, broke(CLIENT, f"preflight refused: {preflight.describe()}", proxy)
    assert preflight.response_header("Access-Control-Allow-Origin") in ("*", served.origin), broke(
        CLIENT, f"preflight Allow-Origin: {preflight.response_headers}", proxy
    )
    assert "POST" in (preflight.response_header("Access-Control-Allow-Methods") or ""), broke(
        CLIENT, f"preflight Allow-Methods: {preflight.response_headers}", proxy
    )
    assert "content-type" in (preflight.response_header("Access-Control-Allow-Headers") or "").lower(), broke(
        CLIENT, f"preflight Allow-Headers: {preflight.response_headers}", proxy
    )
    # The POSTs: token in the query string, flock's default data source.
    for post in proxy.recorded("POST", "/v0/events"):
        assert post.query == {"name": ["analytics_events"], "token": [tracker]}, broke(CLIENT, post.describe(), proxy)
        assert post.response_header("Access-Control-Allow-Origin") in ("*", served.origin), broke(
            CLIENT, f"POST without CORS headers: {post.response_headers}", proxy
        )

    cookie = next((c["value"] for c in seen.get("cookies", []) if c["name"] == "session-id"), None)
    found = wait_for_flushed_rows(
        server,
        "SELECT action, session_id, payload, version, tenant_id, domain, toString(timestamp) AS timestamp"
        f" FROM analytics_events WHERE session_id = '{cookie}' ORDER BY action",
        lambda r: len(r) == 2,
    )
    assert [r["action"] for r in found] == ["page_hit", "signup_click"], broke(
        CLIENT, f"rows in analytics_events for session {cookie}: {found}", proxy
    )
    hit, click = found
    payload = json.loads(hit["payload"])
    assert payload["pathname"] == path and payload["href"] == served.origin + path, broke(CLIENT, f"{hit}", proxy)
    assert "HeadlessChrome" in payload["user-agent"], broke(CLIENT, f"{hit}", proxy)
    assert json.loads(click["payload"]) == {"plan": "pro", "email": "********"}, broke(CLIENT, f"{click}", proxy)
    assert hit["version"] == "1" and hit["tenant_id"] == "" and hit["domain"] == "", broke(CLIENT, f"{hit}", proxy)
    stamp = datetime.fromisoformat(hit["timestamp"]).replace(tzinfo=UTC)
    assert abs((stamp - started).total_seconds()) < 120, broke(CLIENT, f"toISOString() into DateTime: {hit}", proxy)
