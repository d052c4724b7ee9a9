"""The search page in a real browser: `pixseek ui` driven by Debian's Chromium through Playwright.

Runs over the bundled model and sample pictures (plus a copy of some of them in a second folder, for
the folder filter). Screenshots land in tests/artifacts/; the README's screenshot is one of them.
If the browser cannot start, the test fails: it never skips.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples" / "twemoji"
ARTIFACTS = ROOT / "tests" / "artifacts"
CHROMIUM = os.environ.get("PIXSEEK_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

# Every result picture in the grid, loaded (natural width > 0), in page order.
LOADED = """(min) => {
  const imgs = [...document.querySelectorAll('[data-testid="stMain"] img[alt$=".png"]')];
  return imgs.length >= min && imgs.every(i => i.complete && i.naturalWidth > 0);
}"""
FIRST_NAME = """() => { const i = document.querySelector('[data-testid="stMain"] img[alt$=".png"]');
  return i ? i.alt : null; }"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """`pixseek ui` over the samples, indexed with the bundled model; yields (url, extra folder)."""
    from pixseek.index.indexer import Indexer

    base = tmp_path_factory.mktemp("ui-browser")
    extra = base / "extra"
    extra.mkdir()
    for name in ("dog-face.png", "cat-face.png", "red-apple.png", "rocket.png", "deciduous-tree.png"):
        shutil.copy(SAMPLES / name, extra / f"copy-{name}")
    db = base / "db"
    s = Indexer(db).run([SAMPLES, extra])
    assert s.failed == 0 and s.total >= 300
    port = _free_port()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    log = open(ARTIFACTS / "ui-server.log", "w")  # noqa: SIM115 - open while the server runs, closed below
    pixseek = Path(sys.executable).parent / "pixseek"
    proc = subprocess.Popen(
        [str(pixseek), "ui", "--db", str(db), "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=dict(os.environ),
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 90
        while True:
            try:
                if urllib.request.urlopen(url + "/_stcore/health", timeout=2).read() == b"ok":
                    break
            except OSError:
                pass
            assert proc.poll() is None, (ARTIFACTS / "ui-server.log").read_text()
            assert time.time() < deadline, "pixseek ui did not answer in 90 s"
            time.sleep(0.3)
        yield url, extra
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        # No skip: a browser that cannot start is a failure of this test.
        # rebind.example resolves to this machine, as a DNS-rebinding attacker's name would
        rules = "--host-resolver-rules=MAP rebind.example 127.0.0.1"
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=[*CHROMIUM_ARGS, rules])
        yield b
        b.close()


def _wait_results(page, n: int = 8) -> None:
    page.wait_for_function(LOADED, arg=n, timeout=60_000)


def test_search_upload_more_like_this_and_filter_in_a_browser(served, browser):
    url, extra = served
    page = browser.new_page(viewport={"width": 1440, "height": 1000})
    try:
        _drive(page, url, extra)
    except BaseException:
        page.screenshot(path=str(ARTIFACTS / "ui-failure.png"), full_page=True)
        raise
    finally:
        page.close()


def _drive(page, url: str, extra: Path) -> None:
    main = page.locator('[data-testid="stMain"]')  # (the sidebar's drop-downs have "Open"/"Clear" buttons too)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(url, wait_until="domcontentloaded")
    page.get_by_text("Type a description, or drop a picture").wait_for(timeout=60_000)

    # 1. text to image
    box = page.get_by_label("Describe what you are looking for")
    box.fill("a dog")
    box.press("Enter")
    _wait_results(page)
    # Streamlit replaces the page's elements as the rerun streams in: wait for the final first card.
    page.wait_for_function(
        '(names) => { const i = document.querySelector(\'[data-testid="stMain"] img[alt$=".png"]\');'
        " return i && names.includes(i.alt) && i.naturalWidth > 0; }",
        arg=["dog.png", "dog-face.png", "copy-dog-face.png"],
        timeout=30_000,
    )
    page.screenshot(path=str(ARTIFACTS / "ui-text-search.png"))
    thumb_width = page.evaluate(
        '() => document.querySelector(\'[data-testid="stMain"] img[alt$=".png"]\').naturalWidth'
    )
    assert 0 < thumb_width <= 320  # a thumbnail, not the original file

    # 2. image to image: an uploaded picture finds itself (or its identical copy) first
    box.fill("")
    box.press("Enter")
    page.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files(str(SAMPLES / "red-apple.png"))
    page.wait_for_function(
        '() => { const i = document.querySelector(\'[data-testid="stMain"] img[alt$=".png"]\');'
        " return i && i.alt.endsWith('red-apple.png') && i.naturalWidth > 0; }",
        timeout=60_000,
    )
    page.screenshot(path=str(ARTIFACTS / "ui-upload.png"))

    # 3. more like this, from the first result
    main.get_by_role("button", name="More like this", exact=True).first.click()
    page.get_by_text("More like").first.wait_for(timeout=60_000)
    _wait_results(page)
    page.screenshot(path=str(ARTIFACTS / "ui-more-like-this.png"))

    # 4. folder filter in the sidebar: only the pictures of that folder remain
    main.get_by_role("button", name="Clear", exact=True).click()
    box.fill("an animal")
    box.press("Enter")
    _wait_results(page)
    sidebar = page.locator('[data-testid="stSidebar"]')
    sidebar.locator('[data-testid="stSelectbox"]').first.click()
    page.get_by_role("option", name=str(extra), exact=True).click()
    copies = sorted(p.name for p in extra.iterdir())
    page.wait_for_function(
        '(n) => { const imgs = [...document.querySelectorAll(\'[data-testid="stMain"] img[alt$=".png"]\')];'
        " return imgs.length === n && imgs.every(i => i.alt.startsWith('copy-') && i.naturalWidth > 0); }",
        arg=len(copies),
        timeout=60_000,
    )
    names = page.evaluate(
        '() => [...document.querySelectorAll(\'[data-testid="stMain"] img[alt$=".png"]\')].map(i => i.alt)'
    )
    assert sorted(names) == copies
    page.screenshot(path=str(ARTIFACTS / "ui-folder-filter.png"))

    # 5. open one result in full
    main.get_by_role("button", name="Open", exact=True).first.click()
    page.locator('[data-testid="stMain"] img[alt="full view"]').wait_for(timeout=60_000)
    page.get_by_role("button", name="Download original").wait_for()
    assert not errors, errors


def test_readme_screenshot(served, browser):
    """The README's picture of the page: a text query over the bundled samples."""
    url, _ = served
    page = browser.new_page(viewport={"width": 1280, "height": 860})
    page.goto(url + "/?q=a%20dog", wait_until="domcontentloaded")
    _wait_results(page, 8)
    page.screenshot(path=str(ARTIFACTS / "ui-readme.png"))
    page.close()


def test_a_foreign_host_name_gets_no_page(served, browser):
    """DNS rebinding: a page under another name that resolves to this machine gets a refusal and no
    results, while loopback names keep working."""
    url, _ = served
    port = url.rsplit(":", 1)[1]
    page = browser.new_page(viewport={"width": 1280, "height": 860})
    try:
        page.goto(f"http://rebind.example:{port}/?q=a%20dog", wait_until="domcontentloaded")
        page.get_by_text("This page answers at the address pixseek was started on").wait_for(timeout=60_000)
        page.wait_for_timeout(1500)
        assert page.locator('[data-testid="stMain"] img').count() == 0
        assert "dog" not in page.locator('[data-testid="stMain"]').inner_text()
        page.goto(f"http://localhost:{port}/?q=a%20dog", wait_until="domcontentloaded")
        _wait_results(page, 8)
    finally:
        page.close()


def test_server_serves_no_files_by_path(served):
    """Streamlit's static serving is off and media are served by id: no path reaches the disk."""
    import urllib.error

    url, _ = served
    probes = [
        "/app/static/../../../../etc/passwd",
        "/app/static/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
        "/media/../../../../etc/passwd",
        "/media/%2e%2e%2f%2e%2e%2fetc%2fpasswd",
        "/../../../../etc/passwd",
        "/static/../../../../etc/passwd",
        "/component/../../../../etc/passwd",
        "/_stcore/../../../../etc/passwd",
        "/" + str(SAMPLES / "dog.png"),
    ]
    for path in probes:
        try:
            body = urllib.request.urlopen(url + path, timeout=10).read()
        except urllib.error.HTTPError as e:
            assert e.code in (400, 403, 404), (path, e.code)
            continue
        assert b"root:" not in body and not body.startswith(b"\x89PNG"), path  # the app page, never a file
