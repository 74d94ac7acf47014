"""Export a bundle's encoder and decoder step to LiteRT (``.tflite``) for the packaged app.

``imgcap export-litert BUNDLE`` writes ``BUNDLE/litert/``:

- ``encoder.tflite``: preprocessed images ``(N, 224, 224, 3)`` -> ``features (N, 49, 1280)``
- ``decoder_begin.tflite``: ``features`` -> ``annotations, keys, h, c`` (and ``concepts``, the ImageNet
  head's probabilities, for decoders with the semantic slot)
- ``decoder_step.tflite``: ``annotations, keys, h, c, tokens`` -> ``log_probs, h, c, alpha``
- ``litert.json``: the files with their sha256 and the sha256 of the ``manifest.json`` they came from.

The batch axis is dynamic (the runtime resizes input tensors) and only TFLite builtin ops
are allowed (the LiteRT wheel has no TensorFlow "flex" kernels). Weights are float32 by
default; ``--weights float16`` stores them in half precision (half the size; the arithmetic
stays float32), which `make package` uses after the captions of the 800 Flickr8k test photos
were compared (benchmarks/README.md). The export checks itself: it runs both runtimes on the
same random input and records the largest difference, absolute and relative to the output's
range, in ``litert.json``.

TensorFlow is needed here (it is imported inside :func:`export_bundle`); the
packaged app only reads the result (``runtime_litert``).
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import tempfile
from pathlib import Path

import numpy as np

from imgcap_desktop.core.bundle import MANIFEST, read_bundle, sha256_of
from imgcap_desktop.core.errors import BundleError, ImgcapError
from imgcap_desktop.core.runtime_litert import (
    EXPORT_DIR, FAMILIES, FORMAT, FORMAT_VERSION, GRAPHS, INDEX, Graph, export_problem,
)

#: Largest difference accepted between Keras and LiteRT outputs on the self-check: absolute for
#: float32 weights, relative to the output's largest magnitude for float16 ones (whose rounding,
#: 2**-11 per weight, adds up over a layer's inputs).
TOLERANCE = {"float32": 1e-3, "float16": 3e-2, "int8": 1.5e-1}
PRECISIONS = tuple(TOLERANCE)


def _convert(tf, concrete, trackable, precision: str = "float32") -> bytes:
    module = tf.Module()
    # Keras 3 variables wrap tf.Variables; track those so the converter freezes their values.
    module.variables_to_freeze = [getattr(v, "value", v) for v in trackable.weights]
    module.fn = concrete
    converter = tf.lite.TFLiteConverter.from_concrete_functions([concrete], module)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if precision == "float16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif precision == "int8":
        # Dynamic-range quantisation: int8 weights with a scale per channel, float activations.
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    else:
        converter.optimizations = []
    return converter.convert()


def _atomic_write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; these files are shipped and shared
    os.replace(tmp, path)


def export_bundle(bundle_dir: str | os.PathLike, out_dir: str | os.PathLike | None = None, *,
                  check: bool = True, precision: str = "float32") -> Path:
    """Write the LiteRT export of an ``attend`` bundle; returns the folder (``BUNDLE/litert`` by default)."""
    if precision not in PRECISIONS:
        raise ImgcapError(f"unknown LiteRT weight precision {precision!r}; use {' or '.join(PRECISIONS)}.")
    bundle = read_bundle(bundle_dir)
    manifest = bundle.manifest
    if manifest.family not in FAMILIES:
        raise BundleError(f"{bundle.path.name}: the '{manifest.family}' model family has no LiteRT export "
                          f"(supported: {', '.join(FAMILIES)}); the packaged app runs it without one "
                          f"(DenseNet201 from the packaged template, the decoder in NumPy).")
    if not manifest.encoder_weights:
        raise BundleError(f"{bundle.path.name}: the bundle holds no encoder weights, so there is no encoder to export.")
    out = Path(out_dir) if out_dir is not None else bundle.path / EXPORT_DIR
    out.mkdir(parents=True, exist_ok=True)
    manifest_sha = sha256_of(bundle.path / MANIFEST)

    import importlib

    from imgcap_desktop.core.families.attend import build_decoder, full_config, state_widths
    from imgcap_desktop.core.tf_quiet import import_tensorflow

    tf = import_tensorflow()   # `make package` runs this: no cuInit note on its terminal either

    spec = bundle.encoder_spec
    config = full_config(manifest.family_config)
    encoder = importlib.import_module(spec.module).build(bundle.file(manifest.encoder_weights))
    decoder = build_decoder(manifest.family_config)
    decoder.load_weights(str(bundle.file(manifest.weights)))

    size, cells, feat = spec.input_size, config["grid_cells"], config["feature_dim"]
    widths = state_widths(config)
    proj, att, units, slots = widths["annotations"], widths["keys"], widths["h"], widths["slots"]
    shape = tuple(spec.feature_shape)

    @tf.function(input_signature=[tf.TensorSpec([None, size, size, 3], tf.float32, name="images")])
    def encode(images):
        return {"features": tf.reshape(encoder(images, training=False), (-1, *shape))}

    @tf.function(input_signature=[tf.TensorSpec([None, cells, feat], tf.float32, name="features")])
    def begin(features):
        (annotations, keys), (h, c) = decoder.begin(features)
        out = {"annotations": annotations, "keys": keys, "h": h, "c": c}
        if config["semantic"]:
            out["concepts"] = decoder.concepts(features)  # keywords and confidence read the ImageNet head
        return out

    @tf.function(input_signature=[
        tf.TensorSpec([None, slots, proj], tf.float32, name="annotations"),
        tf.TensorSpec([None, slots, att], tf.float32, name="keys"),
        tf.TensorSpec([None, units], tf.float32, name="h"),
        tf.TensorSpec([None, units], tf.float32, name="c"),
        tf.TensorSpec([None], tf.int32, name="tokens"),
    ])
    def step(annotations, keys, h, c, tokens):
        logits, h, c, alpha = decoder.step(annotations, keys, h, c, tokens)
        return {"log_probs": tf.nn.log_softmax(logits), "h": h, "c": c, "alpha": alpha}

    (out / INDEX).unlink(missing_ok=True)  # no index until the new graphs have passed the check
    functions = {"encoder": (encode, encoder), "begin": (begin, decoder), "step": (step, decoder)}
    files = {}
    for role, (fn, owner) in functions.items():
        # int8 applies to the decoder's graphs: EfficientNet-Lite's depthwise convolutions lose too
        # much with int8 weights (the self-check below fails), so its encoder stays float16.
        graph_precision = "float16" if precision == "int8" and role == "encoder" else precision
        try:
            data = _convert(tf, fn.get_concrete_function(), owner, graph_precision)
        except Exception as exc:  # the converter raises ConverterError and friends
            raise ImgcapError(f"{bundle.path.name}: converting the {role} to LiteRT failed "
                              f"({str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__}).") from exc
        path = out / GRAPHS[role]
        _atomic_write(path, data)
        files[GRAPHS[role]] = {"sha256": sha256_of(path), "size": path.stat().st_size}

    differences, relative = (_self_check(out, encode, begin, step, size, vocab_size=config["vocab_size"])
                             if check else ({}, {}))
    tolerance = TOLERANCE[precision]
    judged = differences if precision == "float32" else relative
    if not all(np.isfinite(v) and v <= tolerance for v in judged.values()):
        worst = max((v if np.isfinite(v) else np.inf) for v in judged.values())
        raise ImgcapError(f"{bundle.path.name}: the LiteRT export differs from the Keras model by {worst:.2g} "
                          f"(more than {tolerance:g}); the export is incomplete and will not be used.")
    index = {
        "format": FORMAT, "format_version": FORMAT_VERSION,
        "manifest_sha256": manifest_sha, "family": manifest.family, "encoder": spec.name,
        "batch": "dynamic", "precision": precision,
        "files": files,
        "check": {"max_abs_diff": differences, "max_rel_diff": relative, "tolerance": tolerance,
                  "judged_by": "max_abs_diff" if precision == "float32" else "max_rel_diff"},
        "exported": {"created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                     "tensorflow": tf.__version__},
    }
    _atomic_write(out / INDEX, (json.dumps(index, indent=2) + "\n").encode("utf-8"))
    if out == bundle.path / EXPORT_DIR:
        problem = export_problem(bundle.path)
        if problem:  # e.g. the manifest changed while we exported
            raise ImgcapError(problem + ".")
    return out


def _self_check(out: Path, encode, begin, step, size: int, *, vocab_size: int
                ) -> tuple[dict[str, float], dict[str, float]]:
    """Largest |Keras - LiteRT| per output on a fixed random batch of 2 (LiteRT run through the same
    loader as the app), and the same relative to the output's largest magnitude."""
    rng = np.random.default_rng(0)
    images = rng.uniform(-1, 1, (2, size, size, 3)).astype(np.float32)
    tokens = rng.integers(1, vocab_size, 2).astype(np.int32)
    diffs: dict[str, float] = {}
    relative: dict[str, float] = {}

    def compare(prefix, keras_out, lite_out):
        for key, value in keras_out.items():
            want = value.numpy()
            diffs[f"{prefix}.{key}"] = float(np.max(np.abs(want - lite_out[key])))
            relative[f"{prefix}.{key}"] = diffs[f"{prefix}.{key}"] / (float(np.max(np.abs(want))) + 1e-6)

    k_enc = encode(images)
    l_enc = Graph(out / GRAPHS["encoder"])(images=images)
    compare("encoder", k_enc, l_enc)
    features = k_enc["features"].numpy()
    k_begin = begin(features)
    l_begin = Graph(out / GRAPHS["begin"])(features=features)
    compare("begin", k_begin, l_begin)
    inputs = {k: k_begin[k].numpy() for k in ("annotations", "keys", "h", "c")}
    k_step = step(**inputs, tokens=tokens)
    l_step = Graph(out / GRAPHS["step"])(**inputs, tokens=tokens)
    compare("step", k_step, l_step)
    return diffs, relative


# --- CLI -------------------------------------------------------------------------


def add_parser(sub) -> None:
    p = sub.add_parser("export-litert", help="export a bundle's encoder and decoder step to LiteRT (.tflite)")
    p.add_argument("bundle", help="bundle folder (family 'attend')")
    p.add_argument("--out", default=None, help="folder to write (default: BUNDLE/litert, where the app looks)")
    p.add_argument("--no-check", action="store_true", help="skip comparing LiteRT outputs with Keras")
    p.add_argument("--if-needed", action="store_true",
                   help="do nothing when BUNDLE/litert is already a current export of this bundle at --weights")
    p.add_argument("--weights", choices=PRECISIONS, default="float32",
                   help="float16 halves the files (arithmetic stays float32); float32 (default) matches Keras "
                        "to 1e-3")
    p.set_defaults(func=cmd_export_litert)


def cmd_export_litert(args) -> int:
    import time

    if args.if_needed and args.out is None and export_problem(args.bundle) is None:
        index = json.loads((Path(args.bundle) / EXPORT_DIR / INDEX).read_text(encoding="utf-8"))
        if index.get("precision", "float32") == args.weights:
            print(f"{Path(args.bundle) / EXPORT_DIR} is up to date ({args.weights} weights)")
            return 0
    began = time.perf_counter()
    out = export_bundle(args.bundle, args.out, check=not args.no_check, precision=args.weights)
    index = json.loads((out / INDEX).read_text(encoding="utf-8"))
    total = sum(e["size"] for e in index["files"].values())
    worst = max(index["check"]["max_abs_diff"].values(), default=None)
    worst_rel = max(index["check"].get("max_rel_diff", {}).values(), default=None)
    check = (f", max |Keras - LiteRT| {worst:.2g} ({worst_rel:.2g} of the range)" if worst is not None else "")
    print(f"wrote {out} ({len(index['files'])} graphs, {index['precision']} weights, {total / 2**20:.1f} MiB{check}) "
          f"in {time.perf_counter() - began:.1f} s")
    return 0
