"""Combine independently trained attend bundles into one ensemble bundle.

Members must share the vocabulary, the decoder configuration, the encoder and
the held-out split (train them with different ``--seed`` and the same
``--split-seed``); the ensemble averages their word probabilities at every step.
"""

from __future__ import annotations

import shutil
from pathlib import Path


from imgcap_desktop.core.bundle import Manifest, read_bundle, sha256_of, write_manifest
from imgcap_desktop.core.errors import BundleError
from imgcap_desktop.core.weights_file import to_float16


def merge(bundle_dirs: list[str | Path], out: str | Path, *, data: str | list[str] | None = None,
          split_files: str | None = None, fmt: str | None = None) -> Path:
    bundles = [read_bundle(b) for b in bundle_dirs]
    if len(bundles) < 2:
        raise BundleError("an ensemble needs at least two bundles.")
    first = bundles[0].manifest
    base_config = {k: v for k, v in first.family_config.items()}
    for b in bundles:
        m = b.manifest
        if m.family != "attend" or m.family_config.get("members", 1) != 1:
            raise BundleError(f"{b.path.name}: only single attend models can be combined.")
        if m.family_config != base_config or m.encoder != first.encoder:
            raise BundleError(f"{b.path.name}: its configuration differs from {bundles[0].path.name}'s.")
        if sha256_of(b.file(m.vocabulary)) != sha256_of(bundles[0].file(first.vocabulary)):
            raise BundleError(f"{b.path.name}: its vocabulary differs from {bundles[0].path.name}'s.")
        if sha256_of(b.file(m.encoder_weights)) != sha256_of(bundles[0].file(first.encoder_weights)):
            raise BundleError(f"{b.path.name}: its encoder weights differ from {bundles[0].path.name}'s.")
        if m.provenance.get("test_images") != first.provenance.get("test_images"):
            raise BundleError(f"{b.path.name}: it was trained with a different held-out split.")

    from imgcap_desktop.core.families.attend import build_decoder

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    config = dict(base_config, members=len(bundles))
    ensemble = build_decoder(config)
    for member, b in zip(ensemble.members, bundles):
        member.load_weights(str(b.file(b.manifest.weights)))
    # float16 storage keeps a three-member ensemble within the 60 MB bundle budget.
    ensemble.save_weights(str(out / "decoder.f32.weights.h5"))
    to_float16(out / "decoder.f32.weights.h5", out / "decoder.weights.h5")
    (out / "decoder.f32.weights.h5").unlink()
    ensemble.load_weights(str(out / "decoder.weights.h5"))  # score what is shipped
    shutil.copyfile(bundles[0].file(first.vocabulary), out / "vocab.json")
    if (out / first.encoder_weights).resolve() != bundles[0].file(first.encoder_weights).resolve():
        shutil.copyfile(bundles[0].file(first.encoder_weights), out / first.encoder_weights)

    provenance = {
        "members": [{"bundle": b.path.name, "command": b.manifest.provenance.get("command"),
                     "seed": b.manifest.provenance.get("settings", {}).get("seed"),
                     "training_seconds": b.manifest.provenance.get("training_seconds"),
                     "metrics": b.manifest.metrics} for b in bundles],
        "training_seconds": round(sum(b.manifest.provenance.get("training_seconds", 0) for b in bundles), 1),
        "settings": first.provenance.get("settings", {}),
        "test_images": first.provenance.get("test_images", []),
        "training_data": first.provenance.get("training_data"),
    }
    decoding = dict(first.decoding)
    metrics: dict = {}
    if data:
        decoding["length_penalty"], decoding["no_repeat_ngram"], metrics = _score(
            ensemble, config, bundles[0], data, first, split_files, fmt)
    manifest = Manifest(
        name=f"{first.name.split(' ×')[0]} ×{len(bundles)}", description=first.description + f" Ensemble of {len(bundles)} decoders.",
        family="attend", family_config=config, encoder=first.encoder, feature_shape=first.feature_shape,
        encoder_weights=first.encoder_weights, max_length=first.max_length, vocabulary="vocab.json",
        weights="decoder.weights.h5", tokens=first.tokens, decoding=decoding, provenance=provenance, metrics=metrics)
    write_manifest(out, manifest)
    return out


def _score(ensemble, config, bundle, data, first, split_files=None, fmt=None):
    """Pick the length penalty on validation and score the held-out test split, as training does."""
    from imgcap_desktop.core.encoders import ENCODERS
    from imgcap_desktop.core.families.attend import AttendStepModel
    from imgcap_desktop.core.training.features import FeatureCache
    from imgcap_desktop.core.training.train import TrainConfig, cider, decode_captions, prepare

    settings = first.provenance.get("settings", {})
    cfg = TrainConfig(**{k: v for k, v in settings.items() if k in TrainConfig.__dataclass_fields__})
    cfg.data, cfg.progress = data, False
    if split_files:
        cfg.split_files = split_files
    if fmt:
        cfg.format = fmt
    prepared = prepare(cfg, drop_single_letters=False)
    cache = FeatureCache(ENCODERS[first.encoder], bundle.file(first.encoder_weights),
                         Path(cfg.cache_dir) if cfg.cache_dir else None)
    step_model = AttendStepModel(ensemble, config["max_length"], config)
    vocab = bundle.vocabulary
    beam = int(first.decoding.get("beam", 3))

    def score(split, penalty, no_repeat=0):
        keys = prepared.splits[split]
        feats = cache.features([prepared.paths[k] for k in keys])
        preds = decode_captions(step_model, feats, vocab, config["max_length"], beam=beam, length_penalty=penalty,
                                no_repeat_ngram=no_repeat)
        return cider(dict(zip(keys, preds)), {k: prepared.references[k] for k in keys})

    # Decoding is chosen on validation alone: length penalty, and whether repeated trigrams are blocked.
    choices = {(alpha, block): score("val", alpha, block)["CIDEr"] for alpha in (0.0, 0.5, 1.0) for block in (0, 3)}
    alpha, block = max(choices, key=choices.get)
    metrics = {"val_cider_beam": {f"{a}" + (f"/no_repeat_{b}" if b else ""): round(s, 4)
                                  for (a, b), s in choices.items()}}
    if prepared.splits.get("test"):
        metrics["test"] = {k: round(float(v), 4) for k, v in score("test", alpha, block).items()}
        metrics["test_images"] = len(prepared.splits["test"])
    return alpha, block, metrics
