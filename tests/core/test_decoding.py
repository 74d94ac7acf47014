"""Greedy and beam decoding against a tiny deterministic step model (a transition table, pure NumPy).

The table gives the next-token distribution from (image, last token), so every
expected caption and log-probability here can be worked out by hand.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from imgcap_desktop.core import decoding
from imgcap_desktop.core.families.base import StepModel, StepOutput
from imgcap_desktop.core.vocab import Vocabulary

# id:      0     1           2         3    4    5    6      7 (a gap: no word)   8      9
WORDS = (None, "startseq", "endseq", "a", "b", "c", "d", None, "e", "f")
VOCAB = Vocabulary(WORDS)
START, END, A, B, C, D, GAP, E, F = 1, 2, 3, 4, 5, 6, 7, 8, 9
V = len(WORDS)
FLOOR = 1e-4  # least probability of any id


def _dist(choices: dict[int, float]) -> np.ndarray:
    """Log-probabilities over the vocabulary: the named ids get their probability, the others share the rest."""
    p = np.full(V, max((1.0 - sum(choices.values())) / (V - len(choices)), FLOOR))
    for idx, prob in choices.items():
        p[idx] = prob
    p /= p.sum()
    return np.log(p)


class TableModel(StepModel):
    """next-token log-probs = table[image][last token]; rows passed to every step are recorded."""

    def __init__(self, table: dict[int, dict[int, dict[int, float]]], max_length: int = 20):
        self.vocab_size = V
        self.max_length = max_length
        uniform = _dist({})
        self.table = {img: {tok: _dist(ch) for tok, ch in rows.items()} for img, rows in table.items()}
        self.uniform = uniform
        self.rows_per_step: list[int] = []

    def begin(self, features):
        images = np.asarray(features, dtype=np.int64).reshape(-1)
        return (images,), (np.zeros(len(images), np.int64),)

    def step(self, context, state, tokens):
        (images,), (steps,) = context, state
        assert len(images) == len(tokens) == len(steps)
        self.rows_per_step.append(len(tokens))
        log_probs = np.stack([self.table[int(i)].get(int(t), self.uniform) for i, t in zip(images, tokens)])
        return StepOutput(log_probs.astype(np.float32), (steps + 1,))

    def select(self, arrays, rows):
        return tuple(np.asarray(a)[np.asarray(rows)] for a in arrays)


STOPS = decoding.Stops.from_vocabulary(VOCAB, V)

# image 0: start -> a -> b -> end
# image 1: start -> c -> (gap id, no word)
# image 2: start -> d -> d -> d ... (never ends)
# image 3: greedy takes a (0.5) then has only weak continuations; b (0.4) then ends at once (0.9)
# image 4: greedy a (0.5) -> c (0.24) -> end (1.0) = 0.12, but a's continuations are so spread that both
#          children of b (0.3) outrank it, and b's children only lead to near-uniform, unlikely words
# image 5: a short caption (a, end: 0.5 * 0.6 = 0.30) against a longer one whose every step is likelier
#          (b d e f end: 0.4 * 0.9**4 = 0.26): the length penalty decides
# image 6: "a" then either the end token or a gap id: two endings of one caption
TABLE = {
    0: {START: {A: 0.7, B: 0.2}, A: {B: 0.8, C: 0.1}, B: {END: 0.9}},
    1: {START: {C: 0.8}, C: {GAP: 0.7, D: 0.2}},
    2: {START: {D: 0.9}, D: {D: 0.9}},
    3: {START: {A: 0.5, B: 0.4}, A: {C: 0.34, D: 0.33, E: 0.32}, B: {END: 0.9},
        C: {END: 1.0}, D: {END: 1.0}, E: {END: 1.0}},
    4: {START: {A: 0.5, B: 0.3, C: 0.2}, A: {C: 0.24, D: 0.19, E: 0.19, F: 0.19, GAP: 0.19},
        B: {D: 0.55, E: 0.45}, C: {END: 1.0},
        D: {A: 0.3, B: 0.25, D: 0.2, E: 0.15, END: 0.1}, E: {A: 0.3, B: 0.25, D: 0.2, E: 0.15, END: 0.1}},
    5: {START: {A: 0.5, B: 0.4}, A: {END: 0.6, C: 0.1, D: 0.1, E: 0.1, F: 0.1},
        B: {D: 0.9}, D: {E: 0.9}, E: {F: 0.9}, F: {END: 0.9}},
    6: {START: {A: 0.9}, A: {END: 0.5, GAP: 0.45}},
}


def _greedy(model, images, max_length=10):
    return decoding.greedy(model, np.array(images), start_id=START, stops=STOPS, max_length=max_length)


def _beam(model, images, beam, max_length=10, length_penalty=0.0):
    return decoding.beam_search(model, np.array(images), beam=beam, start_id=START, stops=STOPS,
                                max_length=max_length, length_penalty=length_penalty)


def _lp(model, image, tokens, stop=None):
    """Log-probability of a path through the table, worked out directly."""
    total, last = 0.0, START
    for t in list(tokens) + ([stop] if stop is not None else []):
        total += float(model.table[image].get(last, model.uniform)[t])
        last = t
    return total


def test_stops_mark_the_end_and_every_id_without_a_word():
    assert STOPS.end_id == END
    assert [i for i in range(V) if STOPS.terminal[i]] == [0, END, GAP]


def test_greedy_takes_the_arg_max_and_stops_at_the_end_token():
    model = TableModel(TABLE)
    (h,) = _greedy(model, [0])
    assert h.tokens == [A, B]
    assert h.steps == 3  # a, b, and the end token
    assert h.log_prob == pytest.approx(_lp(model, 0, [A, B], END), abs=1e-5)


def test_greedy_stops_at_an_id_with_no_word():
    model = TableModel(TABLE)
    (h,) = _greedy(model, [1])
    assert h.tokens == [C] and h.steps == 2


def test_greedy_stops_after_max_length_tokens():
    model = TableModel(TABLE)
    (h,) = _greedy(model, [2], max_length=6)
    assert h.tokens == [D] * 6 and h.steps == 6
    assert model.rows_per_step == [1] * 6


def test_finished_rows_leave_the_batch():
    model = TableModel(TABLE)
    hyps = _greedy(model, [0, 1, 2], max_length=6)
    assert [h.tokens for h in hyps] == [[A, B], [C], [D] * 6]
    # image 1 ends at step 2, image 0 at step 3; image 2 runs alone after that
    assert model.rows_per_step == [3, 3, 2, 1, 1, 1]


def test_batch_and_single_greedy_agree():
    together = _greedy(TableModel(TABLE), [0, 1, 2, 3, 4, 5, 6])
    alone = [_greedy(TableModel(TABLE), [i])[0] for i in range(7)]
    assert [(h.tokens, h.steps) for h in together] == [(h.tokens, h.steps) for h in alone]
    assert [h.log_prob for h in together] == pytest.approx([h.log_prob for h in alone])


def test_beam_of_one_is_greedy():
    greedy = _greedy(TableModel(TABLE), list(range(7)))
    beam = _beam(TableModel(TABLE), list(range(7)), beam=1)
    assert [(h.tokens, h.log_prob, h.steps) for h in greedy] == [(b[0].tokens, b[0].log_prob, b[0].steps) for b in beam]


def test_beam_search_finds_a_likelier_caption_that_greedy_misses():
    model = TableModel(TABLE)
    (g,) = _greedy(model, [3])
    assert g.tokens == [A, C]  # 0.5 * 0.34 * 1.0
    (hyps,) = _beam(model, [3], beam=2)
    assert hyps[0].tokens == [B]  # 0.4 * 0.9
    assert hyps[0].log_prob == pytest.approx(_lp(model, 3, [B], END), abs=1e-5)
    assert hyps[0].log_prob > g.log_prob
    assert [h.tokens for h in hyps] == [[B], [A, C]]


def test_beam_search_is_not_guaranteed_to_beat_greedy():
    """The greedy path can fall out of the beam: here both of b's children outrank a's best child."""
    model = TableModel(TABLE)
    (g,) = _greedy(model, [4])
    assert g.tokens == [A, C] and math.exp(g.log_prob) == pytest.approx(0.12, rel=0.01)
    (hyps,) = _beam(model, [4], beam=2, max_length=4)
    assert all(h.tokens[0] == B for h in hyps)
    assert hyps[0].log_prob < g.log_prob
    # A wider beam keeps the greedy path and does at least as well.
    (wide,) = _beam(TableModel(TABLE), [4], beam=5, max_length=4)
    assert wide[0].log_prob >= g.log_prob


def test_beam_returns_k_distinct_hypotheses_best_first():
    model = TableModel(TABLE)
    for ranked in _beam(model, list(range(7)), beam=3, max_length=6):
        assert len(ranked) == 3
        assert len({tuple(h.tokens) for h in ranked}) == 3
        scores = [h.log_prob for h in ranked]
        assert scores == sorted(scores, reverse=True)


def test_length_penalty_changes_the_ranking():
    short, long = [A], [B, D, E, F]
    (plain,) = _beam(TableModel(TABLE), [5], beam=2, length_penalty=0.0)
    assert [h.tokens for h in plain] == [short, long]  # 0.30 > 0.26
    # alpha = 1 ranks by mean log-probability per step: the longer caption's steps are each likelier
    (normalised,) = _beam(TableModel(TABLE), [5], beam=2, length_penalty=1.0)
    assert [h.tokens for h in normalised] == [long, short]
    assert normalised[0].score(1.0) == pytest.approx(math.log(0.4 * 0.9 ** 4) / 5, abs=1e-3)
    assert plain[0].log_prob == pytest.approx(math.log(0.5 * 0.6), abs=1e-3)


def test_hypothesis_score():
    h = decoding.Hypothesis([A, B], math.log(0.25), 2)
    assert h.score(0.0) == h.log_prob
    assert h.score(1.0) == pytest.approx(math.log(0.5))
    assert h.score(0.5) == pytest.approx(math.log(0.25) / math.sqrt(2))


def test_beam_rows_shrink_as_hypotheses_finish():
    model = TableModel(TABLE)
    ranked = _beam(model, [3, 0], beam=2, max_length=8)
    # step 1: one row per image; step 2: two each; there image 3's "b end" and image 0's "b end" finish,
    # leaving one live row per image, which both end at step 3
    assert model.rows_per_step == [2, 4, 2]
    assert [[h.tokens for h in hyps] for hyps in ranked] == [[[B], [A, C]], [[A, B], [B]]]


def test_one_caption_ended_two_ways_is_one_alternative():
    (g,) = _greedy(TableModel(TABLE), [6])
    (hyps,) = _beam(TableModel(TABLE), [6], beam=2)
    assert hyps[0].tokens == g.tokens == [A]
    assert hyps[0].log_prob == pytest.approx(math.log(0.9 * 0.5), abs=1e-5)
    assert len(hyps) == 2 and hyps[1].tokens != [A]  # not "a" again, ended by the gap id


def _bigrams(tokens):
    return [tuple(tokens[i:i + 2]) for i in range(len(tokens) - 1)]


@pytest.mark.parametrize("beam", [1, 3])
def test_no_repeat_ngram_blocks_a_repeated_phrase(beam):
    model = TableModel(TABLE)
    plain = decoding.beam_search(model, np.array([2]), beam=beam, start_id=START, stops=STOPS, max_length=6)[0][0]
    assert plain.tokens == [D] * 6  # image 2 says "d d d d d d"
    blocked = decoding.beam_search(model, np.array([2]), beam=beam, start_id=START, stops=STOPS, max_length=6,
                                   no_repeat_ngram=2)[0][0]
    assert blocked.tokens[:2] == [D, D]  # the first "d d" is allowed, a second one is not
    grams = _bigrams(blocked.tokens)
    assert len(grams) == len(set(grams))


def test_no_repeat_ngram_leaves_captions_without_repeats_alone():
    model = TableModel(TABLE)
    images = [0, 1, 3, 5, 6]
    assert ([h.tokens for h in decoding.greedy(model, np.array(images), start_id=START, stops=STOPS, max_length=10,
                                               no_repeat_ngram=3)]
            == [h.tokens for h in _greedy(model, images)])


# --- captions that must name a word (constrained beam search) -----------------------------------------


def _guided(model, images, required, beam=3, max_length=10):
    return decoding.beam_search(model, np.array(images), beam=beam, start_id=START, stops=STOPS,
                                max_length=max_length, required=required)


def test_a_required_word_is_named_and_such_captions_rank_first():
    model = TableModel(TABLE)
    hyps = _guided(model, [0], [np.array([C])])[0]
    assert hyps[0].met and C in hyps[0].tokens
    assert [h.met for h in hyps] == sorted((h.met for h in hyps), reverse=True)
    # The likeliest caption holding c: "a" (0.7) then "c" (0.1), then c's near-uniform row ends it or goes on.
    assert hyps[0].tokens[:2] == [A, C]
    assert hyps[0].log_prob == pytest.approx(_lp(model, 0, hyps[0].tokens, END), abs=1e-5)


def test_a_caption_that_already_names_the_word_is_unchanged():
    plain = _beam(TableModel(TABLE), [0], beam=3)[0][0]
    guided = _guided(TableModel(TABLE), [0], [np.array([B])])[0][0]
    assert guided.tokens == plain.tokens == [A, B] and guided.met
    assert guided.log_prob == pytest.approx(plain.log_prob)


def test_any_one_of_the_words_will_do_and_it_is_named_once():
    # Image 2 says "d" for ever: with d required it says it once and must go on with other words.
    hyps = _guided(TableModel(TABLE), [2], [np.array([D, F])], max_length=6)[0]
    assert hyps[0].met and hyps[0].tokens[0] == D
    assert sum(t in (D, F) for t in hyps[0].tokens) == 1


def test_images_without_a_requirement_decode_as_before_in_the_same_batch():
    plain = _beam(TableModel(TABLE), [0, 5, 3], beam=3)
    guided = _guided(TableModel(TABLE), [0, 5, 3], [None, np.array([F]), np.array([], dtype=np.int64)])
    for i in (0, 2):
        assert [h.tokens for h in guided[i]] == [h.tokens for h in plain[i]]
        assert [h.log_prob for h in guided[i]] == pytest.approx([h.log_prob for h in plain[i]])
        assert all(h.met for h in guided[i])
    assert guided[1][0].met and F in guided[1][0].tokens


def test_a_beam_of_one_with_a_requirement_still_names_the_word():
    (h,), = _guided(TableModel(TABLE), [0], [np.array([C])], beam=1)
    assert h.met and C in h.tokens
    with pytest.raises(ValueError, match="2 word requirements for 1 images"):
        _guided(TableModel(TABLE), [0], [None, None])
