"""The one record schema for a captioned (or failed) photo.

`imgcap caption --format jsonl|csv` and the app's Export write these same records, so
a script that reads one reads the other. Every record has every key; the ones that do
not apply to a photo are null (JSON) or empty (CSV):

- ``image``: the photo's path as given;
- ``status``: ``done``, ``failed``, ``waiting``, ``cancelled`` or ``found`` (a caption already written
  for the photo, shown by the app); the CLI writes only the first two;
- ``caption``: the caption on one line (a user's edit in the app), or null;
- ``edited``: true when a person changed the model's caption;
- ``score``: the beam's ranking score of the model's caption: the log-probability divided by
  length**length_penalty (for the default model, the mean log-probability per word; 0 is certain);
- ``alternatives``: beam search's candidates, best first, each ``{caption, score, log_prob}``
  (``log_prob``: the summed log-probability); empty when there is no caption;
- ``confidence``: the estimated probability, from 0 to 1, that the model's caption is good (see
  core.confidence and the model card); null for a model without a calibration (the seed model),
  for a failed photo, and for a caption a person wrote or edited (it is theirs, not the model's);
- ``keywords``: plain keywords from the encoder's ImageNet classes (core.keywords), or the ones a
  person set in the app; a list (CSV: joined by ", "), empty when there are none;
- ``error``: one sentence saying why the photo has no caption, or null;
- ``written``: what was written where (``imgcap caption --write``, see core.writers), each
  ``{target, path, result, error}``; empty when nothing was asked.
"""

from __future__ import annotations

import os
from typing import Any

from .results import Caption

RECORD_KEYS = ("image", "status", "caption", "edited", "score", "confidence", "keywords", "alternatives", "error",
               "written")
#: The CSV holds every key but the alternatives (a list does not fit a cell); ``written`` is
#: "target:result:path" entries joined by "; ".
CSV_COLUMNS = ("image", "status", "caption", "edited", "score", "confidence", "keywords", "error", "written")

DONE = "done"
FAILED = "failed"


def one_line(text: str) -> str:
    return " ".join(text.split())


def make_record(image: str | os.PathLike, *, caption: Caption | None = None, text: str | None = None,
                edited: bool = False, error: str | None = None, status: str | None = None,
                written: list[dict] | None = None, keywords: tuple[str, ...] | list[str] | None = None
                ) -> dict[str, Any]:
    """``text`` (an edit) overrides the model's caption and ``keywords`` its keywords; the status
    follows from what is there."""
    words = one_line(text if text is not None else (caption.text if caption is not None else ""))
    if status is None:
        status = DONE if words else FAILED
    return {
        "image": os.fspath(image),
        "status": status,
        "caption": words or None,
        "edited": bool(edited),
        "score": round(float(caption.score), 4) if caption is not None else None,
        "confidence": (round(float(caption.confidence), 4)
                       if caption is not None and caption.confidence is not None and not edited else None),
        "keywords": list(keywords if keywords is not None else (caption.keywords if caption is not None else ())),
        "alternatives": [
            {"caption": a.text, "score": round(float(a.score), 4), "log_prob": round(float(a.log_prob), 4)}
            for a in caption.alternatives
        ] if caption is not None else [],
        "error": error or None,
        "written": list(written or []),
    }


def csv_row(record: dict[str, Any]) -> list[str]:
    def cell(key: str) -> str:
        value = record[key]
        if value is None:
            return ""
        if key == "written":
            return "; ".join(f"{w['target']}:{w['result']}:{w['path']}" for w in value)
        if key == "keywords":
            return ", ".join(value)
        if isinstance(value, bool):
            return "true" if value else "false"
        return str(value)

    return [cell(key) for key in CSV_COLUMNS]
