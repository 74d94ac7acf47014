"""The old web app's model without TensorFlow: DenseNet201 filled into the package-time graph, the decoder in NumPy."""

from __future__ import annotations

import numpy as np
import pytest

from imgcap_desktop.core import densenet_litert
from imgcap_desktop.core.errors import BundleError

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    return densenet_litert.build_template(tmp_path_factory.mktemp("densenet_template"))


@pytest.fixture
def litert_env(template, monkeypatch, tmp_path):
    monkeypatch.setenv("IMGCAP_DENSENET_TEMPLATE", str(template))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return template


def test_the_template_holds_no_weights_and_checked_itself(template):
    import gzip
    import json

    table = json.loads((template / densenet_litert.TABLE).read_text())
    assert table["check"]["max_abs_difference"] < 1e-3
    kinds = {e["kind"] for e in table["buffers"]}
    assert kinds == {"kernel", "folded_kernel", "bias", "scale", "shift"}
    graph = gzip.open(template / densenet_litert.TEMPLATE).read()
    assert all(not any(graph[e["offset"]:e["offset"] + e["nbytes"]]) for e in table["buffers"])
    assert (template / densenet_litert.TEMPLATE).stat().st_size < 1_000_000  # zeros, not 73 MB of weights


def test_filled_graph_gives_keras_features_from_either_weights_layout(litert_env, seed_assets, tmp_path):
    import h5py
    import keras
    from keras.applications import DenseNet201
    from keras.src.legacy.saving import legacy_h5_format

    from imgcap_desktop.core.encoders import ENCODERS
    from imgcap_desktop.core.encoders.densenet import preprocess
    from imgcap_desktop.core.images import open_for_model
    from imgcap_desktop.core.runtime_litert import LiteRTEncoder

    spec = ENCODERS["densenet201"]
    photos = np.stack([open_for_model(p, 224, resample=spec.resample) for p in seed_assets["photos"]])
    want = np.asarray(seed_assets["photo_features"])  # Keras, the seed app's way
    keras_model = DenseNet201(weights=None, include_top=False, pooling="avg", input_shape=(224, 224, 3))
    keras_model.load_weights(str(seed_assets["densenet"]))
    np.testing.assert_allclose(preprocess(photos), keras.applications.densenet.preprocess_input(photos.copy()),
                               rtol=1e-6, atol=1e-6)
    legacy = tmp_path / "densenet201_weights_tf_dim_ordering_tf_kernels_notop.h5"
    with h5py.File(legacy, "w") as f:
        legacy_h5_format.save_weights_to_hdf5_group(f, keras_model)
    for weights in (seed_assets["densenet"], legacy):
        graph = densenet_litert.fill(weights, tmp_path / f"{weights.name}.tflite", litert_env)
        got = LiteRTEncoder(spec, graph)(photos)
        np.testing.assert_allclose(got, want, atol=1e-3 * max(1.0, float(np.abs(want).max())))


def test_the_packaged_runtime_captions_a_seed_folder_like_keras(litert_env, seed_assets, seed_reference):
    from imgcap_desktop.core.captioner import Captioner
    from imgcap_desktop.core.families.seed_numpy import NumpySeedStepModel

    captioner = Captioner.load(seed_assets["folder"], encoder_weights=seed_assets["densenet"], runtime="litert")
    assert captioner.runtime == "litert" and isinstance(captioner.step_model, NumpySeedStepModel)
    results = list(captioner.caption_paths(seed_assets["photos"]))
    assert [r.caption.text for r in results] == [c for c, _ in seed_reference["for_photos"]]
    # The filled graph is kept for the next load.
    import os
    from pathlib import Path

    cached = list(Path(os.environ["XDG_CACHE_HOME"]).rglob("densenet201-*.tflite"))
    assert len(cached) == 1


def test_what_is_missing_is_said(litert_env, seed_assets, tmp_path, monkeypatch):
    from imgcap_desktop.core.errors import EncoderWeightsMissingError

    with pytest.raises(BundleError, match="not a DenseNet201 weights file"):
        densenet_litert.fill(seed_assets["folder"] / "image_caption.h5", tmp_path / "x.tflite", litert_env)
    with pytest.raises(EncoderWeightsMissingError, match="DenseNet201 ImageNet weights"):
        densenet_litert.filled_graph(None, tmp_path)
    monkeypatch.setenv("IMGCAP_DENSENET_TEMPLATE", str(tmp_path / "nowhere"))
    with pytest.raises(BundleError, match="no DenseNet201 LiteRT graph"):
        densenet_litert.filled_graph(seed_assets["densenet"], tmp_path)


def test_the_seed_path_without_tensorflow_imports_none(litert_env, seed_assets, seed_reference):
    """As in the packaged app: the seed folder imported and captioned with TensorFlow and Keras never imported."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    pytest.importorskip("ai_edge_litert")
    code = (
        "import sys\n"
        "from imgcap_desktop.core.captioner import Captioner\n"
        f"cap = Captioner.load({str(seed_assets['folder'])!r}, encoder_weights={str(seed_assets['densenet'])!r},"
        " runtime='litert')\n"
        f"print('|'.join(r.caption.text for r in cap.caption_paths({[str(p) for p in seed_assets['photos']]!r})))\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras', 'tf_keras')]\n"
        "assert not bad, bad[:5]\n"
    )
    root = Path(__file__).resolve().parents[2]
    # A cache of its own: the import of the seed folder happens in the child, without Keras.
    env = {**os.environ, "XDG_CACHE_HOME": os.environ["XDG_CACHE_HOME"] + "-child"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().split("|") == [c for c, _ in seed_reference["for_photos"]]
