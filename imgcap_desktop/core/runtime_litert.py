"""Inference on LiteRT (the TFLite runtime) from a bundle's ``litert/`` export.

The packaged app ships without TensorFlow (≈1.9 GB installed); it runs the
encoder and the decoder's ``begin``/``step`` graphs that ``export_litert`` wrote
at build time, through ``ai_edge_litert`` (≈60 MB). Decoding stays in
``decoding.py``: :class:`LiteRTStepModel` implements the same step API as the
Keras families, on NumPy arrays.

Nothing here imports TensorFlow when ``ai_edge_litert`` is installed; without it
(the development install) ``tensorflow.lite.Interpreter`` is used instead, so
the tests can compare both runtimes in one environment.

The old web app's seed family runs here too, without an export: its decoder in NumPy
(:mod:`families.seed_numpy`) and DenseNet201 as the LiteRT graph that ``make package`` built,
filled with the user's weights on first use (:mod:`densenet_litert`).

``litert/litert.json`` records the sha256 of the bundle's ``manifest.json`` the
graphs were exported from (the manifest itself holds the sha256 of every weights
file), so an export left behind by an older version of the bundle is refused.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import logging
import os
from pathlib import Path

import numpy as np

from imgcap_desktop.core.bundle import MANIFEST, Bundle, sha256_of
from imgcap_desktop.core.errors import BundleError
from imgcap_desktop.core.families.base import StepModel, StepOutput

EXPORT_DIR = "litert"
INDEX = "litert.json"
FORMAT = "imgcap-litert"
FORMAT_VERSION = 1
GRAPHS = {"encoder": "encoder.tflite", "begin": "decoder_begin.tflite", "step": "decoder_step.tflite"}
FAMILIES = ("attend",)  # families whose decoder can be exported
SEED_FAMILY = "seed"    # runs without an export: see the module's docstring
RUNTIMES = ("auto", "keras", "litert")
ENV_RUNTIME = "IMGCAP_RUNTIME"


def export_dir(bundle_dir: str | os.PathLike) -> Path:
    return Path(bundle_dir) / EXPORT_DIR


def export_problem(bundle_dir: str | os.PathLike) -> str | None:
    """Why the bundle's LiteRT export cannot be used (one sentence), or None when it is valid and current."""
    root = Path(bundle_dir)
    index_path = export_dir(root) / INDEX
    if not index_path.is_file():
        return (f"{root.name} has no LiteRT export ({EXPORT_DIR}/{INDEX}); create it with "
                f"`imgcap export-litert {root}` in the development install")
    try:
        index = json.loads(index_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        return f"{EXPORT_DIR}/{INDEX} in {root.name} is not valid JSON ({exc})"
    if not isinstance(index, dict) or index.get("format") != FORMAT:
        return f"{EXPORT_DIR}/{INDEX} in {root.name} is not an imgcap LiteRT index"
    if index.get("format_version") != FORMAT_VERSION:
        return (f"{EXPORT_DIR}/{INDEX} in {root.name} has format version {index.get('format_version')!r}; "
                f"this version reads {FORMAT_VERSION}: re-run `imgcap export-litert {root}`")
    manifest = root / MANIFEST
    if not manifest.is_file() or sha256_of(manifest) != index.get("manifest_sha256"):
        return (f"the LiteRT export in {root.name} was made from another version of the model "
                f"(its manifest.json changed since): re-run `imgcap export-litert {root}`")
    files = index.get("files")
    if not isinstance(files, dict):
        return f"{EXPORT_DIR}/{INDEX} in {root.name} lists no files"
    for role, name in GRAPHS.items():
        entry = files.get(name)
        file = export_dir(root) / name
        if not isinstance(entry, dict) or not isinstance(entry.get("sha256"), str):
            return f"{EXPORT_DIR}/{INDEX} in {root.name} does not list {name} with its sha256"
        if not file.is_file():
            return f"{EXPORT_DIR}/{name} is missing from {root.name}"
        if sha256_of(file) != entry["sha256"]:
            return f"{EXPORT_DIR}/{name} in {root.name} does not match its sha256: the file was changed or corrupted"
    return None


def tensorflow_available() -> bool:
    """Whether TensorFlow can be imported here (without importing it)."""
    try:
        return importlib.util.find_spec("tensorflow") is not None
    except (ImportError, ValueError):
        return False


def choose_runtime(bundle: Bundle, requested: str = "auto", *, encoder_override: bool = False) -> str:
    """``"keras"`` or ``"litert"`` for this bundle; raises :class:`BundleError` when neither can run it.

    ``auto`` picks LiteRT when the bundle has a current export and either TensorFlow is not
    installed (the packaged app) or ``IMGCAP_RUNTIME=litert``; otherwise Keras
    (``IMGCAP_RUNTIME=keras`` forces Keras).
    """
    if requested not in RUNTIMES:
        raise ValueError(f"runtime must be one of {RUNTIMES}, not {requested!r}")
    env = os.environ.get(ENV_RUNTIME, "").strip().lower()
    if requested == "auto" and env == "keras":
        requested = "keras"
    has_tf = tensorflow_available()
    name = bundle.path.name
    if requested == "keras":
        if not has_tf:
            raise BundleError(f"{name}: the Keras runtime needs TensorFlow, which this installation does not include.")
        return "keras"
    if requested == "auto" and has_tf and env != "litert":
        return "keras"  # development install: no need to hash the export
    family = bundle.manifest.family
    if family == SEED_FAMILY:
        from imgcap_desktop.core.densenet_litert import template_problem

        problem = template_problem()
        problem = f"{name}: {problem}" if problem else None
    else:
        problem = (f"{name}: '{family}' models run only on the Keras runtime (TensorFlow), not on LiteRT"
                   if family not in FAMILIES else None)
        if problem is None and encoder_override:
            problem = f"{name}: a LiteRT export holds the bundle's own encoder weights, not the ones given"
        if problem is None:
            problem = export_problem(bundle.path)
    if requested == "litert":
        if problem:
            raise BundleError(problem + ".")
        return "litert"
    # auto
    if has_tf:  # IMGCAP_RUNTIME=litert, but the export cannot be used: Keras can, and the user is told
        if problem:
            logging.getLogger("imgcap").warning(
                "imgcap: %s=litert was asked for, but %s; running on Keras (TensorFlow) instead.",
                ENV_RUNTIME, problem.split(": ", 1)[-1])
            return "keras"
        return "litert"
    if problem:
        raise BundleError(f"{problem}; this build of imgcap has no TensorFlow and runs models on LiteRT only.")
    return "litert"


def _interpreter_class():
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:  # development install: TensorFlow ships the same interpreter
        import warnings

        import tensorflow as tf

        class Interpreter(tf.lite.Interpreter):
            def __init__(self, *args, **kwargs):
                with warnings.catch_warnings():  # "tf.lite.Interpreter is deprecated, use ai_edge_litert"
                    warnings.simplefilter("ignore")
                    super().__init__(*args, **kwargs)
    return Interpreter


def default_threads() -> int:
    value = os.environ.get("IMGCAP_THREADS")
    if value and value.isdigit() and int(value) > 0:
        return int(value)
    return max(1, min(4, os.cpu_count() or 1))


class Graph:
    """One ``.tflite`` file with one signature, called with NumPy keyword arrays."""

    def __init__(self, path: str | os.PathLike, *, threads: int | None = None):
        Interpreter = _interpreter_class()
        self.path = Path(path)
        try:
            self.interpreter = Interpreter(model_path=str(self.path), num_threads=threads or default_threads())
            signatures = self.interpreter.get_signature_list()
            if len(signatures) != 1:
                raise ValueError(f"expected one signature, found {len(signatures)}")
            self.key = next(iter(signatures))
            self.inputs = tuple(signatures[self.key]["inputs"])
            self.outputs = tuple(signatures[self.key]["outputs"])
            self._runner = self.interpreter.get_signature_runner(self.key)
        except (ValueError, RuntimeError) as exc:
            raise BundleError(f"{self.path.name}: not a usable LiteRT model ({str(exc).splitlines()[0]}).") from None

    def __call__(self, **inputs: np.ndarray) -> dict[str, np.ndarray]:
        return self._runner(**inputs)


class LiteRTEncoder:
    """Same interface as :class:`imgcap_desktop.core.encoders.Encoder`: RGB 0..255 batches in, features out."""

    def __init__(self, spec, path: str | os.PathLike, *, threads: int | None = None):
        self.spec = spec
        self._preprocess = importlib.import_module(spec.module).preprocess
        self.graph = Graph(path, threads=threads)

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(self._preprocess(np.asarray(batch, dtype=np.float32)), dtype=np.float32)
        if len(x) == 0:
            return np.zeros((0, *self.spec.feature_shape), np.float32)
        out = self.graph(images=x)["features"]
        return np.asarray(out, dtype=np.float32).reshape((-1, *self.spec.feature_shape))


class LiteRTStepModel(StepModel):
    """The attend decoder's begin/step graphs; context (annotations, keys) and state (h, c) are NumPy arrays."""

    def __init__(self, begin_path, step_path, *, vocab_size: int, max_length: int, threads: int | None = None):
        self._begin = Graph(begin_path, threads=threads)
        self._step = Graph(step_path, threads=threads)
        self.vocab_size = int(vocab_size)
        self.max_length = int(max_length)
        self._last_concepts: tuple[np.ndarray, np.ndarray] | None = None

    def begin(self, features):
        features = np.ascontiguousarray(features, dtype=np.float32)
        out = self._begin(features=features)
        if "concepts" in out:
            # The captioner asks concepts() for this same batch right after decoding it: keep the
            # head's output instead of running begin a second time (0.66 ms per photo).
            self._last_concepts = (features, out["concepts"])
        return (out["annotations"], out["keys"]), (out["h"], out["c"])

    def concepts(self, features):
        # Exports of semantic-slot decoders give the ImageNet head as one more output of begin.
        if "concepts" not in self._begin.outputs:
            return None
        features = np.ascontiguousarray(features, dtype=np.float32)
        last = self._last_concepts
        if last is not None and last[0] is features:
            return last[1]
        return self._begin(features=features)["concepts"]

    def step(self, context, state, tokens):
        annotations, keys = context
        h, c = state
        out = self._step(annotations=np.ascontiguousarray(annotations), keys=np.ascontiguousarray(keys),
                         h=np.ascontiguousarray(h), c=np.ascontiguousarray(c),
                         tokens=np.ascontiguousarray(tokens, dtype=np.int32))
        return StepOutput(out["log_probs"], (out["h"], out["c"]), out["alpha"])

    def select(self, arrays, rows):
        idx = np.asarray(rows, dtype=np.intp)
        return tuple(np.take(a, idx, axis=0) for a in arrays)


def load(bundle: Bundle, *, threads: int | None = None,
         encoder_weights: str | os.PathLike | None = None) -> tuple[StepModel, LiteRTEncoder]:
    """The step model and encoder of a bundle that :func:`choose_runtime` gave to LiteRT.

    ``encoder_weights``: the seed family's DenseNet201 weights when not in the bundle.
    """
    if bundle.manifest.family == SEED_FAMILY:
        return _load_seed(bundle, threads, encoder_weights)
    folder = export_dir(bundle.path)
    config = bundle.manifest.family_config
    step_model = LiteRTStepModel(folder / GRAPHS["begin"], folder / GRAPHS["step"],
                                 vocab_size=config["vocab_size"], max_length=config["max_length"], threads=threads)
    encoder = LiteRTEncoder(bundle.encoder_spec, folder / GRAPHS["encoder"], threads=threads)
    return step_model, encoder


def _load_seed(bundle: Bundle, threads: int | None, encoder_weights) -> tuple[StepModel, LiteRTEncoder]:
    from imgcap_desktop.core.densenet_litert import filled_graph
    from imgcap_desktop.core.encoders import find_weights
    from imgcap_desktop.core.families.seed_numpy import NumpySeedStepModel
    from imgcap_desktop.core.families.seed_weights import read_roles
    from imgcap_desktop.core.paths import user_cache_dir

    manifest = bundle.manifest
    weights = find_weights(bundle.encoder_spec, bundle.path, manifest.encoder_weights, encoder_weights)
    graph = filled_graph(weights, user_cache_dir() / "densenet201-litert")
    step_model = NumpySeedStepModel(read_roles(bundle.file(manifest.weights)), manifest.family_config["max_length"])
    return step_model, LiteRTEncoder(bundle.encoder_spec, graph, threads=threads)
