"""The tag vocabulary (``vocabulary.txt``, package data) and its prompt ensembles.

A tag is scored by the mean of the unit text vectors of its prompts (CLIP's prompt ensembling): a
[thing], [scene] or [activity] line is put into each of its section's templates ("a photo of a dog.",
"a drawing of a dog.", ...); a [style] line lists its own prompts. :func:`tags_named_in` reads which
tags a caption names (with the broader tags they imply), to measure tags against labelled pictures.
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from pixseek.errors import VocabularyError

# Prompt templates per section. Chosen on the calibration split (bench/tags.py), never on the test split.
TEMPLATES: dict[str, tuple[str, ...]] = {
    "thing": ("a photo of {}.", "a picture of {}.", "a drawing of {}.", "a cartoon of {}.", "an emoji of {}.", "{}."),
    "scene": ("a photo of {}.", "a picture of {}.", "a drawing of {}.", "{}."),
    "activity": ("a photo of {}.", "a picture of {}.", "a drawing of {}.", "an emoji of {}.", "{}."),
    "style": ("{}",),
}


@dataclass(frozen=True)
class Tag:
    name: str
    kind: str  # a TEMPLATES key
    prompts: tuple[str, ...]
    words: tuple[str, ...]  # every word that names it in a caption (its name first)
    broader: tuple[str, ...]  # tags it implies directly


@dataclass(frozen=True)
class Vocabulary:
    tags: tuple[Tag, ...]

    @property
    def names(self) -> list[str]:
        return [t.name for t in self.tags]

    @functools.cached_property
    def digest(self) -> str:
        """Changes whenever a tag or one of its prompts does (an index then re-tags)."""
        text = "\n".join(f"{t.name}\t{'|'.join(t.prompts)}" for t in self.tags)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def prompts(self) -> list[str]:
        """Every tag's prompts, in tag order (:meth:`ensemble` takes their vectors back to tags)."""
        return [p for t in self.tags for p in t.prompts]

    def ensemble(self, vectors: np.ndarray) -> np.ndarray:
        """float32[tags, dim] unit vectors: the mean of each tag's prompt vectors, renormalised."""
        vectors = np.asarray(vectors, dtype=np.float32)
        if len(vectors) != sum(len(t.prompts) for t in self.tags):
            raise VocabularyError(f"{len(vectors)} prompt vectors for {len(self.prompts())} prompts")
        out = np.empty((len(self.tags), vectors.shape[1]), dtype=np.float32)
        start = 0
        for i, t in enumerate(self.tags):
            chunk = vectors[start : start + len(t.prompts)]
            start += len(t.prompts)
            chunk = chunk / np.maximum(np.linalg.norm(chunk, axis=1, keepdims=True), 1e-12)
            mean = chunk.mean(axis=0)
            out[i] = mean / max(float(np.linalg.norm(mean)), 1e-12)
        return out

    def encode(self, encode_texts: Callable[[list[str]], np.ndarray]) -> np.ndarray:
        return self.ensemble(encode_texts(self.prompts()))

    @functools.cached_property
    def _matchers(self) -> list[tuple[str, re.Pattern]]:
        out = []
        for t in self.tags:
            alts = "|".join(re.escape(w) + "(?:e?s)?" for w in sorted(t.words, key=len, reverse=True))
            out.append((t.name, re.compile(rf"(?<![\w'’-])(?:{alts})(?![\w'’-])")))
        return out

    def closure(self, names: Iterable[str]) -> set[str]:
        """``names`` and every broader tag they imply, transitively."""
        by_name = {t.name: t for t in self.tags}
        out: set[str] = set()
        todo = [n for n in names if n in by_name]
        while todo:
            name = todo.pop()
            if name not in out:
                out.add(name)
                todo += [b for b in by_name[name].broader if b in by_name]
        return out

    def tags_named_in(self, text: str) -> set[str]:
        """The tags whose words appear in ``text`` (whole words, a plural s/es allowed; ``_`` and ``/``
        read as spaces), with the broader tags they imply."""
        text = re.sub(r"[_/]", " ", text.lower())
        spans = {name: [m.span() for m in rx.finditer(text)] for name, rx in self._matchers}
        every = [s for found in spans.values() for s in found]
        return self.closure(
            name for name, found in spans.items() if found and not all(_inside(s, every) for s in found)
        )


def _inside(span: tuple[int, int], others: list[tuple[int, int]]) -> bool:
    """Whether ``span`` lies within a longer match ("dog" in "hot dog" names no dog)."""
    a, b = span
    return any(x <= a and b <= y and (y - x) > (b - a) for x, y in others)


def _article(word: str) -> str:
    return f"an {word}" if word[:1] in "aeiou" else f"a {word}"


def parse(text: str, source: str = "vocabulary") -> Vocabulary:
    """A vocabulary from its text (the format is described at the top of ``vocabulary.txt``)."""
    kind = "thing"
    tags: list[Tag] = []
    seen: set[str] = set()
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("[") and line.endswith("]"):
            kind = line[1:-1].strip()
            if kind not in TEMPLATES:
                raise VocabularyError(f"{source} line {n}: unknown section [{kind}] (one of {', '.join(TEMPLATES)})")
            continue
        fields = [f.strip() for f in line.split("|")]
        if len(fields) != 4 or not fields[0]:
            raise VocabularyError(f"{source} line {n}: want 'tag | phrase | more words | broader tags'")
        name = fields[0].lower()
        if name in seen:
            raise VocabularyError(f"{source} line {n}: tag {name!r} is listed twice")
        seen.add(name)
        if kind == "style":
            prompts = tuple(p.strip() for p in fields[1].split(";") if p.strip())
        else:
            phrase = fields[1] or _article(name)
            prompts = tuple(t.format(phrase) for t in TEMPLATES[kind])
        if not prompts:
            raise VocabularyError(f"{source} line {n}: tag {name!r} has no prompts")
        words = (name, *(w.strip().lower() for w in fields[2].split(",") if w.strip()))
        broader = tuple(b.strip().lower() for b in fields[3].split(",") if b.strip())
        tags.append(Tag(name, kind, prompts, words, broader))
    unknown = sorted({b for t in tags for b in t.broader} - seen)
    if unknown:
        raise VocabularyError(f"{source}: broader tags that are not tags: {', '.join(unknown)}")
    if not tags:
        raise VocabularyError(f"{source} holds no tags")
    return Vocabulary(tuple(tags))


@functools.cache
def bundled() -> Vocabulary:
    """pixseek's vocabulary (package data)."""
    return parse(resources.files(__package__).joinpath("vocabulary.txt").read_text("utf-8"), "vocabulary.txt")


def load(path: str | Path | None = None) -> Vocabulary:
    """The vocabulary in ``path``, or the bundled one."""
    if path is None:
        return bundled()
    try:
        text = Path(path).read_text("utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise VocabularyError(f"cannot read vocabulary {path}: {e}") from None
    return parse(text, str(path))
