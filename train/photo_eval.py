"""``pixseek eval`` on photos: a manifest with a ``category`` per picture (like ``datasets fetch tuxpaint``).

Protocol: the gallery is every picture of the chosen split. Text->image: each picture's first caption is
a query whose one right answer is its own picture (R@1, R@10), in English and in every language the
manifest has (``captions_de`` ...). Image->image: each picture queries the others; precision@5 is the
share of the top 5 in its category (pictures alone in their category do not query). Zero-shot: each
picture's category predicted from prompt-ensembled text vectors of the category names. Beside the
model: raw 16x16 pixels for image->image, and the chance level of every figure.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from pixseek.decode import open_image
from pixseek.errors import DatasetError, PixseekError

from .datasets import Sample, read_manifest

LANGS = ("de", "es", "fr")
TEMPLATES = ["a photo of {}.", "a picture of {}.", "{}"]


def is_photo_set(manifest: Path) -> bool:
    """A manifest of photos with categories and no art styles (the emoji set has styles)."""
    rows = read_manifest(Path(manifest))
    return all("category" in s.extra for s in rows) and not any(s.style for s in rows)


def items(manifest: Path, split: str | None) -> list[Sample]:
    every = read_manifest(manifest)
    rows = [s for s in every if split in (None, "all", s.split)]
    if len(rows) < 10:
        have = ", ".join(sorted({s.split for s in every}))
        raise DatasetError(
            f"{manifest} has {len(rows)} pictures in split '{split}' (its splits: {have}; or --split all)"
        )
    return rows


def recall(
    img: np.ndarray, txt: np.ndarray, ks: tuple[int, ...] = (1, 10), own: list[int] | None = None
) -> dict[int, float]:
    """Query i (a row of ``txt``) is right when its picture (``own[i]``, default i) is in its top k.
    A tie counts against the model: a picture scoring as high as the right one ranks above it, so a
    model that gives every picture one vector scores chance, not 1."""
    rows = np.arange(len(txt))
    sim = txt @ img.T
    right = sim[rows, own if own is not None else rows][:, None]
    rank = (sim >= right).sum(1) - 1
    return {k: float((rank < k).mean()) for k in ks}


def precision_at(vecs: np.ndarray, cats: list[str], k: int = 5) -> float:
    sim = vecs @ vecs.T
    np.fill_diagonal(sim, -np.inf)
    counts = Counter(cats)
    arr = np.array(cats)
    out = [float((arr[np.argsort(-sim[i])[:k]] == c).mean()) for i, c in enumerate(cats) if counts[c] > 1]
    return float(np.mean(out)) if out else float("nan")


def chance_precision(cats: list[str]) -> float:
    """Expected precision@k of a random ranking: the share of the others in one's category."""
    counts, n = Counter(cats), len(cats)
    vals = [(counts[c] - 1) / (n - 1) for c in cats if counts[c] > 1]
    return float(np.mean(vals)) if vals else float("nan")


def category_prompts(cats: list[str]) -> list[list[str]]:
    names = [c.rstrip("/").rpartition("/")[2].replace("_", " ") for c in cats]
    return [[t.format(n) for t in TEMPLATES] for n in names]


def pixels(images: list[Any]) -> np.ndarray:
    x = np.stack([np.asarray(im.convert("RGB").resize((16, 16)), np.float32).reshape(-1) / 255 for im in images])
    return x / np.linalg.norm(x, axis=1, keepdims=True).clip(1e-6)


def evaluate_photos(enc: Any, manifest: Path, split: str | None = "test") -> dict:
    rows = items(Path(manifest), split)
    try:
        images = [open_image(str(s.image)).image for s in rows]
    except PixseekError as e:
        raise DatasetError(f"cannot read a picture of {manifest}: {e}") from None
    img = np.concatenate([enc.encode_images(images[i : i + 64]) for i in range(0, len(images), 64)])
    cats = [str(s.extra["category"]) for s in rows]
    classes = sorted(set(cats))
    protos = np.stack([enc.encode_texts(p).mean(0) for p in category_prompts(classes)])
    protos /= np.linalg.norm(protos, axis=1, keepdims=True)
    truth = np.array([classes.index(c) for c in cats])
    result: dict[str, Any] = {"model": enc.model_id, "manifest": str(manifest), "split": split, "pictures": len(rows)}
    en = enc.encode_texts([s.captions[0] for s in rows])
    r = recall(img, en)
    result["en"] = {"queries": len(rows), "t2i_r@1": round(r[1], 4), "t2i_r@10": round(r[10], 4)}
    for lang in LANGS:
        have = [i for i, s in enumerate(rows) if s.extra.get(f"captions_{lang}")]
        if not have:
            continue
        r = recall(img, enc.encode_texts([rows[i].extra[f"captions_{lang}"][0] for i in have]), own=have)
        result[lang] = {"queries": len(have), "t2i_r@1": round(r[1], 4), "t2i_r@10": round(r[10], 4)}
    result["i2i_p@5"] = round(precision_at(img, cats), 4)
    result["pixels_i2i_p@5"] = round(precision_at(pixels(images), cats), 4)
    result["zeroshot_acc"] = round(float(((img @ protos.T).argmax(1) == truth).mean()), 4)
    result["categories"] = len(classes)
    n = len(rows)
    result["chance"] = {
        "t2i_r@1": round(1 / n, 4),
        "t2i_r@10": round(10 / n, 4),
        "i2i_p@5": round(chance_precision(cats), 4),
        "zeroshot_acc": round(1 / len(classes), 4),
    }
    return result


def format_photo_table(r: dict) -> str:
    lines = [f"model {r['model']} · {r['pictures']} photos ({r['split']}) in {r['categories']} categories"]
    lines.append(f"{'figure':<26}{'model':>10}{'chance':>10}")
    for lang in ("en", *LANGS):
        if lang in r:
            for k in ("t2i_r@1", "t2i_r@10"):
                label = f"{k} {lang} ({r[lang]['queries']})"
                lines.append(f"{label:<26}{r[lang][k]:>10.4f}{r['chance'][k]:>10.4f}")
    lines.append(f"{'i2i_p@5':<26}{r['i2i_p@5']:>10.4f}{r['chance']['i2i_p@5']:>10.4f}")
    lines.append(f"{'raw pixels i2i_p@5':<26}{r['pixels_i2i_p@5']:>10.4f}")
    lines.append(f"{'zeroshot_acc':<26}{r['zeroshot_acc']:>10.4f}{r['chance']['zeroshot_acc']:>10.4f}")
    return "\n".join(lines)
