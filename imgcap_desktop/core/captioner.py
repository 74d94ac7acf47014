"""The one facade: a bundle in, captions out.

The GUI's worker, the CLI and the tests all go through :class:`Captioner`. It
validates the bundle before building anything, loads the model once, and turns
bad photos into per-image error records instead of exceptions.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

import numpy as np

from imgcap_desktop.core import decoding
from imgcap_desktop.core.bundle import Bundle, read_bundle
from imgcap_desktop.core.encoders import ENCODERS, Encoder, find_weights
from imgcap_desktop.core.errors import BundleError, ImgcapError
from imgcap_desktop.core.families import get_family
from imgcap_desktop.core.images import open_for_model
from imgcap_desktop.core.paths import default_bundle_dir
from imgcap_desktop.core.results import Alternative, Caption, CaptionResult


def resolve_source(source: str | Path | None, *, encoder_weights=None) -> tuple[Path, Path | None]:
    """The bundle folder for a user's choice (None = the default model), importing a seed folder on the fly.

    Also returns encoder weights found beside a seed model, if any.
    """
    from imgcap_desktop.core.seed_import import cached_import, find_seed_files

    if source is None or str(source) == "":
        path = default_bundle_dir()
        if not (path / "manifest.json").is_file():
            raise BundleError(f"The default model is missing from {path}; reinstall imgcap-desktop or pass --model.")
        return path, None
    path = Path(source).expanduser()
    if path.is_file() and path.suffix in (".h5", ".pkl", ".json"):
        path = path.parent
    if (path / "manifest.json").is_file():
        return path, None
    if path.is_dir() and find_seed_files(path):
        beside = next((path / n for n in ENCODERS["densenet201"].keras_cache_names if (path / n).is_file()), None)
        return cached_import(path), beside
    if not path.exists():
        raise BundleError(f"{path}: no such model folder.")
    raise BundleError(f"{path.name}: neither a model bundle (manifest.json) nor a seed model folder "
                      f"(image_caption.h5 + tokenizer.pkl).")


class Captioner:
    def __init__(self, bundle: Bundle, step_model, encoder: Encoder, *, load_seconds: float = 0.0,
                 runtime: str = "keras"):
        self.bundle = bundle
        self.runtime = runtime  # "keras" (TensorFlow) or "litert" (the bundle's litert/ export)
        self.manifest = bundle.manifest
        self.vocab = bundle.vocabulary
        self.step_model = step_model
        self.encoder = encoder
        self.spec = encoder.spec
        self.load_seconds = load_seconds
        self._stops = decoding.Stops.from_vocabulary(
            self.vocab, step_model.vocab_size,
            suppress_unknown=bool(self.manifest.decoding.get("suppress_unknown", False)))
        self._start_id = self.vocab.id_of(self.manifest.tokens["start"])

    @classmethod
    def load(cls, source: str | Path | None = None, *, encoder_weights: str | Path | None = None,
             runtime: str = "auto") -> "Captioner":
        """``runtime``: "keras", "litert", or "auto" (see :func:`runtime_litert.choose_runtime`)."""
        from imgcap_desktop.core import runtime_litert

        began = time.perf_counter()
        path, beside = resolve_source(source)
        bundle = read_bundle(path, keras_weights=runtime_litert.tensorflow_available())
        override = encoder_weights or beside
        chosen = runtime_litert.choose_runtime(bundle, runtime, encoder_override=bool(override))
        if chosen == "litert":
            step_model, encoder = runtime_litert.load(bundle)
        else:
            from imgcap_desktop.core.tf_quiet import import_tensorflow

            import_tensorflow()
            spec = bundle.encoder_spec
            weights = find_weights(spec, bundle.path, bundle.manifest.encoder_weights, encoder_weights or beside)
            family = get_family(bundle.manifest.family)
            step_model = family.load_step_model(bundle.manifest.family_config, bundle.file(bundle.manifest.weights))
            encoder = Encoder(spec, weights)
        captioner = cls(bundle, step_model, encoder, runtime=chosen)
        captioner._warm_up()
        captioner.load_seconds = time.perf_counter() - began
        return captioner

    def _warm_up(self) -> None:
        """Run one blank photo through encoder and decoder so every graph is built during loading.

        The first real caption is then as fast as the rest, and no graph is built later, in the
        middle of a batch, on a worker thread.
        """
        blank = np.zeros((1, self.spec.input_size, self.spec.input_size, 3), dtype=np.float32)
        self.caption_features(self.encoder(blank), beam=2, max_length=2)

    # --- description -----------------------------------------------------

    @property
    def name(self) -> str:
        return self.manifest.name

    @property
    def description(self) -> str:
        return self.manifest.description

    def default_beam(self) -> int:
        return int(self.manifest.decoding.get("beam", 1) or 1)

    # --- captioning --------------------------------------------------------

    def caption_features(self, features: np.ndarray, *, beam: int = 0, max_length: int = 0,
                         length_penalty: float | None = None, keep_attention: bool = False) -> list[Caption]:
        beam = beam or self.default_beam()
        limit = max_length or self.manifest.max_length
        penalty = float(self.manifest.decoding.get("length_penalty", 0.0)) if length_penalty is None else length_penalty
        ranked = decoding.beam_search(self.step_model, features, beam=beam, start_id=self._start_id,
                                      stops=self._stops, max_length=limit, length_penalty=penalty,
                                      keep_attention=keep_attention,
                                      no_repeat_ngram=int(self.manifest.decoding.get("no_repeat_ngram", 0)))
        return [self._caption(hyps, keep_attention) for hyps in ranked]

    def _caption(self, hyps: Sequence[decoding.Hypothesis], keep_attention: bool) -> Caption:
        words = self.vocab.word_of
        texts = [" ".join(words(t) for t in h.tokens) for h in hyps]
        best = hyps[0]
        attention = np.stack(best.attention) if keep_attention and best.attention else None
        return Caption(
            text=texts[0], score=best.log_prob / max(best.steps, 1),
            alternatives=tuple(Alternative(t, h.log_prob) for t, h in zip(texts, hyps)),
            attention=attention)

    def caption_arrays(self, images: Sequence[np.ndarray], **decode) -> list[Caption]:
        """Captions for RGB arrays already resized to the encoder's input size (0..255)."""
        features = self.encoder(np.stack([np.asarray(i, dtype=np.float32) for i in images]))
        return self.caption_features(features, **decode)

    def caption_paths(self, paths: Iterable[str | Path], *, beam: int = 0, max_length: int = 0,
                      batch_size: int = 8, cancelled: Callable[[], bool] | None = None,
                      length_penalty: float | None = None, keep_attention: bool = False) -> Iterator[CaptionResult]:
        """One record per path, in order; stops early (yielding nothing more) once ``cancelled()`` is true."""
        batch: list[tuple[Path, np.ndarray]] = []
        pending: list[CaptionResult | None] = []  # keeps errors in order with the photos around them
        load_time = 0.0

        def flush() -> Iterator[CaptionResult]:
            nonlocal load_time
            if batch:
                yield from self._run_batch(batch, pending, load_time, beam, max_length, length_penalty, keep_attention)
            else:
                yield from (r for r in pending if r is not None)
            batch.clear()
            pending.clear()
            load_time = 0.0

        for raw in paths:
            if cancelled is not None and cancelled():
                return
            path = Path(raw)
            began = time.perf_counter()
            try:
                array = open_for_model(path, self.spec.input_size, resample=self.spec.resample)
            except ImgcapError as exc:
                pending.append(CaptionResult(path, error=str(exc)))
                continue
            except Exception as exc:  # a reader bug must not end a batch of thousands
                pending.append(CaptionResult(path, error=f"{path.name}: cannot be read ({exc})."))
                continue
            load_time += time.perf_counter() - began
            batch.append((path, array))
            pending.append(None)
            if len(batch) >= batch_size:
                yield from flush()
        if cancelled is not None and cancelled():
            return
        yield from flush()

    def _run_batch(self, batch, pending, load_time, beam, max_length, length_penalty, keep_attention):
        n = len(batch)
        try:
            t0 = time.perf_counter()
            features = self.encoder(np.stack([a for _, a in batch]))
            t1 = time.perf_counter()
            captions = self.caption_features(features, beam=beam, max_length=max_length,
                                             length_penalty=length_penalty, keep_attention=keep_attention)
            t2 = time.perf_counter()
        except Exception as exc:  # keep going with the next batch; every photo here gets the reason
            message = f"captioning failed: {exc}".splitlines()[0]
            results = iter([CaptionResult(p, error=f"{p.name}: {message}") for p, _ in batch])
        else:
            timing = {"load": load_time / n, "encode": (t1 - t0) / n, "decode": (t2 - t1) / n}
            results = iter([CaptionResult(p, caption=_with_timings(c, timing)) for (p, _), c in zip(batch, captions)])
        for record in pending:
            yield record if record is not None else next(results)


def _with_timings(caption: Caption, timings: dict[str, float]) -> Caption:
    return Caption(caption.text, caption.score, caption.alternatives, caption.attention, dict(timings))
