"""Vocabulary: Keras Tokenizer compatibility, the restricted unpickler, JSON, building."""

from __future__ import annotations

import builtins
import functools
import json
import os
import pickle
import pickletools
import random
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from imgcap_desktop.core.errors import BundleError, UnsafePickleError
from imgcap_desktop.core.vocab import Vocabulary, load_legacy_tokenizer

CAPTIONS = [
    "startseq a dog runs on the grass endseq",
    "startseq A black dog jumps over a log endseq",
    "startseq two children play in the park endseq",
    "startseq a man rides a bike on the road endseq",
    "startseq the dog catches a red ball endseq",
    "startseq a girl in a red dress runs endseq",
]

# Punctuation, capitals, tabs/newlines, unseen words, non-ASCII, empty text.
TEXTS = [
    "startseq a dog runs endseq",
    "A DOG, runs!!! over the LOG...",
    "zebra unicorn a dog",
    "dog;ball\tpark\nstartseq",
    "",
    "   ",
    "the dog's ball",
    "Émile's café: a man",
    "a-dog/red_ball(park)",
]

KERAS_3_MODULE = "keras.src.legacy.preprocessing.text"
OLDER_MODULES = [
    "keras.preprocessing.text",
    "keras_preprocessing.text",
    "tensorflow.keras.preprocessing.text",
    "tensorflow.python.keras.preprocessing.text",
    "keras.src.preprocessing.text",
    "tf_keras.src.preprocessing.text",
]


@pytest.fixture(scope="module")
def Tokenizer():
    module = pytest.importorskip(KERAS_3_MODULE)
    return module.Tokenizer


def fit(Tokenizer, captions=CAPTIONS, **kwargs):
    tokenizer = Tokenizer(**kwargs)
    tokenizer.fit_on_texts(captions)
    return tokenizer


def dump(tmp_path: Path, obj, protocol: int = pickle.HIGHEST_PROTOCOL, name: str = "tokenizer.pkl") -> Path:
    path = tmp_path / name
    path.write_bytes(pickle.dumps(obj, protocol=protocol))
    return path


def rewrite_module(data: bytes, old: str, new: str) -> bytes:
    """Re-emit a pickle with the class' module renamed, as an older Keras would have written it.

    The real pickler refuses to name a module that cannot be imported, so the stream is
    edited at the opcode level. FRAME opcodes are dropped because their byte counts would
    go stale; framing is optional for the unpickler.
    """
    ops = list(pickletools.genops(data))
    out = bytearray()
    protocol = 0
    for n, (op, arg, pos) in enumerate(ops):
        end = ops[n + 1][2] if n + 1 < len(ops) else len(data)
        raw = data[pos:end]
        if op.name == "PROTO":
            protocol = arg
        if op.name == "FRAME":
            continue
        if op.name == "GLOBAL" and arg == f"{old} Tokenizer":
            raw = b"c" + new.encode() + b"\nTokenizer\n"
        elif op.name in ("SHORT_BINUNICODE", "BINUNICODE", "UNICODE") and arg == old:
            encoded = new.encode()
            if protocol >= 4:
                raw = b"\x8c" + bytes([len(encoded)]) + encoded
            else:
                raw = b"X" + struct.pack("<I", len(encoded)) + encoded
        out += raw
    assert old.encode() not in out, "the rewrite missed an occurrence"
    return bytes(out)


def assert_matches_tokenizer(vocab: Vocabulary, tokenizer) -> None:
    assert vocab.size == len(tokenizer.word_index) + 1
    assert vocab.words[0] is None
    for word, idx in tokenizer.word_index.items():
        assert vocab.words[idx] == word
    for text in TEXTS + CAPTIONS:
        assert vocab.encode(text) == tokenizer.texts_to_sequences([text])[0], text


# --- loading real Keras Tokenizer pickles ------------------------------------------


@pytest.mark.parametrize("protocol", [0, 1, 2, 4, 5])
def test_real_tokenizer_round_trips_through_pickle(Tokenizer, tmp_path, protocol):
    tokenizer = fit(Tokenizer)
    vocab = load_legacy_tokenizer(dump(tmp_path, tokenizer, protocol))
    assert_matches_tokenizer(vocab, tokenizer)
    assert vocab.start_id == tokenizer.word_index["startseq"]
    assert vocab.end_id == tokenizer.word_index["endseq"]
    assert vocab.unknown is None and vocab.unknown_id is None
    assert vocab.id_of("dog") == tokenizer.word_index["dog"]
    assert vocab.id_of("zebra") is None


@pytest.mark.parametrize(
    "settings",
    [
        {"num_words": 6},
        {"oov_token": "<unk>"},
        {"oov_token": "<unk>", "num_words": 6},
        {"num_words": 0},  # Keras reads 0 as "no cap"
        {"lower": False},
        {"filters": "!,.", "split": " "},
        {"split": ";", "filters": "!,"},
    ],
    ids=lambda s: ",".join(f"{k}={v!r}" for k, v in s.items()),
)
def test_encode_equals_texts_to_sequences(Tokenizer, tmp_path, settings):
    captions = CAPTIONS
    if settings.get("split") == ";":
        captions = [c.replace(" ", ";") for c in CAPTIONS]
    tokenizer = fit(Tokenizer, captions, **settings)
    vocab = load_legacy_tokenizer(dump(tmp_path, tokenizer, 4))
    assert_matches_tokenizer(vocab, tokenizer)
    for text in TEXTS:
        semi = text.replace(" ", ";")
        assert vocab.encode(semi) == tokenizer.texts_to_sequences([semi])[0], semi


def test_oov_and_num_words_settings_are_carried(Tokenizer, tmp_path):
    tokenizer = fit(Tokenizer, oov_token="<unk>", num_words=6)
    vocab = load_legacy_tokenizer(dump(tmp_path, tokenizer))
    assert vocab.unknown == "<unk>"
    assert vocab.unknown_id == tokenizer.word_index["<unk>"] == 1
    assert vocab.num_words == 6
    # The cap hides words from lookups but not from the model's id space.
    assert vocab.size == len(tokenizer.word_index) + 1
    capped = next(w for w, i in tokenizer.word_index.items() if i >= 6)
    assert vocab.id_of(capped) is None
    assert vocab.word_of(tokenizer.word_index[capped]) is None
    assert vocab.encode(capped) == [1]


def test_start_token_beyond_num_words_is_refused(Tokenizer, tmp_path):
    tokenizer = fit(Tokenizer, num_words=2)  # only id 1 survives the cap
    with pytest.raises(BundleError, match=r"tokenizer\.pkl: .*beyond num_words"):
        load_legacy_tokenizer(dump(tmp_path, tokenizer))


@pytest.mark.parametrize("module", OLDER_MODULES)
@pytest.mark.parametrize("protocol", [2, 4])
def test_older_keras_module_paths_load(Tokenizer, tmp_path, module, protocol):
    tokenizer = fit(Tokenizer, oov_token="<unk>")
    data = rewrite_module(pickle.dumps(tokenizer, protocol=protocol), KERAS_3_MODULE, module)
    assert module.encode() in data
    path = tmp_path / "tokenizer.pkl"
    path.write_bytes(data)
    assert_matches_tokenizer(load_legacy_tokenizer(path), tokenizer)


def test_word_index_gaps_become_none(Tokenizer, tmp_path):
    tokenizer = fit(Tokenizer)
    gap, removed = next((i, w) for i, w in sorted(tokenizer.index_word.items()) if not w.endswith("seq"))
    del tokenizer.word_index[removed]
    vocab = load_legacy_tokenizer(dump(tmp_path, tokenizer))
    assert vocab.words[gap] is None
    assert vocab.size == max(tokenizer.word_index.values()) + 1
    assert vocab.decode([vocab.start_id, gap, vocab.end_id]) == ["startseq", "endseq"]
    assert vocab.encode(f"a {removed}") == tokenizer.texts_to_sequences([f"a {removed}"])[0]


def test_custom_start_end_markers(Tokenizer, tmp_path):
    tokenizer = fit(Tokenizer, [c.replace("startseq", "<start>").replace("endseq", "<end>") for c in CAPTIONS],
                    filters="!\"#$%&()*+,-./:;=?@[\\]^_`{|}~\t\n")
    path = dump(tmp_path, tokenizer)
    with pytest.raises(BundleError, match=r"tokenizer\.pkl: .*start token 'startseq'"):
        load_legacy_tokenizer(path)
    vocab = load_legacy_tokenizer(path, start="<start>", end="<end>")
    assert vocab.start_id == tokenizer.word_index["<start>"]


# --- refusing code -----------------------------------------------------------------


class Payload:
    """Pickles as a call of ``func(*args)``: what a hostile tokenizer.pkl would carry."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return (self.func, self.args)


def payloads(marker: Path) -> dict[str, Payload]:
    return {
        "os.system": Payload(os.system, f"touch {marker}"),
        "builtins.eval": Payload(builtins.eval, f"open({str(marker)!r}, 'w').close()"),
        "builtins.exec": Payload(builtins.exec, f"open({str(marker)!r}, 'w').close()"),
        "subprocess.Popen": Payload(subprocess.Popen, ["touch", str(marker)]),
        "functools.partial": Payload(functools.partial, os.system, f"touch {marker}"),
    }


def test_payload_is_live_without_the_restriction(tmp_path):
    # Proves the payloads below would really run, so "pwned never appears" means something.
    marker = tmp_path / "pwned"
    pickle.loads(pickle.dumps(payloads(marker)["os.system"]))
    assert marker.exists()


@pytest.mark.parametrize("name", list(payloads(Path("x"))))
@pytest.mark.parametrize("protocol", [2, 5])
def test_top_level_payload_is_refused(tmp_path, name, protocol):
    marker = tmp_path / "pwned"
    path = dump(tmp_path, payloads(marker)[name], protocol)
    with pytest.raises(UnsafePickleError) as info:
        load_legacy_tokenizer(path)
    message = str(info.value)
    assert message.startswith("tokenizer.pkl: refused to load: the pickle asks for ")
    assert "which a Keras Tokenizer never needs." in message
    assert marker.exists() is False


def test_refusal_names_the_global(tmp_path):
    path = dump(tmp_path, payloads(tmp_path / "pwned")["os.system"])
    with pytest.raises(UnsafePickleError, match=rf"asks for {os.system.__module__}\.system,"):
        load_legacy_tokenizer(path)


@pytest.mark.parametrize("where", ["word_counts", "word_docs", "word_index", "filters"])
def test_payload_nested_inside_a_real_tokenizer_is_refused(Tokenizer, tmp_path, where):
    marker = tmp_path / "pwned"
    tokenizer = fit(Tokenizer)
    evil = Payload(os.system, f"touch {marker}")
    if where == "filters":
        tokenizer.filters = evil
    else:
        getattr(tokenizer, where)["zebra"] = evil
    for protocol in (2, 4, 5):
        with pytest.raises(UnsafePickleError, match=r"tokenizer\.pkl: refused to load"):
            load_legacy_tokenizer(dump(tmp_path, tokenizer, protocol))
    assert not marker.exists()


@pytest.mark.parametrize(
    "module,name",
    [
        ("builtins", "getattr"),
        ("builtins", "__import__"),
        ("__builtin__", "eval"),  # Python 2 spelling, translated before the check
        ("posix", "system"),
        ("nt", "system"),
        ("subprocess", "check_output"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("pickle", "loads"),
        ("keras.src.legacy.preprocessing.text", "text_to_word_sequence"),
        ("imgcap_desktop.core.vocab", "_LegacyTokenizerState"),
    ],
)
def test_hand_written_globals_are_refused(tmp_path, module, name):
    # GLOBAL + EMPTY_TUPLE + REDUCE: the refusal must come before anything is looked up.
    path = tmp_path / "tokenizer.pkl"
    path.write_bytes(b"\x80\x02c" + f"{module}\n{name}\n".encode() + b")R.")
    with pytest.raises(UnsafePickleError, match="refused to load"):
        load_legacy_tokenizer(path)


def test_reconstructor_only_builds_the_tokenizer(tmp_path):
    # Protocol 0 copyreg._reconstructor(OrderedDict, dict, {}): allowed globals, wrong use.
    path = tmp_path / "tokenizer.pkl"
    path.write_bytes(b"ccopy_reg\n_reconstructor\n(ccollections\nOrderedDict\nc__builtin__\ndict\n(dtR.")
    with pytest.raises(UnsafePickleError, match=r"copyreg\._reconstructor"):
        load_legacy_tokenizer(path)


# --- not a tokenizer / broken files ------------------------------------------------


@pytest.mark.parametrize(
    "content,expected",
    [
        (b"", "is empty"),
        (b"this is not a pickle at all \x00\xff", "not a valid pickle"),
        (pickle.dumps({"word_index": {"startseq": 1, "endseq": 2}}), "does not contain a Keras Tokenizer"),
        (pickle.dumps(["startseq", "endseq"], protocol=2), "does not contain a Keras Tokenizer"),
        (b"\x80\x04K\x01", "not a valid pickle"),  # no STOP
    ],
    ids=["empty", "garbage", "dict", "list", "no-stop"],
)
def test_broken_or_foreign_pickles(tmp_path, content, expected):
    path = tmp_path / "tokenizer.pkl"
    path.write_bytes(content)
    with pytest.raises(BundleError, match=expected) as info:
        load_legacy_tokenizer(path)
    assert not isinstance(info.value, UnsafePickleError)
    assert str(info.value).startswith("tokenizer.pkl: ")


@pytest.mark.parametrize("protocol", [2, 5])
def test_truncated_tokenizer(Tokenizer, tmp_path, protocol):
    data = pickle.dumps(fit(Tokenizer), protocol=protocol)
    for cut in (1, len(data) // 3, len(data) - 1):
        path = tmp_path / "tokenizer.pkl"
        path.write_bytes(data[:cut])
        with pytest.raises(BundleError, match=r"^tokenizer\.pkl: is not a valid pickle"):
            load_legacy_tokenizer(path)


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(BundleError, match=r"^tokenizer\.pkl: does not exist"):
        load_legacy_tokenizer(tmp_path / "tokenizer.pkl")
    (tmp_path / "dir.pkl").mkdir()
    with pytest.raises(BundleError, match=r"^dir\.pkl: "):
        load_legacy_tokenizer(tmp_path / "dir.pkl")


def test_tokenizer_without_word_index(Tokenizer, tmp_path):
    tokenizer = fit(Tokenizer)
    del tokenizer.word_index
    with pytest.raises(BundleError, match=r"tokenizer\.pkl: .*without a word_index"):
        load_legacy_tokenizer(dump(tmp_path, tokenizer))
    with pytest.raises(BundleError, match=r"empty word_index"):
        load_legacy_tokenizer(dump(tmp_path, Tokenizer()))


def test_char_level_tokenizer_is_unsupported(Tokenizer, tmp_path):
    tokenizer = fit(Tokenizer, char_level=True)
    with pytest.raises(BundleError, match=r"tokenizer\.pkl: .*character-level.*unsupported"):
        load_legacy_tokenizer(dump(tmp_path, tokenizer))


def test_corrupt_word_index(Tokenizer, tmp_path):
    tokenizer = fit(Tokenizer)
    tokenizer.word_index["zebra"] = tokenizer.word_index["dog"]
    with pytest.raises(BundleError, match=r"share id"):
        load_legacy_tokenizer(dump(tmp_path, tokenizer))
    tokenizer = fit(Tokenizer)
    tokenizer.word_index["zebra"] = "7"
    with pytest.raises(BundleError, match=r"corrupt word_index"):
        load_legacy_tokenizer(dump(tmp_path, tokenizer))


# --- the Vocabulary itself -----------------------------------------------------------


@pytest.fixture
def vocab() -> Vocabulary:
    return Vocabulary.from_captions([c.split() for c in CAPTIONS], min_count=1)


def test_decode_skips_wordless_ids(vocab):
    dog = vocab.id_of("dog")
    ids = [vocab.start_id, 0, dog, vocab.size, -1, 10**9, vocab.end_id, 0, 0]
    assert vocab.decode(ids) == ["startseq", "dog", "endseq"]
    assert vocab.word_of(0) is None and vocab.word_of(vocab.size) is None


def test_decode_accepts_numpy_ids(vocab):
    np = pytest.importorskip("numpy")
    ids = np.array([vocab.start_id, vocab.id_of("dog"), 0], dtype=np.int64)
    assert vocab.decode(ids) == ["startseq", "dog"]


def test_json_round_trip(tmp_path, vocab):
    path = tmp_path / "vocab.json"
    vocab.to_json(path)
    data = json.loads(path.read_text(encoding="utf-8"))
    assert data["format"] == "imgcap-vocab" and data["version"] == 1 and data["words"][0] is None
    assert Vocabulary.from_json(path) == vocab

    capped = Vocabulary((None, "startseq", "endseq", "café", None, "x"), unknown=None, num_words=4,
                        lower=False, filters="!", split="_")
    capped.to_json(path)
    assert "café" in path.read_text(encoding="utf-8")
    loaded = Vocabulary.from_json(path)
    assert loaded == capped
    assert loaded.encode("café_x_startseq") == [3, 1]


def test_legacy_tokenizer_to_json_keeps_encoding(Tokenizer, tmp_path):
    tokenizer = fit(Tokenizer, oov_token="<unk>", num_words=8)
    path = tmp_path / "vocab.json"
    load_legacy_tokenizer(dump(tmp_path, tokenizer)).to_json(path)
    assert_matches_tokenizer(Vocabulary.from_json(path), tokenizer)


def _tamper(tmp_path, vocab, edit) -> Path:
    path = tmp_path / "vocab.json"
    vocab.to_json(path)
    data = json.loads(path.read_text(encoding="utf-8"))
    edit(data)
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    "edit,expected",
    [
        (lambda d: d["words"].append("dog"), "'dog' appears twice"),
        (lambda d: d.update(version=2), "version 2"),
        (lambda d: d.update(version="1"), "version"),
        (lambda d: d.update(format="something-else"), "format"),
        (lambda d: d["words"].__setitem__(0, "pad"), r"words\[0\] must be null"),
        (lambda d: d["words"].__setitem__(3, 7), r"words\[3\]"),
        (lambda d: d["words"].remove("endseq"), "end token 'endseq'"),
        (lambda d: d.update(num_words="5"), "num_words"),
        (lambda d: d.update(num_words=True), "num_words"),
        (lambda d: d.update(split=""), "split"),
        (lambda d: d.update(unknown="<nope>"), "unknown token"),
        (lambda d: d.pop("words"), "words"),
    ],
    ids=["duplicate", "newer-version", "string-version", "format", "words0", "non-string-word",
         "no-end", "num_words-type", "num_words-bool", "empty-split", "unknown-missing", "no-words"],
)
def test_from_json_rejects_tampered_files(tmp_path, vocab, edit, expected):
    path = _tamper(tmp_path, vocab, edit)
    with pytest.raises(BundleError, match=expected) as info:
        Vocabulary.from_json(path)
    assert str(info.value).startswith("vocab.json: ")


@pytest.mark.parametrize("content", [b"", b"{not json", b"[1, 2]", b"\xff\xfe"])
def test_from_json_rejects_non_vocab_files(tmp_path, content):
    path = tmp_path / "vocab.json"
    path.write_bytes(content)
    with pytest.raises(BundleError, match=r"^vocab\.json: "):
        Vocabulary.from_json(path)
    with pytest.raises(BundleError, match=r"^missing\.json: does not exist"):
        Vocabulary.from_json(tmp_path / "missing.json")


def test_from_captions_orders_by_count_then_alphabet():
    tokens = [["startseq", "b", "a", "c", "endseq"], ["startseq", "c", "a", "endseq"], ["startseq", "c", "endseq"]]
    vocab = Vocabulary.from_captions(tokens, min_count=1)
    assert vocab.words == (None, "<unk>", "startseq", "endseq", "c", "a", "b")
    assert (vocab.unknown_id, vocab.start_id, vocab.end_id) == (1, 2, 3)
    assert vocab.encode("startseq c zebra endseq") == [2, 4, 1, 3]


def test_from_captions_is_deterministic():
    rng = random.Random(0)
    tokens = [c.split() for c in CAPTIONS] * 3
    first = Vocabulary.from_captions(tokens, min_count=2)
    for _ in range(5):
        rng.shuffle(tokens)
        # A generator input must work as well as a list.
        assert Vocabulary.from_captions((t for t in tokens), min_count=2) == first


def test_from_captions_min_count_and_max_size():
    tokens = [["dog", "dog", "dog", "cat", "cat", "emu"]]
    assert Vocabulary.from_captions(tokens, min_count=2).words[4:] == ("dog", "cat")
    assert Vocabulary.from_captions(tokens, min_count=3).words[4:] == ("dog",)
    # start/end survive even though they never occur in the captions.
    small = Vocabulary.from_captions(tokens, min_count=1, max_size=5, unknown=None)
    assert small.words == (None, "startseq", "endseq", "dog", "cat")
    assert small.size == 5 and small.unknown_id is None
    with pytest.raises(ValueError):
        Vocabulary.from_captions(tokens, min_count=0)
    with pytest.raises(TypeError):
        Vocabulary.from_captions(["a dog"], min_count=1)


def test_invalid_direct_construction():
    with pytest.raises(ValueError, match="words\\[0\\]"):
        Vocabulary(("pad", "startseq", "endseq"))
    with pytest.raises(ValueError, match="twice"):
        Vocabulary((None, "startseq", "endseq", "startseq"))
    with pytest.raises(ValueError, match="end token"):
        Vocabulary((None, "startseq"))


def test_vocab_module_does_not_import_keras():
    code = (
        "import sys, imgcap_desktop.core.vocab; "
        "bad = [m for m in ('keras', 'tensorflow') if m in sys.modules]; "
        "print(*bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=Path(__file__).resolve().parents[2], timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("huge", [10**12, 5 * 10**7])
def test_a_word_id_far_beyond_any_vocabulary_is_refused_without_allocating(Tokenizer, tmp_path, huge):
    tokenizer = fit(Tokenizer)
    tokenizer.word_index["dog"] = huge
    with pytest.raises(BundleError, match=f"'dog' has id {huge:,}, above 1,000,000"):
        load_legacy_tokenizer(dump(tmp_path, tokenizer))


def test_a_vocabulary_with_millions_of_words_is_refused_before_it_is_built(tmp_path):
    path = tmp_path / "vocab.json"
    words = [None] + [f"w{i}" for i in range(300_000)]
    path.write_text(json.dumps({"format": "imgcap-vocab", "version": 1, "words": words}))
    with pytest.raises(BundleError, match="300,001 entries, more than the 200,000"):
        Vocabulary.from_json(path)


def test_a_vocabulary_file_of_gigabytes_is_refused_before_it_is_read(tmp_path):
    path = tmp_path / "vocab.json"
    with path.open("wb") as fh:
        fh.truncate(3 * 1024**3)  # sparse: costs no disk, but read whole it would be 3 GB
    with pytest.raises(BundleError, match="far more than any vocabulary"):
        Vocabulary.from_json(path)
    (tmp_path / "tokenizer.pkl").symlink_to(path)
    with pytest.raises(BundleError, match="far more than any vocabulary"):
        load_legacy_tokenizer(tmp_path / "tokenizer.pkl")


def test_every_refusal_is_one_line_even_when_the_pickles_own_text_is_not(tmp_path, monkeypatch):
    from imgcap_desktop.core import vocab as vocab_module

    class Breaks:
        def __init__(self, *args, **kwargs):
            pass

        def load(self):
            raise ValueError("first line\nsecond line\n\tthird")

    monkeypatch.setattr(vocab_module, "_RestrictedUnpickler", Breaks)
    path = tmp_path / "tokenizer.pkl"
    path.write_bytes(pickle.dumps({}))  # well-formed opcodes, so the patched unpickler is reached
    with pytest.raises(BundleError) as info:
        load_legacy_tokenizer(path)
    assert "\n" not in str(info.value) and "first line second line third" in str(info.value)


def test_a_memo_index_of_billions_is_refused_before_unpickling(Tokenizer, tmp_path):
    """The C unpickler sizes its memo table by the index: LONG_BINPUT 1.9e9 would ask for 15 GB."""
    data = pickle.dumps(fit(Tokenizer), protocol=2)  # protocol 2: no frames, so no offsets to fix
    at = next(pos for op, _, pos in pickletools.genops(data) if op.name == "BINPUT")
    crafted = data[:at] + b"r" + struct.pack("<I", 1_868_783_460) + data[at + 2:]  # BINPUT n -> LONG_BINPUT
    with pytest.raises(BundleError, match="memo slot 1,868,783,460"):
        load_legacy_tokenizer(dump_bytes(tmp_path, crafted))


def dump_bytes(tmp_path: Path, data: bytes) -> Path:
    path = tmp_path / "tokenizer.pkl"
    path.write_bytes(data)
    return path
