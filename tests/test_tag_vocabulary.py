"""The tag vocabulary, the rule that keeps tags, its calibration file and the tag filter (no index)."""

from __future__ import annotations

import numpy as np
import pytest

from pixseek.errors import QueryError, VocabularyError
from pixseek.index import tag_rule, vocabulary
from pixseek.index.tag_rule import TagRule, fit, predicted, scores_f1
from pixseek.store.filters import Filter


def test_the_bundled_vocabulary_and_its_prompt_ensembles():
    v = vocabulary.bundled()
    assert len(v.tags) >= 300 and len(set(v.names)) == len(v.names)
    dog = v.tags[v.names.index("dog")]
    assert dog.prompts == (
        "a photo of a dog.",
        "a picture of a dog.",
        "a drawing of a dog.",
        "a cartoon of a dog.",
        "an emoji of a dog.",
        "a dog.",
    )
    assert v.tags[v.names.index("photo")].prompts[:2] == ("a photo.", "a photograph.")
    assert len(v.prompts()) == sum(len(t.prompts) for t in v.tags)
    assert {t.kind for t in v.tags} == {"thing", "scene", "activity", "style"}


def test_captions_name_tags_with_their_broader_tags():
    v = vocabulary.bundled()
    assert v.tags_named_in("A dingo. animals/mammals/dogs") == {"dog", "mammal", "animal"}
    assert v.tags_named_in("dog face, an animal mammal emoji") == {"dog", "face", "mammal", "animal", "emoji"}
    assert v.tags_named_in("A hot dog.") == {"hot dog", "food"}  # no dog in a hot dog
    assert v.tags_named_in("Two puppies on a BEACH") == {"dog", "mammal", "animal", "beach", "outdoors"}
    assert v.tags_named_in("a catalogue") == set()  # whole words only


def test_the_ensemble_is_the_renormalised_mean_of_each_tags_prompts():
    v = vocabulary.parse("[thing]\ndog | a dog | |\n[style]\nphoto | a photo.; a photograph. | |\n")
    vecs = np.eye(8, dtype=np.float32)[: len(v.prompts())] * 3  # not unit: the ensemble normalises first
    got = v.ensemble(vecs)
    assert got.shape == (2, 8)
    assert np.allclose(np.linalg.norm(got, axis=1), 1)
    assert np.allclose(got[1, 6:8], [0.5**0.5, 0.5**0.5])
    with pytest.raises(VocabularyError, match="^3 prompt vectors for 8 prompts$"):
        v.ensemble(vecs[:3])


@pytest.mark.parametrize(
    "text, message",
    [
        ("[thing]\ndog | a dog\n", "test line 2: want 'tag | phrase | more words | broader tags'"),
        ("[colours]\nred | | |\n", "test line 1: unknown section [colours] (one of thing, scene, activity, style)"),
        ("dog | | |\nDog | | |\n", "test line 2: tag 'dog' is listed twice"),
        ("dog | | | mammal\n", "test: broader tags that are not tags: mammal"),
        ("# only a comment\n", "test holds no tags"),
    ],
)
def test_a_bad_vocabulary_is_one_line(text, message):
    with pytest.raises(VocabularyError) as e:
        vocabulary.parse(text, "test")
    assert str(e.value) == message


def test_the_rule_centres_each_tag_then_compares_a_pictures_tags():
    # 20 tags: tag 0 scores high everywhere (a "hub" prompt), tag 1 stands out for picture 0 only
    scores = np.full((3, 20), 0.1, np.float32)
    scores[:, 0] = 0.9
    scores[0, 1] = 0.8
    rule = tag_rule.from_background(scores, "test")
    assert np.allclose(rule.background[:3], [0.9, 0.1, 0.1])
    kept = rule.keep(scores)
    assert [t for t, _, _ in kept[0]] == [1] and kept[1] == [] and kept[2] == []
    # one tag above 19 equal ones stands sqrt(19) standard deviations out
    assert kept[0][0][1] == pytest.approx(0.8) and kept[0][0][2] == pytest.approx(19**0.5, rel=1e-4)
    assert rule.threshold == tag_rule.FALLBACK_THRESHOLD < 19**0.5
    capped = TagRule(rule.background, -10, max_per_image=2).keep(scores)
    assert all(len(k) == 2 for k in capped)


def test_fitting_picks_the_threshold_with_the_best_f1():
    rng = np.random.default_rng(0)
    truth = np.zeros((60, 40), bool)
    truth[np.arange(60), rng.integers(0, 40, 60)] = True
    scores = rng.normal(0, 0.02, truth.shape).astype(np.float32) + truth * 0.2
    rule = fit(scores, truth, np.ones_like(truth), "test")
    assert scores_f1(predicted(rule, scores), truth, np.ones_like(truth)) == (1.0, 1.0, 1.0)
    assert 1.5 <= rule.threshold <= 6


def test_a_calibration_applies_to_its_model_and_vocabulary_only():
    v = vocabulary.parse("dog | | |\ncat | | |\n")
    entry = {"threshold": 2.5, "max_per_image": 3, "source": "s", "background": {"dog": 0.1, "cat": 0.2}}
    table = {"vocabulary": v.digest, "models": {"m#1": entry}}
    rule = tag_rule.calibrated("m#1", v, table)
    assert rule is not None and rule.threshold == 2.5 and rule.max_per_image == 3
    assert np.allclose(rule.background, [0.1, 0.2])
    assert tag_rule.calibrated("m#2", v, table) is None
    assert tag_rule.calibrated("m#1", vocabulary.parse("dog | | |\n"), table) is None
    del entry["background"]["cat"]
    with pytest.raises(VocabularyError, match=r"^tag_calibration.json: the entry for m#1 is damaged \('cat'\)$"):
        tag_rule.calibrated("m#1", v, table)


def test_the_shipped_calibration_fits_the_shipped_vocabulary():
    """Editing vocabulary.txt without running `bench/tags.py --write` would silently drop the bundled
    models to the uncalibrated rule."""
    table = tag_rule._calibrations()
    assert table["vocabulary"] == vocabulary.bundled().digest
    assert {m.split("#")[0] for m in table["models"]} == {"pixseek-photo", "pixseek-emoji"}


def test_the_tag_filter_in_sql_and_words():
    f = Filter(tags=("Dog", " ice  cream ", "dog"))
    assert f.active
    where, params = f.sql()
    assert where == (
        "id IN (SELECT image_id FROM tags WHERE tag = ?) AND id IN (SELECT image_id FROM tags WHERE tag = ?)"
    )
    assert params == ["dog", "ice cream"]
    assert f.describe() == "tagged dog + ice cream"
    assert Filter(folder="/p", tags=("cat",)).describe() == "in /p, tagged cat"
    with pytest.raises(QueryError) as e:
        Filter(tags=(" ",)).validate()
    assert str(e.value) == "an empty tag names nothing: give a tag such as dog (`pixseek tags` lists them)"
    with pytest.raises(QueryError) as e:
        Filter(tags=("a\x00b",)).validate()
    assert str(e.value) == "not a tag: 'a\\x00b' (a tag is at most 100 characters, no NUL)"
