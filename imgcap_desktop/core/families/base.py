"""The step API every model family implements, and the family registry.

Decoding (greedy and beam, in ``decoding.py``) is written once against
:class:`StepModel`. A family turns encoder features into a per-image *context*
(computed once) and a per-hypothesis *state*, then advances one token at a time.
Context and state are tuples of backend arrays whose first axis is the row
(image × beam); the decoder only ever reorders rows through :meth:`StepModel.select`,
so a family may keep TensorFlow tensors (or LiteRT buffers) there without copies
back to NumPy at every step.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Any, ClassVar, Sequence

import numpy as np

Arrays = tuple[Any, ...]


@dataclass
class StepOutput:
    log_probs: np.ndarray            # (rows, vocab) float32, log-softmax of the next-token distribution
    state: Arrays                    # state after consuming the given tokens
    attention: np.ndarray | None = None  # (rows, grid cells) weights used for this step, if the family attends


class StepModel(abc.ABC):
    """A decoder driven one token at a time."""

    vocab_size: int
    max_length: int  # the family's natural limit on generated tokens

    @abc.abstractmethod
    def begin(self, features: np.ndarray) -> tuple[Arrays, Arrays]:
        """Per-image context and the initial state for a batch of encoder features."""

    @abc.abstractmethod
    def step(self, context: Arrays, state: Arrays, tokens: np.ndarray) -> StepOutput:
        """Consume ``tokens`` (rows,) int32 (the start token first) and predict the next one."""

    @abc.abstractmethod
    def select(self, arrays: Arrays, rows: np.ndarray) -> Arrays:
        """The given rows of every array, in order (rows may repeat)."""

    def concepts(self, features: np.ndarray) -> np.ndarray | None:
        """(images, classes) probabilities of the encoder's ImageNet head, for families that carry it.

        Keywords and the confidence's class features come from here; None means the family has no head.
        """
        return None


class TensorStepModel(StepModel):
    """A step model whose context and state are TensorFlow tensors (the Keras runtime)."""

    def select(self, arrays: Arrays, rows: np.ndarray) -> Arrays:
        import tensorflow as tf

        idx = tf.constant(np.asarray(rows, dtype=np.int32))
        return tuple(tf.gather(a, idx) for a in arrays)


@dataclass(frozen=True)
class WeightSpec:
    """Shapes of a family's weights, known without building anything.

    Bundles are checked against this before TensorFlow is imported, so a tampered
    or mismatched weights file fails with a sentence rather than deep in Keras.
    """

    shapes: tuple[tuple[int, ...], ...]

    def mismatch(self, found: Sequence[tuple[int, ...]]) -> str | None:
        want = sorted(self.shapes)
        got = sorted(tuple(s) for s in found)
        if want == got:
            return None
        missing = [s for s in want if s not in got]
        extra = [s for s in got if s not in want]
        return f"expected {len(want)} arrays, found {len(got)}; missing shapes {missing[:3]}, unexpected {extra[:3]}"


class Family(abc.ABC):
    """A model family: its configuration, weight shapes, and how to build its step model."""

    name: ClassVar[str]

    @classmethod
    @abc.abstractmethod
    def weight_spec(cls, config: dict) -> WeightSpec:
        """Shapes of the decoder weights file for this configuration (pure Python)."""

    @classmethod
    @abc.abstractmethod
    def check_config(cls, config: dict) -> str | None:
        """A sentence saying what is wrong with the configuration, or None."""

    @classmethod
    @abc.abstractmethod
    def load_step_model(cls, config: dict, weights_path) -> StepModel:
        """Build the graph (TensorFlow imported here, not at module import) and load weights."""
