"""DenseNet201 on LiteRT without TensorFlow: a graph made once at package time, filled with the user's weights.

The old web app's encoder is DenseNet201 with ImageNet weights that the user supplies (they are
not ours to ship). The TFLite converter does not keep Keras' arrays as they are: a
BatchNormalization that follows a convolution is folded into that convolution's kernel and
bias, and every other one becomes a MUL and an ADD by constant vectors. So a converted graph's
weight buffers are functions of several Keras arrays, and cannot be swapped one for one.

:func:`build_template` (TensorFlow; ``make package`` runs it) converts DenseNet201 with random
weights and identifies every float buffer of the result by its value, among what these
formulas give for the random arrays (scale = gamma / sqrt(variance + epsilon), shift = beta -
mean * scale; a folded kernel is the kernel times the next layer's scale per output channel, in
TFLite's output-height-width-input order, and its bias that layer's shift). Convolutions with
no normalisation after them keep a zero bias, which is left as it is. The identified buffers
are then zeroed; the graph is stored gzipped (it shrinks to a few hundred kilobytes) beside a
table of where each buffer lies in the file and how to compute it.

:func:`fill` (NumPy and h5py only) applies the same formulas to the user's weights file and
writes the results at those offsets: the graph is the converter's own, its weights the user's.
The template build checks itself by filling the template from the random weights it was made
with and comparing the graph's features with Keras' on random images.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
from pathlib import Path

import numpy as np

from imgcap_desktop.core.errors import BundleError, EncoderWeightsMissingError, SaveError
from imgcap_desktop.core.export import atomic_writer

TEMPLATE = "densenet201.template.tflite.gz"
TABLE = "densenet201.template.json"
FORMAT = "imgcap-densenet201-template"
FORMAT_VERSION = 1
#: Largest difference accepted between the filled graph and Keras on the build's self-check
#: (features are means of ReLU outputs, of the order of 0.1 to 10 for real weights).
TOLERANCE = 1e-3


def template_dir() -> Path:
    """Where the template lives: ``IMGCAP_DENSENET_TEMPLATE``, or ``data/densenet201_litert`` in the package."""
    env = os.environ.get("IMGCAP_DENSENET_TEMPLATE")
    return Path(env) if env else Path(__file__).resolve().parent / "data" / "densenet201_litert"


def template_problem(folder: Path | None = None) -> str | None:
    folder = folder or template_dir()
    if not (folder / TEMPLATE).is_file() or not (folder / TABLE).is_file():
        return ("this build has no DenseNet201 LiteRT graph (it is made by `make package`), so the old web "
                "app's model cannot run here without TensorFlow")
    return None


# --- the formulas, shared by the build and the fill ---------------------------------------------------


def _scale_shift(bn: list[np.ndarray], epsilon: float) -> tuple[np.ndarray, np.ndarray]:
    gamma, beta, mean, var = (np.asarray(a, np.float64) for a in bn)
    scale = gamma / np.sqrt(var + epsilon)
    return scale, beta - mean * scale


def _value(entry: dict, arrays: dict[str, list[np.ndarray]], epsilon: float) -> np.ndarray:
    kind = entry["kind"]
    if kind in ("kernel", "folded_kernel"):
        (kernel,) = arrays[entry["conv"]][:1]
        value = np.transpose(np.asarray(kernel, np.float64), (3, 0, 1, 2))
        if kind == "folded_kernel":
            value = value * _scale_shift(arrays[entry["bn"]], epsilon)[0][:, None, None, None]
    elif kind == "bias":
        value = _scale_shift(arrays[entry["bn"]], epsilon)[1]
    elif kind in ("scale", "shift"):
        value = _scale_shift(arrays[entry["bn"]], epsilon)[0 if kind == "scale" else 1]
    else:
        raise BundleError(f"{TABLE}: unknown entry kind {kind!r}.")
    return value.astype(np.float32).reshape(entry["shape"])


# --- reading the user's weights file ------------------------------------------------------------------


def read_weights(path: Path, order: list[str], shapes: dict[str, list[list[int]]]) -> dict[str, list[np.ndarray]]:
    """DenseNet201's arrays by Keras 3 layer name, from either weights layout Keras writes.

    Keras 3 ``.weights.h5`` names each layer in its ``vars`` group; the legacy ``.h5`` (the file
    Keras downloads, with or without the classifier) lists layers in order, which is how Keras
    itself loads it into the model, so ``order`` (the model's weight-bearing layers) maps them.
    """
    import h5py

    def as_list(group) -> list[np.ndarray]:
        return [np.asarray(group[k]) for k in sorted(group, key=int)]

    found: dict[str, list[np.ndarray]] = {}
    try:
        with h5py.File(path, "r") as f:
            if "layers" in f:
                for group in f["layers"].values():
                    if "vars" in group and len(group["vars"]):
                        name = group["vars"].attrs.get("name")
                        found[name.decode() if isinstance(name, bytes) else str(name)] = as_list(group["vars"])
            else:
                root = f["model_weights"] if "model_weights" in f else f
                names = [n.decode() if isinstance(n, bytes) else n for n in root.attrs.get("layer_names", [])]
                with_weights = []
                for name in names:
                    weight_names = [w.decode() if isinstance(w, bytes) else w
                                    for w in root[name].attrs.get("weight_names", [])]
                    if weight_names:
                        with_weights.append([np.asarray(root[name][w]) for w in weight_names])
                if len(with_weights) == len(order) + 1:
                    with_weights = with_weights[:-1]  # the classifier (fc1000), which the features do not use
                if len(with_weights) != len(order):
                    raise ValueError(f"{len(with_weights)} layers with weights, DenseNet201 has {len(order)}")
                found = dict(zip(order, with_weights))
    except (OSError, KeyError, ValueError) as exc:
        raise BundleError(f"{path.name}: not a DenseNet201 weights file ({exc}).") from None
    for name in order:
        got = [list(a.shape) for a in found.get(name, [])]
        if got != shapes[name]:
            raise BundleError(f"{path.name}: layer {name} has arrays of shapes {got}, DenseNet201's has "
                              f"{shapes[name]}; this is not a DenseNet201 weights file.")
    return found


# --- the fill (no TensorFlow) ---------------------------------------------------------------------------


def _table(folder: Path) -> dict:
    try:
        table = json.loads((folder / TABLE).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BundleError(f"{TABLE}: unreadable ({exc}).") from None
    if table.get("format") != FORMAT or table.get("format_version") != FORMAT_VERSION:
        raise BundleError(f"{TABLE}: not a DenseNet201 template table of version {FORMAT_VERSION}.")
    return table


def fill(weights: Path, out: Path, folder: Path | None = None) -> Path:
    """Write ``out``: the template graph with the weights of ``weights`` (written atomically)."""
    folder = folder or template_dir()
    problem = template_problem(folder)
    if problem:
        raise BundleError(problem + ".")
    table = _table(folder)
    arrays = read_weights(Path(weights), table["order"], table["shapes"])
    with gzip.open(folder / TEMPLATE, "rb") as f:
        graph = bytearray(f.read())
    if hashlib.sha256(graph).hexdigest() != table["template_sha256"]:
        raise BundleError(f"{TEMPLATE} does not match its table: the build is damaged.")
    for entry in table["buffers"]:
        data = _value(entry, arrays, table["epsilon"]).tobytes()
        if len(data) != entry["nbytes"]:
            raise BundleError(f"{TABLE}: buffer at {entry['offset']} holds {entry['nbytes']} bytes, not {len(data)}.")
        graph[entry["offset"]:entry["offset"] + len(data)] = data
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        with atomic_writer(out) as fh:
            fh.write(graph)
    except (OSError, SaveError) as exc:
        cause = exc.__cause__ if isinstance(exc, SaveError) and isinstance(exc.__cause__, OSError) else exc
        why = getattr(cause, "strerror", None) or cause
        raise BundleError(f"Cannot write the filled DenseNet201 graph to {out.parent}: {why}.") from None
    return out


def filled_graph(weights: Path | None, cache: Path) -> Path:
    """The filled graph for a weights file, made once and kept in ``cache`` (keyed by both files' contents)."""
    from imgcap_desktop.core.bundle import sha256_of

    if weights is None or not Path(weights).is_file():
        raise EncoderWeightsMissingError(
            "The old web app's model needs the DenseNet201 ImageNet weights file "
            "(densenet201_weights_tf_dim_ordering_tf_kernels_notop.h5, or the one with the classifier): "
            "put it beside image_caption.h5, or pass --encoder-weights FILE.")
    folder = template_dir()
    problem = template_problem(folder)
    if problem:
        raise BundleError(problem + ".")
    key = hashlib.sha256((sha256_of(Path(weights)) + _table(folder)["template_sha256"]).encode()).hexdigest()[:16]
    out = cache / f"densenet201-{key}.tflite"
    return out if out.is_file() else fill(Path(weights), out, folder)


# --- the build (TensorFlow, package time) ---------------------------------------------------------------


def _buffers(graph: bytes) -> list[dict]:
    """Every constant float32 tensor's data: file offset, size, shape."""
    from tensorflow.lite.python import schema_py_generated as schema

    model = schema.Model.GetRootAsModel(graph, 0)
    found, seen = [], set()
    for s in range(model.SubgraphsLength()):
        sub = model.Subgraphs(s)
        for t in range(sub.TensorsLength()):
            tensor = sub.Tensors(t)
            index = tensor.Buffer()
            buffer = model.Buffers(index)
            if index in seen or buffer.DataLength() == 0 or tensor.Type() != schema.TensorType.FLOAT32:
                continue
            seen.add(index)
            offset = buffer._tab.Vector(buffer._tab.Offset(4))
            found.append({"offset": int(offset), "nbytes": int(buffer.DataLength()),
                          "shape": [int(d) for d in tensor.ShapeAsNumpy()], "name": tensor.Name().decode()})
    return found


def _candidates(model, arrays: dict[str, list[np.ndarray]]) -> list[dict]:
    """What each weight buffer could be: one entry per formula and layer."""
    import keras

    entries = []
    for i, layer in enumerate(model.layers):
        if isinstance(layer, keras.layers.Conv2D):
            outbound = [n.operation for n in layer._outbound_nodes]
            bn = outbound[0].name if len(outbound) == 1 and isinstance(outbound[0],
                                                                       keras.layers.BatchNormalization) else None
            kernel = arrays[layer.name][0]
            shape = [kernel.shape[3], kernel.shape[0], kernel.shape[1], kernel.shape[2]]
            entries.append({"kind": "kernel", "conv": layer.name, "shape": shape})
            if bn:
                entries.append({"kind": "folded_kernel", "conv": layer.name, "bn": bn, "shape": shape})
                entries.append({"kind": "bias", "bn": bn, "shape": [shape[0]]})
        elif isinstance(layer, keras.layers.BatchNormalization):
            width = arrays[layer.name][0].shape[0]
            for kind in ("scale", "shift"):
                for shape in ([1, 1, 1, width], [width]):
                    entries.append({"kind": kind, "bn": layer.name, "shape": shape})
    return entries


def build_template(out: Path, *, seed: int = 0) -> Path:
    """Convert DenseNet201 (random weights), identify its buffers, zero them, check a fill against Keras."""
    import keras
    from keras.applications import DenseNet201

    from imgcap_desktop.core.export_litert import _convert
    from imgcap_desktop.core.runtime_litert import Graph
    from imgcap_desktop.core.tf_quiet import import_tensorflow

    tf = import_tensorflow()
    model = DenseNet201(weights=None, include_top=False, pooling="avg", input_shape=(224, 224, 3))
    rng = np.random.default_rng(seed)
    epsilon = None
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            epsilon = float(layer.epsilon)
            n = layer.gamma.shape[0]
            layer.set_weights([rng.uniform(0.5, 1.5, n), rng.normal(0, 0.1, n), rng.normal(0, 0.1, n),
                               rng.uniform(0.5, 1.5, n)])
        elif layer.weights:
            layer.set_weights([rng.normal(0, 0.05, w.shape) for w in layer.get_weights()])
    arrays = {layer.name: [np.asarray(w) for w in layer.get_weights()] for layer in model.layers if layer.weights}
    order = [layer.name for layer in model.layers if layer.weights]

    @tf.function(input_signature=[tf.TensorSpec([None, 224, 224, 3], tf.float32, name="images")])
    def encode(images):
        return {"features": model(images, training=False)}

    graph = bytearray(_convert(tf, encode.get_concrete_function(), model))
    candidates = _candidates(model, arrays)
    by_shape: dict[tuple, list[tuple[dict, np.ndarray]]] = {}
    for entry in candidates:
        by_shape.setdefault(tuple(entry["shape"]), []).append((entry, _value(entry, arrays, epsilon)))
    table_entries = []
    for buffer in _buffers(bytes(graph)):
        data = np.frombuffer(graph, np.float32, buffer["nbytes"] // 4, buffer["offset"]).reshape(buffer["shape"])
        hits = [(e, v) for e, v in by_shape.get(tuple(buffer["shape"]), [])
                if np.allclose(data, v, rtol=1e-4, atol=1e-6)]
        if not hits:
            if not data.any():
                continue  # a convolution's zero bias: stays zero whatever the weights
            raise RuntimeError(f"DenseNet201 template: buffer {buffer['name']} {buffer['shape']} matches no formula")
        # A folded bias is its normalisation's shift: two names for one value are one answer.
        if any(not np.array_equal(v, hits[0][1]) for _, v in hits[1:]):
            raise RuntimeError(f"DenseNet201 template: buffer {buffer['name']} matches {len(hits)} formulas")
        hits = [hits[0][0]]
        table_entries.append({**hits[0], "offset": buffer["offset"], "nbytes": buffer["nbytes"]})
        graph[buffer["offset"]:buffer["offset"] + buffer["nbytes"]] = bytes(buffer["nbytes"])
    out.mkdir(parents=True, exist_ok=True)
    with gzip.open(out / TEMPLATE, "wb", compresslevel=9) as f:
        f.write(graph)
    table = {"format": FORMAT, "format_version": FORMAT_VERSION, "epsilon": epsilon, "order": order,
             "shapes": {name: [list(a.shape) for a in arrays[name]] for name in order},
             "template_sha256": hashlib.sha256(graph).hexdigest(), "buffers": table_entries}

    # Self-check: the random weights written as Keras does, filled back in, against Keras itself.
    # The table goes into the package folder only after it passed (make package skips the build
    # when the table is there).
    import shutil
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        trial = Path(tmp) / "template"
        trial.mkdir()
        shutil.copyfile(out / TEMPLATE, trial / TEMPLATE)
        (trial / TABLE).write_text(json.dumps(table), encoding="utf-8")
        model.save_weights(str(Path(tmp) / "random.weights.h5"))
        filled = fill(Path(tmp) / "random.weights.h5", Path(tmp) / "filled.tflite", trial)
        images = rng.uniform(-2, 2, (2, 224, 224, 3)).astype(np.float32)
        got = Graph(filled)(images=images)["features"]
        want = model(images, training=False).numpy()
    diff = float(np.abs(got - want).max())
    if diff > TOLERANCE * max(1.0, float(np.abs(want).max())):
        raise RuntimeError(f"DenseNet201 template: the filled graph differs from Keras by {diff:.2e}")
    table["check"] = {"max_abs_difference": diff, "largest_feature": float(np.abs(want).max())}
    (out / TABLE).write_text(json.dumps(table, indent=1), encoding="utf-8")
    return out


def main(argv: list[str] | None = None) -> int:
    """``python -m imgcap_desktop.core.densenet_litert OUT``: build the template (``make package`` runs it)."""
    import sys

    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        print("usage: python -m imgcap_desktop.core.densenet_litert OUT_FOLDER", file=sys.stderr)
        return 2
    out = build_template(Path(args[0]))
    table = json.loads((out / TABLE).read_text(encoding="utf-8"))
    print(f"DenseNet201 template in {out}: {len(table['buffers'])} weight buffers, "
          f"{(out / TEMPLATE).stat().st_size / 1024:.0f} KiB; filled from random weights it differs from Keras "
          f"by {table['check']['max_abs_difference']:.1e}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
