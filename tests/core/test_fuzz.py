"""The fuzz suite in CI: a bounded number of mutated inputs per reader, each in a subprocess
whose address space is capped (a memory blow-up fails the case instead of the machine).
`make fuzz` runs the same loop with many more cases."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

FUZZ = Path(__file__).resolve().parents[1] / "support" / "fuzz.py"
CASES = int(os.environ.get("IMGCAP_FUZZ_CASES", "2000"))
SEED = os.environ.get("IMGCAP_FUZZ_SEED", "20261203")


@pytest.fixture(scope="module")
def tokenizer_pickles(tmp_path_factory):
    text = pytest.importorskip("keras.src.legacy.preprocessing.text")
    folder = tmp_path_factory.mktemp("pickles")
    tokenizer = text.Tokenizer(oov_token="<unk>")
    tokenizer.fit_on_texts(["startseq a dog runs on the grass endseq", "startseq two children play endseq"])
    for protocol in (2, pickle.HIGHEST_PROTOCOL):
        (folder / f"tokenizer-{protocol}.pkl").write_bytes(pickle.dumps(tokenizer, protocol=protocol))
    return folder


@pytest.mark.parametrize("target", ["images", "metadata", "vocabulary", "pickle", "bundle", "raw", "xmp"])
def test_mutated_inputs_end_in_success_or_a_typed_error(target, tmp_path, tokenizer_pickles):
    done = subprocess.run([sys.executable, str(FUZZ), target, str(CASES), SEED, str(tmp_path),
                           "--seed-files", str(tokenizer_pickles)],
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    assert f"{CASES} cases" in done.stdout
