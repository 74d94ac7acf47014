"""The one facade: a bundle in, captions out.

The GUI's worker, the CLI and the tests all go through :class:`Captioner`. It
validates the bundle before building anything, loads the model once, and turns
bad photos into per-image error records instead of exceptions.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

import numpy as np

from imgcap_desktop.core import decoding, keywords
from imgcap_desktop.core.confidence import Calibration, features_of
from imgcap_desktop.core.bundle import Bundle, read_bundle
from imgcap_desktop.core.encoders import ENCODERS, Encoder, find_weights
from imgcap_desktop.core.errors import BundleError, ImgcapError
from imgcap_desktop.core.families import get_family
from imgcap_desktop.core.images import open_for_model
from imgcap_desktop.core.options import DecodeOptions
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
    def __init__(self, bundle: Bundle, step_model, encoder: Encoder, *, runtime: str = "keras"):
        self.bundle = bundle
        self.runtime = runtime  # "keras" (TensorFlow) or "litert" (the bundle's litert/ export)
        self.manifest = bundle.manifest
        self.vocab = bundle.vocabulary
        self.step_model = step_model
        self.encoder = encoder
        self.spec = encoder.spec
        self._stops = decoding.Stops.from_vocabulary(
            self.vocab, step_model.vocab_size,
            suppress_unknown=bool(self.manifest.decoding.get("suppress_unknown", False)))
        self._start_id = self.vocab.id_of(self.manifest.tokens["start"])
        # read_bundle has validated both entries.
        self.calibration = (Calibration.from_json(self.manifest.calibration)
                            if self.manifest.calibration is not None else None)
        self.keyword_threshold = float(self.manifest.keywords.get("threshold", keywords.DEFAULT_THRESHOLD))

    @classmethod
    def load(cls, source: str | Path | None = None, *, encoder_weights: str | Path | None = None,
             runtime: str = "auto") -> "Captioner":
        """``runtime``: "keras", "litert", or "auto" (see :func:`runtime_litert.choose_runtime`)."""
        from imgcap_desktop.core import runtime_litert

        path, beside = resolve_source(source)
        bundle = read_bundle(path, keras_weights=runtime_litert.tensorflow_available())
        override = encoder_weights or beside
        chosen = runtime_litert.choose_runtime(bundle, runtime, encoder_override=bool(override))
        if chosen == "litert":
            step_model, encoder = runtime_litert.load(bundle, encoder_weights=override)
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

    @property
    def has_attention(self) -> bool:
        """Whether captions carry per-word attention over the encoder's grid (the attend family does)."""
        return self.manifest.family == "attend"

    @property
    def grid_shape(self) -> tuple[int, int] | None:
        """(rows, columns) of the attention grid, e.g. (7, 7); None without spatial attention."""
        cells = int(self.spec.feature_shape[0])
        side = int(round(cells ** 0.5))
        return (side, side) if self.has_attention and side * side == cells else None

    def default_beam(self) -> int:
        return int(self.manifest.decoding.get("beam", 1) or 1)

    # --- captioning --------------------------------------------------------

    def resolve(self, options: DecodeOptions) -> DecodeOptions:
        """The options with this model's own beam, length limit and penalty where none was asked for."""
        return options.resolved(beam=self.default_beam(), max_length=self.manifest.max_length,
                                length_penalty=float(self.manifest.decoding.get("length_penalty", 0.0)),
                                keyword_guide=float(self.manifest.decoding.get("keyword_guide", 0.0)))

    def caption_features(self, features: np.ndarray, *, beam: int = 0, max_length: int = 0,
                         length_penalty: float | None = None, keyword_guide: float | None = None) -> list[Caption]:
        options = self.resolve(DecodeOptions(beam=beam, max_length=max_length, length_penalty=length_penalty,
                                             keyword_guide=keyword_guide))
        return self._decode(features, options)

    def _decode(self, features: np.ndarray, options: DecodeOptions) -> list[Caption]:
        # Attention is always kept: it costs a few floats per word, and the confidence and the
        # app's overlay both read it.
        def search(rows: np.ndarray, required=None):
            return decoding.beam_search(self.step_model, rows, beam=options.beam, start_id=self._start_id,
                                        stops=self._stops, max_length=options.max_length,
                                        length_penalty=options.length_penalty, keep_attention=True,
                                        no_repeat_ngram=int(self.manifest.decoding.get("no_repeat_ngram", 0)),
                                        required=required)

        ranked = search(features)
        concepts = self.step_model.concepts(features)
        if concepts is not None and options.keyword_guide:
            # Only photos whose caption leaves out a sure keyword are searched again, with that word
            # required: the rest keep the caption they had, and pay nothing more.
            wanted = [keywords.missing_from(" ".join(self.vocab.decode(hyps[0].tokens)), c, options.keyword_guide,
                                            self.vocab) for hyps, c in zip(ranked, concepts)]
            again = [i for i, ids in enumerate(wanted) if ids is not None]
            # A search that found no finished caption holding the word (one cut off by the length
            # limit does not count) keeps the unguided one.
            for i, hyps in zip(again, search(features[again], [wanted[i] for i in again]) if again else ()):
                if hyps and hyps[0].met and hyps[0].steps > len(hyps[0].tokens):
                    ranked[i] = hyps
        return [self._caption(hyps, options.length_penalty, None if concepts is None else concepts[i])
                for i, hyps in enumerate(ranked)]

    def _caption(self, hyps: Sequence[decoding.Hypothesis], penalty: float, concepts: np.ndarray | None) -> Caption:
        words = self.vocab.word_of
        alternatives = tuple(Alternative(" ".join(words(t) for t in h.tokens), h.log_prob, h.score(penalty))
                             for h in hyps)
        best = hyps[0]
        attention = np.stack(best.attention) if best.attention else None
        signals = features_of(best.token_log_probs, [a.score for a in alternatives], len(best.tokens),
                              attention, concepts)
        confidence = self.calibration.predict(signals) if self.calibration is not None else None
        tags = keywords.from_probabilities(concepts, self.keyword_threshold) if concepts is not None else ()
        return Caption(text=alternatives[0].text, score=alternatives[0].score, alternatives=alternatives,
                       attention=attention, confidence=confidence, keywords=tags, signals=signals,
                       classes=None if concepts is None else np.asarray(concepts, dtype=np.float32))

    def caption_paths(self, paths: Iterable[str | Path], *, beam: int = 0, max_length: int = 0,
                      batch_size: int = 8, cancelled: Callable[[], bool] | None = None,
                      length_penalty: float | None = None,
                      keyword_guide: float | None = None) -> Iterator[CaptionResult]:
        """One record per path, in order; stops early (yielding nothing more) once ``cancelled()`` is true."""
        options = self.resolve(DecodeOptions(beam=beam, max_length=max_length, batch_size=batch_size,
                                             length_penalty=length_penalty, keyword_guide=keyword_guide))
        batch: list[tuple[Path, np.ndarray]] = []
        pending: list[CaptionResult | None] = []  # keeps errors in order with the photos around them

        def flush() -> Iterator[CaptionResult]:
            if batch:
                yield from self._run_batch(batch, pending, options)
            else:
                yield from (r for r in pending if r is not None)
            batch.clear()
            pending.clear()

        for raw in paths:
            if cancelled is not None and cancelled():
                return
            path = Path(raw)
            try:
                array = open_for_model(path, self.spec.input_size, resample=self.spec.resample)
            except ImgcapError as exc:
                pending.append(CaptionResult(path, error=str(exc)))
                continue
            except Exception as exc:  # a reader bug must not end a batch of thousands
                pending.append(CaptionResult(path, error=f"{path.name}: cannot be read ({exc})."))
                continue
            batch.append((path, array))
            pending.append(None)
            if len(batch) >= options.batch_size:
                yield from flush()
        if cancelled is not None and cancelled():
            return
        yield from flush()

    def _run_batch(self, batch, pending, options: DecodeOptions):
        try:
            features = self.encoder(np.stack([a for _, a in batch]))
            captions = self._decode(features, options)
        except Exception as exc:  # keep going with the next batch; every photo here gets the reason
            message = f"captioning failed: {exc}".splitlines()[0]
            results = iter([CaptionResult(p, error=f"{p.name}: {message}") for p, _ in batch])
        else:
            results = iter([CaptionResult(p, caption=c) for (p, _), c in zip(batch, captions)])
        for record in pending:
            yield record if record is not None else next(results)

