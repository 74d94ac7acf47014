"""Sane upper bounds for every number a model folder states, checked before anything is allocated.

A manifest, a vocabulary or a legacy pickle is data from outside: a beam of a million, an
LSTM of 20,000 units or a word id of 10^12 must be refused with a sentence naming the file
and the field, not discovered as a 10 GB allocation. The bounds are far above any real
captioning model (the default model: beam 3, 512 units, 2,532 words, 22 tokens), so they
refuse nothing a person would train.
"""

from __future__ import annotations

import math
from typing import Any, Iterable

MAX_BEAM = 10              # the Settings dialog's and the CLI's own limit
MAX_LENGTH = 200           # tokens per caption
MAX_VOCABULARY = 200_000   # words (Flickr30k has 18k, COCO 27k before a min-count)
MAX_WIDTH = 8192           # any layer width: units, embedding, projection, attention, output
MAX_FEATURE_DIM = 8192
MAX_GRID_CELLS = 4096
MAX_CLASSES = 100_000
MAX_MEMBERS = 8
MAX_NGRAM = 10
MAX_LENGTH_PENALTY = 3.0
MAX_PARAMETERS = 2_000_000_000
MAX_VOCABULARY_BYTES = 64 * 1024 * 1024   # a vocab.json / tokenizer.pkl read into memory
MAX_LEGACY_ID = 1_000_000   # a Keras tokenizer's word ids (it keeps every word it saw, not only num_words)


def integer_problem(where: str, name: str, value: Any, low: int, high: int) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int):
        return f"{where}: {name} must be a whole number, not {value!r}"
    if not low <= value <= high:
        return f"{where}: {name} is {value:,}; it must be from {low:,} to {high:,}"
    return None


def number_problem(where: str, name: str, value: Any, low: float, high: float) -> str | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return f"{where}: {name} must be a number, not {value!r}"
    if not low <= value <= high:
        return f"{where}: {name} is {value:g}; it must be from {low:g} to {high:g}"
    return None


def parameter_count(shapes: Iterable[tuple[int, ...]]) -> int:
    return sum(math.prod(shape) for shape in shapes)


def decoding_problem(where: str, decoding: dict) -> str | None:
    """The manifest's recommended decoding: beam, length penalty, repeat blocking, keyword guide."""
    checks = (("beam", 1, MAX_BEAM, integer_problem), ("no_repeat_ngram", 0, MAX_NGRAM, integer_problem),
              ("length_penalty", 0.0, MAX_LENGTH_PENALTY, number_problem),
              ("keyword_guide", 0.0, 1.0, number_problem))
    for key, low, high, check in checks:
        if key in decoding:
            problem = check(where, f"decoding.{key}", decoding[key], low, high)
            if problem:
                return problem
    return None
