"""Plain keywords from the encoder's ImageNet head ("tabby cat" -> "tabby cat", "cat").

The table (``data/imagenet_keywords.json``, built by ``scripts/build_keyword_table.py``; its
provenance is in ``data/imagenet_keywords.md``) gives each of the 1000 classes its everyday name
and a broader word from WordNet's hypernyms. A keyword's probability is the sum over the classes
that give it: "dog" collects all 120 breeds, so a photo the head cannot place among the breeds is
still confidently a dog. A photo's keywords are those whose probability reaches the threshold,
likeliest first.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from importlib import resources
from typing import Iterable, Sequence

import numpy as np

#: Used when a bundle's manifest does not set ``keywords.threshold`` (chosen on val for the default model).
DEFAULT_THRESHOLD = 0.2
MAX_KEYWORDS = 8


@lru_cache(maxsize=1)
def table() -> dict:
    text = resources.files("imgcap_desktop.core").joinpath("data/imagenet_keywords.json").read_text("utf-8")
    document = json.loads(text)
    if len(document["classes"]) != 1000:
        raise ValueError("imagenet_keywords.json must list 1000 classes")
    return document


def class_keywords(index: int) -> list[str]:
    return list(table()["classes"][index])


def from_probabilities(probs: np.ndarray, threshold: float = DEFAULT_THRESHOLD,
                       limit: int = MAX_KEYWORDS) -> tuple[str, ...]:
    """Keywords of one photo's (1000,) class probabilities, likeliest first."""
    scored = scores(probs)
    return tuple(w for w, p in scored[:limit] if p >= threshold)


def scores(probs: np.ndarray) -> list[tuple[str, float]]:
    """Every keyword with its probability (summed over the classes that give it), likeliest first."""
    probs = np.asarray(probs, dtype=np.float64).ravel()
    classes = table()["classes"]
    if probs.size != len(classes):
        return []
    total: dict[str, float] = {}
    # Classes under 1e-4 cannot lift any keyword to a threshold that matters; skipping them
    # keeps this a few microseconds per photo.
    for index in np.flatnonzero(probs >= 1e-4):
        for word in classes[index]:
            total[word] = total.get(word, 0.0) + float(probs[index])
    return sorted(total.items(), key=lambda item: -item[1])


def parse(text: str) -> tuple[str, ...]:
    """Keywords as a person types them: comma or semicolon separated, blanks dropped, each once."""
    words: list[str] = []
    for part in re.split(r"[,;\n]", text or ""):
        word = " ".join(part.split())
        if word and word.lower() not in (w.lower() for w in words):
            words.append(word)
    return tuple(words)


def join(words: Iterable[str]) -> str:
    return ", ".join(words)


def _forms(word: str) -> set[str]:
    word = word.lower()
    forms = {word, word + "s", word + "es"}
    if word.endswith("y"):
        forms.add(word[:-1] + "ies")
    forms.update(s.lower() for s in table()["synonyms"].get(word, ()))
    return forms


def missing_from(caption: str, probs: np.ndarray, threshold: float, vocab) -> np.ndarray | None:
    """Word ids that would name the photo's likeliest keyword, when ``caption`` names none of them.

    Keywords at ``threshold`` or above count; a caption names one with any of its forms, or with
    a compound ending in one ("basketball" names "ball"). Otherwise the first keyword (likeliest
    first) with a one-word form in the vocabulary is the one asked for: "tabby cat" has none,
    "cat" gives cat, cats and kitten where the vocabulary has them. None: nothing to ask for.
    """
    sure = [word for word, p in scores(probs) if p >= threshold]
    words = re.findall(r"[a-z0-9]+", caption.lower())
    # A compound names its last part ("basketball", "football": ball), but a short form inside a
    # word is a coincidence ("ox" in "box", "ram" in "program").
    if not sure or any(matches(word, [caption]) or
                       any(w.endswith(form) for w in words for form in _forms(word) if " " not in form and len(form) >= 4)
                       for word in sure):
        return None
    for word in sure:
        ids = sorted({vocab.id_of(form) for form in _forms(word) if " " not in form} - {None, vocab.unknown_id})
        if ids:
            return np.asarray(ids, dtype=np.int64)
    return None


def matches(word: str, references: Sequence[str]) -> bool:
    """Whether a keyword, its plural or a listed synonym appears in one of the reference captions."""
    padded = [" " + " ".join(re.findall(r"[a-z0-9]+", r.lower())) + " " for r in references]
    return any(f" {form} " in text for form in _forms(word) for text in padded)
