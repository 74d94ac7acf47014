"""Caption metrics with the COCO caption evaluation code (pycocoevalcap).

BLEU-1..4, METEOR, ROUGE-L and CIDEr come from pycocoevalcap so that the numbers are
the ones papers report. That package tokenizes with Stanford's PTBTokenizer and scores
METEOR with a jar, both through ``java``. Its own wrappers write temporary files into
site-packages (read-only in an installed app), pick up the user's locale (METEOR's
number parsing fails under e.g. a German locale) and wait forever on a dead or stuck
JVM. So the same jars are driven here with the same options, but with a fixed locale,
a private temp folder and a timeout. Without Java the PTB tokenization is imitated in
Python and METEOR is left out with a note. SPICE is never run: it downloads models.
"""

from __future__ import annotations

import contextlib
import io
import re
import shutil
import subprocess
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path

# pycocoevalcap's PUNCTUATIONS list: tokens dropped after PTB tokenization. Kept here
# too so that the pure-Python path is importable and testable on its own.
PUNCTUATIONS = frozenset(["''", "'", "``", "`", "-LRB-", "-RRB-", "-LCB-", "-RCB-",
                          ".", "?", "!", ",", ":", "-", "--", "...", ";"])

_INSTALL_HINT = (
    "Caption metrics need pycocoevalcap; install it with: pip install 'imgcap-desktop[eval]'"
)


@dataclass
class MetricsReport:
    """Corpus-level scores (0..1 scale for BLEU/METEOR/ROUGE-L, CIDEr is unbounded)."""

    scores: dict[str, float]
    notes: list[str] = field(default_factory=list)
    tokenizer: str = ""
    n_images: int = 0


def _pycocoevalcap():
    try:
        import pycocoevalcap  # noqa: F401
        from pycocoevalcap.bleu.bleu import Bleu
        from pycocoevalcap.cider.cider import Cider
        from pycocoevalcap.rouge.rouge import Rouge
    except ImportError as exc:
        raise ImportError(_INSTALL_HINT) from exc
    return Bleu, Rouge, Cider


def _jar(subpackage: str, name: str) -> Path:
    import pycocoevalcap

    for base in pycocoevalcap.__path__:
        path = Path(base) / subpackage / name
        if path.is_file():
            return path
    raise FileNotFoundError(f"{name} is missing from the pycocoevalcap installation.")


def _java_base(java: str) -> list[str]:
    # A fixed locale: METEOR parses its own "4.0" statistics with the JVM's locale and
    # dies on "4,0"-style locales; utf-8 so accented captions reach the jars intact.
    return [java, "-Duser.language=en", "-Duser.country=US", "-Dfile.encoding=UTF-8"]


# --- tokenization ---------------------------------------------------------------------

# PTBTokenizer -lowerCase spells brackets as "-lrb-" etc. pycocoevalcap compares them
# against its upper-case PUNCTUATIONS, so the standard numbers keep them as words.
_BRACKETS = {"(": "-lrb-", ")": "-rrb-", "[": "-lsb-", "]": "-rsb-", "{": "-lcb-", "}": "-rcb-"}
_CLITIC_NT = re.compile(r"(\w)(n't)\b")
_CLITIC = re.compile(r"(\w)('(?:s|re|ve|ll|d|m))\b")
_CANNOT = re.compile(r"\bcannot\b")
_PTB_TOKEN = re.compile(
    r"""
      \d+(?:[.,:]\d+)+                          # 3.5, 1,000, 10:30 stay whole
    | [a-z0-9-]+(?:\.[a-z0-9-]+)*\.(?:com|org|net|edu|gov)\b
    | (?:[a-z]\.){2,}                           # u.s. keeps its dots
    | (?:mrs?|ms|dr|jr|sr|st|mt|vs|inc|co|ltd|prof|[a-z])\.(?=\s|$)  # mr. jr. "u." too
    | o'clock | 'n'
    | n't | '(?:s|re|ve|ll|d|m)\b              # clitics split off by the substitutions above
    | [^\W_]+(?:[-/][^\W_]+)*                   # words, tri-colored, and/or
    | \.\.\. | -- | ``| ''
    | \S                                        # any other symbol is its own token
    """,
    re.VERBOSE,
)


def ptb_tokenize(text: str) -> str:
    """Imitate ``PTBTokenizer -preserveLines -lowerCase`` plus pycocoevalcap's punctuation drop.

    Exact for ordinary captions (words, commas, periods, quotes, clitics, hyphens); rare
    constructs such as abbreviations with a final period may differ from the jar.
    """
    text = " ".join(text.lower().replace('"', " ").split())
    text = _CANNOT.sub("can not", text)
    text = _CLITIC_NT.sub(r"\1 \2", text)
    text = _CLITIC.sub(r"\1 \2", text)
    tokens = (_BRACKETS.get(t, t) for t in _PTB_TOKEN.findall(text))
    return " ".join(t for t in tokens if t not in PUNCTUATIONS)


def _ptb_tokenize_java(texts: list[str], java: str, timeout: float) -> list[str]:
    jar = _jar("tokenizer", "stanford-corenlp-3.4.1.jar")
    cmd = _java_base(java) + ["-cp", str(jar), "edu.stanford.nlp.process.PTBTokenizer",
                              "-preserveLines", "-lowerCase"]
    with tempfile.TemporaryDirectory(prefix="imgcap-ptb-") as tmp:
        src = Path(tmp) / "captions.txt"
        src.write_text("\n".join(t.replace("\n", " ").replace("\r", " ") for t in texts), encoding="utf-8")
        proc = subprocess.run(cmd + [str(src)], capture_output=True, timeout=timeout, check=False)
    if proc.returncode != 0:
        raise RuntimeError(_last_line(proc.stderr) or f"exit status {proc.returncode}")
    lines = proc.stdout.decode("utf-8", errors="replace").split("\n")
    if len(lines) < len(texts):
        raise RuntimeError(f"it returned {len(lines)} lines for {len(texts)} captions")
    return [" ".join(w for w in line.rstrip().split(" ") if w and w not in PUNCTUATIONS)
            for line in lines[: len(texts)]]


def _last_line(data: bytes) -> str:
    lines = [ln.strip() for ln in data.decode("utf-8", errors="replace").splitlines() if ln.strip()]
    return lines[-1] if lines else ""


# --- METEOR ---------------------------------------------------------------------------


def _meteor_java(keys: list[str], gts: dict[str, list[str]], res: dict[str, list[str]],
                 java: str, timeout: float) -> float:
    """pycocoevalcap's Meteor.compute_score protocol, with a deadline.

    The jar answers one line per request over pipes; if it stalls (memory, a crash
    that leaves the JVM alive), a plain readline would block forever, so the exchange
    runs in a thread and the process is killed when the deadline passes.
    """
    jar = _jar("meteor", "meteor-1.5.jar")
    cmd = _java_base(java) + ["-Xmx2G", "-jar", jar.name, "-", "-", "-stdio", "-l", "en", "-norm"]
    outcome: dict[str, object] = {}
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(cmd, cwd=jar.parent, stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=err)

        def ask(line: str) -> str:
            proc.stdin.write((line + "\n").encode("utf-8"))
            proc.stdin.flush()
            answer = proc.stdout.readline().decode("utf-8", errors="replace").strip()
            if not answer:
                raise RuntimeError("the METEOR process stopped answering")
            return answer

        def talk() -> None:
            try:
                stats = []
                for k in keys:
                    hyp = res[k][0].replace("|||", "").replace("  ", " ")
                    stats.append(ask(" ||| ".join(("SCORE", " ||| ".join(gts[k]), hyp))))
                proc.stdin.write(("EVAL ||| " + " ||| ".join(stats) + "\n").encode("utf-8"))
                proc.stdin.flush()
                for _ in keys:  # per-image scores, not reported
                    proc.stdout.readline()
                outcome["score"] = float(proc.stdout.readline().strip())
            except Exception as exc:  # noqa: BLE001 - reported as a note by the caller
                outcome["error"] = exc

        worker = threading.Thread(target=talk, name="meteor-io", daemon=True)
        worker.start()
        worker.join(timeout)
        timed_out = worker.is_alive()
        with contextlib.suppress(OSError):
            proc.stdin.close()
        proc.kill()
        proc.wait()
        worker.join(5)
        err.seek(0)
        stderr_tail = _last_line(err.read())
    if timed_out:
        raise TimeoutError(f"no answer within {timeout:.0f} s")
    if "error" in outcome:
        detail = str(outcome["error"])
        raise RuntimeError(f"{detail}: {stderr_tail}" if stderr_tail else detail)
    return float(outcome["score"])


# --- scoring --------------------------------------------------------------------------


def _rouge_l(rouge, keys: list[str], gts: dict[str, list[str]], res: dict[str, list[str]]) -> float:
    # Rouge.calc_score divides by the candidate length; an empty caption (a model that
    # emitted only the end token) scores 0 instead of crashing the whole evaluation.
    scores = [rouge.calc_score(res[k], gts[k]) if res[k][0].split() else 0.0 for k in keys]
    return sum(scores) / len(scores)


def score_captions(
    predictions: dict[str, str],
    references: dict[str, list[str]],
    *,
    use_java: bool | None = None,
    timeout_s: float | None = None,
) -> MetricsReport:
    """Score one predicted caption per image against that image's reference captions.

    Only images in ``predictions`` are scored; each needs at least one reference.
    ``use_java=None`` uses Java when ``java`` is on PATH; ``False`` never does (no
    METEOR, Python tokenizer); ``True`` insists on it. CIDEr's IDF comes from the
    scored references, so it needs a set of images (one image always scores 0).
    ``timeout_s`` bounds each Java step; by default it grows with the number of images.
    """
    Bleu, Rouge, Cider = _pycocoevalcap()
    if not predictions:
        raise ValueError("There are no predicted captions to score.")
    keys = sorted(predictions)
    no_refs = [k for k in keys if not any(str(r).strip() for r in references.get(k, ()))]
    if no_refs:
        raise ValueError(f"{len(no_refs)} predicted image(s) have no reference captions, e.g. {no_refs[0]}.")
    notes: list[str] = []
    unscored = len(set(references) - set(predictions))
    if unscored:
        notes.append(f"{unscored} image(s) with references but no prediction were not scored.")

    java = shutil.which("java") if use_java is not False else None
    if use_java and java is None:
        raise FileNotFoundError("use_java=True but no 'java' program is on PATH; install a JRE or pass use_java=False.")
    if timeout_s is None:
        timeout_s = 120.0 + 0.2 * len(keys)

    ref_lists = {k: [str(r) for r in references[k] if str(r).strip()] for k in keys}
    flat = [str(predictions[k]) for k in keys] + [r for k in keys for r in ref_lists[k]]
    tokenizer = "python"
    tokenized: list[str] | None = None
    if java is not None:
        try:
            tokenized = _ptb_tokenize_java(flat, java, timeout_s)
            tokenizer = "ptb-java"
        except (OSError, RuntimeError, subprocess.TimeoutExpired) as exc:
            notes.append(f"Java PTBTokenizer failed ({exc}); used the Python imitation, scores may differ slightly.")
    else:
        notes.append("METEOR skipped: Java was not found (install a JRE to get it)."
                     if use_java is None else "METEOR skipped: Java was turned off (use_java=False).")
    if tokenized is None:
        tokenized = [ptb_tokenize(t) for t in flat]

    res = {k: [tokenized[i]] for i, k in enumerate(keys)}
    gts: dict[str, list[str]] = {}
    pos = len(keys)
    for k in keys:
        n = len(ref_lists[k])
        gts[k] = tokenized[pos : pos + n]
        pos += n
    for k in keys:
        kept = [r for r in gts[k] if r.split()]
        # A reference of only punctuation tokenizes to nothing and would divide by zero.
        gts[k] = kept or gts[k]

    scores: dict[str, float] = {}
    with contextlib.redirect_stdout(io.StringIO()):  # BleuScorer prints its counts
        bleu, _ = Bleu(4).compute_score(gts, res)
    for n, value in enumerate(bleu, start=1):
        scores[f"BLEU-{n}"] = float(value)
    if java is not None:
        try:
            scores["METEOR"] = _meteor_java(keys, gts, res, java, timeout_s)
        except (OSError, RuntimeError, TimeoutError, ValueError) as exc:
            notes.append(f"METEOR skipped: the METEOR jar failed ({exc}).")
    scores["ROUGE-L"] = float(_rouge_l(Rouge(), keys, gts, res))
    cider, _ = Cider().compute_score(gts, res)
    scores["CIDEr"] = float(cider)
    if len(keys) == 1:
        notes.append("CIDEr is 0 for a single image: its IDF weights need several images.")
    return MetricsReport(scores=scores, notes=notes, tokenizer=tokenizer, n_images=len(keys))


def java_works(timeout_s: float = 30.0) -> bool:
    """Whether ``java`` is on PATH and starts; for tests and diagnostics."""
    java = shutil.which("java")
    if java is None:
        return False
    try:
        return subprocess.run([java, "-version"], capture_output=True, timeout=timeout_s).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False
