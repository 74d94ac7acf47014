"""Model bundles: a folder with ``manifest.json``, a JSON vocabulary and weight files.

:func:`read_bundle` checks everything that can be checked without TensorFlow
(format version, family, encoder, every file's presence, size and sha256, the
vocabulary, and the shapes stored in each weights file) and fails with one
sentence naming the file and the problem. Only then does the Captioner build
anything.

Every number the manifest states is bounded (core.limits) before anything is allocated,
and every file it names must resolve inside the bundle folder: a symlink out of the folder
is refused, so a bundle can neither hash nor load a file elsewhere.

The manifest carries no checksum of its own, on purpose. A checksum kept in the same
folder proves nothing against tampering: whoever can edit the manifest can edit its
checksum too. Accidental damage to the manifest fails its JSON parse or its field checks;
damage to any other file fails that file's size or sha256. Proving who made a bundle would
take a signature checked against a key that is not in the bundle, which is a separate
feature, not a checksum.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from imgcap_desktop.core import limits
from imgcap_desktop.core.encoders import ENCODERS, EncoderSpec
from imgcap_desktop.core.errors import BundleError
from imgcap_desktop.core.families import get_family, known_families
from imgcap_desktop.core.vocab import Vocabulary

FORMAT = "imgcap-bundle"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass
class Manifest:
    name: str
    family: str
    family_config: dict[str, Any]
    encoder: str
    feature_shape: list[int]
    max_length: int
    vocabulary: str
    weights: str
    encoder_weights: str | None = None
    tokens: dict[str, str] = field(default_factory=lambda: {"start": "startseq", "end": "endseq"})
    decoding: dict[str, Any] = field(default_factory=lambda: {"beam": 3, "length_penalty": 0.0})
    files: dict[str, dict[str, Any]] = field(default_factory=dict)
    description: str = ""
    provenance: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    # core.confidence.Calibration.to_json(), written by `imgcap calibrate`; None: no confidence.
    calibration: dict[str, Any] | None = None
    # {"threshold": p}: class probability from which the ImageNet head's classes become keywords.
    keywords: dict[str, Any] = field(default_factory=dict)
    format: str = FORMAT
    format_version: int = FORMAT_VERSION

    def to_json(self) -> dict[str, Any]:
        return {
            "format": self.format, "format_version": self.format_version,
            "name": self.name, "description": self.description,
            "family": self.family, "family_config": self.family_config,
            "encoder": {"name": self.encoder, "feature_shape": list(self.feature_shape),
                        "weights": self.encoder_weights},
            "max_length": self.max_length,
            "vocabulary": self.vocabulary, "weights": self.weights,
            "tokens": self.tokens, "decoding": self.decoding,
            "files": self.files, "provenance": self.provenance, "metrics": self.metrics,
            **({"calibration": self.calibration} if self.calibration is not None else {}),
            **({"keywords": self.keywords} if self.keywords else {}),
        }

    @classmethod
    def from_json(cls, data: Any, where: str) -> "Manifest":
        def need(obj, key, kind, label=None):
            label = label or key
            if not isinstance(obj, dict) or key not in obj:
                raise BundleError(f"{where}: the manifest has no '{label}' entry.")
            value = obj[key]
            if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
                raise BundleError(f"{where}: the manifest's '{label}' has the wrong type.")
            return value

        if need(data, "format", str) != FORMAT:
            raise BundleError(f"{where}: not an imgcap model bundle (format is {data.get('format')!r}).")
        version = need(data, "format_version", int)
        if version != FORMAT_VERSION:
            raise BundleError(f"{where}: bundle format version {version} is not supported by this version "
                              f"of imgcap (it reads version {FORMAT_VERSION}).")
        def optional(obj, key, kind, default, label=None):
            value = obj.get(key)
            if value is None:
                return default
            if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
                raise BundleError(f"{where}: the manifest's '{label or key}' has the wrong type.")
            return value

        def all_of(items, kind, label):
            if not all(isinstance(v, kind) and not isinstance(v, bool) for v in items):
                raise BundleError(f"{where}: the manifest's '{label}' has the wrong type.")

        encoder = need(data, "encoder", dict)
        tokens = need(data, "tokens", dict)
        all_of(tokens.values(), str, "tokens")
        files = need(data, "files", dict)
        feature_shape = need(encoder, "feature_shape", list, "encoder.feature_shape")
        all_of(feature_shape, int, "encoder.feature_shape")
        return cls(
            name=need(data, "name", str), description=optional(data, "description", str, ""),
            family=need(data, "family", str), family_config=need(data, "family_config", dict),
            encoder=need(encoder, "name", str, "encoder.name"),
            feature_shape=feature_shape,
            encoder_weights=optional(encoder, "weights", str, None, "encoder.weights"),
            max_length=need(data, "max_length", int),
            vocabulary=need(data, "vocabulary", str), weights=need(data, "weights", str),
            tokens=tokens, decoding=optional(data, "decoding", dict, {}),
            files=files, provenance=optional(data, "provenance", dict, {}),
            metrics=optional(data, "metrics", dict, {}),
            calibration=optional(data, "calibration", dict, None),
            keywords=optional(data, "keywords", dict, {}),
        )


@dataclass
class Bundle:
    """A validated bundle on disk."""

    path: Path
    manifest: Manifest
    vocabulary: Vocabulary

    @property
    def encoder_spec(self) -> EncoderSpec:
        return ENCODERS[self.manifest.encoder]

    def file(self, name: str) -> Path:
        return self.path / name


def _weights_shapes(path: Path) -> list[tuple[int, ...]]:
    import h5py

    shapes: list[tuple[int, ...]] = []
    try:
        with h5py.File(path, "r") as f:
            f.visititems(lambda _, obj: shapes.append(tuple(obj.shape)) if isinstance(obj, h5py.Dataset) else None)
    except OSError as exc:
        raise BundleError(f"{path.name}: not a readable weights file ({exc}).") from None
    return shapes


def _check_parameter_count(weights: Path, count: int, root: Path) -> None:
    """A weights file stores at least a byte per parameter (float16 takes two): one that
    declares more parameters than it has bytes is sparse or hostile, and would be a huge
    allocation when loaded."""
    size = weights.stat().st_size
    if count > limits.MAX_PARAMETERS or count > size:
        raise BundleError(f"{weights.name} in {root.name}: the configuration needs {count:,} parameters but the file "
                          f"holds only {size:,} bytes; it cannot be a real weights file for this model.")


def read_bundle(path: str | os.PathLike, *, keras_weights: bool = True) -> Bundle:
    """Validate the bundle at ``path``.

    ``keras_weights=False`` is for installations without TensorFlow (the packaged app), which
    run the bundle's LiteRT export (checked by its own index against this manifest) and never
    read the Keras weight files: those may then be absent, and are still verified if present.
    """
    root = Path(path).expanduser()
    if not root.is_dir():
        raise BundleError(f"{root}: no model bundle there (not a folder).")
    manifest_path = root / MANIFEST
    if not manifest_path.is_file():
        raise BundleError(f"{root.name}: the folder has no {MANIFEST}, so it is not a model bundle.")
    try:
        data = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BundleError(f"{MANIFEST} in {root.name}: not valid JSON ({exc}).") from None
    where = f"{MANIFEST} in {root.name}"
    manifest = Manifest.from_json(data, where)

    if manifest.family not in known_families():
        raise BundleError(f"{where}: unknown model family '{manifest.family}' "
                          f"(this version knows {', '.join(known_families())}).")
    family = get_family(manifest.family)
    problem = family.check_config(manifest.family_config) or limits.decoding_problem("", manifest.decoding)
    if problem:
        raise BundleError(f"{where}: {problem.lstrip(': ')}.")
    if manifest.calibration is not None:
        from imgcap_desktop.core.confidence import Calibration

        try:
            Calibration.from_json(manifest.calibration)
        except ValueError as exc:
            raise BundleError(f"{where}: {exc}.") from None
    threshold = manifest.keywords.get("threshold", 0.5)
    if not isinstance(threshold, (int, float)) or isinstance(threshold, bool) or not 0.0 <= threshold <= 1.0:
        raise BundleError(f"{where}: keywords.threshold must be a number from 0 to 1.")
    spec = ENCODERS.get(manifest.encoder)
    if spec is None:
        raise BundleError(f"{where}: unknown image encoder '{manifest.encoder}' "
                          f"(this version knows {', '.join(ENCODERS)}).")
    if tuple(manifest.feature_shape) != spec.feature_shape:
        raise BundleError(f"{where}: encoder {spec.name} gives features of shape {list(spec.feature_shape)}, "
                          f"not {manifest.feature_shape}.")

    needed = [manifest.vocabulary, manifest.weights] + ([manifest.encoder_weights] if manifest.encoder_weights else [])
    for name in needed:
        if name not in manifest.files:
            raise BundleError(f"{where}: {name} is used but not listed under 'files' with its checksum.")
    optional = set() if keras_weights else {manifest.weights, manifest.encoder_weights}
    inside = root.resolve()
    for name, entry in manifest.files.items():
        if not isinstance(name, str) or Path(name).is_absolute() or ".." in Path(name).parts:
            raise BundleError(f"{where}: file name {name!r} points outside the bundle.")
        file = root / name
        if (file.exists() or file.is_symlink()) and not file.resolve().is_relative_to(inside):
            raise BundleError(f"{name} in {root.name} is a link to {file.resolve()}, outside the bundle folder; "
                              f"a bundle may only use its own files.")
        if name in optional and not file.exists():
            continue
        if not file.is_file():
            raise BundleError(f"{name} is missing from the bundle {root.name}.")
        if not isinstance(entry, dict) or not isinstance(entry.get("sha256"), str):
            raise BundleError(f"{where}: the entry for {name} has no sha256.")
        size = entry.get("size")
        if isinstance(size, int) and file.stat().st_size != size:
            raise BundleError(f"{name} in {root.name} has {file.stat().st_size} bytes, the manifest says {size}: "
                              f"the file was changed or truncated.")
        if sha256_of(file) != entry["sha256"]:
            raise BundleError(f"{name} in {root.name} does not match its sha256 in the manifest: "
                              f"the file was changed or corrupted.")

    weight_spec = family.weight_spec(manifest.family_config)
    if (root / manifest.weights).exists():
        _check_parameter_count(root / manifest.weights, limits.parameter_count(weight_spec.shapes), root)

    vocabulary = Vocabulary.from_json(root / manifest.vocabulary)
    size = manifest.family_config.get("vocab_size")
    if size != vocabulary.size:
        raise BundleError(f"{manifest.vocabulary} in {root.name} has {vocabulary.size} entries but the model "
                          f"expects {size}.")
    for role in ("start", "end"):
        word = manifest.tokens.get(role)
        if word is None or vocabulary.id_of(word) is None:
            raise BundleError(f"{where}: the {role} token {word!r} is not in the vocabulary.")

    if not (root / manifest.weights).exists():
        return Bundle(root, manifest, vocabulary)  # only when keras_weights=False (see above)
    mismatch = weight_spec.mismatch(_weights_shapes(root / manifest.weights))
    if mismatch:
        raise BundleError(f"{manifest.weights} in {root.name} does not fit a '{manifest.family}' model with this "
                          f"configuration: {mismatch}.")
    return Bundle(root, manifest, vocabulary)


def write_manifest(bundle_dir: Path, manifest: Manifest) -> Path:
    """Checksum every file the manifest uses and write ``manifest.json`` atomically."""
    names = [manifest.vocabulary, manifest.weights] + ([manifest.encoder_weights] if manifest.encoder_weights else [])
    names += [n for n in manifest.files if n not in names]
    manifest.files = {}
    for name in names:
        file = bundle_dir / name
        manifest.files[name] = {"sha256": sha256_of(file), "size": file.stat().st_size}
    manifest.provenance.setdefault("created", _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))
    text = json.dumps(manifest.to_json(), indent=2, ensure_ascii=False) + "\n"
    fd, tmp = tempfile.mkstemp(dir=bundle_dir, prefix=".manifest.", suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.chmod(tmp, 0o644)  # mkstemp's 0600 would make a shipped manifest unreadable to other users
    os.replace(tmp, bundle_dir / MANIFEST)
    return bundle_dir / MANIFEST
