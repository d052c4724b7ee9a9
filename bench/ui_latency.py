"""How long the search page takes to show results, measured in Chromium as a user meets it.

Indexes a folder (default: the Openclipart pictures `pixseek datasets fetch openclipart` downloads,
plus the bundled samples) with the default model, starts `pixseek ui`, and drives Debian's Chromium
through Playwright at 1440×900 with 96 results per page (``--per-page 24``: the page's default):

* **query**: from the Enter key press in the query box to the last of the page's thumbnails decoded;
* **open**: from a click on a picture to the detail dialog's picture decoded;
* **close**: from Esc to the dialog gone;
* **load more**: from the click to the next page's thumbnails decoded.

Times come from the page's own clock (``performance.now()``), p50 / p95 over the queries, written to
RESULTS.md ("Search page latency", or "…, 24 per page"). A benchmark, not a test: nothing here asserts a time. Usage::

    python bench/ui_latency.py [--folder DIR ...] [--queries 20]
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
from common import CACHE, ROOT, header, table, write_section

QUERIES = [
    "a dog", "a cat", "a red apple", "a car", "a christmas tree", "a house", "a flower", "a bird",
    "a guitar", "a computer", "a map", "a bicycle", "a boat", "the sun", "a clock", "a pizza",
    "a heart", "a tree", "a star", "a fish", "a chair", "a rocket", "a book", "a train",
]  # fmt: skip
DATASETS = Path(os.environ.get("XDG_DATA_HOME", Path.home() / ".local" / "share")) / "pixseek" / "datasets"
CHROMIUM = os.environ.get("PIXSEEK_CHROMIUM", "/usr/bin/chromium")
CARDS = '[data-testid="stMain"] img.px-thumb'
ALL_DECODED = """([n, text]) => { const cap = document.querySelector('.st-key-results-head');
  const imgs = [...document.querySelectorAll('[data-testid="stMain"] img.px-thumb')];
  if (!cap || !cap.innerText.includes(text) || imgs.length < n) return false;
  if (document.querySelector('[data-stale="true"]')) return false;  // the run has not replaced every card yet
  if (!imgs.every(i => i.complete && i.naturalWidth > 0)) return false;
  return Math.max(0.001, performance.now() - (window.__t0 ?? 0)); }"""


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _index(db: Path, folders: list[Path]) -> None:
    pixseek = Path(sys.executable).parent / "pixseek"
    subprocess.run([str(pixseek), "index", "--db", str(db), *map(str, folders)], check=True)


def _serve(db: Path, port: int) -> subprocess.Popen:
    pixseek = Path(sys.executable).parent / "pixseek"
    proc = subprocess.Popen(
        [str(pixseek), "ui", "--db", str(db), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    for _ in range(300):
        try:
            if urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2).read() == b"ok":
                return proc
        except OSError:
            time.sleep(0.3)
    proc.kill()
    raise SystemExit("pixseek ui did not start")


def _measure(page, queries: list[str], per_page: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {"query": [], "open": [], "close": [], "load more": []}
    box = page.get_by_label("Describe what you are looking for")
    for q in queries:
        box.fill(q)
        page.evaluate("() => { window.__t0 = performance.now(); }")
        box.press("Enter")
        h = page.wait_for_function(ALL_DECODED, arg=[per_page, f"for '{q}'"], timeout=120_000, polling="raf")
        times["query"].append(h.json_value())
        page.wait_for_timeout(300)
        page.evaluate("() => { window.__t0 = performance.now(); }")
        page.locator('.px-card, [class*="st-key-open-"] button').nth(7).click()
        h = page.wait_for_function(
            "() => { const i = document.querySelector('[role=\"dialog\"] img');"
            " return i && i.complete && i.naturalWidth > 0 && Math.max(0.001, performance.now() - window.__t0); }",
            timeout=60_000,
            polling="raf",
        )
        times["open"].append(h.json_value())
        page.evaluate("() => { window.__t0 = performance.now(); }")
        page.keyboard.press("Escape")
        h = page.wait_for_function(
            "() => !document.querySelector('[role=\"dialog\"]') && Math.max(0.001, performance.now() - window.__t0)",
            polling="raf",
        )
        times["close"].append(h.json_value())
        if len(times["load more"]) < max(3, len(queries) // 3):
            page.evaluate("() => { window.__t0 = performance.now(); }")
            page.get_by_role("button", name="Load more").click()
            h = page.wait_for_function(ALL_DECODED, arg=[2 * per_page, f"for '{q}'"], timeout=120_000, polling="raf")
            times["load more"].append(h.json_value())
        box.focus()
    return times


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--folder", action="append", type=Path, help="pictures to index (repeatable)")
    ap.add_argument("--db", type=Path, default=CACHE / "ui-latency-db")
    ap.add_argument("--queries", type=int, default=len(QUERIES))
    ap.add_argument("--per-page", type=int, choices=(24, 96), default=96)
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    folders = args.folder or [DATASETS / "openclipart" / "images", ROOT / "samples"]
    missing = [f for f in folders if not f.is_dir()]
    if missing:
        raise SystemExit(f"no folder {missing[0]} (run `pixseek datasets fetch openclipart`, or pass --folder)")
    _index(args.db, folders)
    from playwright.sync_api import sync_playwright

    port = _port()
    proc = _serve(args.db, port)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1440, "height": 900})
            page.goto(f"http://127.0.0.1:{port}/?q=warm%20up", wait_until="domcontentloaded")
            page.locator(CARDS).first.wait_for(timeout=120_000)
            # every match, best first: the relevance cut-off (on by default) would keep fewer than a page
            toggle = page.locator(".st-key-cutoff input")
            toggle.wait_for(state="attached", timeout=60_000)
            toggle.evaluate("e => e.click()")  # the sidebar's switch, below its fold
            page.wait_for_function("() => !document.querySelector('.st-key-cutoff input').checked", timeout=60_000)
            page.locator('.st-key-page_size [data-testid="stSelectbox"]').click()
            n = args.per_page
            if n != 24:  # 24 is the page's default
                page.get_by_role("option", name=str(n), exact=True).click()
            else:
                page.keyboard.press("Escape")
            page.wait_for_function(ALL_DECODED, arg=[n, "for 'warm up'"], timeout=120_000)
            times = _measure(page, QUERIES[: args.queries], n)
            browser.close()
    finally:
        proc.terminate()
        proc.wait(10)
    rows = []
    for what, ms in times.items():
        a = np.array(ms)
        rows.append([what, len(a), f"{np.percentile(a, 50):.0f}", f"{np.percentile(a, 95):.0f}", f"{a.max():.0f}"])
    section = "Search page latency" + ("" if args.per_page == 96 else f", {args.per_page} per page")
    body = header(section) + "\n".join(
        [
            f"`bench/ui_latency.py`: the folders {', '.join(f.name + '/' for f in folders)} indexed with the "
            f"default model; `pixseek ui` in Chromium (headless, 1440×900), {args.per_page} results per page. "
            "Milliseconds from the key press or click to the last picture decoded, from the page's own clock.",
            "",
            table(["interaction", "n", "p50 ms", "p95 ms", "max ms"], rows),
        ]
    )
    print(body)
    if not args.no_write:
        write_section(section, body)


if __name__ == "__main__":
    main()
