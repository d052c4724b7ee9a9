"""The tagging stage of ``pixseek index``: zero-shot tags from the stored vectors, after embedding.

No picture is decoded or embedded again. The vocabulary (:mod:`pixseek.index.vocabulary`) is encoded
once per model and vocabulary (prompt ensembles, cached beside the model's export), every picture not
yet scored gets ``vector @ tag_vectors.T``, and :mod:`pixseek.index.tag_rule` keeps its strongest tags.
Rows go to SQLite (:mod:`pixseek.store.tags`) one transaction per chunk, so a killed run keeps what it
committed and the next run goes on from there; search works meanwhile.

Incremental: only pictures without a ``tagged`` row are scored (new ones, and changed ones, whose rows
a trigger dropped when their vector changed). A new setup (another model id, vocabulary or rule:
``key``) empties the tag tables and scores every picture again.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from pixseek.errors import ModelError, ModelMismatchError
from pixseek.models import Encoder
from pixseek.models.export import cached_text_vectors
from pixseek.store import Store

from . import tag_rule
from .tag_rule import TagRule
from .vocabulary import Vocabulary, bundled

log = logging.getLogger("pixseek.tagging")

CHUNK = 4096  # pictures scored and committed at a time
TEXT_BATCH = 256  # prompts per call to the text encoder


@dataclass(frozen=True)
class TagSetup:
    vocabulary: Vocabulary
    vectors: np.ndarray  # float32[tags, dim]: each tag's prompt-ensemble vector
    rule: TagRule
    key: str  # names this setup in the database (model id, vocabulary, rule)
    background: str  # for an uncalibrated rule: "MODEL|VOCABULARY|PICTURES" it was measured on; else ""


def tag_vectors(model_id: str, vocab: Vocabulary, encoder: Callable[[], Encoder]) -> np.ndarray:
    """The vocabulary's prompt-ensemble vectors for ``model_id`` (computed once, then cached; the
    encoder is only loaded when they are not)."""

    def encode(texts: list[str]) -> np.ndarray:
        enc = encoder()
        return np.concatenate([enc.encode_texts(texts[i : i + TEXT_BATCH]) for i in range(0, len(texts), TEXT_BATCH)])

    return vocab.ensemble(cached_text_vectors(model_id, vocab.prompts(), encode))


def setup(store: Store, encoder: Callable[[], Encoder], vocab: Vocabulary | None = None) -> TagSetup:
    """The tag setup for the index in ``store``: calibrated for a bundled model, else measured on a
    sample of the index (kept until the index has doubled, up to ``BACKGROUND_SAMPLE`` pictures)."""
    vocab = vocab or bundled()
    model_id = store.model_id or ""
    vectors = tag_vectors(model_id, vocab, encoder)
    rule = tag_rule.calibrated(model_id, vocab)
    background = ""
    if rule is None:
        rule, background = _index_background(store, vocab, vectors, model_id)
    key = hashlib.sha256(f"{model_id}|{vocab.digest}|{rule.digest}".encode()).hexdigest()[:16]
    return TagSetup(vocab, vectors, rule, key, background)


def _index_background(store: Store, vocab: Vocabulary, vectors: np.ndarray, model_id: str) -> tuple[TagRule, str]:
    """The fallback rule: the stored background when it fits this model and vocabulary and the index
    has not outgrown it, else one measured now on a seeded sample of the index."""
    count = store.count()
    parts = (store.meta("tags_background") or "").rsplit("|", 2)
    model, digest, n = parts if len(parts) == 3 else ("", "", "")
    stored = store.tag_vocabulary()
    fits = model == model_id and digest == vocab.digest and [t for t, *_ in stored] == vocab.names
    n_bg = int(n) if n.isdigit() else 0
    if fits and n_bg > 0 and (n_bg >= tag_rule.BACKGROUND_SAMPLE or count < 2 * n_bg):
        bg = np.asarray([b for _, _, b in stored], dtype=np.float32)
        return TagRule(bg, tag_rule.FALLBACK_THRESHOLD, source=_source(n_bg)), f"{model_id}|{vocab.digest}|{n_bg}"
    sample = store.sample_vectors(tag_rule.BACKGROUND_SAMPLE, seed=0)
    rule = tag_rule.from_background(sample @ vectors.T, _source(len(sample)))
    return rule, f"{model_id}|{vocab.digest}|{len(sample)}"


def _source(n: int) -> str:
    return (
        f"uncalibrated model: tag medians over {n} picture{'s' if n != 1 else ''} of this index, "
        f"strength from {tag_rule.FALLBACK_THRESHOLD}"
    )


def tag_index(
    store: Store,
    encoder: Callable[[], Encoder],
    *,
    vocab: Vocabulary | None = None,
    progress: bool = False,
) -> int:
    """Tag every picture of ``store`` not tagged with the setup in force; returns how many were scored.
    ``encoder``: gives the index's encoder, called only when the tag vectors are not cached yet."""
    if store.count() == 0 or not store.model_id:
        return 0
    ts = setup(store, encoder, vocab)
    if store.tag_state().key != ts.key:
        in_force = [(t.name, t.kind, float(b)) for t, b in zip(ts.vocabulary.tags, ts.rule.background)]
        store.reset_tags(ts.key, ts.rule.source, in_force, background=ts.background)
        log.info("tagging every picture: %s", ts.rule.source)
    ids = store.untagged_ids()
    if not len(ids):
        return 0
    from tqdm import tqdm

    names = ts.vocabulary.names
    with tqdm(total=len(ids), unit="img", desc="tagging", disable=not progress, leave=False) as bar:
        for start in range(0, len(ids), CHUNK):
            got, vecs = store.vectors_for(ids[start : start + CHUNK])
            scores = vecs @ ts.vectors.T
            kept = ts.rule.keep(scores)
            rows = [(int(i), names[t], s, z) for i, tags in zip(got.tolist(), kept) for t, s, z in tags]
            store.add_tags(got.tolist(), rows)
            bar.update(len(got))
    return len(ids)


def tag_stage(store: Store, encoder: Callable[[], Encoder], notes: list[str], *, progress: bool = False) -> int:
    """:func:`tag_index` as a stage of an index run: a model that cannot be loaded to encode the
    vocabulary (offline, weights gone) leaves the tags as they were and says so in ``notes``; the
    pictures stay indexed and the next run tries again."""
    try:
        return tag_index(store, encoder, progress=progress)
    except (ModelError, ModelMismatchError) as e:
        notes.append(f"tags not updated: {e.message} (the next `pixseek index` tries again)")
        return 0
