"""The search API over an index built by the tiny model."""

from __future__ import annotations

import io

import numpy as np
import pytest
from imagegen import draw, encode, save
from PIL import Image

from pixseek.errors import EmptyIndexError, IndexNotFoundError, NotFoundError, QueryError, QueryImageError
from pixseek.search import Engine, Result, Term, build_terms
from pixseek.search.query import split_weight
from pixseek.store import Store


def test_each_image_finds_itself_first(index_dir, tiny):
    db, corpus = index_dir
    with Engine.open(db, encoder=tiny) as eng:
        for p in sorted(corpus.rglob("*.*")):
            top = eng.image(p, k=3)
            assert top[0].path == str(p)
            assert top[0].score == pytest.approx(1.0, abs=1e-4)
            assert isinstance(top[0], Result) and top[0].rank == 1


def test_resized_and_reencoded_copies_rank_in_top3(index_dir, tiny, tmp_path):
    db, corpus = index_dir
    with Engine.open(db, encoder=tiny) as eng:
        for p in sorted(corpus.rglob("*.*")):
            img = Image.open(p).convert("RGB")
            small = img.resize((img.width // 2, img.height // 2), Image.BICUBIC)
            jpeg = Image.open(io.BytesIO(encode(img, "JPEG", quality=60)))
            for variant in (small, jpeg):
                ranked = [r.path for r in eng.image(variant, k=3)]
                assert str(p) in ranked, (p, ranked)


def test_result_fields_and_k(index_dir, tiny):
    db, corpus = index_dir
    with Engine.open(db, encoder=tiny) as eng:
        res = eng.text("a red circle", k=5)
        assert [r.rank for r in res] == [1, 2, 3, 4, 5]
        assert all(res[i].score >= res[i + 1].score for i in range(4))
        r = res[0]
        assert r.width > 0 and r.height > 0 and r.format in {"JPEG", "PNG", "WEBP"} and r.size > 0
        assert r.name in r.path and r.folder.startswith(str(corpus))
        assert len(eng.text("a red circle", k=100)) == 24
        page2 = eng.text("a red circle", k=5, offset=5)
        assert [x.rank for x in page2] == [6, 7, 8, 9, 10]
        assert {x.id for x in page2}.isdisjoint({x.id for x in res})


def test_similar_excludes_itself_and_needs_no_model(index_dir, monkeypatch):
    db, corpus = index_dir
    import pixseek.search.engine as engine_mod

    monkeypatch.setattr(engine_mod, "for_queries", lambda *a, **k: pytest.fail("model loaded"))
    monkeypatch.setattr(engine_mod, "load_torch", lambda *a, **k: pytest.fail("model loaded"))
    with Engine.open(db) as eng:
        res = eng.similar(3, k=5)
        assert len(res) == 5 and 3 not in [r.id for r in res]
        with pytest.raises(NotFoundError, match="no image with id 9999 in the index"):
            eng.similar(9999)


def test_combined_terms_and_negation(index_dir, tiny):
    db, corpus = index_dir
    imgs = sorted(corpus.rglob("*.png"))
    with Engine.open(db, encoder=tiny) as eng:
        a = eng.encoder.encode_images([Image.open(imgs[0]).convert("RGB")])[0]
        t = eng.encoder.encode_texts(["at night"])[0]
        q = eng.encode_terms([Term("image", str(imgs[0]), 0.7), Term("text", "at night", 0.3)])
        expect = 0.7 * a + 0.3 * t
        assert np.allclose(q, expect / np.linalg.norm(expect), atol=1e-5)
        neg = eng.encode_terms(build_terms(["a dog"], [], ["a cat::0.5"]))
        d, c = eng.encoder.encode_texts(["a dog", "a cat"])
        expect = d - 0.5 * c
        assert np.allclose(neg, expect / np.linalg.norm(expect), atol=1e-5)
        # two images: the result ranks both queried images at the top
        both = [r.path for r in eng.search([], [str(imgs[0]), str(imgs[1])], k=2)]
        assert set(both) == {str(imgs[0]), str(imgs[1])}


def test_min_score_gives_honest_empty_result(index_dir, tiny):
    db, _ = index_dir
    with Engine.open(db, encoder=tiny) as eng:
        assert eng.text("anything", k=10, min_score=1.01) == []


def test_weight_syntax():
    assert split_weight("at night::0.5") == ("at night", 0.5)
    assert split_weight("dog") == ("dog", 1.0)
    assert split_weight("a::b") == ("a::b", 1.0)
    assert split_weight("x::-2e-1") == ("x", -0.2)


def test_query_errors(index_dir, tiny, tmp_path):
    db, _ = index_dir
    with Engine.open(db, encoder=tiny) as eng:
        with pytest.raises(QueryError, match="^empty query: give a text, --image PATH, or both$"):
            eng.search([], [], [])
        with pytest.raises(QueryError, match="^empty query text$"):
            eng.text("   ")
        with pytest.raises(QueryError, match="nothing to rank by"):
            eng.search([], [], ["a cat"])
        with pytest.raises(QueryError, match="cancel each other out"):
            eng.search(["a cat"], [], ["a cat"])
        bad = tmp_path / "bad.jpg"
        bad.write_bytes(b"nope")
        with pytest.raises(QueryImageError) as e:
            eng.image(str(bad))
        assert str(e.value) == f"cannot read query image {bad}: not an image: the content is no format Pillow can read"
        with pytest.raises(QueryImageError) as e:
            eng.image(str(tmp_path / "missing.png"))
        assert (
            str(e.value)
            == f"cannot read query image {tmp_path / 'missing.png'}: cannot read: No such file or directory"
        )


def test_missing_and_empty_index(tmp_path):
    with pytest.raises(IndexNotFoundError) as e:
        Engine.open(tmp_path / "nowhere")
    assert str(e.value) == f"no pixseek index in {tmp_path / 'nowhere'}"
    Store.open(tmp_path / "empty", create=True).close()
    with pytest.raises(EmptyIndexError) as e:
        Engine.open(tmp_path / "empty")
    assert str(e.value) == f"index in {tmp_path / 'empty'} has no images"


def test_refresh_picks_up_new_images(index_dir, tiny, tmp_path):
    db, corpus = index_dir
    from pixseek.index.indexer import Indexer

    with Engine.open(db, encoder=tiny) as eng:
        new = save(draw(777), corpus / "late.png")
        Indexer(db, encoder=tiny).run([corpus])
        assert eng.refresh() is True
        assert eng.image(new, k=1)[0].path == str(new)
        assert eng.refresh() is False
