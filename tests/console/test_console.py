"""The web console in a real headless Chromium (Debian's, driven by Playwright)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, sync_playwright

from tests.server import LocalServer

CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if shutil.which(CHROMIUM) is None:
        pytest.fail(f"{CHROMIUM} is missing: scripts/test installs Debian's chromium package")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield launched
        launched.close()


def test_console_lists_charts_quarantines_and_queries(browser: Browser, tmp_path: Path) -> None:
    server = LocalServer(tmp_path / "data")
    try:
        auth = {"Authorization": f"Bearer {server.admin}"}
        created = httpx.post(
            f"{server.url}/v0/datasources",
            headers=auth,
            data={"name": "clicks", "schema": "n Int32 `json:$.n`, page String `json:$.page`"},
        )
        assert created.status_code == 200
        page = browser.new_page()
        page.goto(server.url + "/")
        page.wait_for_selector("#datasources tbody tr")
        assert page.inner_text("#datasources tbody tr td") == "clicks"
        # Ingest while the page samples the counters: the chart must show a non-zero rate.
        for i in range(5):
            body = "\n".join(json.dumps({"n": i * 100 + j, "page": f"/p{j}"}) for j in range(100))
            response = httpx.post(
                f"{server.url}/v0/events?name=clicks&wait=true", headers=auth, content=body + '\n{"n": "oops"}'
            )
            assert response.status_code == 200
            page.wait_for_timeout(700)
        page.wait_for_function("Number(document.querySelector('#chart').dataset.max || 0) > 0", timeout=15000)
        assert page.locator("#chart polyline[data-name='clicks']").count() == 1
        page.wait_for_selector("#quarantine tbody tr")
        assert "is a string when a Int32 was expected" in page.inner_text("#quarantine tbody")
        page.fill("#sql", "SELECT page, count() AS hits FROM clicks GROUP BY page ORDER BY page LIMIT 3")
        page.click("#run")
        page.wait_for_selector("#sql-result table")
        header = page.locator("#sql-result th").all_text_contents()
        assert header == ["page", "hits"]
        first = page.locator("#sql-result tbody tr").first.locator("td").all_inner_texts()
        assert first == ["/p0", "5"]
        page.fill("#sql", "SELECT * FROM system.tables")
        page.click("#run")
        page.wait_for_selector("#sql-error:not([hidden])")
        assert page.inner_text("#sql-error")
        shot = tmp_path / "console.png"
        page.screenshot(path=str(shot), full_page=True)
        assert shot.stat().st_size > 10_000
    finally:
        server.stop()


def test_serve_mode_asks_for_a_token(browser: Browser, tmp_path: Path) -> None:
    server = LocalServer(tmp_path / "data", env={"BIRDHOUSE_LOCAL__TOKENS_ENDPOINT": "false"})
    try:
        page = browser.new_page()
        page.goto(server.url + "/")
        page.wait_for_selector("#token-form:not([hidden])")
        assert httpx.get(f"{server.url}/v0/console/stats").status_code == 403
    finally:
        server.stop()
