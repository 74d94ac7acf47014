"""The confidence, the keywords and the attention maps: on real numbers, the real keyword table,
real (small) Keras models and real image files."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from PIL import Image

from imgcap_desktop.core import attention_maps, confidence, keywords
from imgcap_desktop.core.errors import BundleError

from .test_litert import LITE0_WEIGHTS, SAMPLES, make_attend_bundle


def rows_and_labels(n: int = 400, seed: int = 0):
    """Synthetic held-out captions: good ones are likelier per word and their photo is clearer."""
    rng = np.random.default_rng(seed)
    good = rng.random(n) < 0.4
    rows = []
    for g in good:
        rows.append({"mean_log_prob": rng.normal(-0.8 if g else -1.4, 0.3),
                     "min_log_prob": rng.normal(-2.0 if g else -3.0, 0.6), "margin": rng.normal(0.1, 0.05),
                     "attention_entropy": rng.normal(0.95, 0.01), "class_top": rng.uniform(0.3, 1) if g else rng.uniform(0, 0.7),
                     "class_entropy": rng.uniform(0, 0.7) if g else rng.uniform(0.3, 1),
                     "length": float(rng.integers(6, 14))})
    return rows, good.tolist()


# --- confidence ----------------------------------------------------------------------------------


def test_fitted_confidence_is_a_probability_that_ranks_good_captions_first():
    rows, good = rows_and_labels()
    cal = confidence.fit(rows, good)
    scores = [cal.predict(r) for r in rows]
    assert all(0.0 <= s <= 1.0 for s in scores)
    assert confidence.auroc(scores, good) > 0.85
    # Calibrated on what it was fitted on: the mean confidence is the base rate.
    assert np.mean(scores) == pytest.approx(np.mean(good), abs=0.02)
    extreme = dict(rows[0], mean_log_prob=-1e6, min_log_prob=-1e6)
    assert 0.0 <= cal.predict(extreme) < 1e-6


@pytest.mark.parametrize("name", ["mean_log_prob", "min_log_prob", "class_top", "class_entropy"])
def test_confidence_moves_the_way_each_feature_should(name):
    rows, good = rows_and_labels(seed=1)
    cal = confidence.fit(rows, good)
    assert name in cal.features
    base = dict(rows[0])
    values = [cal.predict(dict(base, **{name: base[name] + d})) for d in np.linspace(-2, 2, 9)]
    steps = np.diff(values) * confidence.FEATURES[name]
    assert np.all(steps >= 0), values


def test_a_feature_fitted_with_the_wrong_sign_is_dropped():
    rows, good = rows_and_labels(seed=2)
    # A larger top class probability is made to mean a worse caption in this data.
    for r, g in zip(rows, good):
        r["class_top"] = 0.2 if g else 0.9
    cal = confidence.fit(rows, good)
    assert "class_top" not in cal.features
    assert all(confidence.FEATURES[n] * c >= 0 for n, c in zip(cal.features, cal.coef))


def test_missing_features_give_no_confidence_and_fitting_needs_both_kinds():
    rows, good = rows_and_labels()
    cal = confidence.fit(rows, good)
    assert cal.predict(dict(rows[0], mean_log_prob=None)) is None
    assert cal.predict(dict(rows[0], mean_log_prob=float("nan"))) is None
    with pytest.raises(ValueError, match="both good and bad"):
        confidence.fit(rows, [True] * len(rows))


def test_calibration_survives_json_and_bad_entries_are_refused():
    rows, good = rows_and_labels()
    cal = confidence.fit(rows, good, definition="synthetic")
    again = confidence.Calibration.from_json(json.loads(json.dumps(cal.to_json())))
    assert again.predict(rows[3]) == pytest.approx(cal.predict(rows[3]), abs=1e-5)
    for broken, reason in [({**cal.to_json(), "features": ["colour"]}, "features"),
                           ({**cal.to_json(), "coef": [1.0]}, "coef"),
                           ({**cal.to_json(), "scale": [0.0] * len(cal.features)}, "scale"),
                           ({**cal.to_json(), "intercept": "high"}, "intercept"),
                           ({**cal.to_json(), "check_below": 2}, "check_below"), ([], "object")]:
        with pytest.raises(ValueError, match=reason):
            confidence.Calibration.from_json(broken)


def test_reliability_and_auroc():
    assert confidence.auroc([0.9, 0.8, 0.2, 0.1], [True, True, False, False]) == 1.0
    assert confidence.auroc([0.5, 0.5], [True, False]) == 0.5
    assert math.isnan(confidence.auroc([0.5], [True]))
    bins = confidence.reliability([0.05, 0.07, 0.95, 1.0], [False, True, True, True])
    assert bins == [(pytest.approx(0.06), 0.5, 2), (pytest.approx(0.975), 1.0, 2)]


# --- keywords --------------------------------------------------------------------------------------


def probs_for(**named: float) -> np.ndarray:
    """Class probabilities with the named classes (by their first keyword) at the given values."""
    table = keywords.table()["classes"]
    p = np.zeros(1000)
    for name, value in named.items():
        p[next(i for i, words in enumerate(table) if words[0] == name.replace("_", " "))] = value
    rest = 1.0 - p.sum()
    return p + rest / 1000


def test_the_table_names_every_class_and_puts_breeds_under_dog():
    table = keywords.table()
    assert len(table["classes"]) == len(table["wnids"]) == 1000
    assert all(words and all(isinstance(w, str) and w for w in words) for words in table["classes"])
    assert table["classes"][207] == ["golden retriever", "dog"]  # ImageNet's class 207
    assert table["classes"][281][-1] == "cat" and table["wnids"][281] == "n02123045"  # tabby
    assert "coffee" in table["classes"][967]  # espresso


def test_a_keyword_sums_the_classes_that_give_it():
    # No breed is sure, but the photo is surely a dog.
    p = probs_for(golden_retriever=0.3, Labrador_retriever=0.3, kuvasz=0.2)
    words = keywords.from_probabilities(p, threshold=0.5)
    assert words == ("dog",)
    assert keywords.from_probabilities(p, threshold=0.25)[:3] == ("dog", "golden retriever", "Labrador retriever")
    assert keywords.from_probabilities(probs_for(espresso=0.9), threshold=0.7) == ("espresso", "drink", "coffee")
    assert keywords.from_probabilities(np.full(1000, 0.001), threshold=0.2) == ()
    assert keywords.from_probabilities(np.ones(10)) == ()


def test_keyword_matching_and_parsing():
    refs = ["Two puppies play on the beach .", "A kitten sleeps"]
    assert keywords.matches("dog", refs) and keywords.matches("cat", refs) and keywords.matches("beach", refs)
    assert not keywords.matches("ball", refs) and not keywords.matches("be", refs)
    assert keywords.parse(" cat, Cat ;tabby  cat,,\n dog ") == ("cat", "tabby cat", "dog")
    assert keywords.join(("cat", "dog")) == "cat, dog"


# --- attention maps --------------------------------------------------------------------------------


def peaked(cells: int = 49, at: int = 10, extra: int = 1) -> np.ndarray:
    a = np.full(cells + extra, 0.5 / (cells + extra))
    a[at] += 0.5
    return a / a.sum()


def test_the_smoothed_map_peaks_over_the_cell_that_was_looked_at():
    grid = attention_maps.word_maps(["cat"], peaked(at=2 * 7 + 5)[None], (7, 7))[0]
    assert grid.peak() == (2, 5) and 0 < grid.semantic < 0.02
    heat = attention_maps.smooth(grid.grid, (300, 140))  # a wide photo: stretched, not cropped
    assert heat.shape == (140, 300) and heat.min() >= 0 and heat.max() <= 1
    y, x = np.unravel_index(np.argmax(heat), heat.shape)
    assert int(x * 7 / 300) == 5 and int(y * 7 / 140) == 2


def test_grid_of_reads_the_attention_width():
    grid_of = attention_maps.grid_of
    assert grid_of(np.zeros((3, 49))) == (7, 7) and grid_of(np.zeros((3, 50))) == (7, 7)
    assert grid_of(np.zeros((3, 82))) == (9, 9) and grid_of(np.zeros((3, 30))) is None


def test_strip_has_a_tile_per_word_and_is_written_atomically(tmp_path):
    photo = Image.open(SAMPLES[1]).convert("RGB")
    attention = np.stack([peaked(at=i) for i in range(4)])
    out = attention_maps.write_strip(photo, "a cat sits".split(), attention, (7, 7), tmp_path / "cat.png")
    with Image.open(out) as im:
        assert im.format == "PNG" and im.width > 3 * 150
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cat.png"]
    with pytest.raises(ValueError, match="does not cover"):
        attention_maps.word_maps(["a"], np.ones((1, 10)), (7, 7))


# --- through the Captioner ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def calibrated(tmp_path_factory):
    if not LITE0_WEIGHTS.is_file():
        pytest.skip("the shipped EfficientNet-Lite0 weights are missing")
    rows, good = rows_and_labels()
    cal = confidence.fit(rows, good, names=["mean_log_prob", "min_log_prob", "class_top"])
    return make_attend_bundle(tmp_path_factory.mktemp("calibrated") / "b", semantic=True,
                              calibration=cal.to_json(), keywords={"threshold": 0.0})


def test_captions_carry_confidence_keywords_and_attention(calibrated):
    from imgcap_desktop.core.captioner import Captioner

    captioner = Captioner.load(calibrated)
    assert captioner.has_attention and captioner.grid_shape == (7, 7)
    results = list(captioner.caption_paths(SAMPLES, beam=2))
    for r in results:
        c = r.caption
        assert 0.0 <= c.confidence <= 1.0
        assert c.confidence == pytest.approx(captioner.calibration.predict(c.signals))
        assert set(c.signals) == set(confidence.FEATURES)
        assert c.classes.shape == (1000,) and c.classes.sum() == pytest.approx(1.0, abs=1e-4)
        # Threshold 0: the likeliest classes' keywords, as the table gives them.
        assert c.keywords == tuple(w for w, _ in keywords.scores(c.classes)[:keywords.MAX_KEYWORDS])
        # One attention row per word (and the end token, unless the length limit came first), over
        # 49 cells and the semantic slot.
        assert c.attention.shape[0] - len(c.text.split()) in (0, 1) and c.attention.shape[1] == 50


def test_seed_model_has_no_confidence_and_no_spatial_attention(seed_captioner):
    assert not seed_captioner.has_attention and seed_captioner.grid_shape is None
    result = next(iter(seed_captioner.caption_paths(SAMPLES[:1])))
    assert result.caption.confidence is None and result.caption.keywords == ()


def test_a_tampered_calibration_is_refused_in_a_sentence(calibrated, tmp_path):
    import shutil

    from imgcap_desktop.core.bundle import read_bundle

    copy = tmp_path / "b"
    shutil.copytree(calibrated, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["calibration"]["coef"] = ["x"]
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="calibration.coef"):
        read_bundle(copy)
    manifest["calibration"] = None
    manifest["keywords"] = {"threshold": 3}
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="keywords.threshold"):
        read_bundle(copy)


def test_cli_records_and_attention_out(calibrated, tmp_path, capsys):
    from imgcap_desktop.cli import main

    code = main(["caption", *map(str, SAMPLES), "--model", str(calibrated), "--format", "jsonl",
                 "--attention-out", str(tmp_path / "maps"), "--no-progress"])
    assert code == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [0 <= r["confidence"] <= 1 for r in records] == [True] * len(SAMPLES)
    assert all(r["keywords"] for r in records)
    for sample, record in zip(SAMPLES, records):
        entry = next(w for w in record["written"] if w["target"] == "attention")
        assert entry["result"] == "written" and entry["path"].endswith(f"{sample.stem}.attention.png")
        with Image.open(entry["path"]) as im:
            assert im.format == "PNG"
    assert sorted(p.name for p in (tmp_path / "maps").iterdir()) == sorted(f"{p.stem}.attention.png" for p in SAMPLES)


def test_cli_attention_out_with_the_seed_model_says_why(seed_assets, seed_cache_home, tmp_path, capsys,
                                                        monkeypatch):
    from imgcap_desktop.cli import main

    monkeypatch.setenv("XDG_CACHE_HOME", str(seed_cache_home))
    code = main(["caption", str(SAMPLES[0]), "--model", str(seed_assets["folder"]), "--encoder-weights",
                 str(seed_assets["densenet"]), "--format", "jsonl", "--attention-out", str(tmp_path / "maps"),
                 "--no-progress"])
    out = capsys.readouterr()
    assert code == 0 and "has no spatial attention" in out.err
    record = json.loads(out.out)
    assert record["confidence"] is None
    assert record["written"][0]["result"] == "failed"


def test_missing_from_asks_for_a_sure_keyword_the_caption_leaves_out():
    from imgcap_desktop.core.vocab import Vocabulary

    vocab = Vocabulary((None, "<unk>", "startseq", "endseq", "a", "dog", "cat", "cats", "on", "ball", "sofa"),
                       unknown="<unk>")
    cat = probs_for(tabby_cat=0.5, Egyptian_cat=0.45)
    assert list(keywords.missing_from("a dog on a sofa", cat, 0.9, vocab)) == [vocab.id_of("cat"),
                                                                               vocab.id_of("cats")]
    # Named already: by a form, a listed synonym, or a compound that ends in it.
    assert keywords.missing_from("two cats on a sofa", cat, 0.9, vocab) is None
    assert keywords.missing_from("a kitten on a sofa", cat, 0.9, vocab) is None
    ball = probs_for(soccer_ball=0.95)
    assert "ball" in keywords.from_probabilities(ball, 0.9)
    assert keywords.missing_from("a boy kicks a football", ball, 0.9, vocab) is None
    # Not sure enough, or no word of the vocabulary can name it: nothing to ask for.
    assert keywords.missing_from("a dog on a sofa", cat, 0.99, vocab) is None
    assert keywords.missing_from("a dog", probs_for(espresso=0.95), 0.9, vocab) is None


def test_the_keyword_guide_names_a_sure_keyword_in_a_real_models_captions(tmp_path):
    from imgcap_desktop.core.captioner import Captioner
    from imgcap_desktop.core.images import open_for_model

    if not LITE0_WEIGHTS.is_file():
        pytest.skip("the shipped EfficientNet-Lite0 weights are missing")
    # A random decoder either stops at once or never: with this end bias the samples get one
    # caption of each kind (cut off by the length limit, empty, short), which is what is tested.
    captioner = Captioner.load(make_attend_bundle(tmp_path / "b", semantic=True, keywords={"threshold": 0.0},
                                                  end_bias=3.0))
    spec = captioner.spec
    features = captioner.encoder(np.stack([open_for_model(p, spec.input_size, resample=spec.resample)
                                           for p in SAMPLES]))
    # The random encoder's head is sure of nothing; a head sure of a cat stands in for a real one.
    sure_cat = probs_for(tabby_cat=0.96)
    captioner.step_model.concepts = lambda rows: np.tile(sure_cat, (len(rows), 1))
    plain = captioner.caption_features(features, beam=2, keyword_guide=0.0)
    guided = captioner.caption_features(features, beam=2, keyword_guide=0.9)
    assert not any("cat" in p.text.split() for p in plain)
    named = [g for g in guided if "cat" in g.text.split()]
    assert named, [g.text for g in guided]
    for p, g in zip(plain, guided):
        # Either the word is named in a caption that ended, or (the search found none: every
        # caption that names it was cut off by the length limit) the first caption stays.
        assert "cat" in g.text.split() or g.text == p.text
        if "cat" in g.text.split():
            assert len(g.text.split()) < captioner.manifest.max_length
    # Unasked, the manifest's choice applies: this bundle has none, so the guide is off.
    assert [c.text for c in captioner.caption_features(features, beam=2)] == [p.text for p in plain]
