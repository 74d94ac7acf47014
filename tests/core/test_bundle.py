"""Bundle validation: every way a bundle can be wrong fails in one sentence naming the file, before TensorFlow."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from imgcap_desktop.core.bundle import MANIFEST, Manifest, read_bundle, write_manifest
from imgcap_desktop.core.errors import BundleError


@pytest.fixture
def bundle(seed_bundle, tmp_path) -> Path:
    """A private copy of the valid seed bundle (the big encoder weights hard-linked: no test changes them)."""
    out = tmp_path / "bundle"
    out.mkdir()
    encoder = json.loads((seed_bundle / MANIFEST).read_text())["encoder"]["weights"]
    for item in seed_bundle.iterdir():
        if item.name == encoder:
            os.link(item, out / item.name)
        else:
            shutil.copy2(item, out / item.name)
    return out


def _manifest(bundle: Path) -> dict:
    return json.loads((bundle / MANIFEST).read_text())


def _write(bundle: Path, data: dict) -> None:
    (bundle / MANIFEST).write_text(json.dumps(data))


def _one_sentence(message: str) -> None:
    assert "\n" not in message
    assert message.endswith(".")
    assert not re.search(r"[.!?]\s+[A-Z]", message[:-1]), message  # no second sentence


def _fails(bundle: Path, *needles: str) -> str:
    with pytest.raises(BundleError) as info:
        read_bundle(bundle)
    message = str(info.value)
    _one_sentence(message)
    for needle in needles:
        assert needle in message, message
    return message


def test_the_valid_bundle_reads(bundle):
    b = read_bundle(bundle)
    assert b.manifest.family == "seed"
    assert b.vocabulary.size == b.manifest.family_config["vocab_size"]


def test_a_changed_byte_in_the_weights_fails_its_sha256(bundle):
    weights = bundle / "decoder.weights.h5"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size: only the checksum can tell
    weights.write_bytes(bytes(data))
    _fails(bundle, "decoder.weights.h5", "sha256")


def test_a_missing_file(bundle):
    (bundle / "vocab.json").unlink()
    _fails(bundle, "vocab.json", "missing")


def test_a_missing_weights_file_fails_unless_keras_weights_are_not_needed(bundle):
    (bundle / "decoder.weights.h5").unlink()
    _fails(bundle, "decoder.weights.h5", "missing")
    # Without TensorFlow (the packaged app) only the LiteRT export is run: the Keras weights may be left out.
    assert read_bundle(bundle, keras_weights=False).manifest.family == "seed"


def test_keras_weights_that_are_present_are_checked_even_when_not_needed(bundle):
    weights = bundle / "decoder.weights.h5"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(BundleError, match="sha256"):
        read_bundle(bundle, keras_weights=False)


def test_the_vocabulary_is_never_optional(bundle):
    (bundle / "vocab.json").unlink()
    with pytest.raises(BundleError, match="missing"):
        read_bundle(bundle, keras_weights=False)


def test_a_manifest_that_is_not_json(bundle):
    (bundle / MANIFEST).write_text('{"format": "imgcap-bundle", ')
    _fails(bundle, MANIFEST, "JSON")


def test_no_manifest_at_all(bundle):
    (bundle / MANIFEST).unlink()
    _fails(bundle, MANIFEST, bundle.name)


def test_an_unknown_family(bundle):
    data = _manifest(bundle)
    data["family"] = "transformer-xl"
    _write(bundle, data)
    _fails(bundle, MANIFEST, "transformer-xl")


def test_an_unknown_format_version(bundle):
    data = _manifest(bundle)
    data["format_version"] = 99
    _write(bundle, data)
    _fails(bundle, MANIFEST, "99")


def test_a_feature_shape_the_encoder_does_not_give(bundle):
    data = _manifest(bundle)
    data["encoder"]["feature_shape"] = [2048]
    _write(bundle, data)
    _fails(bundle, MANIFEST, "2048", "1920")


def test_a_vocabulary_of_the_wrong_size(bundle):
    vocab = json.loads((bundle / "vocab.json").read_text())
    vocab["words"].append("zebra")
    (bundle / "vocab.json").write_text(json.dumps(vocab))
    data = _manifest(bundle)
    write_manifest(bundle, Manifest.from_json(data, MANIFEST))  # checksums right: only the size is wrong
    size = data["family_config"]["vocab_size"]
    _fails(bundle, "vocab.json", str(size), str(size + 1))


def test_weights_of_the_wrong_shapes(bundle):
    import h5py

    with h5py.File(bundle / "decoder.weights.h5", "r+") as f:
        names = []  # the 512 -> 512 dense layer's kernel is the only (512, 512) array of the seed
        f.visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Dataset) and o.shape == (512, 512) else None)
        (name,) = names
        del f[name]
        f.create_dataset(name, data=np.zeros((512, 256), np.float32))
    write_manifest(bundle, Manifest.from_json(_manifest(bundle), MANIFEST))  # so the checksums still match
    _fails(bundle, "decoder.weights.h5", "seed", "(512, 256)")


def test_a_file_name_that_escapes_the_bundle(bundle):
    data = _manifest(bundle)
    data["files"]["../x"] = {"sha256": "0" * 64, "size": 1}
    (bundle.parent / "x").write_bytes(b"x")
    _write(bundle, data)
    _fails(bundle, MANIFEST, "../x", "outside")


def test_a_used_file_without_a_checksum(bundle):
    data = _manifest(bundle)
    del data["files"]["vocab.json"]
    _write(bundle, data)
    _fails(bundle, MANIFEST, "vocab.json")


def test_not_a_folder(tmp_path):
    with pytest.raises(BundleError) as info:
        read_bundle(tmp_path / "nowhere")
    _one_sentence(str(info.value))


def test_read_bundle_does_not_import_tensorflow(seed_bundle):
    code = (
        "import sys\n"
        "from imgcap_desktop.core.bundle import read_bundle\n"
        f"b = read_bundle({str(seed_bundle)!r})\n"
        "print(b.manifest.family, b.vocabulary.size)\n"
        "heavy = sorted(m for m in ('tensorflow', 'keras') if m in sys.modules)\n"
        "print('heavy:', heavy)\n"
    )
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(root)})
    assert done.returncode == 0, done.stderr
    assert "heavy: []" in done.stdout
    assert done.stdout.startswith("seed ")


# --- hostile numbers and links (checked before anything is allocated) -------------------


def test_a_beam_of_a_million_is_refused(bundle):
    data = _manifest(bundle)
    data["decoding"]["beam"] = 1_000_000
    _write(bundle, data)
    _fails(bundle, "decoding.beam is 1,000,000", "from 1 to 10")


def test_a_keyword_guide_line_above_one_is_refused(bundle):
    data = _manifest(bundle)
    data["decoding"]["keyword_guide"] = 2.5
    _write(bundle, data)
    _fails(bundle, "decoding.keyword_guide is 2.5", "from 0")


def test_an_lstm_of_20000_units_is_refused_before_the_weights_are_read(tmp_path):
    from imgcap_desktop.core.paths import default_bundle_dir

    out = tmp_path / "big"
    out.mkdir()
    data = json.loads((default_bundle_dir() / MANIFEST).read_text())
    data["family_config"]["units"] = 20_000
    _write(out, data)  # no weight files at all: the configuration alone is refused
    _fails(out, "family_config.units is 20,000", "from 1 to 8,192")


def test_a_sparse_weights_file_declaring_a_huge_model_is_refused(bundle):
    """Matching shapes, but no data behind them: loading it would allocate the whole model."""
    import h5py

    from imgcap_desktop.core.families import get_family

    data = _manifest(bundle)
    data["family_config"]["vocab_size"] = 150_000
    weights = bundle / data["weights"]
    weights.unlink()
    spec = get_family("seed").weight_spec(data["family_config"])
    with h5py.File(weights, "w") as f:
        for i, shape in enumerate(spec.shapes):
            f.create_dataset(f"w{i}", shape=shape, dtype="float32")  # never written: not stored
    data["files"][data["weights"]] = {"sha256": _sha(weights), "size": weights.stat().st_size}
    _write(bundle, data)
    message = _fails(bundle, "parameters but the file holds only")
    assert data["weights"] in message


def _sha(path: Path) -> str:
    from imgcap_desktop.core.bundle import sha256_of

    return sha256_of(path)


def test_a_symlinked_file_outside_the_bundle_is_refused(bundle, tmp_path):
    data = _manifest(bundle)
    outside = tmp_path / "elsewhere" / "vocab.json"
    outside.parent.mkdir()
    shutil.move(bundle / data["vocabulary"], outside)
    (bundle / data["vocabulary"]).symlink_to(outside)
    _fails(bundle, "outside the bundle folder", data["vocabulary"])


def test_a_symlinked_folder_cannot_make_the_manifest_hash_files_elsewhere(bundle, tmp_path):
    secret = tmp_path / "private"
    secret.mkdir()
    (secret / "passwd").write_text("root:x:0:0\n")
    (bundle / "etc").symlink_to(secret)
    data = _manifest(bundle)
    data["files"]["etc/passwd"] = {"sha256": _sha(secret / "passwd")}
    _write(bundle, data)
    _fails(bundle, "etc/passwd", "outside the bundle folder")


def test_a_symlink_that_stays_inside_the_bundle_is_fine(bundle):
    data = _manifest(bundle)
    vocab = data["vocabulary"]
    (bundle / "shared").mkdir()
    shutil.move(bundle / vocab, bundle / "shared" / vocab)
    (bundle / vocab).symlink_to(Path("shared") / vocab)
    assert read_bundle(bundle).vocabulary.size > 0
