from __future__ import annotations

import math

import pytest

pytest.importorskip("pycocoevalcap")

from imgcap_desktop.core.training import metrics  # noqa: E402
from imgcap_desktop.core.training.metrics import MetricsReport, ptb_tokenize, score_captions  # noqa: E402

HAS_JAVA = metrics.java_works()
needs_java = pytest.mark.skipif(not HAS_JAVA, reason="no working java on PATH")

# Distinct captions per image: CIDEr's IDF needs words that are rare across images.
REFS = {
    "1.jpg": ["a dog runs on the grass", "a brown dog running in a field", "the dog is running outside"],
    "2.jpg": ["a man rides a red bicycle", "a cyclist on a road", "a person riding a bike down the street"],
    "3.jpg": ["two children play in the snow", "kids building a snowman", "two kids playing in snow"],
    "4.jpg": ["a woman sits on a bench reading", "a lady reading a book in the park", "woman reading on a bench"],
}


def test_identical_captions_score_high() -> None:
    preds = {k: refs[0] for k, refs in REFS.items()}
    report = score_captions(preds, REFS, use_java=False)
    assert isinstance(report, MetricsReport)
    assert report.scores["BLEU-1"] == pytest.approx(1.0, abs=1e-6)
    assert report.scores["BLEU-4"] == pytest.approx(1.0, abs=1e-6)
    assert report.scores["ROUGE-L"] > 0.9
    assert report.scores["CIDEr"] > 2.0
    assert "METEOR" not in report.scores
    assert any("METEOR skipped" in n for n in report.notes)
    assert report.tokenizer == "python" and report.n_images == 4


def test_wrong_captions_score_near_zero() -> None:
    preds = {"1.jpg": "purple elephants juggle", "2.jpg": "quantum soup recipes", "3.jpg": "violins tune slowly",
             "4.jpg": "yellow submarine engines"}
    report = score_captions(preds, REFS, use_java=False)
    for key in ("BLEU-1", "BLEU-4", "ROUGE-L", "CIDEr"):
        assert report.scores[key] < 0.01, key


def test_bleu_against_hand_computed_value() -> None:
    # Unigrams: the(2, clipped to 2) cat on mat match, "sat" does not -> 5/6.
    # Bigrams: "the cat", "on the", "the mat" of 5 -> 3/5. Equal lengths, so no brevity penalty.
    report = score_captions({"x": "The cat sat on the mat."}, {"x": ["the cat is on the mat"]}, use_java=False)
    assert report.scores["BLEU-1"] == pytest.approx(5 / 6, abs=1e-6)
    assert report.scores["BLEU-2"] == pytest.approx(math.sqrt(5 / 6 * 3 / 5), abs=1e-6)
    assert any("single image" in n for n in report.notes)


def test_empty_prediction_and_unscored_references() -> None:
    preds = {"1.jpg": "", "2.jpg": "a man rides a bike"}
    report = score_captions(preds, REFS, use_java=False)
    assert 0 < report.scores["ROUGE-L"] < 1
    assert any("2 image(s) with references but no prediction" in n for n in report.notes)


def test_bad_inputs() -> None:
    with pytest.raises(ValueError, match="no predicted captions"):
        score_captions({}, REFS, use_java=False)
    with pytest.raises(ValueError, match="no reference captions, e.g. 9.jpg"):
        score_captions({"9.jpg": "a dog"}, REFS, use_java=False)


def test_python_tokenizer_matches_ptb_conventions() -> None:
    assert ptb_tokenize('A dog\'s "toy", (red) -- isn\'t it ...') == "a dog 's toy -lrb- red -rrb- is n't it"
    assert ptb_tokenize("We cannot see Mr. Potato at 3.5 m.") == "we can not see mr. potato at 3.5 m."


def test_missing_pycocoevalcap_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins

    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name.startswith("pycocoevalcap"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    with pytest.raises(ImportError, match=r"pip install 'imgcap-desktop\[eval\]'"):
        score_captions({"1.jpg": "a dog"}, REFS)


def test_no_java_on_path_is_a_note(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(metrics.shutil, "which", lambda name: None)
    report = score_captions({k: r[1] for k, r in REFS.items()}, REFS)
    assert "METEOR skipped: Java was not found (install a JRE to get it)." in report.notes
    with pytest.raises(FileNotFoundError, match="java"):
        score_captions({k: r[1] for k, r in REFS.items()}, REFS, use_java=True)


@needs_java
def test_java_path_matches_python_path_and_gives_meteor() -> None:
    preds = {"1.jpg": "a dog running on grass", "2.jpg": "a man riding a bike on a road",
             "3.jpg": "two kids play in snow", "4.jpg": "a woman reading a book"}
    with_java = score_captions(preds, REFS, use_java=True)
    without = score_captions(preds, REFS, use_java=False)
    assert with_java.tokenizer == "ptb-java", with_java.notes
    for key in ("BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "ROUGE-L", "CIDEr"):
        assert with_java.scores[key] == pytest.approx(without.scores[key], abs=1e-9), key
    assert 0.2 < with_java.scores["METEOR"] < 1.0
    assert not any("METEOR" in n for n in with_java.notes)


@needs_java
def test_java_tokenizer_agrees_with_python_imitation() -> None:
    texts = ['A dog, running on "the" grass.', "A man's bike (red) on a road!", "We cannot see Mr. Potato.",
             "isn't it 3.5 -- ok ...", ""]
    java = metrics._ptb_tokenize_java(texts, metrics.shutil.which("java"), timeout=120)
    assert java == [ptb_tokenize(t) for t in texts]


@needs_java
def test_stuck_meteor_is_a_note_not_a_hang(monkeypatch: pytest.MonkeyPatch) -> None:
    def stuck(*args, **kwargs):
        raise TimeoutError("no answer within 1 s")

    monkeypatch.setattr(metrics, "_meteor_java", stuck)
    report = score_captions({k: r[0] for k, r in REFS.items()}, REFS, use_java=True)
    assert "METEOR" not in report.scores
    assert any(n.startswith("METEOR skipped: the METEOR jar failed (no answer") for n in report.notes)


@needs_java
def test_meteor_deadline_kills_the_jvm() -> None:
    gts = {k: r[1:] for k, r in REFS.items()}
    res = {k: [r[0]] for k, r in REFS.items()}
    with pytest.raises(TimeoutError):
        metrics._meteor_java(sorted(REFS), gts, res, metrics.shutil.which("java"), timeout=0.05)
