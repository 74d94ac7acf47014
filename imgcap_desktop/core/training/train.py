"""Training loops for the model families, ending in a bundle.

Both families share the data pipeline (dataset reader, cleaning, split,
vocabulary, cached features), per-epoch validation by CIDEr with greedy
decoding through the same step API the app uses, checkpoints with resume, and
early stopping. The default attention family is teacher-forced on whole
captions; the seed family is trained the way the legacy notebook did it, one
sample per caption prefix.
"""

from __future__ import annotations

import contextlib
import json
import math
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from imgcap_desktop.core import decoding
from imgcap_desktop.core.bundle import Manifest, write_manifest
from imgcap_desktop.core.encoders import ENCODERS, find_weights
from imgcap_desktop.core.errors import ImgcapError
from imgcap_desktop.core.paths import default_bundle_dir
from imgcap_desktop.core.training.datasets import (clean_caption, data_folders, load_training_data, split_keys,
                                                    text_corpus)
from imgcap_desktop.core.training.features import FeatureCache
from imgcap_desktop.core.vocab import Vocabulary



class TrainingError(ImgcapError):
    pass


def _data_name(cfg) -> str:
    """The training folders' names, for descriptions: "flickr8k-subset + flickr8k-extra"."""
    return " + ".join(p.name for p in data_folders(cfg.data))


@dataclass
class TrainConfig:
    data: str | list[str]         # one dataset folder or several, joined
    out: str
    format: str | None = None
    split_files: str | None = None   # folder with train.txt / val.txt / test.txt
    family: str = "attend"
    epochs: int = 30
    batch_size: int = 64
    learning_rate: float = 1e-3
    min_count: int = 3
    max_length: int = 22          # generated tokens, end token included
    seed: int = 0                 # initialisation and batch order
    split_seed: int = 0           # which photos are held out: fixed so ensemble members share a split
    val_fraction: float = 0.05
    test_fraction: float = 0.10
    patience: int = 4
    flip: bool = True
    label_smoothing: float = 0.1
    attention_reg: float = 1.0    # doubly stochastic attention (Xu et al. 2015)
    resume: bool = False
    encoder_weights: str | None = None
    cache_dir: str | None = None
    corpus: str | None = None      # extra caption text: vocabulary counts and language pre-training
    lm_epochs: int = 0             # passes over the corpus text before the photos (attend family)
    corpus_counts: bool = True     # the corpus's word counts also decide which words reach --min-count
    ema: float = 0.0               # decay of a moving average of the weights, validated and shipped (0: off)
    length_penalty: float | None = None   # beam length penalty; None: chosen on the validation split
    beam: int = 3
    scst_epochs: int = 0              # self-critical fine-tuning on CIDEr-D after cross-entropy
    scst_samples: int = 5
    scst_learning_rate: float = 5e-5
    units: int = 512
    bucket: bool = True               # length-bucketed batches (False: random batches, padded to their longest)
    jit_compile: bool = False         # XLA-compile the train step
    deterministic: bool = True        # bit-identical runs for one seed (op determinism, oneDNN off)
    precision: str = "float32"        # or "mixed_bfloat16": bfloat16 matmuls, float32 weights
    semantic: bool = False            # ImageNet class probabilities as an extra attention slot
    encoder: str = "efficientnet_lite0"  # attend family: any EfficientNet-Lite in encoders.ENCODERS
    embed_dim: int = 256
    dropout: float = 0.5
    limit_images: int | None = None   # for smoke runs and tests
    progress: bool = True
    command: str = ""
    name: str = ""                 # the bundle's name (default: from the encoder)
    description: str = ""          # the bundle's one-line description (default: from the data)


# --- data ---------------------------------------------------------------------------


@dataclass
class Prepared:
    vocab: Vocabulary
    splits: dict[str, list[str]]
    paths: dict[str, Path]
    references: dict[str, list[str]]          # cleaned reference captions (strings) per key
    sequences: dict[str, list[list[int]]]     # token ids (start ... end) per key, train split
    notes: list[str]
    text_sequences: list[list[int]] = field(default_factory=list)   # corpus captions in the vocabulary


def prepare(cfg: TrainConfig, *, drop_single_letters: bool) -> Prepared:
    try:
        dataset = load_training_data(cfg.data, cfg.format, cfg.split_files)
    except ValueError as exc:
        raise TrainingError(str(exc)) from exc
    for note in dataset.notes:
        _log(cfg, f"data: {note}")
    keys = sorted(k for k in dataset.images if dataset.captions.get(k))
    if cfg.limit_images:
        keys = keys[:cfg.limit_images]
    if not keys:
        raise TrainingError(f"{_data_name(cfg)}: no images with captions found.")
    if cfg.split_files or (dataset.splits and all(dataset.splits.get(s) for s in ("train", "val"))):
        allowed = set(keys)
        splits = {s: [k for k in ks if k in allowed] for s, ks in dataset.splits.items()}
        splits.setdefault("test", [])
    else:
        splits = split_keys(keys, val_fraction=cfg.val_fraction, test_fraction=cfg.test_fraction, seed=cfg.split_seed)
    tokens = {k: [clean_caption(c, drop_single_letters=drop_single_letters) for c in dataset.captions[k]]
              for k in keys}
    tokens = {k: [t for t in ts if t] for k, ts in tokens.items()}
    counted = [t for k in splits["train"] for t in tokens[k]]
    text: list[list[str]] = []
    if cfg.corpus:
        # The held-out photos' captions are in Flickr8k.token.txt too: they must not be read.
        held_out = set(splits["val"]) | set(splits.get("test", []))
        text = text_corpus(Path(cfg.corpus), drop_single_letters=drop_single_letters, exclude=held_out)
        # Text-only captions add counts, never new words: a word no training photo is captioned
        # with cannot be tied to anything seen, so it could only ever be emitted at random.
        if cfg.corpus_counts:
            seen = {w for t in counted for w in t}
            counted += [[w for w in t if w in seen] for t in text]
    vocab = Vocabulary.from_captions(counted, min_count=cfg.min_count)
    limit = cfg.max_length - 1

    def encode(words: list[str]) -> list[int]:
        return [vocab.start_id] + [vocab.id_of(w) or vocab.unknown_id for w in words[:limit]] + [vocab.end_id]

    sequences = {k: [encode(t) for t in tokens[k]] for k in splits["train"]}
    # Pre-training text keeps only captions the vocabulary covers: teaching the decoder to
    # expect <unk> mid-sentence would only teach it a word it is never allowed to say.
    text_sequences = [encode(t) for t in text if len(t) <= limit and all(vocab.id_of(w) for w in t)]
    references = {k: [" ".join(t) for t in tokens[k]] for k in keys}
    return Prepared(vocab, splits, {k: dataset.images[k] for k in keys}, references, sequences, dataset.notes,
                    text_sequences)


def _pad(rows: list[list[int]], width: int) -> np.ndarray:
    out = np.zeros((len(rows), width), dtype=np.int32)
    for i, r in enumerate(rows):
        out[i, :len(r)] = r[:width]
    return out


def _trim(tokens: np.ndarray, widths: list[int]) -> np.ndarray:
    """A padded batch cut to the narrowest traced width that holds its longest caption."""
    needed = int((tokens > 0).sum(axis=1).max())
    return tokens[:, :next(w for w in widths if w >= needed)]


def traced_widths(width: int) -> list[int]:
    """Caption widths (tokens incl. start and end) that batches are cut to.

    Each width is one traced graph (the decoder is unrolled over time). Steps of two tokens keep
    the padding of a length-bucketed batch under one token on average, at nine traces for 23 tokens.
    """
    return sorted({w for w in range(8, width, 2)} | {width})


def batch_plan(lengths: np.ndarray, batch_size: int, rng: np.random.Generator, *,
               bucketed: bool = True) -> list[np.ndarray]:
    """The rows of each batch of one epoch, in the order they are trained.

    Bucketed: captions are sorted by length (ties in random order), cut into batches, and the
    batches shuffled, so a 9-word caption is not padded to the longest caption of a random
    batch. Over an epoch every caption is still seen exactly once.
    """
    n = len(lengths)
    if not bucketed:
        order = rng.permutation(n)
    else:
        order = np.lexsort((rng.random(n), np.asarray(lengths)))
    batches = [order[i:i + batch_size] for i in range(0, n, batch_size)]
    if bucketed:
        batches = [batches[i] for i in rng.permutation(len(batches))]
    return batches


def make_train_step(model, optimizer, vocab_size: int, *, label_smoothing: float, attention_reg: float,
                    jit_compile: bool = False):
    """One teacher-forced update of the attend decoder: (features, tokens) -> mean token loss.

    Cross-entropy with label smoothing plus the doubly stochastic attention penalty of
    Xu et al. (2015). Traced once per caption width.
    """
    import tensorflow as tf

    @tf.function(jit_compile=jit_compile)
    def train_step(features, tokens):
        inputs, targets = tokens[:, :-1], tokens[:, 1:]
        mask = tf.cast(targets > 0, tf.float32)
        with tf.GradientTape() as tape:
            logits, alphas = model((features, inputs), training=True)
            # Under a mixed bfloat16 policy the layers compute in bfloat16; the loss stays float32.
            logits, alphas = tf.cast(logits, tf.float32), tf.cast(alphas, tf.float32)
            onehot = tf.one_hot(targets, vocab_size)
            soft = onehot * (1.0 - label_smoothing) + label_smoothing / vocab_size
            loss_tok = tf.nn.softmax_cross_entropy_with_logits(soft, logits)
            loss = tf.reduce_sum(loss_tok * mask) / tf.reduce_sum(mask)
            coverage = tf.reduce_sum(alphas * mask[..., None], axis=1)
            reg = tf.reduce_mean(tf.reduce_sum((1.0 - coverage) ** 2, axis=-1))
            total = loss + attention_reg * reg / tf.cast(tf.shape(alphas)[-1], tf.float32)
        variables = model.trainable_variables
        grads = tape.gradient(total, variables)
        optimizer.apply_gradients(zip(grads, variables))
        return loss

    return train_step


# --- shared helpers ---------------------------------------------------------------------


def _stops(vocab: Vocabulary, suppress_unknown: bool) -> decoding.Stops:
    return decoding.Stops.from_vocabulary(vocab, vocab.size, suppress_unknown=suppress_unknown)


def decode_captions(step_model, features: np.ndarray, vocab: Vocabulary, max_length: int, *,
                    beam: int = 1, length_penalty: float = 0.0, suppress_unknown: bool = True,
                    batch: int = 64, no_repeat_ngram: int = 0) -> list[str]:
    out: list[str] = []
    stops = _stops(vocab, suppress_unknown)
    for i in range(0, len(features), batch):
        ranked = decoding.beam_search(step_model, features[i:i + batch].astype(np.float32), beam=beam,
                                      start_id=vocab.start_id, stops=stops, max_length=max_length,
                                      length_penalty=length_penalty, no_repeat_ngram=no_repeat_ngram)
        out += [" ".join(vocab.word_of(t) for t in hyps[0].tokens) for hyps in ranked]
    return out


def cider(predictions: dict[str, str], references: dict[str, list[str]]) -> dict[str, float]:
    from imgcap_desktop.core.training.metrics import score_captions

    return score_captions(predictions, references, use_java=False).scores


class Checkpoints:
    """``out/.checkpoint``: last weights, best weights, optimizer state and progress."""

    def __init__(self, out: Path):
        self.folder = out / ".checkpoint"
        self.state_file = self.folder / "state.json"

    def exists(self) -> bool:
        return self.state_file.is_file()

    def load_state(self) -> dict:
        return json.loads(self.state_file.read_text())

    def save(self, model, optimizer, state: dict, *, best: bool, average: "WeightAverage | None" = None) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        model.save_weights(str(self.folder / "last.weights.h5"))
        if average is not None:
            np.savez(self.folder / "average.npz", *average.arrays())
            if best:
                # What was validated is the average, so the average is what is kept.
                with average.applied():
                    model.save_weights(str(self.folder / "best.weights.h5"))
        elif best:
            shutil.copyfile(self.folder / "last.weights.h5", self.folder / "best.weights.h5")
        if optimizer is not None and optimizer.variables:
            np.savez(self.folder / "optimizer.npz", *[np.asarray(v) for v in optimizer.variables])
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2))
        tmp.replace(self.state_file)

    def restore_average(self, average: "WeightAverage") -> bool:
        file = self.folder / "average.npz"
        if not file.is_file():
            return False
        saved = np.load(file)
        return average.load([saved[f"arr_{i}"] for i in range(len(saved.files))])

    def restore_optimizer(self, optimizer, variables) -> bool:
        file = self.folder / "optimizer.npz"
        if not file.is_file():
            return False
        optimizer.build(variables)
        saved = np.load(file)
        arrays = [saved[f"arr_{i}"] for i in range(len(saved.files))]
        if len(arrays) != len(optimizer.variables):
            return False
        for var, value in zip(optimizer.variables, arrays):
            var.assign(value)
        return True


class WeightAverage:
    """An exponential moving average of a model's trainable weights (Polyak averaging).

    With a few hundred photos the weights after any one epoch are noisy (validation CIDEr
    swings by 0.1 from epoch to epoch); their running average is steadier and scores better.
    """

    def __init__(self, variables, decay: float):
        import tensorflow as tf

        self.variables = list(variables)
        self.decay = float(decay)
        self.shadow = [tf.Variable(v, trainable=False) for v in self.variables]

        @tf.function
        def update():
            for shadow, value in zip(self.shadow, self.variables):
                shadow.assign(self.decay * shadow + (1.0 - self.decay) * value)

        self.update = update

    def reset(self) -> None:
        """Start averaging from the current weights."""
        for shadow, value in zip(self.shadow, self.variables):
            shadow.assign(value)

    def arrays(self) -> list[np.ndarray]:
        return [s.numpy() for s in self.shadow]

    def load(self, arrays: list[np.ndarray]) -> bool:
        if len(arrays) != len(self.shadow) or any(a.shape != tuple(s.shape) for a, s in zip(arrays, self.shadow)):
            return False
        for shadow, value in zip(self.shadow, arrays):
            shadow.assign(value)
        return True

    @contextlib.contextmanager
    def applied(self):
        """A context in which the model holds the averaged weights; the raw ones come back after."""
        raw = [v.numpy() for v in self.variables]
        for value, shadow in zip(self.variables, self.shadow):
            value.assign(shadow)
        try:
            yield
        finally:
            for value, saved in zip(self.variables, raw):
                value.assign(saved)


def _bar(total: int, desc: str, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="batch", dynamic_ncols=True, disable=not enabled, file=sys.stderr)


def _log(cfg: TrainConfig, message: str) -> None:
    # One line per epoch even without bars: a long run must show where it is.
    print(message, file=sys.stderr, flush=True)


# --- shared run set-up and epoch bookkeeping -------------------------------------------------


@dataclass
class Run:
    """What both training loops start from: the prepared data and the cached features."""

    out: Path
    data: Prepared
    spec: object
    weights: Path
    cache: FeatureCache
    train_keys: list[str]
    val_keys: list[str]
    test_keys: list[str]
    feats: np.ndarray              # features of train + val + test, in that order
    index: dict[str, int]          # key -> row of feats
    started: float

    def rows(self, keys) -> np.ndarray:
        return self.feats[[self.index[k] for k in keys]]


def _start_run(cfg: TrainConfig, spec, weights: Path, *, drop_single_letters: bool) -> Run:
    import keras

    started = time.time()
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    keras.utils.set_random_seed(cfg.seed)
    data = prepare(cfg, drop_single_letters=drop_single_letters)
    cache = FeatureCache(spec, weights, Path(cfg.cache_dir) if cfg.cache_dir else None)
    train_keys, val_keys = data.splits["train"], data.splits["val"]
    test_keys = data.splits.get("test", [])
    all_keys = train_keys + val_keys + test_keys
    feats = cache.features([data.paths[k] for k in all_keys], progress="features" if cfg.progress else None)
    return Run(out, data, spec, weights, cache, train_keys, val_keys, test_keys, feats,
               {k: i for i, k in enumerate(all_keys)}, started)


def _new_state() -> dict:
    return {"epoch": 0, "best": -1.0, "best_epoch": 0, "bad_epochs": 0, "history": []}


def _end_epoch(cfg: TrainConfig, state: dict, ckpt: "Checkpoints", model, optimizer, record: dict,
               example: str, average: WeightAverage | None = None) -> bool:
    """Record a finished epoch, checkpoint it, and say whether early stopping says stop.

    Without a validation split (``val_cider`` None) every epoch is kept as the latest and
    training runs its fixed number of epochs.
    """
    epoch, score = record["epoch"], record["val_cider"]
    improved = score is None or score > state["best"]
    state["history"].append(record)
    state.update(epoch=epoch)
    if improved:
        state.update(best=score if score is not None else state["best"], best_epoch=epoch, bad_epochs=0)
    else:
        state["bad_epochs"] += 1
    ckpt.save(model, optimizer, state, best=improved, average=average)
    scored = (f"val CIDEr {score:.3f} (best {state['best']:.3f} @ {state['best_epoch']})" if score is not None
              else "no validation split")
    _log(cfg, f"epoch {epoch}: loss {record['loss']:.3f}, {scored}, e.g. “{example}”")
    if state["bad_epochs"] >= cfg.patience:
        _log(cfg, f"stopping early: no better validation CIDEr for {cfg.patience} epochs")
        return True
    return False


# --- attention family -------------------------------------------------------------------


def train_attend(cfg: TrainConfig) -> Path:
    import keras
    import tensorflow as tf

    from imgcap_desktop.core.families.attend import AttendStepModel

    # Any encoder with a grid of feature vectors will do for the decoder (scripts/dinov2_comparison.py
    # registers one); only EfficientNet-Lite carries the ImageNet head that --semantic reads.
    spec = ENCODERS.get(cfg.encoder)
    if spec is None or len(spec.feature_shape) != 2:
        raise TrainingError(f"the attend family trains on an encoder's grid of features, not {cfg.encoder!r}.")
    if cfg.semantic and not cfg.encoder.startswith("efficientnet_lite"):
        raise TrainingError(f"--semantic reads EfficientNet-Lite's ImageNet head, which {spec.title} does not have.")
    weights = Path(cfg.encoder_weights) if cfg.encoder_weights else default_bundle_dir() / spec.weights_file
    if not weights.is_file():
        raise TrainingError(f"{weights}: {spec.title} weights not found; pass --encoder-weights FILE.")
    run = _start_run(cfg, spec, weights, drop_single_letters=False)
    out, data, cache, feats, index, started = run.out, run.data, run.cache, run.feats, run.index, run.started
    vocab = data.vocab
    train_keys, val_keys, test_keys = run.train_keys, run.val_keys, run.test_keys
    flipped = (cache.features([data.paths[k] for k in train_keys], flipped=True,
                              progress="flipped features" if cfg.progress else None) if cfg.flip else None)
    train_index = {k: i for i, k in enumerate(train_keys)}
    _log(cfg, f"{len(train_keys)} train / {len(val_keys)} val / {len(test_keys)} test images, "
              f"vocabulary {vocab.size}, features extracted {cache.extracted}")

    config = {"vocab_size": vocab.size, "max_length": cfg.max_length, "units": cfg.units,
              "embed_dim": cfg.embed_dim, "dropout": cfg.dropout,
              "feature_dim": spec.feature_shape[1], "grid_cells": spec.feature_shape[0],
              "semantic": int(cfg.semantic)}
    # Seeded again here: building the encoder (only when features were not cached) draws from the
    # same generator, and the decoder's start must not depend on the cache.
    keras.utils.set_random_seed(cfg.seed)
    model = _build_decoder_in(config, cfg.precision)
    if cfg.semantic:
        model.imagenet_fc.set_weights(_imagenet_head(spec, weights))
    # Validation and the bundle's scores decode in float32, as the app does, whatever the training precision.
    scored = model if cfg.precision == "float32" else _build_decoder_in(config, "float32")

    def synced():
        if scored is not model:
            scored.set_weights(model.get_weights())
    optimizer = keras.optimizers.Adam(learning_rate=cfg.learning_rate, clipnorm=5.0)
    average = WeightAverage(model.trainable_variables, cfg.ema) if cfg.ema > 0 else None
    ckpt = Checkpoints(out)
    state = _new_state()
    if cfg.resume and ckpt.exists():
        state = ckpt.load_state()
        model.load_weights(str(ckpt.folder / "last.weights.h5"))
        ckpt.restore_optimizer(optimizer, model.trainable_variables)
        if average is not None and not ckpt.restore_average(average):
            average.reset()
        _log(cfg, f"resumed after epoch {state['epoch']} (best CIDEr {state['best']:.3f})")

    pairs = [(k, seq) for k in train_keys for seq in data.sequences[k]]
    width = cfg.max_length + 1
    all_tokens = _pad([s for _, s in pairs], width)
    pair_rows = np.array([train_index[k] for k, _ in pairs])
    widths = traced_widths(width)
    lengths = (all_tokens > 0).sum(axis=1)

    train_step = make_train_step(model, optimizer, vocab.size, label_smoothing=cfg.label_smoothing,
                                 attention_reg=cfg.attention_reg, jit_compile=cfg.jit_compile)

    if cfg.lm_epochs > 0 and state["epoch"] == 0:
        _pretrain_language(cfg, data.text_sequences, train_step, feats.shape[1:], widths)
    if average is not None and state["epoch"] == 0:
        average.reset()   # the average starts where the photos do
    averaged = average.applied if average is not None else contextlib.nullcontext

    step_model = AttendStepModel(scored, cfg.max_length, config)
    val_feats = run.rows(val_keys)
    val_refs = {k: data.references[k] for k in val_keys}
    rng = np.random.default_rng(cfg.seed + state["epoch"])
    for epoch in range(state["epoch"] + 1, cfg.epochs + 1):
        plan = batch_plan(lengths, cfg.batch_size, rng, bucketed=cfg.bucket)
        losses = []
        began = time.time()
        bar = _bar(len(plan), f"epoch {epoch}/{cfg.epochs}", cfg.progress)
        for rows in plan:
            image_rows = pair_rows[rows]
            batch_feats = feats[[index[train_keys[i]] for i in image_rows]]
            if flipped is not None:
                use_flip = rng.random(len(rows)) < 0.5
                batch_feats = np.where(use_flip[:, None, None], flipped[image_rows], batch_feats)
            tokens = _trim(all_tokens[rows], widths)
            losses.append(train_step(tf.constant(batch_feats, tf.float32), tf.constant(tokens)))
            if average is not None:
                average.update()
            bar.update(1)
        losses = [float(x) for x in losses]   # one read-back per epoch, not a sync per batch
        bar.close()
        record = {"epoch": epoch, "loss": round(float(np.mean(losses)), 4), "val_cider": None}
        with averaged():
            synced()
            if val_keys:
                preds = decode_captions(step_model, val_feats, vocab, cfg.max_length)
                scores = cider(dict(zip(val_keys, preds)), val_refs)
                record.update(val_cider=round(scores["CIDEr"], 4), val_bleu4=round(scores["BLEU-4"], 4))
            else:
                preds = decode_captions(step_model, feats[:1], vocab, cfg.max_length)
        record["seconds"] = round(time.time() - began, 1)
        if _end_epoch(cfg, state, ckpt, model, optimizer, record, preds[0], average):
            break

    model.load_weights(str(ckpt.folder / "best.weights.h5"))
    synced()
    if cfg.scst_epochs > 0:
        _scst(cfg, model, data, feats, index, flipped, train_index, step_model, val_feats, val_refs, ckpt, state)
        model.load_weights(str(ckpt.folder / "best.weights.h5"))
        synced()
    # Pick the beam length penalty on the validation split, then report the untouched test split.
    metrics: dict = {}
    if cfg.length_penalty is not None or not val_keys:
        alpha = cfg.length_penalty if cfg.length_penalty is not None else 0.0
    else:
        penalties = {}
        for alpha in (0.0, 0.5, 1.0):
            preds = decode_captions(step_model, val_feats, vocab, cfg.max_length, beam=cfg.beam, length_penalty=alpha)
            penalties[alpha] = cider(dict(zip(val_keys, preds)), val_refs)["CIDEr"]
        alpha = max(penalties, key=penalties.get)
        metrics["val_cider_beam"] = {str(a): round(s, 4) for a, s in penalties.items()}
    if val_keys:
        metrics["val_cider_greedy"] = round(state["best"], 4)
    if test_keys:
        test_feats = run.rows(test_keys)
        preds = decode_captions(step_model, test_feats, vocab, cfg.max_length, beam=cfg.beam, length_penalty=alpha)
        test_scores = cider(dict(zip(test_keys, preds)), {k: data.references[k] for k in test_keys})
        metrics["test"] = {k: round(v, 4) for k, v in test_scores.items()}
        metrics["test_images"] = len(test_keys)

    model.save_weights(str(out / "decoder.weights.h5"))
    vocab.to_json(out / "vocab.json")
    if weights.resolve() != (out / spec.weights_file).resolve():
        shutil.copyfile(weights, out / spec.weights_file)
    manifest = Manifest(
        name=cfg.name or f"imgcap attend ({spec.title.split(' (')[0]})",
        description=cfg.description or f"Show-Attend-Tell decoder trained on {_data_name(cfg)}.",
        family="attend", family_config=config, encoder=spec.name, feature_shape=list(spec.feature_shape),
        encoder_weights=spec.weights_file, max_length=cfg.max_length, vocabulary="vocab.json",
        weights="decoder.weights.h5", tokens={"start": vocab.start, "end": vocab.end},
        decoding={"beam": cfg.beam, "length_penalty": alpha, "suppress_unknown": True},
        provenance=_provenance(cfg, data, started, state),
        metrics=metrics,
    )
    write_manifest(out, manifest)
    return out


def _build_decoder_in(config: dict, precision: str):
    """The attend decoder with its layers computing in ``precision`` ("float32" or "mixed_bfloat16").

    Under mixed_bfloat16 the weights stay float32 and the matmuls run in bfloat16, which this
    CPU's oneDNN runs on AMX tiles; the weights file is the same as a float32 decoder's.
    """
    import keras

    from imgcap_desktop.core.families.attend import build_decoder

    if precision not in ("float32", "mixed_bfloat16"):
        raise TrainingError(f"unknown precision {precision!r}; use float32 or mixed_bfloat16.")
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(precision)
    try:
        return build_decoder(config)
    finally:
        keras.mixed_precision.set_global_policy(previous)


def _pretrain_language(cfg: TrainConfig, sequences: list[list[int]], train_step, feature_shape, widths) -> None:
    """Teach the decoder English before it sees a photo: captions from the text corpus, no image.

    The image is all zeros, so the context the decoder attends to is a constant and the
    loss trains the embedding, the LSTM and the output layers as a language model on ten
    times more captions than the photos come with. The photos then teach what to say.
    """
    import tensorflow as tf

    if not sequences:
        _log(cfg, "no corpus captions to pre-train on (pass --corpus FILE); skipping language pre-training")
        return
    rng = np.random.default_rng(cfg.seed + 7919)
    tokens_all = _pad(sequences, cfg.max_length + 1)
    # Whole batches only: every batch has the shape the step was traced for.
    batches = len(sequences) // cfg.batch_size
    blank = tf.zeros((cfg.batch_size, *feature_shape), tf.float32)
    for epoch in range(1, cfg.lm_epochs + 1):
        order = rng.permutation(len(sequences))
        losses = []
        began = time.time()
        bar = _bar(batches, f"language {epoch}/{cfg.lm_epochs}", cfg.progress)
        for b in range(batches):
            rows = order[b * cfg.batch_size:(b + 1) * cfg.batch_size]
            losses.append(float(train_step(blank, tf.constant(_trim(tokens_all[rows], widths)))))
            bar.update(1)
            bar.set_postfix(loss=f"{np.mean(losses):.3f}")
        bar.close()
        _log(cfg, f"language epoch {epoch}: loss {np.mean(losses):.3f} on {len(sequences)} text captions "
                  f"({time.time() - began:.0f} s)")


def _scst(cfg, model, data, feats, index, flipped, train_index, step_model, val_feats, val_refs, ckpt, state):
    """Self-critical sequence training (Rennie et al. 2017) with the mean-of-others baseline.

    Several captions are sampled per photo; each one's reward is its CIDEr-D minus the
    mean reward of the photo's other samples, so no greedy pass is needed for the baseline.
    """
    import keras
    import tensorflow as tf

    from imgcap_desktop.core.training.cider import CiderD

    vocab = data.vocab
    train_keys = data.splits["train"]
    scorer = CiderD({k: [r.split() for r in data.references[k]] for k in train_keys})
    k_samples, length = cfg.scst_samples, cfg.max_length
    banned = [i for i in (0, vocab.start_id, vocab.unknown_id) if i is not None]
    ban = tf.constant(np.isin(np.arange(vocab.size), banned) * -1e9, tf.float32)
    optimizer = keras.optimizers.Adam(learning_rate=cfg.scst_learning_rate, clipnorm=5.0)

    @tf.function
    def sample(features):
        (annotations, keys), (h, c_state) = model.begin(features)
        tokens = tf.fill([tf.shape(features)[0]], vocab.start_id)
        out = []
        for _ in range(length):
            logits, h, c_state, _ = model.step(annotations, keys, h, c_state, tokens)
            tokens = tf.cast(tf.random.categorical(logits + ban, 1)[:, 0], tf.int32)
            out.append(tokens)
        return tf.stack(out, axis=1)

    @tf.function
    def policy_step(features, inputs, targets, mask, advantage):
        with tf.GradientTape() as tape:
            logits, _ = model((features, inputs), training=False)
            logp = tf.nn.log_softmax(logits + ban)
            picked = tf.reduce_sum(tf.one_hot(targets, vocab.size) * logp, axis=-1)
            loss = -tf.reduce_sum(advantage[:, None] * picked * mask) / tf.reduce_sum(mask)
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    rng = np.random.default_rng(cfg.seed + 1000)
    per_batch = max(1, cfg.batch_size // k_samples)
    best = state["best"]
    for epoch in range(1, cfg.scst_epochs + 1):
        order = rng.permutation(len(train_keys))
        rewards_seen = []
        bar = _bar(math.ceil(len(order) / per_batch), f"scst {epoch}/{cfg.scst_epochs}", cfg.progress)
        for b in range(0, len(order), per_batch):
            rows = order[b:b + per_batch]
            batch = feats[[index[train_keys[i]] for i in rows]]
            if flipped is not None:
                use_flip = rng.random(len(rows)) < 0.5
                batch = np.where(use_flip[:, None, None], flipped[rows], batch)
            tiled = tf.constant(np.repeat(batch, k_samples, axis=0), tf.float32)
            sampled = sample(tiled).numpy()
            ends = np.argmax(sampled == vocab.end_id, axis=1)
            has_end = (sampled == vocab.end_id).any(axis=1)
            lengths = np.where(has_end, ends + 1, length)
            rewards = np.array([scorer.score(train_keys[rows[i // k_samples]],
                                             [vocab.word_of(t) for t in sampled[i, :lengths[i] - (1 if has_end[i] else 0)]])
                                for i in range(len(sampled))]).reshape(len(rows), k_samples)
            baseline = (rewards.sum(axis=1, keepdims=True) - rewards) / (k_samples - 1)
            advantage = (rewards - baseline).reshape(-1).astype(np.float32)
            mask = (np.arange(length)[None, :] < lengths[:, None]).astype(np.float32)
            inputs = np.concatenate([np.full((len(sampled), 1), vocab.start_id), sampled[:, :-1]], axis=1)
            policy_step(tiled, tf.constant(inputs, tf.int32), tf.constant(sampled, tf.int32),
                        tf.constant(mask), tf.constant(advantage))
            rewards_seen.append(rewards.mean())
            bar.update(1)
            bar.set_postfix(reward=f"{np.mean(rewards_seen):.3f}")
        bar.close()
        preds = decode_captions(step_model, val_feats, vocab, cfg.max_length)
        score = cider(dict(zip(val_refs, preds)), val_refs)["CIDEr"]
        improved = score > best
        state["history"].append({"scst_epoch": epoch, "train_reward": round(float(np.mean(rewards_seen)), 4),
                                 "val_cider": round(score, 4)})
        if improved:
            best = score
            state.update(best=score, best_epoch=f"scst {epoch}")
        ckpt.save(model, None, state, best=improved)
        _log(cfg, f"scst epoch {epoch}: mean sample CIDEr-D {np.mean(rewards_seen):.3f}, val CIDEr {score:.3f} "
                  f"(best {best:.3f}), e.g. “{preds[0]}”")


def _imagenet_head(spec, weights: Path) -> list[np.ndarray]:
    """The encoder's 1000-class classifier weights (kernel, bias) from its weights file."""
    from imgcap_desktop.core.encoders import lite

    full = lite.build_lite(lite.detect_variant(weights), include_top=True)
    lite.load_lite_weights(full, weights)
    return full.get_layer("fc").get_weights()


def _provenance(cfg: TrainConfig, data: Prepared, started: float, state: dict) -> dict:
    settings = {k: v for k, v in asdict(cfg).items() if k not in ("progress", "command")}
    return {
        "training_data": _data_name(cfg), "command": cfg.command, "settings": settings,
        "splits": {s: len(k) for s, k in data.splits.items()},
        "test_images": sorted(data.splits.get("test", [])),
        "training_seconds": round(time.time() - started, 1), "epochs_run": state["epoch"],
        "best_epoch": state["best_epoch"], "history": state["history"],
    }


# --- seed family ------------------------------------------------------------------------


def train_seed(cfg: TrainConfig) -> Path:
    """The legacy topology, trained per prefix as the original notebook did (slow on a CPU)."""
    import keras

    from imgcap_desktop.core.families.seed import SeedFamily, SeedStepModel

    spec = ENCODERS["densenet201"]
    weights = find_weights(spec, Path(cfg.out), None, cfg.encoder_weights)
    run = _start_run(cfg, spec, weights, drop_single_letters=True)
    out, data, feats, index, started = run.out, run.data, run.feats, run.index, run.started
    vocab = data.vocab
    train_keys, val_keys, test_keys = run.train_keys, run.val_keys, run.test_keys
    length = cfg.max_length
    config = {"vocab_size": vocab.size, "max_length": length, "feature_dim": spec.feature_shape[0]}
    keras.utils.set_random_seed(cfg.seed)  # independent of whether features came from the cache
    model, roles = SeedFamily.build(config)
    optimizer = keras.optimizers.Adam(learning_rate=cfg.learning_rate)
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy")
    ckpt = Checkpoints(out)
    state = _new_state()
    if cfg.resume and ckpt.exists():
        state = ckpt.load_state()
        model.load_weights(str(ckpt.folder / "last.weights.h5"))
        _log(cfg, f"resumed after epoch {state['epoch']}")

    # One sample per prefix: (image, left-padded prefix) -> next word.
    samples = [(index[k], seq[:i], seq[i]) for k in train_keys for seq in data.sequences[k] for i in range(1, len(seq))]
    step_model = SeedStepModel(model, roles, length)
    val_feats = run.rows(val_keys)
    val_refs = {k: data.references[k] for k in val_keys}
    rng = np.random.default_rng(cfg.seed + state["epoch"])
    for epoch in range(state["epoch"] + 1, cfg.epochs + 1):
        order = rng.permutation(len(samples))
        bar = _bar(math.ceil(len(samples) / cfg.batch_size), f"epoch {epoch}/{cfg.epochs}", cfg.progress)
        losses = []
        for b in range(0, len(samples), cfg.batch_size):
            chunk = [samples[i] for i in order[b:b + cfg.batch_size]]
            x_img = feats[[c[0] for c in chunk]].astype(np.float32)
            x_seq = np.zeros((len(chunk), length), dtype=np.int32)
            for r, (_, prefix, _) in enumerate(chunk):
                prefix = prefix[-length:]
                x_seq[r, length - len(prefix):] = prefix
            y = np.array([c[2] for c in chunk], dtype=np.int32)
            losses.append(float(model.train_on_batch([x_img, x_seq], y)))
            bar.update(1)
        bar.close()
        preds = decode_captions(step_model, val_feats if val_keys else feats[:1], vocab, length,
                                suppress_unknown=False)
        score = cider(dict(zip(val_keys, preds)), val_refs)["CIDEr"] if val_keys else None
        record = {"epoch": epoch, "loss": round(float(np.mean(losses)), 4),
                  "val_cider": round(score, 4) if score is not None else None}
        if _end_epoch(cfg, state, ckpt, model, None, record, preds[0]):
            break
    model.load_weights(str(ckpt.folder / "best.weights.h5"))
    metrics = {"val_cider_greedy": round(state["best"], 4)} if val_keys else {}
    if test_keys:
        preds = decode_captions(step_model, run.rows(test_keys), vocab, length, suppress_unknown=False)
        metrics["test"] = {k: round(v, 4) for k, v in
                           cider(dict(zip(test_keys, preds)), {k: data.references[k] for k in test_keys}).items()}
    # A compiled model's weights file also carries its optimizer: save a bare copy for the bundle.
    bare, _ = SeedFamily.build(config)
    bare.set_weights(model.get_weights())
    bare.save_weights(str(out / "decoder.weights.h5"))
    vocab.to_json(out / "vocab.json")
    declared = None
    if cfg.encoder_weights:
        shutil.copyfile(weights, out / spec.weights_file)
        declared = spec.weights_file
    manifest = Manifest(
        name="imgcap seed (DenseNet201)", description=f"Seed topology trained on {_data_name(cfg)}.",
        family="seed", family_config=config, encoder=spec.name, feature_shape=list(spec.feature_shape),
        encoder_weights=declared, max_length=length, vocabulary="vocab.json", weights="decoder.weights.h5",
        tokens={"start": vocab.start, "end": vocab.end}, decoding={"beam": 1, "length_penalty": 0.0},
        provenance=_provenance(cfg, data, started, state), metrics=metrics)
    write_manifest(out, manifest)
    return out


def train(cfg: TrainConfig) -> Path:
    import tensorflow as tf

    if cfg.deterministic:
        # With --seed, the same data give the same weights: deterministic kernels (slower on a CPU).
        tf.config.experimental.enable_op_determinism()
    if cfg.family == "attend":
        return train_attend(cfg)
    if cfg.family == "seed":
        return train_seed(cfg)
    raise TrainingError(f"unknown family {cfg.family!r}; choose attend or seed.")
