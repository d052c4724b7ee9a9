"""``pixseek eval``: retrieval and zero-shot figures for any model spec on a captioned manifest.

Protocol (emoji): the gallery holds one picture per concept (the base emoji, no skin-tone variants) in
one art style; queries are each concept's caption (text->image) or its picture in the *other* style
(image->image, cross-style). Both directions (twitter->google and google->twitter) are run and
averaged. Figures are split by trained and held-out concepts. Concepts whose gallery pictures are
pixel-identical (several flags share one image) count as equally correct answers. Zero-shot
classification predicts each picture's subcategory from prompt-ensembled text embeddings. A raw
16x16-pixel cosine baseline and the chance level of every figure are reported beside the model.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pixseek.decode import open_image
from pixseek.models import Encoder, load_torch

from .datasets import DatasetError, Sample, read_manifest

TEMPLATES = ["{}", "a {} emoji", "an emoji of {}", "a picture of {}"]
KS = (1, 5, 10)


def _base_by_style(samples: list[Sample]) -> dict[str, dict[str, Sample]]:
    out: dict[str, dict[str, Sample]] = defaultdict(dict)
    for s in samples:
        if s.extra.get("kind", "base") != "base":
            continue
        out[s.style or "default"].setdefault(s.concept, s)
    return out


def _load(paths: list[Path], size: int | None = None) -> list[Any]:
    from PIL import Image

    imgs = [open_image(str(p)).image for p in paths]
    if size:
        imgs = [im.resize((size, size), Image.Resampling.BOX) for im in imgs]
    return imgs


def _pixel_hash(img) -> str:
    return hashlib.sha1(np.asarray(img).tobytes()).hexdigest()


def _recall(sim: np.ndarray, correct: list[set[int]], ks=KS) -> dict[int, np.ndarray]:
    """Per-query hit (0/1) at each k: any correct gallery index among the top k."""
    top = np.argsort(-sim, axis=1)[:, : max(ks)]
    hits = {k: np.zeros(len(correct)) for k in ks}
    for qi, ok in enumerate(correct):
        for k in ks:
            hits[k][qi] = float(any(int(g) in ok for g in top[qi, :k]))
    return hits


def _pixels(imgs) -> np.ndarray:
    x = np.stack([np.asarray(im.resize((16, 16)), dtype=np.float32).reshape(-1) / 255 for im in imgs])
    return x / np.linalg.norm(x, axis=1, keepdims=True).clip(1e-6)


@dataclass
class _Gallery:
    """One style's pictures of the concepts, their vectors, and which pictures are pixel-identical."""

    images: list[Any]
    vectors: np.ndarray
    same: list[set[int]]  # per picture: the indices of pictures identical to it (itself included)


def _pick_styles(
    by_style: dict[str, dict[str, Sample]], manifest: Path, styles: tuple[str, str] | None
) -> tuple[tuple[str, str], list[str]]:
    names = sorted(by_style)
    if styles is None:
        styles = (names[0], names[1]) if len(names) >= 2 else (names[0], names[0])
    for s in styles:
        if s not in by_style:
            raise DatasetError(f"manifest {manifest} has no pictures in style '{s}' (has: {', '.join(names)})")
    concepts = sorted(set(by_style[styles[0]]) & set(by_style[styles[1]]))
    if len(concepts) < 2:
        raise DatasetError(f"manifest {manifest} needs at least two concepts with pictures in both styles")
    return styles, concepts


def _gallery(enc: Encoder, samples: list[Sample]) -> _Gallery:
    imgs = _load([s.image for s in samples])
    vecs = np.concatenate([enc.encode_images(imgs[i : i + 256]) for i in range(0, len(imgs), 256)])
    by_hash: dict[str, set[int]] = defaultdict(set)
    for i, im in enumerate(imgs):
        by_hash[_pixel_hash(im)].add(i)
    return _Gallery(imgs, vecs, [by_hash[_pixel_hash(im)] for im in imgs])


def _zero_shot_prototypes(enc: Encoder, subcats: list[str]) -> np.ndarray | None:
    """One prompt-ensembled text vector per subcategory (None with fewer than two)."""
    if len(subcats) < 2:
        return None
    protos = []
    for sc in subcats:
        t = enc.encode_texts([tpl.format(sc.replace("-", " ")) for tpl in TEMPLATES]).mean(0)
        protos.append(t / np.linalg.norm(t))
    return np.stack(protos)


def _direction(
    acc: dict[str, dict[str, list]],
    q: _Gallery,
    g: _Gallery,
    text: np.ndarray,
    zs: np.ndarray | None,
    zs_truth: np.ndarray | None,
    split: list[str],
) -> None:
    """Figures for queries in one style against the gallery in the other, added to ``acc`` by part."""
    t2i = _recall(text @ g.vectors.T, g.same)
    i2i = _recall(q.vectors @ g.vectors.T, g.same)
    base = _recall(_pixels(q.images) @ _pixels(g.images).T, g.same)
    zs_hit = ((g.vectors @ zs.T).argmax(1) == zs_truth).astype(float) if zs is not None else None
    for part, want in (("trained", "train"), ("heldout", "heldout")):
        m = np.array([sp == want for sp in split])
        if not m.any():
            continue
        for k in KS:
            acc[part][f"t2i_r@{k}"].append(t2i[k][m].mean())
        for k in (1, 10):
            acc[part][f"i2i_r@{k}"].append(i2i[k][m].mean())
            acc[part][f"pixels_i2i_r@{k}"].append(base[k][m].mean())
        if zs_hit is not None:
            acc[part]["zeroshot_acc"].append(zs_hit[m].mean())
        acc[part]["n"] = [int(m.sum())]


def evaluate(
    spec: str | None,
    manifest: Path,
    *,
    device: str | None = None,
    encoder: Encoder | None = None,
    styles: tuple[str, str] | None = None,
) -> dict:
    by_style = _base_by_style(read_manifest(Path(manifest)))
    styles, concepts = _pick_styles(by_style, Path(manifest), styles)
    first = [by_style[styles[0]][c] for c in concepts]
    enc = encoder or load_torch(spec, device)
    galleries = {st: _gallery(enc, [by_style[st][c] for c in concepts]) for st in dict.fromkeys(styles)}
    captions = [s.captions[0] for s in first]
    text = np.concatenate([enc.encode_texts(captions[i : i + 256]) for i in range(0, len(captions), 256)])
    subcats = sorted({s.extra.get("subcategory", "") for s in first} - {""})
    zs = _zero_shot_prototypes(enc, subcats)
    zs_truth = (
        np.array([subcats.index(s.extra.get("subcategory", subcats[0])) for s in first]) if zs is not None else None
    )

    pairs = [(styles[0], styles[1])] + ([(styles[1], styles[0])] if styles[0] != styles[1] else [])
    acc: dict[str, dict[str, list]] = {"trained": defaultdict(list), "heldout": defaultdict(list)}
    for q, g in pairs:
        _direction(acc, galleries[q], galleries[g], text, zs, zs_truth, [s.split for s in first])
    n = len(concepts)
    figures = {
        part: {k: (round(float(np.mean(v)), 4) if k != "n" else v[0]) for k, v in d.items()}
        for part, d in acc.items()
        if d
    }
    chance = {f"t2i_r@{k}": round(k / n, 4) for k in KS}
    chance.update({f"i2i_r@{k}": round(k / n, 4) for k in (1, 10)})
    if zs is not None:
        chance["zeroshot_acc"] = round(1 / len(subcats), 4)
    shared = {st: sum(1 for grp in {frozenset(x) for x in gal.same} if len(grp) > 1) for st, gal in galleries.items()}
    return {
        "model": enc.model_id,
        "manifest": str(manifest),
        "styles": list(styles),
        "gallery": n,
        "subcategories": len(subcats),
        "identical_picture_groups": shared,
        **figures,
        "chance": chance,
    }


def format_table(r: dict) -> str:
    rows = [
        "t2i_r@1",
        "t2i_r@5",
        "t2i_r@10",
        "i2i_r@1",
        "i2i_r@10",
        "pixels_i2i_r@1",
        "pixels_i2i_r@10",
        "zeroshot_acc",
    ]
    parts = [p for p in ("trained", "heldout") if p in r]
    head = f"{'figure':<18}" + "".join(f"{p + ' (' + str(r[p]['n']) + ')':>16}" for p in parts) + f"{'chance':>10}"
    lines = [
        f"model {r['model']} · gallery {r['gallery']} per style · styles {' <-> '.join(r['styles'])}",
        "identical-picture groups (count as equally correct): "
        + ", ".join(f"{k} {v}" for k, v in r["identical_picture_groups"].items()),
        head,
    ]
    for key in rows:
        if not any(key in r[p] for p in parts):
            continue
        ch = r["chance"].get(key.replace("pixels_", ""), "")
        lines.append(f"{key:<18}" + "".join(f"{r[p].get(key, float('nan')):>16.4f}" for p in parts) + f"{ch:>10}")
    return "\n".join(lines)
