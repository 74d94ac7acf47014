"""Training end to end on a tiny data set made here: coloured shapes with template captions.

Real parts throughout: real JPEG files, the real EfficientNet-Lite0 encoder with the
shipped weights, the real decoder and training loop, bundles loaded by the Captioner.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image, ImageDraw

from imgcap_desktop.core.records import RECORD_KEYS
from imgcap_desktop.core.paths import default_bundle_dir

COLOURS = {"red": (220, 30, 30), "green": (30, 170, 40), "blue": (30, 60, 220), "yellow": (240, 220, 20)}
SHAPES = ("circle", "square")
LITE0 = default_bundle_dir() / "encoder_lite0.weights.h5"


def draw(colour, shape, variant: int) -> Image.Image:
    rng = np.random.default_rng(variant)
    img = Image.new("RGB", (160, 160), tuple(int(v) for v in rng.integers(200, 256, 3)))
    d = ImageDraw.Draw(img)
    size = int(rng.integers(60, 110))
    x, y = (int(v) for v in rng.integers(5, 160 - size - 5, 2))
    box = (x, y, x + size, y + size)
    (d.ellipse if shape == "circle" else d.rectangle)(box, fill=COLOURS[colour])
    return img


@pytest.fixture(scope="module")
def shapes_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("shapes")
    (root / "Images").mkdir()
    rows = ["image,caption"]
    variant = 0
    for colour in COLOURS:
        for shape in SHAPES:
            for _ in range(10):
                name = f"{colour}_{shape}_{variant}.jpg"
                draw(colour, shape, variant).save(root / "Images" / name, quality=90)
                rows += [f"{name},A {colour} {shape} on a plain background.",
                         f"{name},a {colour} {shape}",
                         f'{name},"There is a {colour} {shape}, nothing else."']
                variant += 1
    (root / "captions.txt").write_text("\n".join(rows) + "\n")
    return root


def small_config(data, out, cache, **over):
    from imgcap_desktop.core.training.train import TrainConfig

    settings = dict(data=str(data), out=str(out), epochs=12, batch_size=16, learning_rate=3e-3, min_count=1,
                    max_length=9, units=96, embed_dim=48, dropout=0.2, patience=12, val_fraction=0.15,
                    test_fraction=0.25, cache_dir=str(cache), progress=False, beam=2)
    settings.update(over)
    return TrainConfig(**settings)


@pytest.fixture(scope="module")
def trained(shapes_data, tmp_path_factory):
    from imgcap_desktop.core.training.train import train

    if not LITE0.is_file():
        pytest.skip("the shipped EfficientNet-Lite0 weights are missing")
    work = tmp_path_factory.mktemp("train")
    cfg = small_config(shapes_data, work / "bundle", work / "cache")
    return {"bundle": train(cfg), "cache": work / "cache", "cfg": cfg}


def test_held_out_captions_name_the_colour_and_shape(trained, shapes_data):
    from imgcap_desktop.core.captioner import Captioner

    manifest = json.loads((trained["bundle"] / "manifest.json").read_text())
    held_out = manifest["provenance"]["test_images"]
    assert len(held_out) >= 8
    captioner = Captioner.load(trained["bundle"])
    results = list(captioner.caption_paths([shapes_data / "Images" / k for k in held_out], beam=1))
    colour_hits = shape_hits = 0
    for key, record in zip(held_out, results):
        assert record.ok, record.error
        colour, shape = key.split("_")[:2]
        colour_hits += colour in record.caption.text.split()
        shape_hits += shape in record.caption.text.split()
    said = {k: r.caption.text for k, r in zip(held_out, results)}
    # Chance is 1/4 for the colour and 1/2 for the shape.
    assert colour_hits / len(held_out) >= 0.7, said
    assert shape_hits / len(held_out) >= 0.8, said
    assert manifest["metrics"]["test"]["CIDEr"] > 1.0


def test_feature_cache_is_reused(trained, shapes_data):
    from imgcap_desktop.core.encoders import ENCODERS
    from imgcap_desktop.core.training.features import FeatureCache

    paths = sorted((shapes_data / "Images").glob("*.jpg"))[:5]
    cache = FeatureCache(ENCODERS["efficientnet_lite0"], LITE0, trained["cache"])
    feats = cache.features(paths)
    assert cache.extracted == 0 and feats.shape == (5, 49, 1280) and np.abs(feats).sum() > 0


def test_resume_continues_from_the_checkpoint(shapes_data, trained, tmp_path):
    from imgcap_desktop.core.training.train import train

    out = tmp_path / "resumable"
    train(small_config(shapes_data, out, trained["cache"], epochs=2))
    state = json.loads((out / ".checkpoint" / "state.json").read_text())
    assert state["epoch"] == 2
    train(small_config(shapes_data, out, trained["cache"], epochs=3, resume=True))
    state = json.loads((out / ".checkpoint" / "state.json").read_text())
    assert state["epoch"] == 3 and [h["epoch"] for h in state["history"]] == [1, 2, 3]
    assert (out / ".checkpoint" / "optimizer.npz").is_file()


def test_cli_evaluate_scores_the_bundle(trained, shapes_data, tmp_path, capsys):
    from imgcap_desktop.cli import main

    out = tmp_path / "scored.jsonl"
    code = main(["evaluate", "--data", str(shapes_data), "--model", str(trained["bundle"]),
                 "--captions-out", str(out), "--no-java", "--beam", "1"])
    text = capsys.readouterr().out
    assert code == 0, text
    assert "CIDEr" in text and "BLEU-4" in text
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert lines and all(r["caption"] for r in lines)


def test_seed_family_trains_into_a_loadable_bundle(shapes_data, seed_assets, tmp_path):
    from imgcap_desktop.core.captioner import Captioner
    from imgcap_desktop.core.training.train import train

    cfg = small_config(shapes_data, tmp_path / "seed", tmp_path / "cache", family="seed", epochs=1,
                       batch_size=64, encoder_weights=str(seed_assets["densenet"]), limit_images=24)
    bundle = train(cfg)
    captioner = Captioner.load(bundle)
    assert captioner.manifest.family == "seed"
    record = next(captioner.caption_paths([sorted((shapes_data / "Images").glob("*.jpg"))[0]]))
    assert record.ok, record.error


def test_same_seed_gives_the_same_weights(shapes_data, trained, tmp_path):
    """`imgcap train --seed N` twice (two processes, as a user runs it) writes identical weights."""
    import os
    import subprocess
    import sys

    import h5py

    from imgcap_desktop.core.training.commands import REPRODUCIBLE_ENV

    script = (
        "import sys; from pathlib import Path; sys.path.insert(0, sys.argv[4]);"
        "from tests.core.training.test_train import small_config;"
        "from imgcap_desktop.core.training.train import train;"
        "train(small_config(Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]), epochs=1, limit_images=24))"
    )
    root = str(__import__("pathlib").Path(__file__).resolve().parents[3])
    outs = []
    for i in range(2):
        out = tmp_path / f"run{i}"
        subprocess.run([sys.executable, "-c", script, str(shapes_data), str(out), str(trained["cache"]), root],
                       check=True, capture_output=True, timeout=600, env=dict(os.environ, **REPRODUCIBLE_ENV))
        outs.append(out)

    def arrays(bundle):
        found = []
        with h5py.File(bundle / "decoder.weights.h5", "r") as f:
            f.visititems(lambda _, o: found.append(o[()]) if isinstance(o, h5py.Dataset) else None)
        return found

    first, second = arrays(outs[0]), arrays(outs[1])
    assert len(first) == len(second) > 0
    assert all(np.array_equal(a, b) for a, b in zip(first, second))


def test_the_attend_family_refuses_a_non_grid_encoder(shapes_data, tmp_path):
    from imgcap_desktop.core.training.train import TrainingError, train

    with pytest.raises(TrainingError, match="grid of features, not 'densenet201'"):
        train(small_config(shapes_data, tmp_path / "x", tmp_path / "cache", encoder="densenet201"))


def test_the_semantic_slot_needs_an_encoder_with_an_imagenet_head(shapes_data, tmp_path, monkeypatch):
    from imgcap_desktop.core.encoders import ENCODERS, EncoderSpec
    from imgcap_desktop.core.training.train import TrainingError, train

    monkeypatch.setitem(ENCODERS, "tokens_x", EncoderSpec(
        name="tokens_x", title="A token encoder", input_size=224, resample="bilinear",
        feature_shape=(257, 384), module="nowhere", weights_file="x.onnx"))
    with pytest.raises(TrainingError, match="A token encoder does not have"):
        train(small_config(shapes_data, tmp_path / "x", tmp_path / "cache", encoder="tokens_x", semantic=True))


def _corpus_for(data, path):
    """A Flickr8k-layout text file captioning every photo of ``data`` (as Flickr8k.token.txt does)."""
    lines = []
    for image in sorted((data / "Images").glob("*.jpg")):
        colour, shape = image.name.split("_")[:2]
        lines += [f"{image.name}#0\ta {shape} that is {colour}", f"{image.name}#1\tThere is a {colour} {shape} ."]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_corpus_text_leaves_out_the_held_out_photos(shapes_data, tmp_path):
    from imgcap_desktop.core.training.train import prepare

    corpus = _corpus_for(shapes_data, tmp_path / "Flickr8k.token.txt")
    data = prepare(small_config(shapes_data, tmp_path / "out", tmp_path / "cache", corpus=str(corpus)),
                   drop_single_letters=False)
    held_out = set(data.splits["val"]) | set(data.splits["test"])
    assert held_out and len(data.text_sequences) == len(data.splits["train"])
    # "that" never captions a training photo: such captions are left out, not <unk>-ed.
    assert all(data.vocab.unknown_id not in seq for seq in data.text_sequences)
    # With the counts off, the vocabulary is the photos' alone; at min-count 40 the colour words (36 photo captions each) need the corpus to get in.
    alone = prepare(small_config(shapes_data, tmp_path / "out", tmp_path / "cache", min_count=40),
                    drop_single_letters=False).vocab
    counted = prepare(small_config(shapes_data, tmp_path / "out", tmp_path / "cache", min_count=40,
                                   corpus=str(corpus)), drop_single_letters=False).vocab
    uncounted = prepare(small_config(shapes_data, tmp_path / "out", tmp_path / "cache", min_count=40,
                                     corpus=str(corpus), corpus_counts=False), drop_single_letters=False).vocab
    assert counted.size > alone.size == uncounted.size


def test_language_pretraining_learns_and_the_average_is_kept(shapes_data, trained, tmp_path, capsys):
    from imgcap_desktop.core.captioner import Captioner
    from imgcap_desktop.core.training.train import train

    corpus = shapes_data.parent / "corpus.txt"
    lines = [f"x{i}.jpg#0\t{line}" for i, line in enumerate(
        ["a red circle", "a blue square", "a green circle", "a yellow square", "the red square"] * 40)]
    corpus.write_text("\n".join(lines) + "\n")
    out = tmp_path / "lm"
    train(small_config(shapes_data, out, trained["cache"], epochs=2, corpus=str(corpus), lm_epochs=3, ema=0.9))
    losses = [float(line.split("loss ")[1].split()[0]) for line in capsys.readouterr().err.splitlines()
              if line.startswith("language epoch")]
    assert len(losses) == 3 and losses[-1] < losses[0] * 0.8, losses
    assert (out / ".checkpoint" / "average.npz").is_file()
    # The bundle holds the averaged weights, which differ from the last raw ones.
    import h5py

    def first_kernel(file):
        with h5py.File(file, "r") as f:
            found = []
            f.visititems(lambda _, o: found.append(o[()]) if isinstance(o, h5py.Dataset) and o.ndim == 2 else None)
            return found[0]

    assert not np.array_equal(first_kernel(out / "decoder.weights.h5"), first_kernel(out / ".checkpoint" / "last.weights.h5"))
    assert Captioner.load(out).manifest.family == "attend"


def test_no_validation_split_runs_the_fixed_epochs(shapes_data, trained, tmp_path):
    from imgcap_desktop.core.training.train import train

    out = tmp_path / "all"
    train(small_config(shapes_data, out, trained["cache"], epochs=3, patience=1, val_fraction=0.0,
                       length_penalty=0.5))
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["provenance"]["epochs_run"] == 3 and manifest["provenance"]["splits"]["val"] == 0
    assert "val_cider_greedy" not in manifest["metrics"] and "CIDEr" in manifest["metrics"]["test"]
    assert manifest["decoding"]["length_penalty"] == 0.5


def test_cli_evaluate_pools_splits(trained, shapes_data, tmp_path, capsys):
    from imgcap_desktop.cli import main

    out = tmp_path / "pooled.jsonl"
    code = main(["evaluate", "--data", str(shapes_data), "--model", str(trained["bundle"]), "--split", "val+test",
                 "--captions-out", str(out), "--no-java", "--beam", "1"])
    assert code == 0, capsys.readouterr().out
    provenance = json.loads((trained["bundle"] / "manifest.json").read_text())["provenance"]
    scored = {json.loads(line)["image"] for line in out.read_text().splitlines()}
    assert set(provenance["test_images"]) < scored
    assert len(scored) == provenance["splits"]["val"] + provenance["splits"]["test"]


@pytest.fixture(scope="module")
def two_folders(shapes_data, tmp_path_factory):
    """The shapes photos split over two dataset folders, with split files naming them (and two ghosts)."""
    import csv
    import shutil

    root = tmp_path_factory.mktemp("two")
    rows = list(csv.reader((shapes_data / "captions.txt").open()))[1:]
    names = sorted({r[0] for r in rows})
    halves = {"a": names[::2], "b": names[1::2]}
    for part, members in halves.items():
        (root / part / "Images").mkdir(parents=True)
        with (root / part / "captions.txt").open("w", newline="") as fh:
            out = csv.writer(fh)
            out.writerow(["image", "caption"])
            out.writerows(r for r in rows if r[0] in members)
        for name in members:
            shutil.copy(shapes_data / "Images" / name, root / part / "Images" / name)
    order = np.random.default_rng(1).permutation(names).tolist()
    splits = {"test": order[:14], "val": order[14:24], "train": order[24:]}
    (root / "splits").mkdir()
    for split, members in splits.items():
        extra = ["ghost.jpg", "phantom.jpg"] if split == "train" else []
        (root / "splits" / f"{split}.txt").write_text("\n".join(members + extra) + "\n")
    return root, splits


def test_cli_trains_on_two_folders_with_split_files_in_bfloat16(two_folders, trained, tmp_path, capsys):
    from imgcap_desktop.cli import main

    root, splits = two_folders
    data = ["--data", str(root / "a"), "--data", str(root / "b"), "--split-files", str(root / "splits")]
    out = tmp_path / "joined"
    code = main(["train", *data, "--out", str(out), "--epochs", "12", "--batch-size", "16", "--learning-rate", "3e-3",
                 "--min-count", "1", "--max-length", "9", "--units", "96", "--dropout", "0.2", "--patience", "12",
                 "--cache-dir", str(trained["cache"]), "--no-progress", "--precision", "mixed_bfloat16",
                 "--fast-kernels", "--name", "Shapes", "--description", "Shapes on two folders."])
    err = capsys.readouterr().err
    assert code == 0, err
    assert "2 of 58 photo name(s) are not in the data, e.g. ghost.jpg" in err
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["provenance"]["splits"] == {"train": 56, "val": 10, "test": 14}
    assert manifest["provenance"]["test_images"] == sorted(splits["test"])
    assert manifest["provenance"]["training_data"] == "a + b"
    assert (manifest["name"], manifest["description"]) == ("Shapes", "Shapes on two folders.")
    assert manifest["provenance"]["settings"]["precision"] == "mixed_bfloat16"
    # Trained in bfloat16, scored and shipped as an ordinary float32 bundle: it still learns the photos.
    assert manifest["metrics"]["test"]["CIDEr"] > 1.0

    scored = tmp_path / "scored.jsonl"
    code = main(["evaluate", *data, "--model", str(out), "--split", "test", "--captions-out", str(scored),
                 "--no-java", "--beam", "1"])
    assert code == 0, capsys.readouterr().err
    scored_records = [json.loads(line) for line in scored.read_text().splitlines()]
    assert sorted(r["image"] for r in scored_records) == sorted(splits["test"])
    assert all(list(r) == list(RECORD_KEYS) for r in scored_records)  # the one record schema


def test_an_unknown_precision_is_refused(shapes_data, tmp_path):
    from imgcap_desktop.core.training.train import TrainingError, train

    with pytest.raises(TrainingError, match="unknown precision 'float8'"):
        train(small_config(shapes_data, tmp_path / "x", tmp_path / "cache", precision="float8", limit_images=8))


def test_cli_ensemble_combines_members_and_chooses_decoding_on_validation(shapes_data, trained, tmp_path, capsys):
    from imgcap_desktop.cli import main
    from imgcap_desktop.core.captioner import Captioner
    from imgcap_desktop.core.training.train import train

    second = train(small_config(shapes_data, tmp_path / "second", trained["cache"], seed=1, epochs=6))
    out = tmp_path / "pair"
    code = main(["ensemble", str(trained["bundle"]), str(second), "--out", str(out), "--data", str(shapes_data)])
    assert code == 0, capsys.readouterr().err
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["family_config"]["members"] == 2
    tried = manifest["metrics"]["val_cider_beam"]
    assert set(tried) == {"0.0", "0.5", "1.0", "0.0/no_repeat_3", "0.5/no_repeat_3", "1.0/no_repeat_3"}
    chosen = f"{manifest['decoding']['length_penalty']}" + (
        "/no_repeat_3" if manifest["decoding"]["no_repeat_ngram"] else "")
    assert tried[chosen] == max(tried.values())
    assert manifest["metrics"]["test_images"] == len(manifest["provenance"]["test_images"])
    captioner = Captioner.load(out)
    held_out = manifest["provenance"]["test_images"][:4]
    records = list(captioner.caption_paths([shapes_data / "Images" / k for k in held_out]))
    assert all(r.ok and r.caption.text for r in records)


def test_cli_calibrate_fits_on_val_reports_on_test_and_writes_the_manifest(two_folders, trained, tmp_path, capsys):
    import shutil

    from imgcap_desktop.cli import main
    from imgcap_desktop.core.bundle import read_bundle
    from imgcap_desktop.core.captioner import Captioner

    root, splits = two_folders
    bundle = tmp_path / "bundle"
    shutil.copytree(trained["bundle"], bundle)
    judged = tmp_path / "judged"
    judged.mkdir()
    rows = ["photo\tverdict"]
    for i in range(4):  # photos unlike anything it was trained on, judged by hand as wrong
        Image.fromarray(np.random.default_rng(i).integers(0, 256, (96, 128, 3), dtype=np.uint8)).save(
            judged / f"noise{i}.png")
        rows.append(f"noise{i}.png\twrong")
    (judged / "judged.tsv").write_text("\n".join(rows) + "\n")
    # A CIDEr-D bar high enough that some held-out shapes captions miss it.
    code = main(["calibrate", "--data", str(root / "a"), "--data", str(root / "b"), "--split-files",
                 str(root / "splits"), "--model", str(bundle), "--judged", str(judged / "judged.tsv"),
                 "--good-cider", "3.0", "--no-progress"])
    assert code == 0
    report = json.loads((bundle / "calibration.json").read_text())
    assert report["judged_photos"] == 4
    assert report["test_photos"] == len(splits["test"])
    assert 0.0 <= report["base_rate_val"] <= 1.0
    manifest = read_bundle(bundle).manifest
    assert manifest.calibration["features"] == report["features"]
    assert manifest.metrics["confidence"]["judged_photos"] == 4
    with Image.open(bundle / "reliability.png") as im:
        assert im.format == "PNG"
    captioner = Captioner.load(bundle)
    result = next(iter(captioner.caption_paths([judged / "noise0.png"])))
    assert 0.0 <= result.caption.confidence <= 1.0
    assert "calibrated" in capsys.readouterr().out


def test_cli_calibrate_needs_split_files_and_existing_judged_photos(shapes_data, trained, tmp_path, capsys):
    from imgcap_desktop.cli import main

    assert main(["calibrate", "--data", str(shapes_data), "--model", str(trained["bundle"]), "--no-progress"]) == 2
    assert "--split-files" in capsys.readouterr().err
