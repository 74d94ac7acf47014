"""Image encoders (CNN feature extractors), described without importing TensorFlow.

A bundle names its encoder; the spec says how images are resized and what
feature shape the decoder family receives, so manifests can be validated and
images prepared before any graph is built.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from imgcap_desktop.core.errors import EncoderWeightsMissingError


@dataclass(frozen=True)
class EncoderSpec:
    name: str
    title: str
    input_size: int
    resample: str                 # PIL filter used to resize the whole photo to input_size²
    feature_shape: tuple[int, ...]
    module: str                   # provides build(weights_path) -> Keras model and preprocess(batch)
    weights_file: str             # conventional file name inside a bundle
    keras_cache_names: tuple[str, ...] = ()  # where keras.applications would have cached the weights
    how_to_get: str = ""


def _lite(index: int, input_size: int) -> EncoderSpec:
    """EfficientNet-Lite{index} at its native size; ``lite.build`` tells the variants apart by the weights' shapes."""
    grid = -(-input_size // 32)  # TF "same" padding rounds every stride-2 stage up: 224 -> 7, 240 -> 8, 260 -> 9
    return EncoderSpec(
        name=f"efficientnet_lite{index}",
        title=f"EfficientNet-Lite{index} (ImageNet), {grid}×{grid}×1280 grid",
        input_size=input_size,
        resample="bilinear",
        feature_shape=(grid * grid, 1280),
        module="imgcap_desktop.core.encoders.lite",
        weights_file=f"encoder_lite{index}.weights.h5",
    )


ENCODERS: dict[str, EncoderSpec] = {
    "densenet201": EncoderSpec(
        name="densenet201",
        title="DenseNet201 (ImageNet), global average pool",
        input_size=224,
        resample="nearest",  # keras.utils.load_img's default, which the seed app used
        feature_shape=(1920,),
        module="imgcap_desktop.core.encoders.densenet",
        weights_file="encoder.weights.h5",
        keras_cache_names=(
            "densenet201_weights_tf_dim_ordering_tf_kernels_notop.h5",
            "densenet201_weights_tf_dim_ordering_tf_kernels.h5",
        ),
        how_to_get=(
            "download densenet201_weights_tf_dim_ordering_tf_kernels_notop.h5 (Keras applications) on a machine "
            "with internet, then pass it with --encoder-weights FILE, or run "
            "`imgcap import-seed MODELS_DIR --out BUNDLE --encoder-weights FILE` to store it inside the bundle"
        ),
    ),
    **{spec.name: spec for spec in (_lite(0, 224), _lite(1, 240), _lite(2, 260))},
}


def find_weights(spec: EncoderSpec, bundle_dir: Path, declared: str | None,
                 override: str | os.PathLike | None) -> Path:
    """The weights file to use: an explicit override, the bundle's own, or Keras' download cache."""
    if override:
        path = Path(override).expanduser()
        if not path.is_file():
            raise EncoderWeightsMissingError(f"{path}: encoder weights file not found.")
        return path
    if declared:
        return bundle_dir / declared
    cache = Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")) / "models"
    for name in spec.keras_cache_names:
        if (cache / name).is_file():
            return cache / name
    raise EncoderWeightsMissingError(
        f"{bundle_dir.name}: this model needs {spec.title} weights, which are not in the bundle and cannot be "
        f"downloaded here: {spec.how_to_get}.")


class Encoder:
    """A built encoder: float RGB 0..255 batches in, feature arrays out."""

    def __init__(self, spec: EncoderSpec, weights_path: Path):
        import tensorflow as tf

        module = importlib.import_module(spec.module)
        self.spec = spec
        self._preprocess = module.preprocess
        model = module.build(weights_path)
        shape = spec.feature_shape

        # One trace for every batch size (traced once, at load): graph building mid-session in a
        # worker thread is both slow and where TensorFlow has crashed on us. autograph=False:
        # nothing to convert, and it warns about the closure otherwise.
        size = spec.input_size

        @tf.function(input_signature=[tf.TensorSpec([None, size, size, 3], tf.float32)], autograph=False)
        def run(batch):
            out = model(batch, training=False)
            return tf.reshape(out, (-1, *shape))

        self._run = run
        self.model = model

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        return self._run(self._preprocess(np.asarray(batch, dtype=np.float32))).numpy()
