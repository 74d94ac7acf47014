"""What the engine hands back: plain, picklable data with no TensorFlow inside."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class Alternative:
    text: str
    log_prob: float  # sum of the word log-probabilities, end token included
    # What beam search ranked by: log_prob / length**length_penalty (see decoding.Hypothesis.score).
    score: float


@dataclass(frozen=True)
class Caption:
    text: str
    # The ranking score of `text` (alternatives[0].score), so that the caption and its
    # alternatives are on one scale; with a length penalty of 1 it is the mean per word.
    score: float
    # Beam search's k best, best first (the first one is `text`); one entry for greedy decoding.
    alternatives: tuple[Alternative, ...] = ()
    # (words, grid cells) attention weights for families that attend over a feature grid.
    attention: np.ndarray | None = field(default=None, compare=False, repr=False)
    # The estimated probability that the caption is good (core.confidence); None for a bundle without
    # a calibration (the seed model), or a family lacking a feature the calibration uses.
    confidence: float | None = None
    # Plain keywords from the encoder's ImageNet head (core.keywords); empty for families without one.
    keywords: tuple[str, ...] = ()
    # What the confidence was computed from (core.confidence.FEATURES); kept for fitting and reports.
    signals: dict = field(default_factory=dict, compare=False, repr=False)
    # The encoder's (1000,) ImageNet class probabilities the keywords came from; None without a head.
    classes: np.ndarray | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class CaptionResult:
    """One record per input: either a caption or a one-sentence error."""

    path: Path | None
    caption: Caption | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.caption is not None
