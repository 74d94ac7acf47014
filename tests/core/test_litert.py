"""LiteRT export and runtime: same captions as Keras, stale exports refused.

A small ``attend`` bundle is built here (random decoder weights, the real
EfficientNet-Lite0 encoder weights shipped in ``models/default``), exported with
``export_litert`` and captioned by both runtimes through the same ``Captioner``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from imgcap_desktop.core.paths import default_bundle_dir, resource_root

ROOT = Path(__file__).resolve().parents[2]
LITE0_WEIGHTS = ROOT / "models" / "default" / "encoder_lite0.weights.h5"
SAMPLES = sorted((ROOT / "resources" / "samples").glob("*.jpg"))

WORDS = ("a cat dog man woman sitting standing on the table cup of coffee in front black white "
         "red grass water with wearing suit shirt").split()
SMALL = {"embed_dim": 16, "proj_dim": 32, "attention_dim": 16, "units": 32, "output_dim": 32}


def make_attend_bundle(out: Path, *, encoder_weights: Path = LITE0_WEIGHTS, seed: int = 3,
                       logit_scale: float = 8.0, beam: int = 3, semantic: bool = False,
                       calibration: dict | None = None, keywords: dict | None = None,
                       end_bias: float = -2.0) -> Path:
    """A real attend bundle with random decoder weights.

    The output layer is scaled up so the arg-max word is never a near tie (random
    weights otherwise give almost flat distributions, where float rounding between
    runtimes may flip a choice).
    """
    import keras

    from imgcap_desktop.core.bundle import Manifest, write_manifest
    from imgcap_desktop.core.families.attend import build_decoder
    from imgcap_desktop.core.vocab import Vocabulary

    out.mkdir(parents=True, exist_ok=True)
    vocab = Vocabulary((None, "<unk>", "startseq", "endseq", *WORDS), unknown="<unk>")
    vocab.to_json(out / "vocab.json")
    config = {"vocab_size": vocab.size, "max_length": 12, **SMALL, **({"semantic": 1} if semantic else {})}
    keras.utils.set_random_seed(seed)
    decoder = build_decoder(config)
    kernel, bias = decoder.out_logits.get_weights()
    rng = np.random.default_rng(seed)
    bias = bias + rng.normal(0, 1.0, bias.shape).astype(np.float32)
    bias[vocab.end_id] += end_bias  # by default, let captions run a few words before ending
    decoder.out_logits.set_weights([kernel * logit_scale, bias])
    decoder.save_weights(str(out / "decoder.weights.h5"))
    shutil.copyfile(encoder_weights, out / "encoder_lite0.weights.h5")
    manifest = Manifest(
        name="test attend (random)", family="attend", family_config=config, encoder="efficientnet_lite0",
        feature_shape=[49, 1280], encoder_weights="encoder_lite0.weights.h5", max_length=12,
        vocabulary="vocab.json", weights="decoder.weights.h5",
        tokens={"start": "startseq", "end": "endseq"},
        decoding={"beam": beam, "length_penalty": 0.0, "suppress_unknown": True},
        calibration=calibration, keywords=keywords or {})
    write_manifest(out, manifest)
    return out


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    from imgcap_desktop.core.export_litert import export_bundle

    bundle = make_attend_bundle(tmp_path_factory.mktemp("litert") / "attend")
    export_bundle(bundle)
    return bundle


@pytest.fixture(scope="module")
def both(exported):
    from imgcap_desktop.core.captioner import Captioner

    return Captioner.load(exported, runtime="keras"), Captioner.load(exported, runtime="litert")


def test_export_writes_index_and_graphs(exported):
    from imgcap_desktop.core.bundle import sha256_of
    from imgcap_desktop.core.runtime_litert import GRAPHS, export_problem

    index = json.loads((exported / "litert" / "litert.json").read_text())
    assert index["manifest_sha256"] == sha256_of(exported / "manifest.json")
    assert set(index["files"]) == set(GRAPHS.values())
    assert max(index["check"]["max_abs_diff"].values()) < 1e-3
    assert export_problem(exported) is None


def test_samples_exist():
    assert [p.name for p in SAMPLES] == ["astronaut.jpg", "chelsea.jpg", "coffee.jpg"]
    assert (resource_root() / "resources" / "samples").is_dir()


def test_runtimes_are_what_was_asked(both):
    keras_cap, lite_cap = both
    assert keras_cap.runtime == "keras" and lite_cap.runtime == "litert"
    assert type(lite_cap.step_model).__module__.endswith("runtime_litert")


def test_encoder_features_match(both):
    from imgcap_desktop.core.images import open_for_model

    keras_cap, lite_cap = both
    spec = keras_cap.spec
    batch = np.stack([open_for_model(p, spec.input_size, resample=spec.resample) for p in SAMPLES]).astype(np.float32)
    a, b = keras_cap.encoder(batch), lite_cap.encoder(batch)
    assert a.shape == b.shape == (len(SAMPLES), 49, 1280)
    assert np.max(np.abs(a - b)) < 1e-3


@pytest.mark.parametrize("beam", [1, 3])
def test_same_captions_as_keras(both, beam):
    keras_cap, lite_cap = both
    want = [r.caption for r in keras_cap.caption_paths(SAMPLES, beam=beam)]
    got = [r.caption for r in lite_cap.caption_paths(SAMPLES, beam=beam)]
    assert all(c is not None for c in want + got)
    assert [c.text for c in got] == [c.text for c in want]
    assert any(c.text for c in want), "random model produced only empty captions: the test would prove little"
    for g, w in zip(got, want):
        assert [a.text for a in g.alternatives] == [a.text for a in w.alternatives]
        assert g.score == pytest.approx(w.score, abs=1e-3)


def test_batch_of_one_and_attention(both):
    keras_cap, lite_cap = both
    a = next(iter(keras_cap.caption_paths(SAMPLES[:1], beam=1))).caption
    b = next(iter(lite_cap.caption_paths(SAMPLES[:1], beam=1))).caption
    assert a.text == b.text
    assert b.attention.shape == a.attention.shape
    np.testing.assert_allclose(b.attention, a.attention, atol=1e-4)


def test_stale_export_is_refused(exported, tmp_path, monkeypatch, caplog):
    from imgcap_desktop.core.bundle import read_bundle
    from imgcap_desktop.core.captioner import Captioner
    from imgcap_desktop.core.errors import BundleError
    from imgcap_desktop.core.runtime_litert import choose_runtime, export_problem

    copy = tmp_path / "attend"
    shutil.copytree(exported, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["description"] = "retrained"
    (copy / "manifest.json").write_text(json.dumps(manifest, indent=2))
    assert "another version of the model" in export_problem(copy)
    with pytest.raises(BundleError, match="export-litert"):
        Captioner.load(copy, runtime="litert")
    # auto falls back to Keras while TensorFlow is there, even when LiteRT is asked for by
    # environment, and says so rather than silently
    monkeypatch.setenv("IMGCAP_RUNTIME", "litert")
    with caplog.at_level("WARNING", logger="imgcap"):
        assert choose_runtime(read_bundle(copy), "auto") == "keras"
    assert "IMGCAP_RUNTIME=litert was asked for" in caplog.text and "running on Keras" in caplog.text
    monkeypatch.delenv("IMGCAP_RUNTIME")
    # ... and refuses it in a build without TensorFlow
    monkeypatch.setattr("imgcap_desktop.core.runtime_litert.tensorflow_available", lambda: False)
    with pytest.raises(BundleError, match="another version"):
        choose_runtime(read_bundle(copy), "auto")


def test_tampered_graph_is_refused(exported, tmp_path):
    from imgcap_desktop.core.runtime_litert import export_problem

    copy = tmp_path / "attend"
    shutil.copytree(exported, copy)
    with open(copy / "litert" / "decoder_step.tflite", "r+b") as f:
        f.seek(100)
        f.write(b"\0\0\0\0")
    assert "does not match its sha256" in export_problem(copy)
    shutil.rmtree(copy / "litert")
    assert "no LiteRT export" in export_problem(copy)


def test_auto_choice(exported, monkeypatch):
    from imgcap_desktop.core.bundle import read_bundle
    from imgcap_desktop.core.runtime_litert import choose_runtime

    bundle = read_bundle(exported)
    monkeypatch.delenv("IMGCAP_RUNTIME", raising=False)
    assert choose_runtime(bundle, "auto") == "keras"          # development install: TensorFlow present
    monkeypatch.setenv("IMGCAP_RUNTIME", "litert")
    assert choose_runtime(bundle, "auto") == "litert"
    monkeypatch.delenv("IMGCAP_RUNTIME")
    monkeypatch.setattr("imgcap_desktop.core.runtime_litert.tensorflow_available", lambda: False)
    assert choose_runtime(bundle, "auto") == "litert"         # the packaged app


def test_seed_family_is_not_exportable(seed_bundle):
    from imgcap_desktop.core.errors import BundleError
    from imgcap_desktop.core.export_litert import export_bundle

    with pytest.raises(BundleError, match="runs it without one"):
        export_bundle(seed_bundle)


def test_litert_path_imports_no_tensorflow(exported):
    """The packaged app's path (runtime chosen by environment) must not import TensorFlow or Keras."""
    pytest.importorskip("ai_edge_litert")
    code = (
        "import sys\n"
        "from imgcap_desktop.core.captioner import Captioner\n"
        f"cap = Captioner.load({str(exported)!r}, runtime='litert')\n"
        f"r = list(cap.caption_paths({[str(p) for p in SAMPLES]!r}))\n"
        "assert all(x.caption for x in r), r\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras', 'tf_keras')]\n"
        "assert not bad, bad[:5]\n"
        "print(cap.runtime)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().endswith("litert")


def test_selftest_on_litert(exported, monkeypatch, capsys):
    from imgcap_desktop import selftest

    monkeypatch.setenv("IMGCAP_DEFAULT_MODEL", str(exported))
    monkeypatch.setenv("IMGCAP_RUNTIME", "litert")
    assert selftest.run([]) == 0
    out = capsys.readouterr().out.splitlines()
    samples = selftest.sample_photos()
    assert any(p.suffix == ".heic" for p in samples)  # the phone format is covered
    assert [line.split()[:2] for line in out[:len(samples)]] == [["OK", p.name] for p in samples]
    assert out[-1].startswith(f"self-test: {len(samples)}/{len(samples)} photos captioned in ")
    assert "runtime litert" in out[-1]


def test_selftest_fails_without_model(tmp_path, monkeypatch, capsys):
    from imgcap_desktop import selftest

    monkeypatch.setenv("IMGCAP_DEFAULT_MODEL", str(tmp_path / "nothing"))
    assert selftest.run([]) != 0
    assert "self-test: FAILED" in capsys.readouterr().out


DEFAULT = default_bundle_dir()  # models/default, or IMGCAP_DEFAULT_MODEL


@pytest.mark.slow
@pytest.mark.skipif(not (DEFAULT / "manifest.json").is_file(), reason="the default model is not trained yet")
def test_default_model_litert_matches_keras(tmp_path):
    """What the packaged app ships: the default model's LiteRT export captions the samples exactly like Keras
    with float32 weights; with float16 weights, and with the int8 decoder weights `make package` uses, the
    keywords are the same and the confidence within a few points (the 800 test photos:
    benchmarks/compare_litert_weights.py)."""
    from imgcap_desktop.core.captioner import Captioner
    from imgcap_desktop.core.export_litert import export_bundle

    bundle = tmp_path / "default"
    shutil.copytree(DEFAULT, bundle, ignore=shutil.ignore_patterns(".*", "litert"))
    export_bundle(bundle)
    keras_cap = Captioner.load(bundle, runtime="keras")
    lite_cap = Captioner.load(bundle, runtime="litert")
    # The keywords' ImageNet head comes out of the begin graph that decoding ran: once per batch
    # (the keyword guide, off here, runs begin again for the photos it captions again).
    begin, calls = lite_cap.step_model._begin, []
    lite_cap.step_model._begin = type("Counted", (), {"outputs": begin.outputs,
                                                      "__call__": lambda self, **kw: calls.append(1) or begin(**kw)})()
    assert all(r.caption.keywords is not None
               for r in lite_cap.caption_paths(SAMPLES, batch_size=8, keyword_guide=0.0))
    assert len(calls) == 1
    lite_cap.step_model._begin = begin
    for beam in (1, 3):
        want = [r.caption for r in keras_cap.caption_paths(SAMPLES, beam=beam)]
        got = [r.caption for r in lite_cap.caption_paths(SAMPLES, beam=beam)]
        assert [c.text for c in got] == [c.text for c in want], beam
        assert all(c.text for c in want)
        # The confidence and the keywords the app shows come out the same on both runtimes.
        assert [c.keywords for c in got] == [c.keywords for c in want]
        assert all(c.confidence is not None for c in want)
        np.testing.assert_allclose([c.confidence for c in got], [c.confidence for c in want], atol=2e-3)

    full = {p.name: p.stat().st_size for p in (bundle / "litert").glob("*.tflite")}
    want = [r.caption for r in keras_cap.caption_paths(SAMPLES)]
    for precision, share in (("float16", 0.55), ("int8", 0.35)):
        small = tmp_path / precision
        export_bundle(bundle, small, precision=precision)
        index = json.loads((small / "litert.json").read_text())
        assert index["precision"] == precision and index["check"]["judged_by"] == "max_rel_diff"
        sizes = {p.name: p.stat().st_size for p in small.glob("*.tflite")}
        assert sum(sizes.values()) < share * sum(full.values()), precision
        shutil.rmtree(bundle / "litert")
        shutil.copytree(small, bundle / "litert")
        got = [r.caption for r in Captioner.load(bundle, runtime="litert").caption_paths(SAMPLES)]
        assert [c.keywords for c in got] == [c.keywords for c in want], precision
        np.testing.assert_allclose([c.confidence for c in got], [c.confidence for c in want], atol=0.05)
        assert all(c.text for c in got)


def test_an_unknown_weight_precision_is_refused(exported):
    from imgcap_desktop.core.errors import ImgcapError
    from imgcap_desktop.core.export_litert import export_bundle

    with pytest.raises(ImgcapError, match="float16"):
        export_bundle(exported, precision="int4")
