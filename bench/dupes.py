"""Near-duplicates: how well `pixseek dupes` tells copies from different pictures, and how long grouping
takes at 100k vectors.

**Quality** (real pictures): originals are the 9 sample photos, Tux Paint's photo stamps and Openclipart
drawings (one per folder, so that generated series such as 40 star shapes do not count as "different
pictures"); each gets five copies: half size re-encoded as JPEG q70, 80 % size as WebP q75 (both should
be **same**), and centre crops of 90 % and 75 % and a 60 % top-left corner (**similar**). Everything is
indexed with the real indexer (vectors and perceptual hashes from one pass), then every pair is judged
by the index's rule (`pixseek.search.dupe_rule`). Per kind: recall (original-copy pairs linked, and
linked with the right kind) and precision (linked pairs that are a picture and its copy, or two copies
of one picture). Pairs of different originals are the negatives.

**Speed** (synthetic): ``--sizes`` vectors of 768 dimensions, shaped like CLIP's (a shared direction, so
two random pictures score about 0.5), with clusters of 2 to 5 planted near-duplicates (2 % of the
vectors) whose hashes differ by 0 to 3 bits, written to a real index; `find_duplicates` groups them
with the rule read from that index. Baseline: one FAISS flat range search over all vectors at once
(``--baseline``; the research note measured 89 s and 1.3 GB at 100k on this machine).

    python bench/dupes.py [--model pixseek-photo] [--tux 120] [--clipart 120] [--sizes 100000] [--baseline]
"""

from __future__ import annotations

import argparse
import glob
import io
import random
import resource
import shutil
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np
from common import ROOT, dump_json, header, table, write_section
from PIL import Image

from pixseek import phash
from pixseek.decode import decode_bytes
from pixseek.index.indexer import Indexer
from pixseek.models import load_torch
from pixseek.search.dupe_rule import dupe_rule
from pixseek.search.dupes import find_duplicates
from pixseek.store import Store

PHOTOS = ROOT / "samples" / "photos"
TUX = Path("/tmp/data/tuxpaint/images")
CLIPART = Path("/tmp/data/openclipart/images")
COPIES = {  # name -> (kind it should get, how it is made)
    "half-jpeg70": ("same", lambda im: _save(_scale(im, 0.5), "JPEG", quality=70)),
    "80pc-webp75": ("same", lambda im: _save(_scale(im, 0.8), "WEBP", quality=75)),
    "crop90": ("similar", lambda im: _save(_crop(im, 0.05, 0.05, 0.95, 0.95), "PNG")),
    "crop75": ("similar", lambda im: _save(_crop(im, 0.125, 0.125, 0.875, 0.875), "PNG")),
    "corner60": ("similar", lambda im: _save(_crop(im, 0, 0, 0.6, 0.6), "PNG")),
}


def _scale(im: Image.Image, f: float) -> Image.Image:
    return im.resize((max(1, round(im.width * f)), max(1, round(im.height * f))), Image.Resampling.LANCZOS)


def _crop(im: Image.Image, x0: float, y0: float, x1: float, y1: float) -> Image.Image:
    w, h = im.size
    return im.crop((int(w * x0), int(h * y0), max(int(w * x0) + 1, int(w * x1)), max(int(h * y0) + 1, int(h * y1))))


def _save(im: Image.Image, fmt: str, **kw) -> tuple[bytes, str]:
    buf = io.BytesIO()
    im.save(buf, fmt, **kw)
    return buf.getvalue(), {"JPEG": ".jpg", "WEBP": ".webp", "PNG": ".png"}[fmt]


def originals(n_tux: int, n_clipart: int, seed: int = 0) -> list[tuple[str, Path]]:
    rng = random.Random(seed)
    out = [("photo", p) for p in sorted(PHOTOS.glob("*.jpg"))]
    tux = sorted(glob.glob(str(TUX / "**" / "*.png"), recursive=True))
    out += [("tuxpaint", Path(p)) for p in rng.sample(tux, min(n_tux, len(tux)))]
    folders: dict[str, list[str]] = {}
    for p in sorted(glob.glob(str(CLIPART / "**" / "*.png"), recursive=True)):
        folders.setdefault(str(Path(p).parent), []).append(p)
    picks = [rng.choice(v) for _, v in sorted(folders.items())]
    out += [("openclipart", Path(p)) for p in rng.sample(picks, min(n_clipart, len(picks)))]
    return out


def build_set(folder: Path, n_tux: int, n_clipart: int) -> dict[str, tuple[int, str, str]]:
    """Write originals and copies; path -> (origin number, source, copy name or 'original')."""
    truth = {}
    for n, (source, path) in enumerate(originals(n_tux, n_clipart)):
        data = path.read_bytes()
        im = decode_bytes(data).image  # alpha composed onto white, as the index sees it
        target = folder / f"{n:04d}" / f"original{path.suffix}"
        target.parent.mkdir(parents=True)
        target.write_bytes(data)
        truth[str(target)] = (n, source, "original")
        for name, (_, make) in COPIES.items():
            blob, ext = make(im)
            (folder / f"{n:04d}" / f"{name}{ext}").write_bytes(blob)
            truth[str(folder / f"{n:04d}" / f"{name}{ext}")] = (n, source, name)
    return truth


def judge(db: Path, truth: dict) -> tuple[list[list], dict]:
    with Store.open(db, readonly=True) as store:
        rule = dupe_rule(store)
        ids, vecs = store.vectors_for(store.ids())
        rows = store.get(ids.tolist())
        hexes = store.phashes(ids.tolist())
        t0 = time.perf_counter()
        report = find_duplicates(store, rule)
        grouping_s = time.perf_counter() - t0
    info = [truth[rows[i].path] for i in ids.tolist()]
    origin = np.asarray([t[0] for t in info])
    copy = np.asarray([t[2] for t in info], dtype=object)
    hashes, known = phash.to_ints(hexes[i] for i in ids.tolist())
    a, b = np.triu_indices(len(ids), 1)
    scores = np.einsum("ij,ij->i", vecs[a], vecs[b]) if len(a) < 4_000_000 else None
    assert scores is not None, "set too large for the pair table"
    bits = phash.hamming_many(hashes[a], hashes[b])
    match = known[a] & known[b] & (bits <= rule.same_bits)
    same = match & (scores >= rule.same_floor)
    linked = (scores >= rule.similar) | same
    dup = origin[a] == origin[b]
    orig_pair = dup & ((copy[a] == "original") | (copy[b] == "original"))
    other = np.where(copy[a] == "original", copy[b], copy[a])
    out = []
    for name, (kind, _) in COPIES.items():
        m = orig_pair & (other == name)
        right = same[m] if kind == "same" else (linked[m] & ~same[m])
        out.append([name, kind, int(m.sum()), f"{linked[m].mean():.1%}", f"{right.mean():.1%}"])
    neg = ~dup
    pred_same, pred_sim = same, linked & ~same
    reenc = np.isin(other, ["half-jpeg70", "80pc-webp75"]) & dup & ((copy[a] == "original") | (copy[b] == "original"))
    summary = {
        "rule": rule.to_dict(),
        "pictures": len(ids),
        "negative_pairs": int(neg.sum()),
        "false_links": int((linked & neg).sum()),
        "precision_linked": float((linked & dup).sum() / max(1, linked.sum())),
        "precision_same": float((pred_same & dup).sum() / max(1, pred_same.sum())),
        "precision_same_is_reencode": float((pred_same & reenc).sum() / max(1, pred_same.sum())),
        "precision_similar": float((pred_sim & dup).sum() / max(1, pred_sim.sum())),
        "groups": len(report.groups),
        "mixed_groups": sum(1 for g in report.groups if len({truth[f.path][0] for f in g.files}) > 1),
        "grouping_s": round(grouping_s, 3),
    }
    return out, summary


def quality(model: str, n_tux: int, n_clipart: int) -> tuple[str, dict]:
    work = Path(tempfile.mkdtemp(prefix="pixseek-dupes-bench-"))
    try:
        truth = build_set(work / "pics", n_tux, n_clipart)
        enc = load_torch(model, "cpu")
        t0 = time.perf_counter()
        s = Indexer(work / "db", encoder=enc, export_encoders=False).run([work / "pics"])
        index_s = time.perf_counter() - t0
        rows, summary = judge(work / "db", truth)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    summary |= {"model": model, "indexed": s.added, "index_s": round(index_s, 1)}
    body = table(["copy", "should be", "pairs", "linked (recall)", "with that kind"], rows)
    return body, summary


def synthetic(db: Path, n: int, dim: int = 768, seed: int = 0) -> int:
    """``n`` CLIP-like unit vectors (2 % of them in planted clusters) in a real index; returns how many
    planted duplicates there are."""
    rng = np.random.default_rng(seed)
    shared = rng.standard_normal(dim).astype(np.float32)
    shared /= np.linalg.norm(shared)
    planted = 0
    with Store.open(db, create=True) as store:
        store.check_model("synthetic#0", "synthetic", dim, adopt=True)
        with store.batch() as b:
            i = 0
            while i < n:
                base = rng.standard_normal(dim).astype(np.float32) / np.sqrt(dim) + shared
                h = int(rng.integers(0, 2**63))
                size = int(rng.integers(2, 6)) if rng.random() < 0.008 else 1
                for _ in range(min(size, n - i)):
                    v = base + rng.standard_normal(dim).astype(np.float32) * (0.15 / np.sqrt(dim))
                    v /= np.linalg.norm(v)
                    flips = int(rng.integers(0, 4)) if size > 1 else 0
                    hh = h ^ sum(1 << int(k) for k in rng.choice(64, flips, replace=False)) if flips else h
                    store.insert_image(
                        path=f"/synthetic/{i:07d}.jpg", root="/synthetic", size=1000, mtime_ns=i, digest=f"d{i}",
                        width=640, height=480, fmt="JPEG", model_id="synthetic#0",
                        blob=v.astype("<f4").tobytes(), phash=f"{hh:016x}",
                    )  # fmt: skip
                    i += 1
                planted += size - 1 if size > 1 else 0
            b.changed = True
    return planted


def speed(sizes: list[int], baseline: bool) -> tuple[str, list[dict]]:
    rows, out = [], []
    for n in sizes:
        work = Path(tempfile.mkdtemp(prefix="pixseek-dupes-speed-"))
        try:
            planted = synthetic(work / "db", n)
            with Store.open(work / "db", readonly=True) as store:
                rule = dupe_rule(store)
                tracemalloc.start()
                t0 = time.perf_counter()
                report = find_duplicates(store, rule)
                seconds = time.perf_counter() - t0
                peak = tracemalloc.get_traced_memory()[1]
                tracemalloc.stop()
                found = sum(len(g.files) - 1 for g in report.groups)
                base_s = base_mb = None
                if baseline:
                    base_s, base_mb = flat_range_search(store, rule.similar)
            d = {"n": n, "seconds": round(seconds, 1), "peak_mb": round(peak / 2**20), "planted": planted}
            d |= {"found": found, "threshold": rule.similar, "baseline_s": base_s, "baseline_peak_mb": base_mb}
            out.append(d)
            rows.append([f"{n:,}", f"{seconds:.1f}", f"{peak / 2**20:,.0f}", f"{found:,} of {planted:,}"])
            rows[-1] += [f"{base_s:.1f}" if base_s else "-", f"{base_mb:,.0f}" if base_mb else "-"]
        finally:
            shutil.rmtree(work, ignore_errors=True)
    headers = ["vectors", "grouping s", "peak MB (traced)", "planted found", "flat FAISS range s", "its peak MB"]
    return table(headers, rows), out


def flat_range_search(store: Store, threshold: float) -> tuple[float, float]:
    import faiss

    ids, vecs = store.vectors_for(store.ids())
    tracemalloc.start()
    t0 = time.perf_counter()
    index = faiss.IndexFlatIP(vecs.shape[1])
    index.add(vecs)
    lims, _, _ = index.range_search(vecs, threshold)
    seconds = time.perf_counter() - t0
    peak = tracemalloc.get_traced_memory()[1] + vecs.nbytes  # FAISS's own copy is not traced
    tracemalloc.stop()
    return seconds, peak / 2**20


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="pixseek-photo")
    ap.add_argument("--tux", type=int, default=120)
    ap.add_argument("--clipart", type=int, default=120)
    ap.add_argument("--sizes", default="100000", help="comma-separated vector counts ('' skips the speed part)")
    ap.add_argument("--baseline", action="store_true", help="also time one flat FAISS range search")
    ap.add_argument("--skip-quality", action="store_true")
    args = ap.parse_args()
    parts = [header("Duplicates: quality per kind, grouping time")]
    data: dict = {}
    if not args.skip_quality:
        body, summary = quality(args.model, args.tux, args.clipart)
        print(body, summary, sep="\n", flush=True)
        data["quality"] = summary
        r = summary["rule"]
        parts.append(
            f"`bench/dupes.py`, quality: {summary['pictures']:,} pictures indexed with `{args.model}` "
            f"(9 sample photos, {args.tux} Tux Paint photo stamps, {args.clipart} Openclipart drawings, one per "
            "folder; each with the 5 copies below). Rule from the index: near-duplicate at score "
            f">= {r['similar']:.3f}; same picture at hash distance <= {r['same_bits']} and score "
            f">= {r['same_floor']:.3f} ({r['source']}).\n\n{body}\n\n"
            f"Precision over all {summary['negative_pairs']:,} pairs of different originals: linked "
            f"{summary['precision_linked']:.1%} ({summary['false_links']} false links); labelled same "
            f"{summary['precision_same']:.1%} (a re-encode in {summary['precision_same_is_reencode']:.1%}); "
            f"labelled similar {summary['precision_similar']:.1%}. Groups: {summary['groups']}, "
            f"{summary['mixed_groups']} mixing two originals; grouping took {summary['grouping_s']} s."
        )
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    if sizes:
        body, rows = speed(sizes, args.baseline)
        print(body, flush=True)
        data["speed"] = rows
        parts.append(
            "Speed, synthetic 768-d vectors (clusters of 2-5 planted near-duplicates in 2 % of them): "
            f"`find_duplicates` with the index's rule; maximum RSS of the whole run "
            f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:,.0f} MB.\n\n{body}"
        )
    dump_json("dupes", data)
    write_section("Duplicates", "\n\n".join(parts))


if __name__ == "__main__":
    sys.exit(main())
