"""Misuse sweep: a few hundred hostile invocations of the real `pixseek` command (and of its search page),
counting what must never happen: tracebacks, hangs, unintended writes and lost rows.

Three families, on a corpus of ~40 drawn pictures (JPEG, PNG, WebP, in subfolders) indexed with the
tiny-random model through the CLI:

1. CLI values: out-of-range, non-numeric and non-finite option values, impossible dates, odd folders
   and file types, query images that are FIFOs, devices, folders, text, empty or truncated files,
   `--db` naming a file, garbage or an empty folder, bad `--index-type` strings, hostile query texts.
2. Database tampering, each case on a fresh copy of the data dir: the FAISS sidecar and file replaced,
   truncated or deleted, damaged meta, a dropped column or table, bad vector BLOBs, the database
   replaced by random bytes, emptied, or by another program's SQLite file, a read-only copy. Each is
   followed by search, stats, errors, doctor --check-only (read-only: nothing may change), doctor
   (may repair, must not drop good rows) and search again.
3. The page: `pixseek ui` started once; HTTP GETs with traversal paths, absolute sample paths, foreign
   Host headers and hostile query links; no file contents, no index data, no traceback in its log.

A traceback is "Traceback" in the output or an exit status other than 0, 1, 2; a hang is a process (or
request) that reaches its timeout; an unintended write is a changed sha256 of a file that must not
change; lost rows are indexed images gone afterwards that were not damaged on purpose. Writes its
section ("misuse") of RESULTS.md and dumps every invocation as JSON.
Usage: python bench/misuse.py [--quick] [--timeout 60]
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from common import CACHE, dump_json, header, table, write_section
from PIL import Image, ImageDraw

WORK = CACHE / "misuse"
FAMILIES = ["cli values", "db tampering", "page"]
PROBLEMS = ["traceback", "hang", "write", "lost"]  # the four counted against the target 0 / 0 / 0 / 0
EXTRA = ["leak", "unexpected"]  # also reported: file contents served, an exit status or message not as documented
DB_FILES = ("pixseek.db", "pixseek.db-wal", "vectors.faiss", "vectors.json")


def env() -> dict[str, str]:
    e = dict(os.environ, HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    for k in ("PIXSEEK_DB", "PIXSEEK_FAULT", "PIXSEEK_RUNTIME", "PIXSEEK_INDEX_MEMORY"):
        e.pop(k, None)
    return e


# --- the corpus ------------------------------------------------------------------------------------


def draw_corpus(root: Path, n: int) -> list[Path]:
    """``n`` small pictures of coloured shapes, in JPEG, PNG and WebP, spread over a few subfolders."""
    rng = np.random.default_rng(7)
    folders = ["", "trips", "trips/2020", "pets"]
    formats = [("png", "PNG"), ("jpg", "JPEG"), ("webp", "WEBP")]
    out = []
    for i in range(n):
        w, h = int(rng.integers(40, 160)), int(rng.integers(40, 160))
        bg = tuple(int(c) for c in rng.integers(0, 256, 3))
        im = Image.new("RGB", (w, h), bg)
        d = ImageDraw.Draw(im)
        for _ in range(3):
            x0, y0 = int(rng.integers(0, w // 2)), int(rng.integers(0, h // 2))
            x1, y1 = x0 + int(rng.integers(5, w // 2 + 6)), y0 + int(rng.integers(5, h // 2 + 6))
            fill = tuple(int(c) for c in rng.integers(0, 256, 3))
            (d.ellipse if rng.random() < 0.5 else d.rectangle)([x0, y0, x1, y1], fill=fill)
        ext, fmt = formats[i % 3]
        path = root / folders[i % len(folders)] / f"pic{i:02d}.{ext}"
        path.parent.mkdir(parents=True, exist_ok=True)
        im.save(path, fmt)
        out.append(path)
    return out


# --- probes ----------------------------------------------------------------------------------------


def digest(paths) -> dict[str, str]:
    """sha256 of each file (a missing file and an empty WAL read the same: nothing committed there)."""
    out = {}
    for p in paths:
        p = Path(p)
        if p.is_file():
            data = p.read_bytes()
            out[str(p)] = "<missing>" if not data and p.name.endswith("-wal") else hashlib.sha256(data).hexdigest()
        else:
            out[str(p)] = "<missing>" if not p.exists() else "<not a file>"
    return out


def changed(before: dict[str, str], after: dict[str, str]) -> list[str]:
    return [f"{Path(k).name} {before[k][:12]} -> {after[k][:12]}" for k in before if before[k] != after[k]]


def db_files(db: Path) -> list[Path]:
    return [db / n for n in DB_FILES]


def count(db: Path) -> int | None:
    """Images in the index, read from a copy (so the probe itself never touches the data dir)."""
    src = db / "pixseek.db"
    if not src.is_file():
        return None
    tmp = WORK / "_count"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    shutil.copyfile(src, tmp / "pixseek.db")
    if (db / "pixseek.db-wal").is_file():
        shutil.copyfile(db / "pixseek.db-wal", tmp / "pixseek.db-wal")
    try:
        con = sqlite3.connect(tmp / "pixseek.db")
        try:
            return con.execute("SELECT count(*) FROM images").fetchone()[0]
        finally:
            con.close()
    except sqlite3.Error:
        return None


def first_last(text: str) -> tuple[str, str]:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return (lines[0][:300], lines[-1][:300]) if lines else ("", "")


class Sweep:
    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.rows: list[dict] = []

    # one `pixseek` process
    def run(self, args: list[str], cwd: Path) -> dict:
        t0 = time.perf_counter()
        p = subprocess.Popen(
            [sys.executable, "-m", "pixseek", *args],
            cwd=cwd,
            env=env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        hung = False
        try:
            out, err = p.communicate(timeout=self.timeout)
        except subprocess.TimeoutExpired:
            hung = True
            try:
                os.killpg(p.pid, signal.SIGKILL)  # the group this call started, nothing else
            except ProcessLookupError:
                pass
            out, err = p.communicate()
        return {
            "rc": p.returncode,
            "seconds": round(time.perf_counter() - t0, 3),
            "stdout": out.decode("utf-8", "replace"),
            "stderr": err.decode("utf-8", "replace"),
            "hung": hung,
        }

    def invoke(
        self,
        family: str,
        name: str,
        args: list[str],
        *,
        cwd: Path,
        protect=(),
        listing: Path | None = None,
        rows_db: Path | None = None,
        floor: int | None = None,
        expect=None,
        one_line: str | None = None,
        write_ok_on_success: bool = False,
    ) -> dict:
        """Run one invocation and record which problems it showed.

        protect: files whose sha256 must not change; listing: a folder where no file may appear or go;
        rows_db: the data dir whose image count must not drop (below ``floor``, default: the count
        before); expect: the exit status(es) documented for it; one_line: the one ``Error:`` line's start.
        """
        before = digest(protect) if protect else None
        names = sorted(os.listdir(listing)) if listing else None
        rows_before = count(rows_db) if rows_db else None
        if rows_db and floor is None:
            floor = rows_before
        r = self.run(args, cwd)
        problems, notes = [], []
        text = r["stdout"] + r["stderr"]
        if r["hung"]:
            problems.append("hang")
        elif "Traceback" in text or r["rc"] not in (0, 1, 2):
            problems.append("traceback")
        diff = changed(before, digest(protect)) if protect else []
        if diff and not (write_ok_on_success and r["rc"] == 0):
            problems.append("write")
            notes.append("changed: " + "; ".join(diff))
        if listing is not None and sorted(os.listdir(listing)) != names:
            if "write" not in problems:
                problems.append("write")
            notes.append(f"folder listing {names} -> {sorted(os.listdir(listing))}")
        rows_after = count(rows_db) if rows_db else None
        if rows_db and floor is not None and (rows_after is None or rows_after < floor):
            problems.append("lost")
            notes.append(f"rows {rows_before} -> {rows_after} (floor {floor})")
        if not r["hung"] and "traceback" not in problems:
            ok = True
            if expect is not None:
                ok = r["rc"] in (expect if isinstance(expect, (tuple, list, set)) else (expect,))
            lines = [line for line in r["stderr"].strip().splitlines() if line.strip()]
            if ok and one_line is not None and r["rc"] == 1:
                ok = len(lines) == 1 and lines[0].startswith(one_line)
            elif ok and r["rc"] == 1 and args and args[0] != "doctor":
                # exit 1 is "a problem explained on one line": allow one notice before the Error line
                ok = bool(lines) and lines[-1].startswith("Error: ") and len(lines) <= 2
            if not ok:
                problems.append("unexpected")
                notes.append(f"expected exit {expect}" + (f" with one line {one_line!r}" if one_line else ""))
        first, last = first_last(r["stderr"])
        row = {
            "family": family,
            "name": name,
            "argv": ["pixseek", *args],
            "rc": r["rc"],
            "seconds": r["seconds"],
            "problems": problems,
            "notes": notes,
            "stderr_first": first,
            "stderr_last": last,
            "stdout_first": first_last(r["stdout"])[0],
        }
        self.rows.append(row)
        mark = ",".join(problems) or "ok"
        print(f"  [{family}] {name}: exit {r['rc']} in {r['seconds']:.1f} s -> {mark}", flush=True)
        if problems:
            print(f"      stderr: {first!r} ... {last!r}", flush=True)
        return row

    def record(self, family, name, action, rc, seconds, problems, notes=(), first="", last="") -> None:
        row = {
            "family": family,
            "name": name,
            "argv": action,
            "rc": rc,
            "seconds": round(seconds, 3),
            "problems": list(problems),
            "notes": list(notes),
            "stderr_first": first,
            "stderr_last": last,
        }
        self.rows.append(row)
        print(f"  [{family}] {name}: {rc} in {seconds:.2f} s -> {','.join(problems) or 'ok'}", flush=True)


# --- family 1: CLI values ---------------------------------------------------------------------------


def family_cli(sw: Sweep, t: dict, quick: bool) -> None:
    fam = FAMILIES[0]
    db = WORK / "cli-db"
    shutil.copytree(t["db"], db)
    photos = t["photos"]
    png = t["png"]
    odd = WORK / "odd"
    odd.mkdir()
    fifo = odd / "pipe.png"
    os.mkfifo(fifo)
    (odd / "notes.png").write_text("this is text, not a picture\n")
    (odd / "empty.png").write_bytes(b"")
    data = png.read_bytes()
    (odd / "half.png").write_bytes(data[: len(data) // 2])
    regular, garbage, empty = odd / "notes.db", odd / "garbage", odd / "empty-dir"

    def fresh_targets() -> None:
        """A regular file, a folder whose pixseek.db is garbage and an empty folder, as new for each case."""
        regular.write_bytes(b"mine")
        for d in (garbage, empty):
            shutil.rmtree(d, ignore_errors=True)
            d.mkdir()
        (garbage / "pixseek.db").write_bytes(b"this is not sqlite\n" * 50)

    dbo = ["--db", str(db)]
    sim = ["search", "--similar", "1", *dbo]
    big = "99999999999999999999"
    cases: list[tuple[str, list[str], dict]] = [
        ("similar huge id", ["search", "--similar", big, *dbo], {"expect": 2}),
        ("similar -1", ["search", "--similar", "-1", *dbo], {"expect": 2}),
        ("similar abc", ["search", "--similar", "abc", *dbo], {"expect": 2}),
        ("similar 0", ["search", "--similar", "0", *dbo], {"expect": 1}),
        ("similar 5000 (no such id)", ["search", "--similar", "5000", *dbo], {"expect": 1}),
        ("similar 2**63-1", ["search", "--similar", str(2**63 - 1), *dbo], {"expect": 1}),
        ("-k 0", [*sim, "-k", "0"], {"expect": 2}),
        ("-k huge", [*sim, "-k", big], {"expect": 2}),
        ("-k 100000", [*sim, "-k", "100000"], {"expect": 0}),
        ("--min-score nan", [*sim, "--min-score", "nan"], {"expect": 1}),
        ("--min-score inf", [*sim, "--min-score", "inf"], {}),
        ("--min-score -inf", [*sim, "--min-score", "-inf"], {}),
        ("--min-score 1e999", [*sim, "--min-score", "1e999"], {}),
        ("--min-score text", [*sim, "--min-score", "high"], {"expect": 2}),
        ("--min-side huge", [*sim, "--min-side", big], {"expect": 2}),
        ("--min-side -5", [*sim, "--min-side", "-5"], {"expect": 2}),
        ("--min-side 9999999999", [*sim, "--min-side", "9999999999"], {"expect": 1}),
        ("--since 2020-02-30", [*sim, "--since", "2020-02-30"], {"expect": 1}),
        ("--since garbage", [*sim, "--since", "yesterday"], {"expect": 1}),
        ("--since empty", [*sim, "--since", ""], {}),
        ("--until 0001-01-01", [*sim, "--until", "0001-01-01"], {}),
        ("calendar ends", [*sim, "--since", "0001-01-01", "--until", "9999-12-31", "-k", "100"], {"expect": 0}),
        ("--since 10000-01-01", [*sim, "--since", "10000-01-01"], {}),
        ("reversed range", [*sim, "--since", "2030-01-01", "--until", "2000-01-01"], {}),
        ("--type jpg .JPEG", [*sim, "--type", "jpg", "--type", ".JPEG"], {"expect": 0}),
        ("--type bogus", [*sim, "--type", "bogus"], {"expect": 1}),
        ("--type empty", [*sim, "--type", ""], {}),
        ("--in relative", [*sim, "--in", "photos/trips"], {"expect": 0}),
        ("--in nonexistent", [*sim, "--in", "/nonexistent/folder"], {}),
        ("--in ../..", [*sim, "--in", "../../../../../.."], {}),
        ("--in odd name", [*sim, "--in", "-\t\x1b[31m\u202e\ufeffodd"], {}),
        ("--in a file", [*sim, "--in", str(png)], {}),
        ("--image fifo", ["search", "--image", str(fifo), *dbo], {"expect": 1}),
        ("--image /dev/zero", ["search", "--image", "/dev/zero", *dbo], {"expect": 1}),
        ("--image /dev/null", ["search", "--image", "/dev/null", *dbo], {"expect": 1}),
        ("--image a folder", ["search", "--image", str(odd), *dbo], {"expect": 1}),
        ("--image a text file", ["search", "--image", str(odd / "notes.png"), *dbo], {"expect": 1}),
        ("--image 0 bytes", ["search", "--image", str(odd / "empty.png"), *dbo], {"expect": 1}),
        ("--image truncated png", ["search", "--image", str(odd / "half.png"), *dbo], {"expect": 1}),
        ("--image nonexistent", ["search", "--image", str(odd / "nope.png"), *dbo], {"expect": 1}),
        ("--image weight nan", ["search", "--image", f"{png}::nan", *dbo], {}),
        ("--image weight 1e999", ["search", "--image", f"{png}::1e999", *dbo], {}),
        ("--image weight 0", ["search", "--image", f"{png}::0", *dbo], {}),
        ("--image + --similar", ["search", "--image", str(png), "--similar", "1", *dbo], {"expect": 0}),
        ("index ''", ["index", "", *dbo], {"expect": 1}),
        ("index no args", ["index", *dbo], {"expect": 1}),
        ("forget ''", ["forget", "", *dbo], {"expect": 1}),
        ("forget /", ["forget", "/", "--db", str(empty)], {}),
        ("errors --limit 0", ["errors", "--limit", "0", *dbo], {"expect": 2}),
        ("errors --limit huge", ["errors", "--limit", big, *dbo], {"expect": 2}),
        ("errors --limit -1", ["errors", "--limit", "-1", *dbo], {"expect": 2}),
        ("--db a regular file (stats)", ["stats", "--db", str(regular)], {"expect": 1}),
        ("--db a regular file (search)", ["search", "--similar", "1", "--db", str(regular)], {"expect": 1}),
        ("--db a regular file (index)", ["index", str(photos), "--db", str(regular)], {"expect": 1}),
        ("--db garbage pixseek.db (stats)", ["stats", "--db", str(garbage)], {"expect": 1}),
        ("--db garbage pixseek.db (search)", ["search", "--similar", "1", "--db", str(garbage)], {"expect": 1}),
        ("--db garbage pixseek.db (doctor)", ["doctor", "--db", str(garbage)], {"expect": 1}),
        ("--db garbage pixseek.db (index)", ["index", str(photos), "--db", str(garbage)], {"expect": 1}),
        ("--db empty folder (stats)", ["stats", "--db", str(empty)], {"expect": 1}),
        ("--db empty folder (search)", ["search", "--similar", "1", "--db", str(empty)], {"expect": 1}),
        ("--db empty folder (errors)", ["errors", "--db", str(empty)], {"expect": 1}),
        ("--db empty folder (check-only)", ["doctor", "--check-only", "--db", str(empty)], {"expect": 1}),
        ("--db ''", ["stats", "--db", ""], {}),
    ]
    for kind in [
        "HNSW0",
        "IVF0,Flat",
        "IVF16,PQ7",
        "IVF16,PQ8x9fs",
        "Flat;DROP TABLE images",
        "",
        "IVF" + "9" * 400 + ",Flat",
        "HNSW32," * 300,
        "Flät✓,IVF🐶",
        "IVF16,PQ8\x00",
    ]:
        if "\x00" in kind:
            kind = kind.replace("\x00", "\x7f")  # argv cannot carry NUL
        expect = 1 if kind else None  # "" may mean auto
        cases.append(
            (f"--index-type {kind[:24]!r}", ["index", str(photos), *dbo, "--index-type", kind], {"expect": expect})
        )
    texts = [
        ("text with control characters", ["search", "a\x1b[31mred\x07 car\x08\x7f", *dbo, "-k", "3"], {"expect": 0}),
        ("text unicode + long", ["search", "🐶 犬 " + "x" * 20000, *dbo, "-k", "3"], {"expect": 0}),
        ("weight a::nan", ["search", "--text", "a::nan", *dbo], {}),
        ("weight a::1e999", ["search", "--text", "a::1e999", *dbo], {}),
        ("weight ::", ["search", "::", *dbo], {}),
        ("negative only", ["search", "--not", "blurry", *dbo], {}),
        ("similar + text", ["search", "a cat", "--similar", "1", *dbo, "-k", "3"], {"expect": 0}),
    ]
    cases += texts
    if quick:
        pick = {
            "similar huge id",
            "-k 0",
            "--min-score nan",
            "--image fifo",
            "--image /dev/zero",
            "index ''",
            "--db empty folder (stats)",
            "--db garbage pixseek.db (doctor)",
            "text with control characters",
        }
        cases = [c for c in cases if c[0] in pick or c[0].startswith("--index-type 'HNSW0")]
    for name, args, kw in cases:
        fresh_targets()
        listing = empty if str(empty) in args else garbage if str(garbage) in args else None
        protect = db_files(db) + [regular, garbage / "pixseek.db"]
        if args[0] == "index" and str(db) in args:
            kw = dict(kw, write_ok_on_success=True)  # an index run that was accepted may write, of course
        sw.invoke(fam, name, args, cwd=WORK, protect=protect, listing=listing, rows_db=db, **kw)
    assert count(db) == t["n"]


# --- family 2: database tampering ---------------------------------------------------------------


def sql(db: Path, *statements, params=()) -> None:
    con = sqlite3.connect(db / "pixseek.db")
    try:
        for s in statements:
            con.execute(s, params if "?" in s else ())
        con.commit()
    finally:
        con.close()


def tamper_cases(t: dict) -> list[tuple[str, int, object]]:
    """(name, rows damaged on purpose, function(db)) for each damage."""
    rng = np.random.default_rng(11)
    sidecar = json.loads((t["db"] / "vectors.json").read_text())

    def write(name, data):
        def f(db):
            (db / name).write_bytes(data if isinstance(data, bytes) else data.encode())

        return f

    def half(name):
        def f(db):
            b = (db / name).read_bytes()
            (db / name).write_bytes(b[: len(b) // 2])

        return f

    def meta(key, value):
        return lambda db: sql(db, "UPDATE meta SET value = ? WHERE key = ?", params=(value, key))

    def lying(db):
        (db / "vectors.json").write_text(json.dumps(dict(sidecar, count=10**12, dim=10**9, size=10**15)))

    def foreign_cache(db):
        shutil.copyfile(t["db2"] / "vectors.faiss", db / "vectors.faiss")
        shutil.copyfile(t["db2"] / "vectors.json", db / "vectors.json")

    nan = np.full(t["dim"], np.nan, "<f4").tobytes()
    return [
        ("vectors.json null", 0, write("vectors.json", "null")),
        ("vectors.json 5", 0, write("vectors.json", "5")),
        ('vectors.json "x"', 0, write("vectors.json", '"x"')),
        ("vectors.json []", 0, write("vectors.json", "[]")),
        ("vectors.json {}", 0, write("vectors.json", "{}")),
        ("vectors.json truncated", 0, half("vectors.json")),
        (
            "vectors.json wrong field types",
            0,
            write(
                "vectors.json",
                json.dumps(
                    {
                        "generation": [],
                        "model_id": 5,
                        "dim": "128",
                        "count": "x",
                        "factory": None,
                        "params": 3,
                        "recall": "high",
                        "tuned_n": -1,
                        "rerank": "a",
                        "size": "big",
                    }
                ),
            ),
        ),
        ("vectors.json huge count/dim", 0, lying),
        ("vectors.faiss truncated", 0, half("vectors.faiss")),
        ("vectors.faiss random bytes", 0, write("vectors.faiss", rng.bytes(4096))),
        ("vectors.faiss deleted", 0, lambda db: (db / "vectors.faiss").unlink()),
        ("cache of another index", 0, foreign_cache),
        ("meta generation 'abc'", 0, meta("generation", "abc")),
        ("meta dim 'x'", 0, meta("dim", "x")),
        ("meta dim 64", 0, meta("dim", "64")),
        ("meta model_id changed", 0, meta("model_id", "other#1")),
        ("meta model_id row deleted", 0, lambda db: sql(db, "DELETE FROM meta WHERE key = 'model_id'")),
        ("meta schema_version deleted", 0, lambda db: sql(db, "DELETE FROM meta WHERE key = 'schema_version'")),
        ("dropped column taken_at", 0, lambda db: sql(db, "ALTER TABLE images DROP COLUMN taken_at")),
        ("dropped table errors", 0, lambda db: sql(db, "DROP TABLE errors")),
        (
            "unknown (newer) migration",
            0,
            lambda db: sql(db, "INSERT INTO migrations(name, applied_at) VALUES ('m999_future', 0)"),
        ),
        (
            "vector BLOB of wrong length",
            1,
            lambda db: sql(db, "UPDATE images SET vector = substr(vector, 1, 100) WHERE id = 3"),
        ),
        ("vector of NaNs", 1, lambda db: sql(db, "UPDATE images SET vector = ? WHERE id = 4", params=(nan,))),
        ("a row of another model", 1, lambda db: sql(db, "UPDATE images SET model_id = 'other#1' WHERE id = 5")),
        ("pixseek.db random bytes", -1, write("pixseek.db", rng.bytes(65536))),
        ("pixseek.db 0 bytes", -1, write("pixseek.db", b"")),
    ]


def family_tamper(sw: Sweep, t: dict, quick: bool) -> None:
    fam = FAMILIES[1]
    n = t["n"]
    cases = tamper_cases(t)
    if quick:
        cases = [cases[0], cases[10], cases[21], cases[24]]
    for i, (name, damaged, fn) in enumerate(cases):
        db = WORK / f"tamper{i:02d}"
        shutil.copytree(t["db"], db)
        fn(db)
        whole_db = damaged < 0  # the database itself is gone: nothing may write over what is left of it
        floor = None if whole_db else n - damaged
        for step, args in [
            ("search", ["search", "--similar", "1", "-k", "3"]),
            ("stats", ["stats"]),
            ("errors", ["errors"]),
            ("doctor --check-only", ["doctor", "--check-only"]),
        ]:
            sw.invoke(fam, f"{name}: {step}", [*args, "--db", str(db)], cwd=WORK, protect=db_files(db))
        sw.invoke(
            fam,
            f"{name}: doctor",
            ["doctor", "--db", str(db)],
            cwd=WORK,
            protect=[db / "pixseek.db"] if whole_db else (),
            rows_db=None if whole_db else db,
            floor=floor,
            write_ok_on_success=True,  # a repair that ends well may write; one that fails must leave it as it was
        )
        sw.invoke(
            fam,
            f"{name}: search after doctor",
            ["search", "--similar", "2", "-k", "3", "--db", str(db)],
            cwd=WORK,
            protect=db_files(db),
            rows_db=None if whole_db else db,
        )
        shutil.rmtree(db, ignore_errors=True)
    family_foreign(sw, t, quick)
    family_read_only(sw, t, quick)


def family_foreign(sw: Sweep, t: dict, quick: bool) -> None:
    fam = FAMILIES[1]
    data = WORK / "theirs"
    data.mkdir()
    con = sqlite3.connect(data / "pixseek.db")
    con.execute("CREATE TABLE accounts (id INTEGER PRIMARY KEY, owner TEXT, balance REAL)")
    con.executemany("INSERT INTO accounts(owner, balance) VALUES (?, ?)", [("someone", 12.5), ("else", 3.0)])
    con.commit()
    con.close()
    commands = [
        ["stats"],
        ["errors"],
        ["search", "--similar", "1"],
        ["search", "--image", str(t["png"])],
        ["doctor", "--check-only"],
        ["doctor"],
        ["index", str(t["photos"])],
        ["forget", str(t["photos"])],
    ]
    if quick:
        commands = commands[4:6]
    for args in commands:
        sw.invoke(
            fam,
            f"another program's database: {args[0]}{' ' + args[1] if args[1:2] and args[1].startswith('-') else ''}",
            [*args, "--db", str(data)],
            cwd=WORK,
            protect=[data / "pixseek.db"],
            listing=data,
            expect=1,
        )


def family_read_only(sw: Sweep, t: dict, quick: bool) -> None:
    fam = FAMILIES[1]
    src, mnt = WORK / "ro-src", WORK / "ro-mnt"
    src.mkdir()
    mnt.mkdir()
    shutil.copytree(t["db"], src / "db")
    mounted = False
    if os.geteuid() == 0:
        for cmd in (["mount", "--bind", str(src), str(mnt)], ["mount", "-o", "remount,bind,ro", str(mnt)]):
            done = subprocess.run(cmd, capture_output=True, text=True)
            if done.returncode != 0:
                print(f"  cannot mount read-only ({done.stderr.strip()}); falling back to permission bits")
                unmount(mnt, src)
                break
        else:
            mounted = True
    if not mounted:
        for p in [src, *src.rglob("*")]:
            p.chmod(0o555 if p.is_dir() else 0o444)
        mnt.rmdir()
        mnt.symlink_to(src)
    ro = mnt / "db"
    files = sorted(ro.iterdir())
    try:
        readers = [
            ["search", "--similar", "1", "-k", "2"],
            ["search", "--image", str(t["png"]), "-k", "2"],
            ["stats"],
            ["errors"],
            ["doctor", "--check-only"],
        ]
        writers = [["index", str(t["photos"])], ["doctor"], ["forget", str(t["photos"])]]
        if quick:
            readers, writers = readers[:1], writers[:1]
        for args in readers:
            sw.invoke(
                fam,
                f"read-only copy: {' '.join(args[:2])}",
                [*args, "--db", str(ro)],
                cwd=WORK,
                protect=files,
                listing=ro,
                rows_db=ro,
                expect=0,
            )
        for args in writers:
            sw.invoke(
                fam,
                f"read-only copy: {args[0]}",
                [*args, "--db", str(ro)],
                cwd=WORK,
                protect=files,
                listing=ro,
                rows_db=ro,
                expect=1,
                # doctor reports it as one of its checks, the others as an error
                one_line=f"{'failed  database' if args[0] == 'doctor' else 'Error'}: cannot write to {ro}: ",
            )
    finally:
        unmount(mnt, src)


def is_mount(path: Path) -> bool:
    """Whether ``path`` is a mount point (os.path.ismount misses a bind mount within one file system)."""
    try:
        with open("/proc/self/mounts") as f:
            points = [line.split()[1].encode().decode("unicode_escape") for line in f if line.strip()]
    except OSError:
        return os.path.ismount(path)
    return str(path) in points


def unmount(mnt: Path, src: Path) -> None:
    while is_mount(mnt):  # only the mount this script made (a read-only bind of its own folder)
        if subprocess.run(["umount", str(mnt)], check=False).returncode != 0:
            break
    if src.exists():
        for p in [src, *src.rglob("*")]:
            if not p.is_symlink():
                p.chmod(0o755 if p.is_dir() else 0o644)


# --- family 3: the page -------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(port: int, path: str, host: str | None, timeout: float) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.putrequest("GET", path, skip_host=True, skip_accept_encoding=True)
        conn.putheader("Host", host or f"127.0.0.1:{port}")
        conn.endheaders()
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def family_page(sw: Sweep, t: dict, quick: bool) -> None:
    fam = FAMILIES[2]
    db = WORK / "ui-db"
    shutil.copytree(t["db"], db)
    before = digest(db_files(db))
    rows_before = count(db)
    port = free_port()
    log = WORK / "ui.log"
    t0 = time.perf_counter()
    with open(log, "wb") as f:
        server = subprocess.Popen(
            [sys.executable, "-m", "pixseek", "ui", "--db", str(db), "--port", str(port)],
            cwd=WORK,
            env=env(),
            stdin=subprocess.DEVNULL,
            stdout=f,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        ready = False
        while time.perf_counter() - t0 < 120 and server.poll() is None:
            try:
                if get(port, "/_stcore/health", None, 5) == (200, b"ok"):
                    ready = True
                    break
            except OSError:
                pass
            time.sleep(0.5)
        started = time.perf_counter() - t0
        sw.record(
            fam,
            "server start",
            f"pixseek ui --db {db} --port {port}",
            "ready" if ready else server.returncode,
            started,
            [] if ready else (["hang"] if server.poll() is None else ["traceback"]),
        )
        if not ready:
            return
        secret = [b"root:x:", b"root:*:"]
        magic = [b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"WEBPVP8"]
        samples = [t["png"], t["jpg"], t["webp"]]
        sample_bytes = [p.read_bytes()[8:40] for p in samples]
        photos = str(t["photos"]).encode()
        enc = lambda s: "".join(f"%{b:02x}" if chr(b) in "/." else chr(b) for b in s.encode())  # noqa: E731
        png = str(t["png"])
        paths = [
            "/app/static/../../etc/passwd",
            "/app/static/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
            "/app/static/..%2f..%2f..%2f..%2fetc%2fpasswd",
            "/app/static/%252e%252e/%252e%252e/etc/passwd",
            "/static/../../../../../../etc/passwd",
            "/static/%2e%2e%2f%2e%2e%2f%2e%2e%2f%2e%2e%2fetc%2fpasswd",
            "/static/..\\..\\..\\..\\etc\\passwd",
            "/media/../../../../etc/passwd",
            "/media/..%2f..%2f..%2f..%2fetc%2fpasswd",
            "/component/x/..%2f..%2f..%2f..%2f..%2fetc%2fpasswd",
            "/_stcore/../../../etc/passwd",
            "/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
            "//etc/passwd",
            "/etc/passwd%00.png",
            "/app/static" + png,
            "/app/static/" + enc(png),
            "/media" + png,
            "/media/" + enc(png),
            "/static" + png,
            png,
            "/" + enc(png),
            "/media/../../../.." + png,
            "/component/x" + png,
            "/?q=%3Cscript%3Ealert(1)%3C%2Fscript%3E",
            "/?like=99999999999999999999",
            "/?like=abc",
            "/?like=-1",
            "/?q=%00",
            "/?q=%ff%fe%c0%af",
            "/?q=" + "a" * 8000,
        ]
        hosts = [
            ("/", f"rebind.example:{port}"),
            ("/_stcore/health", f"rebind.example:{port}"),
            ("/", "evil"),
            ("/?q=a", f"127.0.0.1.nip.io:{port}"),
            ("/_stcore/host-config", f"rebind.example:{port}"),
        ]
        requests = [(p, None) for p in paths] + hosts
        if quick:
            requests = requests[:3] + requests[14:16] + requests[-2:]
        for path, host in requests:
            t1 = time.perf_counter()
            problems, notes, status = [], [], None
            try:
                status, body = get(port, path, host, sw.timeout)
            except TimeoutError:
                problems.append("hang")
                body = b""
            except (OSError, http.client.HTTPException) as e:
                status, body = f"{type(e).__name__}", b""
            if b"Traceback" in body:
                problems.append("traceback")
            leaked = [s.decode() for s in secret if s in body]
            leaked += [repr(m) for m in magic if m in body]
            leaked += [f"bytes of {p.name}" for p, b in zip(samples, sample_bytes) if b in body]
            if photos in body:
                leaked.append("the indexed folder's path")
            if leaked:
                problems.append("leak")
                notes.append("served: " + ", ".join(leaked))
            name = f"GET {path[:70]}" + (f" (Host: {host})" if host else "")
            sw.record(
                fam, name, f"GET {path} Host: {host or 'default'}", status, time.perf_counter() - t1, problems, notes
            )
    finally:
        try:
            os.killpg(server.pid, signal.SIGTERM)  # the group this script started
            server.wait(15)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(server.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            server.wait()
    text = log.read_text(errors="replace")
    problems = []
    if "Traceback" in text:
        problems.append("traceback")
    diff = changed(before, digest(db_files(db)))
    if diff:
        problems.append("write")
    if count(db) != rows_before:
        problems.append("lost")
    first, last = first_last(text)
    sw.record(
        fam,
        "server log + data dir after",
        f"grep Traceback {log}; sha256 of {db}",
        "checked",
        0.0,
        problems,
        ["changed: " + "; ".join(diff)] if diff else [],
        first,
        last,
    )


# --- main ---------------------------------------------------------------------------------------------


def setup(n: int) -> dict:
    unmount(WORK / "ro-mnt", WORK / "ro-src")  # a previous run stopped before its clean-up
    if is_mount(WORK / "ro-mnt"):
        raise SystemExit(f"{WORK / 'ro-mnt'} is still mounted: umount it first")
    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)
    photos = WORK / "photos"
    pics = draw_corpus(photos, n)

    def index(folder: Path, db: Path) -> None:
        p = subprocess.run(
            [
                sys.executable,
                "-m",
                "pixseek",
                "index",
                str(folder),
                "--db",
                str(db),
                "--model",
                "tiny-random",
                "--workers",
                "0",
            ],
            cwd=WORK,
            env=env(),
            capture_output=True,
            text=True,
            timeout=300,
        )
        if p.returncode != 0:
            raise SystemExit(f"set-up index failed ({p.returncode}): {p.stderr[-2000:]}")

    index(photos, WORK / "template")
    index(photos / "pets", WORK / "template2")  # another index's cache, for one tampering case
    got = count(WORK / "template")
    if got != n:
        raise SystemExit(f"set-up indexed {got} of {n} pictures")
    con = sqlite3.connect(WORK / "template" / "pixseek.db")
    dim = int(con.execute("SELECT value FROM meta WHERE key = 'dim'").fetchone()[0])
    con.close()
    return {
        "photos": photos,
        "db": WORK / "template",
        "db2": WORK / "template2",
        "n": n,
        "dim": dim,
        "png": next(p for p in pics if p.suffix == ".png"),
        "jpg": next(p for p in pics if p.suffix == ".jpg"),
        "webp": next(p for p in pics if p.suffix == ".webp"),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="a subset of each family (a smoke test)")
    ap.add_argument("--images", type=int, default=40)
    ap.add_argument("--timeout", type=float, default=60, help="seconds before a process or request is a hang")
    args = ap.parse_args()
    t0 = time.perf_counter()
    t = setup(args.images)
    print(f"set-up: {t['n']} pictures indexed in {time.perf_counter() - t0:.1f} s", flush=True)
    sw = Sweep(args.timeout)
    try:
        family_cli(sw, t, args.quick)
        family_tamper(sw, t, args.quick)
        family_page(sw, t, args.quick)
    finally:
        unmount(WORK / "ro-mnt", WORK / "ro-src")
    total_s = time.perf_counter() - t0
    keys = PROBLEMS + EXTRA
    rows = []
    for fam in FAMILIES:
        mine = [r for r in sw.rows if r["family"] == fam]
        rows.append([fam, len(mine)] + [sum(k in r["problems"] for r in mine) for k in keys])
    rows.append(["total", len(sw.rows)] + [sum(r[i] for r in rows) for i in range(2, 2 + len(keys))])
    heads = [
        "family",
        "invocations",
        "tracebacks",
        "hangs",
        "unintended writes",
        "lost rows",
        "leaks",
        "unexpected exits",
    ]
    title = f"Misuse: {len(sw.rows)} hostile invocations{' (quick subset)' if args.quick else ''}"
    body = header(title) + "\n" + table(heads, rows)
    bad = [r for r in sw.rows if r["problems"]]
    damages = len(
        {
            r["name"].split(":")[0]
            for r in sw.rows
            if r["family"] == FAMILIES[1] and not r["name"].startswith(("another program", "read-only"))
        }
    )
    body += (
        f"\n\nTarget 0 / 0 / 0 / 0 for tracebacks / hangs / unintended writes / lost rows; whole run "
        f"{total_s:.0f} s, {args.timeout:.0f} s timeout per process or request. **cli values**: out-of-range, "
        "non-numeric and non-finite option values, impossible and extreme dates, odd `--in` folders and "
        "`--type`s, query images that are a FIFO, /dev/zero, /dev/null, a folder, text, 0 bytes, a truncated "
        "PNG or missing, `--db` naming a file, garbage or an empty folder, bad `--index-type` strings, "
        "hostile query texts and weights (the database, FAISS file and sidecar hashed around each). "
        f"**db tampering**: {damages} damages (FAISS sidecar and file replaced, truncated, deleted or from another "
        "index; damaged or missing meta; a dropped column or table; an unknown migration; bad vector BLOBs; "
        "the database replaced by random bytes or emptied), each on a fresh copy followed by search, stats, "
        "errors, doctor --check-only (nothing may change), doctor (no good row may go) and search again; "
        "another program's SQLite file under every command (it must not change, nothing may appear beside "
        "it); a read-only bind mount (readers succeed, writers exit 1 with one line). **page**: `pixseek ui` "
        "once, GETs with traversal and absolute sample paths (no /etc/passwd, no picture bytes, no index "
        "paths), foreign Host headers and hostile `?q=` / `?like=` links; its log must hold no traceback. "
        "Unexpected exits: an exit status other than the documented one, or exit 1 without a one-line "
        "`Error:` (not in the target)."
    )
    if bad:
        body += "\n\n" + table(
            ["family", "invocation", "exit", "problems", "stderr (last line)"],
            [
                [
                    r["family"],
                    r["name"],
                    r["rc"],
                    ", ".join(r["problems"] + r["notes"]),
                    r["stderr_last"].replace("|", "\\|")[:160],
                ]
                for r in bad
            ],
        )
    write_section("misuse", body)
    dump_json("misuse", sw.rows)
    print()
    print(body)


if __name__ == "__main__":
    main()
