"""CIDEr-D in NumPy-free Python, fast enough to be a training reward.

pycocoevalcap's implementation scores a whole corpus at once and recomputes the
document frequencies every call; self-critical training needs thousands of
scores per epoch against fixed references, so the frequencies are computed once
here. The formula is the one of Vedantam et al. (2015) as coco-caption applies it
(CIDEr-D: clipped counts, Gaussian length penalty with sigma 6, ×10).
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Sequence

N = 4
SIGMA = 6.0


def _ngrams(words: Sequence[str]) -> list[Counter]:
    return [Counter(tuple(words[i:i + n]) for i in range(len(words) - n + 1)) for n in range(1, N + 1)]


class CiderD:
    def __init__(self, references: dict[str, list[list[str]]]):
        """``references``: image key -> reference captions as token lists (the corpus for IDF)."""
        df: Counter = Counter()
        for refs in references.values():
            seen = set()
            for ref in refs:
                for grams in _ngrams(ref):
                    seen.update(grams)
            df.update(seen)
        self.df = df
        self.log_n = math.log(float(len(references)))
        self.refs = {k: [self._vec(r) for r in refs] for k, refs in references.items()}

    def _vec(self, words: Sequence[str]):
        vecs, norms = [], []
        for grams in _ngrams(words):
            vec = {g: tf * (self.log_n - math.log(max(1.0, self.df.get(g, 0.0)))) for g, tf in grams.items()}
            vecs.append(vec)
            norms.append(math.sqrt(sum(v * v for v in vec.values())))
        return vecs, norms, len(words)

    def score(self, key: str, words: Sequence[str]) -> float:
        hyp_vecs, hyp_norms, hyp_len = self._vec(words)
        refs = self.refs[key]
        total = 0.0
        for ref_vecs, ref_norms, ref_len in refs:
            delta = hyp_len - ref_len
            penalty = math.exp(-(delta * delta) / (2 * SIGMA * SIGMA))
            sims = 0.0
            for n in range(N):
                hv, rv = hyp_vecs[n], ref_vecs[n]
                if not hv or not rv or hyp_norms[n] == 0 or ref_norms[n] == 0:
                    continue
                dot = sum(min(v, rv[g]) * rv[g] for g, v in hv.items() if g in rv)
                sims += dot / (hyp_norms[n] * ref_norms[n])
            total += penalty * sims / N
        return 10.0 * total / len(refs)
