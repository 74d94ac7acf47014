"""The app's queue on disk: one SQLite file, written as each change happens.

Why SQLite (the standard library's ``sqlite3``): every change is one small transaction,
and a transaction that was committed survives the process being killed at any moment
(WAL journal; ``synchronous=NORMAL`` gives up only the last commits on a power cut or an
operating-system crash, never the file's integrity). A half-written JSON file, by
contrast, would lose the whole queue. The app writes a row when a photo is added, when
its caption arrives and on each edit, so a kill loses at most the keystrokes of the edit
being typed in the instant of the kill.

One store belongs to one app instance at a time; the GUI's session picks a free file
(see ``gui.session.open_store``). SQLite's own locking still keeps a second writer from
corrupting the file if that rule is ever broken: its writes wait (``busy_timeout``)
rather than interleave.
"""

from __future__ import annotations

import functools
import json
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, TypeVar

import numpy as np

from .errors import ImgcapError
from .results import Alternative, Caption

SCHEMA_VERSION = 2

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS photos (
    path       TEXT PRIMARY KEY,
    position   INTEGER NOT NULL,
    status     TEXT NOT NULL,
    text       TEXT NOT NULL DEFAULT '',
    saved_text TEXT NOT NULL DEFAULT '',
    edited     INTEGER NOT NULL DEFAULT 0,
    error      TEXT NOT NULL DEFAULT '',
    caption    TEXT,
    source     TEXT NOT NULL DEFAULT '',
    keywords   TEXT,
    saved_keywords TEXT,
    updated    REAL NOT NULL
);
"""
# Version 1 files (before keywords) gain the columns; NULL there means "the model's keywords" and
# "no keywords of a person's saved anywhere".
_MIGRATIONS = {1: ("ALTER TABLE photos ADD COLUMN keywords TEXT",
                   "ALTER TABLE photos ADD COLUMN saved_keywords TEXT")}


class StoreError(ImgcapError):
    """The session file cannot be opened or written."""


F = TypeVar("F", bound=Callable[..., Any])


def _writes(method: F) -> F:
    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except sqlite3.Error as exc:
            raise StoreError(f"The session file {self.path} cannot be written ({exc}).") from exc

    return wrapper  # type: ignore[return-value]


@dataclass
class StoredPhoto:
    path: str
    status: str
    text: str = ""
    saved_text: str = ""
    edited: bool = False
    error: str = ""
    caption: Caption | None = None
    source: str = ""
    keywords: tuple[str, ...] | None = None  # a person's keywords; None: the model's (in caption)
    saved_keywords: tuple[str, ...] | None = None  # the keywords last written somewhere

    @property
    def unsaved(self) -> bool:
        return bool(self.text.strip()) and self.text != self.saved_text


def caption_to_json(caption: Caption | None) -> str | None:
    if caption is None:
        return None
    data = {"text": caption.text, "score": caption.score,
            "alternatives": [[a.text, a.log_prob, a.score] for a in caption.alternatives],
            "confidence": caption.confidence, "keywords": list(caption.keywords)}
    if caption.attention is not None:
        # A few hundred numbers per photo; four decimals are finer than any overlay shows.
        data["attention"] = np.round(np.asarray(caption.attention, dtype=np.float64), 4).tolist()
    return json.dumps(data, ensure_ascii=False)


def caption_from_json(text: str | None) -> Caption | None:
    if not text:
        return None
    try:
        data = json.loads(text)
        alternatives = tuple(Alternative(str(t), float(lp), float(s)) for t, lp, s in data.get("alternatives", ()))
        confidence = data.get("confidence")
        confidence = float(confidence) if isinstance(confidence, (int, float)) and 0 <= confidence <= 1 else None
        attention = data.get("attention")
        attention = np.asarray(attention, dtype=np.float32) if attention else None
        if attention is not None and attention.ndim != 2:
            attention = None
        return Caption(text=str(data["text"]), score=float(data["score"]), alternatives=alternatives,
                       attention=attention, confidence=confidence,
                       keywords=tuple(str(k) for k in data.get("keywords", ()) if isinstance(k, str)))
    except (ValueError, KeyError, TypeError):
        return None  # a damaged caption record costs its score and alternatives, not the photo's text


def keywords_to_json(keywords: tuple[str, ...] | None) -> str | None:
    return None if keywords is None else json.dumps(list(keywords), ensure_ascii=False)


def keywords_from_json(text: str | None) -> tuple[str, ...] | None:
    if text is None:
        return None
    try:
        data = json.loads(text)
    except ValueError:
        return None
    return tuple(str(k) for k in data if isinstance(k, str)) if isinstance(data, list) else None


class SessionStore:
    """Photos in queue order with their caption, edit and saved state."""

    def __init__(self, path: Path):
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # isolation_level=None: autocommit, with explicit transactions where several rows change.
            self._db = sqlite3.connect(str(self.path), timeout=10.0, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
            self._check_version()
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"The session file {self.path} cannot be used ({exc}).") from exc
        except OSError as exc:
            raise StoreError(f"The session file {self.path} cannot be created ({exc.strerror or exc}).") from exc

    def _check_version(self) -> None:
        row = self._db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
        if row is None:
            self._db.execute("INSERT INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
            return
        version = int(row[0]) if row[0].isdigit() else -1
        if version in _MIGRATIONS:
            with self._transaction():
                for step in range(version, SCHEMA_VERSION):
                    for statement in _MIGRATIONS[step]:
                        self._db.execute(statement)
                self._db.execute("UPDATE meta SET value = ? WHERE key = 'schema'", (str(SCHEMA_VERSION),))
        elif version != SCHEMA_VERSION:
            raise sqlite3.DatabaseError(f"schema version {row[0]}, this app reads {SCHEMA_VERSION}")

    def close(self) -> None:
        self._db.close()

    # --- reading -------------------------------------------------------------

    def photos(self) -> list[StoredPhoto]:
        rows = self._db.execute("SELECT path, status, text, saved_text, edited, error, caption, source, keywords, "
                                "saved_keywords FROM photos ORDER BY position").fetchall()
        return [StoredPhoto(path, status, text, saved_text, bool(edited), error, caption_from_json(caption), source,
                            keywords_from_json(keywords), keywords_from_json(saved_keywords))
                for path, status, text, saved_text, edited, error, caption, source, keywords, saved_keywords in rows]

    def __len__(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM photos").fetchone()[0]

    def integrity_ok(self) -> bool:
        return self._db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"

    # --- writing -------------------------------------------------------------

    @_writes
    def add(self, photos: Iterable[StoredPhoto]) -> None:
        with self._transaction():
            start = self._db.execute("SELECT COALESCE(MAX(position), -1) + 1 FROM photos").fetchone()[0]
            for offset, photo in enumerate(photos):
                self._db.execute(
                    "INSERT OR REPLACE INTO photos (path, position, status, text, saved_text, edited, error, caption, "
                    "source, keywords, saved_keywords, updated) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (photo.path, start + offset, photo.status, photo.text, photo.saved_text, int(photo.edited),
                     photo.error, caption_to_json(photo.caption), photo.source, keywords_to_json(photo.keywords),
                     keywords_to_json(photo.saved_keywords), time.time()))

    def update(self, path: str, **fields: Any) -> None:
        """Change some of a photo's fields: status, text, saved_text, edited, error, caption, keywords."""
        self.update_many([path], **fields)

    @_writes
    def update_many(self, paths: Iterable[str], **fields: Any) -> None:
        if "caption" in fields:
            fields["caption"] = caption_to_json(fields["caption"])
        if "edited" in fields:
            fields["edited"] = int(fields["edited"])
        for name in ("keywords", "saved_keywords"):
            if name in fields:
                fields[name] = keywords_to_json(fields[name])
        unknown = set(fields) - {"status", "text", "saved_text", "edited", "error", "caption", "source", "keywords",
                                 "saved_keywords"}
        if unknown:
            raise ValueError(f"not a photo field: {sorted(unknown)}")
        assignments = ", ".join(f"{name} = ?" for name in fields)
        with self._transaction():
            for path in paths:
                self._db.execute(f"UPDATE photos SET {assignments}, updated = ? WHERE path = ?",
                                 (*fields.values(), time.time(), path))

    @_writes
    def remove(self, paths: Iterable[str]) -> None:
        with self._transaction():
            self._db.executemany("DELETE FROM photos WHERE path = ?", [(p,) for p in paths])

    @_writes
    def clear(self) -> None:
        self._db.execute("DELETE FROM photos")

    @_writes
    def renumber(self, paths: Iterable[str]) -> None:
        """Queue order after photos were put back by an undo."""
        with self._transaction():
            self._db.executemany("UPDATE photos SET position = ? WHERE path = ?",
                                 [(i, p) for i, p in enumerate(paths)])

    def _transaction(self):
        return _Transaction(self._db)


class _Transaction:
    def __init__(self, db: sqlite3.Connection):
        self._db = db

    def __enter__(self):
        # IMMEDIATE takes the write lock at once, so a second writer waits here, not midway.
        self._db.execute("BEGIN IMMEDIATE")
        return self._db

    def __exit__(self, kind, value, traceback):
        self._db.execute("COMMIT" if kind is None else "ROLLBACK")
        return False
