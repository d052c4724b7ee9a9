"""Evaluation sets for the relevance cut-off (bench/cutoff.py): queries with known relevant pictures.

Three labelled corpora (fetched by ``pixseek datasets fetch``; their manifests name every picture's
captions and categories), each indexed whole, and query sets over them. A result is relevant when it
shares the query's category (or concept, or keyword); every set is split into ``val`` (where the
cut-off's one constant was chosen) and ``test`` (what RESULTS.md reports) by the Tux Paint rule of
:func:`pixseek.train.photosets.split_of`: the first byte of sha1(category) < 86 is val.

* **tuxpaint** (404 photos, the photo test set): ``category`` queries (one English phrase per folder,
  written from the folder's name, :data:`TUXPAINT_PHRASES`; relevant = the folder and its
  sub-folders), ``caption`` queries (each distinct description; relevant = pictures with that very
  description), ``image`` queries (a picture; relevant = the other pictures of its folder) and
  ``mixed`` (a picture and its folder's phrase, half and half).
* **emoji** (Twemoji + Noto, 7,572 pictures): ``name`` queries (the name of each emoji held out from
  training; relevant = its pictures in both styles, skin tones included), ``subcategory`` queries
  (the Unicode subcategory's name, "animal mammal"; relevant = that subcategory), ``image`` queries
  (relevant = the other pictures of the same emoji) and ``mixed``.
* **openclipart** (6,882 clip-art pictures): ``keyword`` queries (keywords given to 5 to 200
  pictures, catalogue words left out; relevant = the word among a picture's keywords, title words or
  folder names) and ``image`` queries (relevant = the same folder).

Every set also gets ``gibberish`` queries (random letters: nothing is relevant).
"""

from __future__ import annotations

import json
import random
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from pixseek.train.photosets import split_of

KINDS_TEXT = ("category", "caption", "name", "subcategory", "keyword", "gibberish")
IMAGE_QUERIES = 300  # pictures drawn per corpus as image (and mixed) queries
GIBBERISH = 40

TUXPAINT_PHRASES = {
    "animals": "an animal",
    "animals/amphibians": "an amphibian",
    "animals/birds": "a bird",
    "animals/fish": "a fish",
    "animals/insects": "an insect",
    "animals/lizards": "a lizard",
    "animals/mammals": "a mammal",
    "animals/mammals/apes": "an ape",
    "animals/mammals/aquatic": "a sea mammal",
    "animals/mammals/bears": "a bear",
    "animals/mammals/bears/toys": "a teddy bear",
    "animals/mammals/bovines": "cattle",
    "animals/mammals/camel": "a camel",
    "animals/mammals/cats": "a cat",
    "animals/mammals/deer": "a deer",
    "animals/mammals/dogs": "a dog",
    "animals/mammals/equines": "a horse",
    "animals/mammals/rodents": "a rodent",
    "animals/marsupials": "a marsupial",
    "animals/shellfish": "a shellfish",
    "clothes": "clothes",
    "clothes/hats": "a hat",
    "food": "food",
    "food/fruit": "fruit",
    "food/nuts": "nuts",
    "food/spices": "spices",
    "food/vegetables": "vegetables",
    "hobbies": "a hobby",
    "hobbies/music": "a musical instrument",
    "hobbies/music/brass": "a brass instrument",
    "hobbies/music/percussion": "a percussion instrument",
    "hobbies/music/string": "a string instrument",
    "hobbies/music/wind": "a wind instrument",
    "household": "a household object",
    "household/arttools": "art supplies",
    "household/dishes": "dishes",
    "household/dishes/utensils": "kitchen utensils",
    "household/tools": "a tool",
    "medical": "medical equipment",
    "military": "military equipment",
    "military/ammunition": "ammunition",
    "military/vehicles": "a military vehicle",
    "naturalforces": "a force of nature",
    "people": "a person",
    "people/body_parts": "a body part",
    "people/toys": "a toy",
    "plants": "a plant",
    "plants/flowers": "a flower",
    "plants/flowers/plastic": "a plastic flower",
    "plants/mushrooms": "a mushroom",
    "plants/trees": "a tree",
    "seasonal": "holiday decorations",
    "seasonal/christmas": "christmas",
    "seasonal/easter": "easter",
    "seasonal/halloween": "halloween",
    "seasonal/hanukkah": "hanukkah",
    "seasonal/newyears": "new year",
    "space": "outer space",
    "space/moon": "the moon",
    "space/planets": "a planet",
    "sports": "sports",
    "town": "a town",
    "town/monuments": "a monument",
    "vehicles": "a vehicle",
    "vehicles/auto": "a car",
    "vehicles/construction": "a construction vehicle",
    "vehicles/cycle": "a bicycle",
    "vehicles/emergency": "an emergency vehicle",
    "vehicles/flight": "an aircraft",
    "vehicles/flight/planes": "an airplane",
    "vehicles/masstransit": "public transport",
    "vehicles/race": "a race car",
    "vehicles/ship": "a ship",
}
# catalogue words of Openclipart's keywords that say nothing about what a picture shows
OPENCLIPART_STOP = {
    "hash", "computer", "geometry", "stars", "shapes", "magick", "icons", "theme", "action", "icon",
    "application", "lemon_theme_icon", "signs_and_symbols", "united_nations_member", "mapsym",
    "filesystem", "menu", "mimetypes", "white", "bordered", "ornamental", "simple", "subnational",
    "led", "webpage", "buttons", "signalflag", "work", "device", "equipment", "recreation", "unsorted",
    "clip", "art", "clipart", "image", "media", "png", "svg", "public", "domain", "externalsource",
    "shape", "symbol", "sign", "black", "red", "blue", "green", "yellow", "color", "colour",
}  # fmt: skip


@dataclass
class Query:
    """One query: ``text`` and/or ``image`` (a picture's path in the corpus) and the relevant paths."""

    kind: str
    split: str
    text: str = ""
    image: str = ""  # relative path of the query picture (excluded from the results)
    relevant: frozenset[str] = field(default_factory=frozenset)


def load(root: Path) -> list[dict]:
    return [json.loads(line) for line in (root / "manifest.jsonl").read_text().splitlines() if line.strip()]


def _gibberish(seed: int) -> list[Query]:
    rng = random.Random(seed)
    letters = "bcdfghjklmnpqrstvwxz"
    out = []
    for i in range(GIBBERISH):
        words = ["".join(rng.choice(letters + "aeiouy") for _ in range(rng.randint(4, 8))) for _ in range(2)]
        out.append(Query("gibberish", "val" if i % 3 == 0 else "test", " ".join(words)))
    return out


def _emoji_split(key: str) -> str:
    """Emoji held out from training were themselves drawn by a hash of their code point, so the
    val / test rule hashes the key with a prefix of its own."""
    return split_of("emoji/" + key)


def _image_queries(rows: list[dict], key, seed: int, phrase=None, split=split_of) -> list[Query]:
    """Image (and, with ``phrase``, mixed) queries: pictures whose group has another member."""
    groups: dict[str, set[str]] = defaultdict(set)
    for r in rows:
        groups[key(r)].add(r["image"])
    pool = sorted(r["image"] for r in rows if len(groups[key(r)]) > 1)
    by_image = {r["image"]: r for r in rows}
    picked = random.Random(seed).sample(pool, min(IMAGE_QUERIES, len(pool)))
    out = []
    for img in picked:
        g = key(by_image[img])
        rel = frozenset(groups[g] - {img})
        out.append(Query("image", split(g), image=img, relevant=rel))
        if phrase is not None and phrase(by_image[img]):
            out.append(Query("mixed", split(g), text=phrase(by_image[img]), image=img, relevant=rel))
    return out


def tuxpaint(root: Path) -> list[Query]:
    rows = load(root)
    out = []
    for cat, text in TUXPAINT_PHRASES.items():
        rel = frozenset(r["image"] for r in rows if r["category"] == cat or r["category"].startswith(cat + "/"))
        if len(rel) >= 2:
            out.append(Query("category", split_of(cat), text, relevant=rel))
    by_caption: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        by_caption[r["captions"][0]].append(r)
    for caption, rs in by_caption.items():
        out.append(Query("caption", split_of(rs[0]["category"]), caption, relevant=frozenset(r["image"] for r in rs)))
    out += _image_queries(rows, lambda r: r["category"], 1, lambda r: TUXPAINT_PHRASES.get(r["category"]))
    return out + _gibberish(2)


def emoji(root: Path) -> list[Query]:
    rows = load(root)
    out = []
    concepts: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        concepts[r["concept"]].append(r)
    for concept, rs in concepts.items():
        if rs[0]["split"] == "heldout":
            rel = frozenset(r["image"] for r in rs)
            out.append(Query("name", _emoji_split(concept), rs[0]["captions"][0], relevant=rel))
    subs: dict[str, set[str]] = defaultdict(set)
    for r in rows:
        subs[r["subcategory"]].add(r["image"])
    for sub, images in subs.items():
        if len(images) >= 4:
            out.append(Query("subcategory", _emoji_split(sub), sub.replace("-", " "), relevant=frozenset(images)))
    out += _image_queries(rows, lambda r: r["concept"], 3, lambda r: r["captions"][0], _emoji_split)
    return out + _gibberish(4)


def _words(r: dict) -> set[str]:
    """A clip-art picture's words: its keywords, title words and folder names, crudely singular."""
    words = set(re.findall(r"[a-z]+", r["captions"][0].lower()))
    if len(r["captions"]) >= 3:
        words |= {k.strip().lower() for k in r["captions"][-1].split(",")}
    words |= set(re.findall(r"[a-z]+", r["image"].rsplit("/", 1)[0].lower()))
    return {w[:-1] if w.endswith("s") and len(w) > 3 else w for w in words}


def openclipart(root: Path) -> list[Query]:
    rows = load(root)
    counts: Counter[str] = Counter()
    for r in rows:
        if len(r["captions"]) >= 3:
            counts.update({k.strip().lower() for k in r["captions"][-1].split(",")})
    words = {r["image"]: _words(r) for r in rows}
    out = []
    for kw, n in sorted(counts.items()):
        if 5 <= n <= 200 and kw.isalpha() and kw not in OPENCLIPART_STOP:
            key = kw[:-1] if kw.endswith("s") and len(kw) > 3 else kw
            rel = frozenset(img for img, ws in words.items() if key in ws)
            out.append(Query("keyword", split_of(kw), kw, relevant=rel))
    out += _image_queries(rows, lambda r: r["image"].rsplit("/", 1)[0], 5)
    return out + _gibberish(6)


SETS = {"tuxpaint": tuxpaint, "emoji": emoji, "openclipart": openclipart}
