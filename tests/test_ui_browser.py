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


# --- page geometry and state, read in the browser ---------------------------------------------------
CARDS = '[data-testid="stMain"] .px-card'
FULLY_VISIBLE = """() => [...document.querySelectorAll('[data-testid="stMain"] .px-card')].filter(c => {
  const r = c.getBoundingClientRect();
  return r.top >= 0 && r.left >= 0 && r.bottom <= innerHeight && r.right <= innerWidth && r.width > 0; }).length"""
CARD_NAMES = """() => [...document.querySelectorAll('[data-testid="stMain"] .px-card')]
  .map(b => b.getAttribute('aria-label').replace(/^Open /, ''))"""
FOCUSED = "() => document.activeElement.getAttribute('aria-label')"
# elements marked stale or replaced outside the grid and the dialog: a full-page rerun marks every element
# stale (data-stale) while it runs; a fragment's rerun touches only the fragment
WATCH = """() => { window.__outside = 0; window.__seen = [];
  const mark = (m) => { for (const x of m) { const el = x.target.nodeType === 1 ? x.target : x.target.parentElement;
    if (x.type !== 'attributes' || x.attributeName !== 'data-stale' || el.getAttribute('data-stale') !== 'true')
      continue;  // only elements a rerun marks stale count (not focus rings, hover styles, late layout)
    if (el && !el.closest('.px-cards, [role="dialog"], [data-testid="stDialog"]')) {
      window.__outside++;
      if (window.__seen.length < 12) window.__seen.push(`${x.type} ${x.attributeName || ''} ${el.tagName}`
        + ` ${el.getAttribute('data-testid') || ''} ${String(el.className).slice(0, 50)}`); } } };
  new MutationObserver(mark).observe(document.querySelector('[data-testid="stSidebar"]'),
    {subtree: true, attributes: true, childList: true});
  new MutationObserver(mark).observe(document.querySelector('.st-key-query-row'),
    {subtree: true, attributes: true, childList: true}); }"""


def _show_all(page) -> None:
    """Every match, as a user who wants them all asks: "Show all" under the results the relevance
    cut-off kept (nothing to do when it kept a full page). The sidebar's switch does the same."""
    page.locator(".px-card").first.wait_for(timeout=60_000)
    _settled(page)
    show = page.locator(".st-key-show-all button")
    if show.count():
        show.click()
        page.wait_for_function("() => !document.querySelector('.st-key-show-all')", timeout=30_000)
        _settled(page)


def _query(page, text: str) -> None:
    box = page.get_by_label("Describe what you are looking for")
    box.fill(text)
    box.press("Enter")


def _first_is(page, names, timeout=60_000) -> None:
    page.wait_for_function(
        "(names) => { const b = document.querySelector('[data-testid=\"stMain\"] .px-card');"
        " const i = document.querySelector('[data-testid=\"stMain\"] .px-card img');"
        " return b && names.includes(b.getAttribute('aria-label').replace(/^Open /, ''))"
        " && i && i.complete && i.naturalWidth > 0; }",
        arg=list(names),
        timeout=timeout,
    )


def _settled(page) -> None:
    """Streamlit has finished the run (no element is marked stale and the status widget is idle)."""
    page.wait_for_function(
        "() => !document.querySelector('[data-testid=\"stStatusWidget\"]') && "
        "!document.querySelector('[data-stale=\"true\"]')",
        timeout=60_000,
    )
    page.wait_for_timeout(300)


def _browse(browser, url, viewport, run):
    page = browser.new_page(viewport=viewport)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        run(page, url)
    except BaseException:
        page.screenshot(path=str(ARTIFACTS / "ui-failure.png"), full_page=True)
        raise
    finally:
        page.close()
    assert not errors, errors


def test_dense_grid_at_desktop_and_phone_widths(served, browser):
    """At 1440×900 at least 12 cards are fully visible without scrolling, at 390×844 at least 4; the
    thumbnails are square; copies are one card with "+N copies"."""
    url, extra = served

    def desktop(page, url):
        page.goto(url + "/?q=a%20dog", wait_until="domcontentloaded")
        _show_all(page)  # this test needs many results: the relevance cut-off off
        _first_is(page, ["dog-face.png", "dog.png", "copy-dog-face.png"])
        _settled(page)
        page.screenshot(path=str(ARTIFACTS / "ui-grid-1440.png"))
        assert page.evaluate(FULLY_VISIBLE) >= 12
        sizes = page.evaluate(
            "() => [...document.querySelectorAll('.px-card img')].slice(0, 6)"
            ".map(i => [Math.round(i.getBoundingClientRect().width), Math.round(i.getBoundingClientRect().height)])"
        )
        assert all(w == h and w >= 100 for w, h in sizes), sizes
        names = page.evaluate(CARD_NAMES)
        assert len(names) == len(set(names))
        # samples/twemoji/dog-face.png and extra/copy-dog-face.png: one card (either name), "+1 copy"
        assert len({"dog-face.png", "copy-dog-face.png"} & set(names)) == 1
        dog = page.locator(".px-card").filter(has_text="dog-face.png").first
        assert "+1 copy" in dog.inner_text()

    def phone(page, url):
        page.goto(url + "/?q=a%20dog", wait_until="domcontentloaded")
        _show_all(page)  # this test needs many results: the relevance cut-off off
        _first_is(page, ["dog-face.png", "dog.png", "copy-dog-face.png"])
        _settled(page)
        page.screenshot(path=str(ARTIFACTS / "ui-grid-390.png"))
        assert page.evaluate(FULLY_VISIBLE) >= 4

    _browse(browser, url, {"width": 1440, "height": 900}, desktop)
    _browse(browser, url, {"width": 390, "height": 844}, phone)


def test_detail_dialog_opens_in_view_walks_and_closes_with_esc(served, browser):
    def run(page, url):
        page.goto(url + "/?q=an%20animal", wait_until="domcontentloaded")
        _show_all(page)  # this test needs many results: the relevance cut-off off
        page.locator(CARDS).first.wait_for(timeout=60_000)
        _settled(page)
        page.evaluate(WATCH)
        page.mouse.move(900, 600)  # over the results, not the sidebar
        page.mouse.wheel(0, 1500)  # scrolled down: the dialog must still be in view
        page.wait_for_timeout(500)
        card = page.locator(".px-card").nth(14)
        name = card.get_attribute("aria-label").removeprefix("Open ")
        card.click()
        dialog = page.get_by_role("dialog")
        dialog.wait_for(timeout=30_000)
        pic = dialog.locator("img").first
        pic.wait_for()
        page.wait_for_function(
            "(n) => { const i = document.querySelector('[role=\"dialog\"] img');"
            " return i && i.complete && i.naturalWidth > 0 && i.alt === n; }",
            arg=name,
        )
        box = pic.bounding_box()
        assert box and box["y"] >= 0 and box["y"] + box["height"] <= 900, box  # in view
        natural = page.evaluate("() => document.querySelector('[role=\"dialog\"] img').naturalWidth")
        assert box["width"] <= natural + 1  # never upscaled (a 72 px emoji stays 72 px)
        dialog.get_by_role("button", name="Download").wait_for(timeout=10_000)
        assert dialog.get_by_text("identical files").count() + dialog.get_by_text("Where").count() >= 1
        page.screenshot(path=str(ARTIFACTS / "ui-detail.png"))
        dialog.get_by_role("button", name="Next →").click()
        page.wait_for_function(
            "(n) => { const i = document.querySelector('[role=\"dialog\"] img');"
            " return i && i.alt !== n && i.naturalWidth > 0; }",
            arg=name,
        )
        page.keyboard.press("Escape")
        dialog.wait_for(state="detached", timeout=10_000)
        page.wait_for_timeout(500)
        outside = page.evaluate("() => [window.__outside, window.__seen]")
        assert outside[0] == 0, outside  # Open, Next and Close redrew nothing outside
        _query(page, "a bird")  # the control: a new query reruns the whole page, and the watch sees it
        _settled(page)
        assert page.evaluate("() => window.__outside") > 0

    _browse(browser, served[0], {"width": 1440, "height": 900}, run)


def test_back_restores_the_query_and_more_like_this_keeps_the_text(served, browser):
    def run(page, url):
        page.goto(url, wait_until="domcontentloaded")
        page.get_by_text("Type a description, or drop a picture").wait_for(timeout=60_000)
        _query(page, "a dog")
        _first_is(page, ["dog.png", "dog-face.png", "copy-dog-face.png"])
        _settled(page)
        _query(page, "a slice of pizza")
        _first_is(page, ["slice-of-pizza.png"])
        _settled(page)
        assert "q=a+slice+of+pizza" in page.url
        page.get_by_role("button", name="← back to 'a dog'").wait_for()
        page.go_back()
        page.wait_for_function("() => document.querySelector('.st-key-q input').value === 'a dog'", timeout=30_000)
        _first_is(page, ["dog.png", "dog-face.png", "copy-dog-face.png"])
        _settled(page)
        page.go_forward()
        page.wait_for_function(
            "() => document.querySelector('.st-key-q input').value === 'a slice of pizza'", timeout=30_000
        )
        _first_is(page, ["slice-of-pizza.png"])
        _settled(page)
        # More like this (from the dialog) keeps the text it came from
        page.locator(".px-card").first.click()
        page.get_by_role("dialog").get_by_role("button", name="More like slice-of-pizza.png").click()
        page.locator(".st-key-like-banner").get_by_text("from 'a slice of pizza'").wait_for(timeout=30_000)
        assert page.locator(".st-key-q input").input_value() == "a slice of pizza"
        assert "like=" in page.url
        _settled(page)
        page.go_back()
        page.wait_for_function("() => !document.querySelector('.st-key-like-banner')", timeout=30_000)
        assert page.locator(".st-key-q input").input_value() == "a slice of pizza"

    _browse(browser, served[0], {"width": 1440, "height": 900}, run)


def test_keyboard_path(served, browser):
    """Focus in the query box on load, Enter searches, arrows move through results, Enter opens, Esc
    closes, "/" comes back to the box; one Tab stop per card, and each button names its picture."""

    def run(page, url):
        page.goto(url, wait_until="domcontentloaded")
        page.get_by_text("Type a description, or drop a picture").wait_for(timeout=60_000)
        page.wait_for_function(
            "() => document.activeElement === document.querySelector('.st-key-q input')", timeout=15_000
        )
        page.keyboard.type("a slice of pizza")
        page.keyboard.press("Enter")
        _first_is(page, ["slice-of-pizza.png"])
        _show_all(page)  # arrows need rows of results: the relevance cut-off off
        first = page.locator(".px-card").first
        assert first.get_attribute("aria-label") == "Open slice-of-pizza.png"
        first.focus()
        page.keyboard.press("ArrowRight")
        second = page.evaluate(FOCUSED)
        assert second == "Open " + page.evaluate(CARD_NAMES)[1]
        page.keyboard.press("ArrowDown")
        per_row = page.evaluate(
            "() => { const b = [...document.querySelectorAll('.px-card')];"
            " const t = b[0].getBoundingClientRect().top;"
            " return b.filter(x => x.getBoundingClientRect().top === t).length; }"
        )
        assert page.evaluate(FOCUSED) == "Open " + page.evaluate(CARD_NAMES)[1 + per_row]
        page.keyboard.press("Tab")  # the next card: one Tab stop each
        assert page.evaluate(FOCUSED) == "Open " + page.evaluate(CARD_NAMES)[2 + per_row]
        page.keyboard.press("Enter")
        page.get_by_role("dialog").wait_for(timeout=30_000)
        page.keyboard.press("Escape")
        page.get_by_role("dialog").wait_for(state="detached", timeout=10_000)
        page.keyboard.press("/")
        assert page.evaluate("() => document.activeElement === document.querySelector('.st-key-q input')")

    _browse(browser, served[0], {"width": 1440, "height": 900}, run)


def test_upload_preview_and_an_unreadable_upload_beside_text(served, browser, tmp_path):
    bad = tmp_path / "holiday.jpg"
    bad.write_bytes(b"this is not a picture")

    def run(page, url):
        page.goto(url + "/?q=a%20dog", wait_until="domcontentloaded")
        _first_is(page, ["dog-face.png", "dog.png", "copy-dog-face.png"])
        page.get_by_role("button", name="Search by picture", exact=True).click()
        page.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files(str(SAMPLES / "red-apple.png"))
        page.locator('.st-key-upload-row img[alt^="the picture searched with"]').wait_for(timeout=60_000)
        _settled(page)
        page.screenshot(path=str(ARTIFACTS / "ui-upload.png"))
        page.goto(url + "/?q=a%20dog", wait_until="domcontentloaded")  # a fresh page: the bad picture beside text
        _first_is(page, ["dog.png", "dog-face.png", "copy-dog-face.png"])
        page.get_by_role("button", name="Search by picture", exact=True).click()
        page.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files(str(bad))
        page.get_by_text("searching the text alone").wait_for(timeout=60_000)
        _first_is(page, ["dog.png", "dog-face.png", "copy-dog-face.png"])

    _browse(browser, served[0], {"width": 1440, "height": 900}, run)


def test_folder_filter_and_load_more_in_a_browser(served, browser):
    url, extra = served

    def run(page, url):
        page.goto(url + "/?q=an%20animal", wait_until="domcontentloaded")
        _show_all(page)  # this test needs many results: the relevance cut-off off
        page.locator(CARDS).first.wait_for(timeout=60_000)
        _settled(page)
        page.evaluate(WATCH)
        before = page.locator(CARDS).count()
        page.get_by_role("button", name="Load more").click()
        page.wait_for_function("(n) => document.querySelectorAll('.px-card').length > n", arg=before)
        _settled(page)
        outside = page.evaluate("() => [window.__outside, window.__seen]")
        assert outside[0] == 0, outside  # Load more redrew only the grid
        sidebar = page.locator('[data-testid="stSidebar"]')
        sidebar.locator('[data-testid="stSelectbox"]').first.click()
        page.get_by_role("option", name=str(extra), exact=True).click()
        page.wait_for_function(
            "(n) => { const b = [...document.querySelectorAll('.px-card')];"
            " return b.length === n && b.every(x => x.getAttribute('aria-label').startsWith('Open copy-')); }",
            arg=len(list(extra.iterdir())),
            timeout=60_000,
        )
        page.screenshot(path=str(ARTIFACTS / "ui-folder-filter.png"))

    _browse(browser, url, {"width": 1440, "height": 900}, run)


def test_readme_screenshot(served, browser):
    """The README's picture of the page: a text query over the bundled samples."""
    url, _ = served
    page = browser.new_page(viewport={"width": 1280, "height": 860})
    page.goto(url + "/?q=a%20dog", wait_until="domcontentloaded")
    _first_is(page, ["dog.png", "dog-face.png", "copy-dog-face.png"])
    _settled(page)
    page.wait_for_function("() => getComputedStyle(document.querySelector('.px-thumb')).objectFit === 'cover'")
    page.wait_for_timeout(500)
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
        _wait_results(page, 3)  # the dogs the relevance cut-off keeps
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


def test_duplicates_page_groups_side_by_side(served, browser):
    """The Duplicates page, reached from the navigation: each copy in extra/ sits beside its original
    (one row, thumbnails loaded, the original kept); "Similar pictures" opens a search from a file."""
    url, extra = served

    def run(page, url):
        page.goto(url + "/?q=a%20dog", wait_until="domcontentloaded")
        page.locator(CARDS).first.wait_for(timeout=60_000)
        page.get_by_role("link", name="Duplicates").click()
        groups = page.locator('[class*="st-key-dupe-group-"]')
        groups.first.wait_for(timeout=120_000)
        page.wait_for_function(
            "() => { const i = [...document.querySelectorAll('[class*=\"st-key-dupe-group-\"] img')];"
            " return i.length >= 10 && i.every(x => x.complete && x.naturalWidth > 0); }",
            timeout=60_000,
        )
        rows = page.evaluate(
            """() => [...document.querySelectorAll('[class*="st-key-dupe-group-"]')].map(g =>
                 [...g.querySelectorAll('img')].map(i => [i.alt, Math.round(i.getBoundingClientRect().top)]))"""
        )
        copies = {f"copy-{p.name[5:]}" for p in extra.iterdir()}
        pairs = [r for r in rows if any(alt in copies for alt, _ in r)]
        assert len(pairs) == len(copies), rows
        for r in pairs:  # the original first (kept), its copy beside it on the same row
            assert len(r) == 2 and r[1][0] == "copy-" + r[0][0] and r[0][1] == r[1][1], r
        page.screenshot(path=str(ARTIFACTS / "ui-duplicates.png"))
        first = groups.first
        first.get_by_role("link", name="Similar pictures").first.click()
        page.wait_for_url("**/?like=*", timeout=60_000)
        page.locator(CARDS).first.wait_for(timeout=60_000)

    _browse(browser, url, {"width": 1440, "height": 900}, run)
