"""Greedy and beam-search decoding, written once against the step API.

Greedy decoding reproduces the legacy seed procedure token for token: start from
the start token, take the arg-max word, stop at the end token, at an index that
has no word, or after ``max_length`` steps. Beam search keeps the ``k`` best
hypotheses per image and retires a hypothesis (shrinking that image's beam) when
it ends, so that ``k = 1`` is exactly greedy decoding.

A caption can be asked to contain one of a set of words (constrained beam search,
Anderson et al. 2017, "Guided Open Vocabulary Image Captioning with Constrained Beam
Search", with a single disjunctive constraint): the image then keeps two beams, one of
hypotheses that already hold such a word and one of those that do not yet, and a
finished hypothesis that holds one ranks above every one that does not.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from imgcap_desktop.core.families.base import StepModel


@dataclass
class Hypothesis:
    tokens: list[int]          # generated word ids, end token excluded
    log_prob: float            # summed log-probabilities of every consumed prediction, end token included
    steps: int                 # predictions made (len(tokens) + 1 if it ended)
    attention: list[np.ndarray] = field(default_factory=list)
    token_log_probs: list[float] = field(default_factory=list)  # one per prediction: what log_prob sums
    met: bool = True           # holds one of the image's required words (always, without a requirement)

    def score(self, length_penalty: float) -> float:
        """Log-probability divided by steps**alpha (Wu et al. 2016 use a smoothed form; this plain one is enough here)."""
        if length_penalty == 0.0:
            return self.log_prob
        return self.log_prob / max(self.steps, 1) ** length_penalty


@dataclass(frozen=True)
class Stops:
    """Which ids end a caption: the end token and every id with no word."""

    end_id: int
    terminal: np.ndarray       # bool (vocab,), True for end_id and for ids without a word
    banned: np.ndarray | None = None  # ids never chosen (e.g. the unknown-word token); None for seed fidelity

    @classmethod
    def from_vocabulary(cls, vocab, size: int, *, suppress_unknown: bool = False) -> "Stops":
        terminal = np.ones(size, dtype=bool)
        for idx in range(size):
            if vocab.word_of(idx) is not None:
                terminal[idx] = False
        terminal[vocab.end_id] = True
        banned = None
        if suppress_unknown:
            # Models we train never learn to emit padding or the start token, and "<unk>" is no caption word.
            banned = np.array([i for i in (0, vocab.start_id, vocab.unknown_id) if i is not None and i < size])
        return cls(vocab.end_id, terminal, banned)

    def apply(self, log_probs: np.ndarray) -> np.ndarray:
        if self.banned is None or len(self.banned) == 0:
            return log_probs
        log_probs = np.array(log_probs, copy=True)
        log_probs[:, self.banned] = -np.inf
        return log_probs


def _block_repeats(log_probs: np.ndarray, histories: list[list[int]], n: int) -> np.ndarray:
    """Forbid, per row, every word that would complete an n-gram the row already contains."""
    if n <= 0:
        return log_probs
    out = None
    for row, tokens in enumerate(histories):
        if len(tokens) < n - 1:
            continue
        prefix = tuple(tokens[len(tokens) - (n - 1):]) if n > 1 else ()
        banned = [tokens[i + n - 1] for i in range(len(tokens) - n + 1) if tuple(tokens[i:i + n - 1]) == prefix]
        if banned:
            if out is None:
                out = np.array(log_probs, copy=True)
            out[row, banned] = -np.inf
    return log_probs if out is None else out


def greedy(model: StepModel, features: np.ndarray, *, start_id: int, stops: Stops,
           max_length: int, keep_attention: bool = False, no_repeat_ngram: int = 0) -> list[Hypothesis]:
    n = len(features)
    context, state = model.begin(features)
    hyps = [Hypothesis([], 0.0, 0) for _ in range(n)]
    active = np.arange(n)                     # image index of every live row
    tokens = np.full(n, start_id, dtype=np.int32)
    for _ in range(max_length):
        out = model.step(context, state, tokens)
        log_probs = stops.apply(out.log_probs)
        log_probs = _block_repeats(log_probs, [hyps[i].tokens for i in active], no_repeat_ngram)
        best = log_probs.argmax(axis=1)
        best_lp = log_probs[np.arange(len(active)), best]
        done = stops.terminal[best]
        for row, image in enumerate(active):
            h = hyps[image]
            h.log_prob += float(best_lp[row])
            h.token_log_probs.append(float(best_lp[row]))
            h.steps += 1
            if keep_attention and out.attention is not None:
                h.attention.append(out.attention[row])
            if not done[row]:
                h.tokens.append(int(best[row]))
        keep = np.flatnonzero(~done)
        if len(keep) == 0:
            break
        state = out.state
        if len(keep) < len(active):
            # Finished rows leave the batch so later steps cost only what is still running.
            context = model.select(context, keep)
            state = model.select(state, keep)
        active = active[keep]
        tokens = best[keep].astype(np.int32)
    return hyps


def beam_search(model: StepModel, features: np.ndarray, *, beam: int, start_id: int, stops: Stops,
                max_length: int, length_penalty: float = 0.0,
                keep_attention: bool = False, no_repeat_ngram: int = 0,
                required: "list[np.ndarray | None] | None" = None) -> list[list[Hypothesis]]:
    """The ``beam`` best hypotheses per image, best first, ranked by :meth:`Hypothesis.score`.

    ``required``: per image, word ids of which the caption should hold one (None: no requirement).
    Hypotheses that hold one come first; the others are still returned, after them.
    """
    n = len(features)
    required = list(required) if required is not None else [None] * n
    if len(required) != n:
        raise ValueError(f"{len(required)} word requirements for {n} images")
    if beam <= 1 and not any(r is not None and len(r) for r in required):
        return [[h] for h in greedy(model, features, start_id=start_id, stops=stops, max_length=max_length,
                                    keep_attention=keep_attention, no_repeat_ngram=no_repeat_ngram)]
    beam = max(beam, 1)
    wanted = []                               # per image: (vocab,) bool of required ids, or None
    for ids in required:
        if ids is None or len(ids) == 0:
            wanted.append(None)
            continue
        mask = np.zeros(model.vocab_size, dtype=bool)
        mask[np.asarray(ids, dtype=np.int64)] = True
        wanted.append(mask & ~stops.terminal)
    context, state = model.begin(features)
    # One row per live hypothesis; at the start each image has a single row.
    rows_image = np.arange(n)
    live = [Hypothesis([], 0.0, 0, met=wanted[i] is None) for i in range(n)]
    finished: list[list[Hypothesis]] = [[] for _ in range(n)]
    # Beam slots not yet taken by a finished hypothesis: column 1 for hypotheses holding a required
    # word (every hypothesis of an image without a requirement), column 0 for those still without.
    room = np.zeros((n, 2), dtype=np.int64)
    room[:, 1] = beam
    room[[i for i in range(n) if wanted[i] is not None], 0] = beam
    tokens = np.full(n, start_id, dtype=np.int32)
    row_context = np.arange(n)                # which context row each live row reads
    ctx_rows = context
    other_stops = stops.terminal.copy()
    other_stops[stops.end_id] = False
    several_stops = bool(other_stops.any())

    for step_no in range(max_length):
        out = model.step(ctx_rows, state, tokens)
        log_probs = _block_repeats(stops.apply(out.log_probs), [h.tokens for h in live], no_repeat_ngram)
        last = step_no == max_length - 1
        next_rows: list[int] = []
        next_tokens: list[int] = []
        next_live: list[Hypothesis] = []
        next_image: list[int] = []
        for image in range(n):
            mine = np.flatnonzero(rows_image == image)
            if len(mine) == 0 or room[image].sum() <= 0:
                continue
            totals = np.array([live[r].log_prob for r in mine], dtype=np.float64)[:, None] + log_probs[mine]
            if several_stops:
                # Ending with endseq, padding or a gap id gives the same caption: only the likeliest stop of
                # each row competes, so that the k alternatives are k different captions.
                totals[:, stops.end_id] = totals[:, stops.terminal].max(axis=1)
                totals[:, other_stops] = -np.inf
            if wanted[image] is None:
                groups = [(True, totals)]
            else:
                met_rows = np.array([live[r].met for r in mine])
                holds = met_rows[:, None] | wanted[image][None, :]
                # Named once: a hypothesis that holds the word may not say it again ("a tripod on a tripod").
                again = met_rows[:, None] & wanted[image][None, :]
                groups = [(True, np.where(holds & ~again, totals, -np.inf)), (False, np.where(holds, -np.inf, totals))]
            for met, scored in groups:
                k = int(room[image, int(met)])
                if k <= 0:
                    continue
                flat = scored.ravel()
                top = np.argpartition(-flat, k - 1)[:k] if flat.size > k else np.arange(flat.size)
                top = top[np.argsort(-flat[top], kind="stable")]
                for idx in top:
                    if flat[idx] == -np.inf:
                        continue  # fewer possible continuations than beam slots
                    r_local, word = divmod(int(idx), scored.shape[1])
                    parent = live[mine[r_local]]
                    child = Hypothesis(list(parent.tokens), float(flat[idx]), parent.steps + 1,
                                       list(parent.attention),
                                       parent.token_log_probs + [float(flat[idx]) - parent.log_prob], met=met)
                    if keep_attention and out.attention is not None:
                        child.attention.append(out.attention[mine[r_local]])
                    if stops.terminal[word]:
                        finished[image].append(child)
                        room[image, int(met)] -= 1
                        if met and room[image, 1] <= 0:
                            room[image, 0] = 0  # beam finished captions that name the word outrank any other
                    elif last:
                        child.tokens.append(word)
                        finished[image].append(child)
                    else:
                        child.tokens.append(word)
                        next_rows.append(int(mine[r_local]))
                        next_tokens.append(word)
                        next_live.append(child)
                        next_image.append(image)
        if not next_rows:
            break
        sel = np.asarray(next_rows)
        state = model.select(out.state, sel)
        row_context = row_context[sel]
        ctx_rows = model.select(context, row_context)
        rows_image = np.asarray(next_image)
        live = next_live
        tokens = np.asarray(next_tokens, dtype=np.int32)

    ranked = []
    for image in range(n):
        hyps = sorted(finished[image], key=lambda h: (h.met, h.score(length_penalty)), reverse=True)
        ranked.append(hyps[:beam])
    return ranked
