"""Turn the legacy web app's ``image_caption.h5`` + ``tokenizer.pkl`` into a bundle.

The h5 is read as arrays only and the pickle through the restricted unpickler,
so nothing in either file can run code; the result is an ordinary bundle with
checksums, loaded like any other.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

from imgcap_desktop.core.bundle import Manifest, sha256_of, write_manifest
from imgcap_desktop.core.encoders import ENCODERS
from imgcap_desktop.core.errors import BundleError
from imgcap_desktop.core.families import seed
from imgcap_desktop.core.families.seed_weights import write_roles
from imgcap_desktop.core.paths import user_cache_dir
from imgcap_desktop.core.vocab import load_legacy_tokenizer

SEED_MODEL = "image_caption.h5"
SEED_TOKENIZER = "tokenizer.pkl"
SEED_MAX_LENGTH = 74


def find_seed_files(folder: Path) -> tuple[Path, Path] | None:
    """The model and tokenizer of a seed folder, or None when the folder is not one."""
    folder = Path(folder)
    if (folder / SEED_MODEL).is_file() and (folder / SEED_TOKENIZER).is_file():
        return folder / SEED_MODEL, folder / SEED_TOKENIZER
    h5s, pkls = sorted(folder.glob("*.h5")), sorted(folder.glob("*.pkl"))
    if len(h5s) == 1 and len(pkls) == 1 and not (folder / "manifest.json").exists():
        return h5s[0], pkls[0]
    return None


def _max_length_of(h5_path: Path) -> int:
    """The token input length recorded in the h5's model_config JSON (parsed as data, never deserialised)."""
    import h5py

    try:
        with h5py.File(h5_path, "r") as f:
            raw = f.attrs.get("model_config")
        config = json.loads(raw.decode() if isinstance(raw, bytes) else raw) if raw is not None else None
    except (OSError, ValueError):
        return SEED_MAX_LENGTH
    lengths = []

    def walk(node):
        if isinstance(node, dict):
            shape = node.get("batch_shape") or node.get("batch_input_shape")
            if node.get("class_name") == "InputLayer" or (shape and "dtype" in node):
                if isinstance(shape, list) and len(shape) == 2 and isinstance(shape[1], int):
                    lengths.append(shape[1])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(config)
    short = [n for n in lengths if n < 1000]  # the other 2-D input is the 1920-wide feature vector
    return min(short) if short else SEED_MAX_LENGTH


def import_seed(models_dir: str | Path, out: str | Path, *, encoder_weights: str | Path | None = None) -> Path:
    models_dir, out = Path(models_dir).expanduser(), Path(out).expanduser()
    files = find_seed_files(models_dir)
    if files is None:
        raise BundleError(f"{models_dir}: expected {SEED_MODEL} and {SEED_TOKENIZER} in this folder.")
    h5_path, pkl_path = files
    vocab = load_legacy_tokenizer(pkl_path)
    vocab_size = seed.vocab_size_of_legacy_h5(h5_path)
    if vocab_size != vocab.size:
        raise BundleError(f"{pkl_path.name} has {vocab.size - 1} words but {h5_path.name} was trained with "
                          f"{vocab_size - 1}: they do not belong together.")
    roles = seed.read_legacy_h5(h5_path, vocab_size)
    max_length = _max_length_of(h5_path)
    config = {"vocab_size": vocab_size, "max_length": max_length, "feature_dim": 1920}

    out.mkdir(parents=True, exist_ok=True)
    # Plain arrays by role (h5py only): the packaged app imports without Keras, and both runtimes read them.
    write_roles(roles, out / "decoder.weights.h5")
    vocab.to_json(out / "vocab.json")
    spec = ENCODERS["densenet201"]
    declared = None
    if encoder_weights:
        src = Path(encoder_weights).expanduser()
        if not src.is_file():
            raise BundleError(f"{src}: encoder weights file not found.")
        shutil.copyfile(src, out / spec.weights_file)
        declared = spec.weights_file

    manifest = Manifest(
        name=f"Seed model ({models_dir.name})",
        description="The legacy web app's DenseNet201 + attention/BiLSTM caption model, imported unchanged.",
        family="seed", family_config=config,
        encoder="densenet201", feature_shape=list(spec.feature_shape), encoder_weights=declared,
        max_length=max_length, vocabulary="vocab.json", weights="decoder.weights.h5",
        tokens={"start": vocab.start, "end": vocab.end},
        decoding={"beam": 1, "length_penalty": 0.0},  # the seed app decoded greedily
        provenance={"imported_from": str(models_dir.resolve()),
                    "source_files": {h5_path.name: sha256_of(h5_path), pkl_path.name: sha256_of(pkl_path)}},
    )
    write_manifest(out, manifest)
    return out


def cached_import(models_dir: str | Path, *, encoder_weights=None) -> Path:
    """Import a seed folder once into the user cache, keyed by the content of its two files."""
    files = find_seed_files(Path(models_dir))
    if files is None:
        raise BundleError(f"{models_dir}: expected {SEED_MODEL} and {SEED_TOKENIZER} in this folder.")
    key = hashlib.sha256((sha256_of(files[0]) + sha256_of(files[1])).encode()).hexdigest()[:16]
    out = user_cache_dir() / "imported" / key
    if not (out / "manifest.json").is_file():
        tmp = out.with_name(out.name + ".partial")
        shutil.rmtree(tmp, ignore_errors=True)
        import_seed(models_dir, tmp, encoder_weights=encoder_weights)
        shutil.rmtree(out, ignore_errors=True)
        tmp.rename(out)
    return out
