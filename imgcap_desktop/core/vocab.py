"""The caption vocabulary: index <-> word, and Keras-compatible text encoding.

Two sources feed it:

* our own bundles, which store it as a small versioned JSON file
  (:meth:`Vocabulary.to_json` / :meth:`Vocabulary.from_json`), and
* the legacy web app's ``tokenizer.pkl``, a pickled Keras ``Tokenizer``
  (:func:`load_legacy_tokenizer`).

A pickle is a program, not data: loading one with :func:`pickle.load` runs
whatever callables it names. The legacy file therefore goes through
:class:`_RestrictedUnpickler`, which maps the Keras ``Tokenizer`` class to a plain
local class that only keeps its attribute dict, and refuses every global that a
Keras ``Tokenizer`` pickle never contains. Nothing here imports Keras or
TensorFlow, so a vocabulary can be validated before the heavy imports start.
"""

from __future__ import annotations

import _compat_pickle
import io
import json
import operator
import os
import pickle
import pickletools
import tempfile
from collections import Counter, OrderedDict, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

from imgcap_desktop.core import limits
from imgcap_desktop.core.errors import BundleError, UnsafePickleError

__all__ = ["Vocabulary", "load_legacy_tokenizer", "KERAS_DEFAULT_FILTERS"]

KERAS_DEFAULT_FILTERS = '!"#$%&()*+,-./:;<=>?@[\\]^_`{|}~\t\n'

JSON_FORMAT = "imgcap-vocab"
JSON_VERSION = 1


@dataclass(frozen=True)
class Vocabulary:
    """Index -> word table plus the Keras ``Tokenizer`` settings needed to encode text.

    ``words[0]`` is always ``None``: id 0 is padding and means "no word", as in
    Keras. Other ``None`` entries are gaps in the index (a legacy ``word_index``
    may skip ids); they decode to nothing.
    """

    words: tuple[str | None, ...]
    start: str = "startseq"
    end: str = "endseq"
    unknown: str | None = None
    lower: bool = True
    filters: str = KERAS_DEFAULT_FILTERS
    split: str = " "
    num_words: int | None = None
    _index: dict[str, int] = field(init=False, repr=False, compare=False, hash=False)
    _translate: dict[int, str] = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        # Callers may hand in a list; a tuple keeps the frozen object really immutable.
        words = tuple(self.words)
        object.__setattr__(self, "words", words)
        if not words or words[0] is not None:
            raise ValueError("words[0] must be None (id 0 is padding)")
        index: dict[str, int] = {}
        for i, word in enumerate(words):
            if word is None:
                continue
            if not isinstance(word, str) or not word:
                raise ValueError(f"word {i} is {word!r}, not a non-empty string")
            if word in index:
                raise ValueError(f"the word {word!r} appears twice (ids {index[word]} and {i})")
            index[word] = i
        if self.num_words is not None and (
            isinstance(self.num_words, bool) or not isinstance(self.num_words, int) or self.num_words < 1
        ):
            raise ValueError(f"num_words must be a positive integer or None, not {self.num_words!r}")
        if not isinstance(self.split, str) or not self.split:
            # str.split("") raises, so Keras could not have encoded anything with it either.
            raise ValueError("split must be a non-empty string")
        if not isinstance(self.filters, str):
            raise ValueError("filters must be a string")
        specials = {"start": self.start, "end": self.end}
        if self.unknown is not None:
            specials["unknown"] = self.unknown
        for role, word in specials.items():
            if word not in index:
                raise ValueError(f"the {role} token {word!r} is not in the vocabulary")
            # A token the num_words cap hides could never be produced or read back.
            if self.num_words is not None and index[word] >= self.num_words:
                raise ValueError(
                    f"the {role} token {word!r} has id {index[word]}, beyond num_words={self.num_words}"
                )
        object.__setattr__(self, "_index", index)
        # Same table Keras' text_to_word_sequence builds: every filter char becomes the separator.
        object.__setattr__(self, "_translate", str.maketrans({c: self.split for c in self.filters}))

    # --- lookups ------------------------------------------------------------

    @property
    def size(self) -> int:
        """Number of ids the model's embedding / softmax must cover (padding included)."""
        return len(self.words)

    @property
    def start_id(self) -> int:
        return self._index[self.start]

    @property
    def end_id(self) -> int:
        return self._index[self.end]

    @property
    def unknown_id(self) -> int | None:
        return None if self.unknown is None else self._index[self.unknown]

    def _visible(self, idx: int) -> bool:
        # Keras treats num_words=0 like None ("if num_words and i >= num_words").
        return not self.num_words or idx < self.num_words

    def id_of(self, word: str) -> int | None:
        """The id of ``word`` as spelled (no lowercasing), or None if absent or capped."""
        idx = self._index.get(word)
        if idx is None or not self._visible(idx):
            return None
        return idx

    def word_of(self, idx: int) -> str | None:
        """The word for ``idx``; None for padding, gaps, out-of-range ids and ids >= num_words."""
        idx = operator.index(idx)
        if idx <= 0 or idx >= len(self.words) or not self._visible(idx):
            return None
        return self.words[idx]

    # --- text <-> ids -------------------------------------------------------

    def tokenize(self, text: str) -> list[str]:
        """Keras ``text_to_word_sequence`` with this vocabulary's settings."""
        if self.lower:
            text = text.lower()
        return [w for w in text.translate(self._translate).split(self.split) if w]

    def encode(self, text: str) -> list[int]:
        """Ids for ``text``, exactly as ``Tokenizer.texts_to_sequences([text])[0]``."""
        unknown_id = self.unknown_id
        ids: list[int] = []
        for word in self.tokenize(text):
            idx = self._index.get(word)
            if idx is not None and self._visible(idx):
                ids.append(idx)
            elif unknown_id is not None:
                # Keras maps both unseen and capped words to the OOV id when it has one.
                ids.append(unknown_id)
        return ids

    def decode(self, ids: Iterable[int]) -> list[str]:
        """Words for ``ids`` in order; ids without a word (padding, gaps, capped) are skipped."""
        out: list[str] = []
        for idx in ids:
            word = self.word_of(idx)
            if word is not None:
                out.append(word)
        return out

    # --- JSON ---------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": JSON_FORMAT,
            "version": JSON_VERSION,
            "words": list(self.words),
            "start": self.start,
            "end": self.end,
            "unknown": self.unknown,
            "lower": self.lower,
            "filters": self.filters,
            "split": self.split,
            "num_words": self.num_words,
        }

    def to_json(self, path: str | os.PathLike[str]) -> None:
        """Write the vocabulary as UTF-8 JSON, atomically (a crash never leaves half a file)."""
        path = Path(path)
        text = json.dumps(self.to_dict(), ensure_ascii=False, indent=1)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
                fh.write(text)
                fh.write("\n")
            os.replace(tmp, path)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise

    @classmethod
    def from_json(cls, path: str | os.PathLike[str]) -> Vocabulary:
        """Read and validate a file written by :meth:`to_json`; BundleError names the file."""
        path = Path(path)
        raw = _read_bytes(path)
        try:
            data = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise _error(path, f"is not valid UTF-8 JSON ({exc})") from None
        if not isinstance(data, dict):
            raise _error(path, "is not a vocabulary: the JSON top level is not an object")
        if data.get("format") != JSON_FORMAT:
            raise _error(path, f"is not a vocabulary: its format is {data.get('format')!r}, not {JSON_FORMAT!r}")
        version = data.get("version")
        if isinstance(version, bool) or not isinstance(version, int):
            raise _error(path, f"has no valid version number (found {version!r})")
        if version != JSON_VERSION:
            newer = " (written by a newer imgcap)" if version > JSON_VERSION else ""
            raise _error(path, f"has vocabulary version {version}{newer}; this program reads version {JSON_VERSION}")

        words = data.get("words")
        if not isinstance(words, list) or not words:
            raise _error(path, "has no 'words' list")
        if len(words) > limits.MAX_VOCABULARY + 1:
            raise _error(path, f"is invalid: 'words' holds {len(words):,} entries, more than the "
                               f"{limits.MAX_VOCABULARY:,} a caption model can use")
        if words[0] is not None:
            raise _error(path, f"is invalid: words[0] must be null (padding), not {words[0]!r}")
        seen: dict[str, int] = {}
        for i, word in enumerate(words[1:], start=1):
            if word is None:
                continue
            if not isinstance(word, str) or not word:
                raise _error(path, f"is invalid: words[{i}] is {word!r}, not a non-empty string")
            if word in seen:
                raise _error(path, f"is invalid: the word {word!r} appears twice (ids {seen[word]} and {i})")
            seen[word] = i

        def field_of(name: str, kinds: tuple[type, ...], default: Any, nullable: bool = False) -> Any:
            if name not in data:
                return default
            value = data[name]
            if value is None and nullable:
                return None
            # bool is an int subclass; a "num_words": true must not pass as 1.
            if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
                raise _error(path, f"is invalid: {name!r} is {value!r}")
            return value

        kwargs = {
            "start": field_of("start", (str,), "startseq"),
            "end": field_of("end", (str,), "endseq"),
            "unknown": field_of("unknown", (str,), None, nullable=True),
            "lower": field_of("lower", (bool,), True),
            "filters": field_of("filters", (str,), KERAS_DEFAULT_FILTERS),
            "split": field_of("split", (str,), " "),
            "num_words": field_of("num_words", (int,), None, nullable=True),
        }
        for role in ("start", "end"):
            if kwargs[role] not in seen:
                raise _error(path, f"is invalid: the {role} token {kwargs[role]!r} is not in 'words'")
        try:
            return cls(tuple(words), **kwargs)
        except ValueError as exc:
            raise _error(path, f"is invalid: {exc}") from None

    # --- building our own ---------------------------------------------------

    @classmethod
    def from_captions(
        cls,
        token_lists: Iterable[Sequence[str]],
        *,
        min_count: int,
        start: str = "startseq",
        end: str = "endseq",
        unknown: str | None = "<unk>",
        max_size: int | None = None,
    ) -> Vocabulary:
        """Build a vocabulary from tokenized captions.

        The special tokens take the first ids (``unknown`` at 1 as Keras puts its OOV
        token, then ``start``, ``end``), so they do not move when the data set changes.
        The other words with at least ``min_count`` occurrences follow by descending
        count, ties broken alphabetically, so the same captions always give the same
        ids. ``max_size`` caps :attr:`size` (padding and specials included) by dropping
        the rarest words. Encoding settings are Keras' defaults; tokens are taken as
        given (callers lowercase / strip punctuation before counting).
        """
        if isinstance(min_count, bool) or not isinstance(min_count, int) or min_count < 1:
            raise ValueError(f"min_count must be a positive integer, not {min_count!r}")
        specials = [w for w in (unknown, start, end) if w is not None]
        if len(set(specials)) != len(specials):
            raise ValueError(f"start, end and unknown must differ, got {specials}")
        if max_size is not None and max_size < 1 + len(specials):
            raise ValueError(f"max_size={max_size} leaves no room for padding and {specials}")

        counts: Counter[str] = Counter()
        for tokens in token_lists:
            if isinstance(tokens, str):
                # A bare string would be counted letter by letter.
                raise TypeError("token_lists must yield sequences of tokens, not strings")
            counts.update(tokens)
        for token in counts:
            if not isinstance(token, str) or not token:
                raise ValueError(f"token {token!r} is not a non-empty string")
        for special in specials:
            counts.pop(special, None)

        ranked = sorted((w for w, c in counts.items() if c >= min_count), key=lambda w: (-counts[w], w))
        if max_size is not None:
            ranked = ranked[: max_size - 1 - len(specials)]
        return cls((None, *specials, *ranked), start=start, end=end, unknown=unknown)


# --- legacy Keras Tokenizer pickles ----------------------------------------------


class _LegacyTokenizerState:
    """Stand-in for ``keras...preprocessing.text.Tokenizer``: keeps the state, runs nothing."""

    def __init__(self) -> None:
        self.state: Any = None

    def __setstate__(self, state: Any) -> None:
        # BUILD may carry (dict_state, slot_state); Tokenizer has no slots.
        if isinstance(state, tuple) and len(state) == 2 and isinstance(state[0], dict):
            state = state[0]
        self.state = state


def _safe_reconstructor(cls: Any, base: Any, state: Any) -> Any:
    """``copyreg._reconstructor`` restricted to the one call a protocol 0/1 Tokenizer pickle makes."""
    if cls is _LegacyTokenizerState and base is object and state is None:
        return object.__new__(cls)
    raise _UnsafeCall(f"copyreg._reconstructor({getattr(cls, '__name__', cls)!r}, ...)")


class _UnsafeCall(Exception):
    """Raised inside the unpickler; turned into UnsafePickleError with the file name."""


# Pure data constructors: calling them with any argument builds data, never runs code.
_ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): OrderedDict,  # Tokenizer.word_counts
    ("collections", "defaultdict"): defaultdict,  # word_docs, index_docs
    ("builtins", "int"): int,  # the defaultdict factory
    ("builtins", "object"): object,  # base class argument of protocol 0/1 _reconstructor
    ("copyreg", "_reconstructor"): _safe_reconstructor,  # protocol 0/1 (Python 2's default)
    # Harmless types older Tokenizer versions or other pickle protocols may name.
    ("builtins", "dict"): dict,
    ("builtins", "list"): list,
    ("builtins", "tuple"): tuple,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("builtins", "str"): str,
    ("builtins", "float"): float,
    ("builtins", "bool"): bool,
}

_KERAS_ROOTS = frozenset({"keras", "tensorflow", "tf_keras", "keras_preprocessing"})


def _is_tokenizer_global(module: str, name: str) -> bool:
    if name != "Tokenizer":
        return False
    if module == "keras_preprocessing.text":
        return True
    # keras.preprocessing.text, keras.src.legacy.preprocessing.text,
    # tensorflow.python.keras.preprocessing.text, tf_keras.src.preprocessing.text, ...
    parts = module.split(".")
    return len(parts) >= 3 and parts[0] in _KERAS_ROOTS and parts[-2:] == ["preprocessing", "text"]


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        # Protocol 0-2 pickles may spell Python 3 names the Python 2 way
        # ("__builtin__ long" is how protocol 2 writes int); pickle's own find_class
        # does this translation, and overriding it means doing it here.
        if (module, name) in _compat_pickle.NAME_MAPPING:
            module, name = _compat_pickle.NAME_MAPPING[(module, name)]
        elif module in _compat_pickle.IMPORT_MAPPING:
            module = _compat_pickle.IMPORT_MAPPING[module]
        if _is_tokenizer_global(module, name):
            return _LegacyTokenizerState
        allowed = _ALLOWED_GLOBALS.get((module, name))
        if allowed is None:
            raise _UnsafeCall(f"{module}.{name}")
        return allowed


def _error(path: Path, what: str, cls: type[BundleError] = BundleError) -> BundleError:
    # One line whatever the detail held: an exception's text from a hostile pickle can span several.
    what = " ".join(what.split())
    exc = cls(f"{path.name}: {what}" + ("" if what.endswith(".") else "."))
    exc.path = path  # type: ignore[attr-defined]
    return exc


def _read_bytes(path: Path) -> bytes:
    try:
        size = path.stat().st_size
        if size > limits.MAX_VOCABULARY_BYTES:
            # A vocabulary of the largest allowed size is a few MB; this one would be parsed for seconds.
            raise _error(path, f"is {size:,} bytes, far more than any vocabulary "
                               f"(the limit is {limits.MAX_VOCABULARY_BYTES:,})")
        return path.read_bytes()
    except FileNotFoundError:
        raise _error(path, f"does not exist (looked in {path.parent})") from None
    except IsADirectoryError:
        raise _error(path, "is a folder, not a file") from None
    except OSError as exc:
        raise _error(path, f"cannot be read ({exc.strerror or exc})") from None


_MEMO_OPS = frozenset({"PUT", "BINPUT", "LONG_BINPUT", "GET", "BINGET", "LONG_BINGET"})
#: Memo slots a tokenizer pickle may use: one per stored object, a few per word.
_MAX_MEMO = 5_000_000


def _check_opcodes(data: bytes, path: Path) -> None:
    """Read the opcodes without running them. The C unpickler sizes its memo table by the
    largest index it is given: one LONG_BINPUT of 1.9 billion in a 2 KB file asks for 15 GB."""
    try:
        for op, arg, _ in pickletools.genops(data):
            if op.name in _MEMO_OPS and isinstance(arg, int) and arg > _MAX_MEMO:
                raise _error(path, f"is not a valid pickle (it refers to memo slot {arg:,})")
    except ValueError as exc:
        raise _error(path, f"is not a valid pickle or is truncated ({exc})") from None


def _unpickle_tokenizer_state(path: Path) -> dict[str, Any]:
    data = _read_bytes(path)
    if not data:
        raise _error(path, "is empty")
    _check_opcodes(data, path)
    try:
        obj = _RestrictedUnpickler(io.BytesIO(data), encoding="utf-8").load()
    except _UnsafeCall as exc:
        raise _error(
            path,
            f"refused to load: the pickle asks for {exc}, which a Keras Tokenizer never needs",
            UnsafePickleError,
        ) from None
    except RecursionError:
        raise _error(path, "is not a valid pickle (nested too deeply)") from None
    except Exception as exc:  # noqa: BLE001 - any failure of a hostile/corrupt stream is one answer
        detail = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        raise _error(path, f"is not a valid pickle or is truncated ({detail})") from None
    if not isinstance(obj, _LegacyTokenizerState):
        raise _error(path, f"does not contain a Keras Tokenizer (it holds a {type(obj).__name__})")
    if not isinstance(obj.state, dict):
        raise _error(path, "does not contain a usable Keras Tokenizer (its state is not a dict)")
    return obj.state


def load_legacy_tokenizer(
    path: str | os.PathLike[str], *, start: str = "startseq", end: str = "endseq"
) -> Vocabulary:
    """Read the legacy app's pickled Keras ``Tokenizer`` without running any code from it.

    The ids are exactly ``tokenizer.word_index``; ``size`` is ``max id + 1``, which is
    the legacy model's ``len(word_index) + 1``. Raises :class:`UnsafePickleError` if
    the pickle names anything a Tokenizer never contains, :class:`BundleError` for
    any other problem; both messages name the file.
    """
    path = Path(path)
    state = _unpickle_tokenizer_state(path)

    if state.get("char_level"):
        raise _error(path, "holds a character-level Tokenizer, which caption models do not use (unsupported)")
    if state.get("analyzer") is not None:
        raise _error(path, "holds a Tokenizer with a custom analyzer function, which cannot be reproduced")

    word_index = state.get("word_index")
    if not isinstance(word_index, dict):
        raise _error(path, "holds a Keras Tokenizer without a word_index (was it ever fitted?)")
    if not word_index:
        raise _error(path, "holds a Keras Tokenizer with an empty word_index (was it ever fitted?)")
    by_id: dict[int, str] = {}
    for word, idx in word_index.items():
        if not isinstance(word, str) or not word:
            raise _error(path, f"has a corrupt word_index: key {word!r} is not a word")
        if isinstance(idx, bool) or not isinstance(idx, int) or idx < 1:
            raise _error(path, f"has a corrupt word_index: {word!r} has id {idx!r}")
        if idx in by_id:
            raise _error(path, f"has a corrupt word_index: {by_id[idx]!r} and {word!r} share id {idx}")
        if idx > limits.MAX_LEGACY_ID:
            # Keras numbers words 1..len(word_index); a huge id would be a list of that many entries.
            raise _error(path, f"has a corrupt word_index: {word!r} has id {idx:,}, above {limits.MAX_LEGACY_ID:,}")
        by_id[idx] = word
    words: list[str | None] = [None] * (max(by_id) + 1)
    for idx, word in by_id.items():
        words[idx] = word

    def setting(name: str, kinds: tuple[type, ...], default: Any) -> Any:
        value = state.get(name, default)
        if value is None or isinstance(value, kinds):
            return value
        raise _error(path, f"has a Tokenizer whose {name} is {value!r}, which Keras would not accept")

    num_words = setting("num_words", (int,), None)
    if isinstance(num_words, bool) or num_words is not None and num_words < 0:
        raise _error(path, f"has a Tokenizer whose num_words is {num_words!r}, which Keras would not accept")
    # Keras' "if num_words and ..." makes 0 mean "no cap".
    num_words = num_words or None
    oov = setting("oov_token", (str,), None)
    # An oov_token never added to word_index (set after fitting) has no id; Keras
    # would emit None for unknown words, which no model can read, so ignore it.
    unknown = oov if oov in word_index else None
    lower = setting("lower", (bool, int), True)
    filters = setting("filters", (str,), KERAS_DEFAULT_FILTERS)
    split = setting("split", (str,), " ")

    for role, token in (("start", start), ("end", end)):
        if token not in word_index:
            raise _error(
                path,
                f"has no {role} token {token!r} in its vocabulary; the model was trained with other "
                f"caption markers (pass {role}= to name them)",
            )
    try:
        return Vocabulary(
            tuple(words),
            start=start,
            end=end,
            unknown=unknown,
            lower=True if lower is None else bool(lower),
            filters=KERAS_DEFAULT_FILTERS if filters is None else filters,
            split=" " if split is None else split,
            num_words=num_words,
        )
    except ValueError as exc:
        raise _error(path, f"holds a Tokenizer this program cannot use: {exc}") from None
