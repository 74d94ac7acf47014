"""A calibrated confidence per caption: the estimated probability that it is a good caption.

The features are what the decoder already computed for the caption; a logistic regression over
them, fitted on held-out photos (``imgcap calibrate``), turns them into a probability. Its
coefficients travel in the bundle's manifest (``calibration``), so a bundle without one (the seed
model) has no confidence, and says so, instead of an invented number.

Every coefficient is kept to the sign it should have (a likelier caption is never *less*
trusted): a feature whose fitted sign comes out the other way is dropped and the rest refitted,
so the confidence is monotonic in each feature it uses.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

#: name -> the sign its coefficient must have (+1: more is better, -1: more is worse, 0: either).
FEATURES: dict[str, int] = {
    "mean_log_prob": +1,      # mean per-word log-probability of the caption (end token included)
    "min_log_prob": +1,       # its least likely word
    "margin": +1,             # ranking score of the best hypothesis minus the second's (0 with one)
    "attention_entropy": 0,   # mean normalised entropy of the attention per word (1 = looked everywhere)
    "class_top": +1,          # the ImageNet head's top probability
    "class_entropy": -1,      # normalised entropy of the ImageNet head
    "length": 0,              # words in the caption
}


def _entropy(p: np.ndarray, axis: int = -1) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=np.float64), 1e-12, 1.0)
    return -(p * np.log(p)).sum(axis=axis) / math.log(p.shape[axis]) if p.shape[axis] > 1 else np.zeros(p.shape[:-1])


def features_of(token_log_probs: Sequence[float], scores: Sequence[float], words: int,
                attention: np.ndarray | None, concepts: np.ndarray | None) -> dict[str, float | None]:
    """The features of one caption; None where the model does not provide one (no attention, no head)."""
    lp = np.asarray(token_log_probs, dtype=np.float64)
    return {
        "mean_log_prob": float(lp.mean()) if lp.size else None,
        "min_log_prob": float(lp.min()) if lp.size else None,
        "margin": float(scores[0] - scores[1]) if len(scores) > 1 else 0.0,
        "attention_entropy": float(_entropy(attention).mean()) if attention is not None and len(attention) else None,
        "class_top": float(np.max(concepts)) if concepts is not None else None,
        "class_entropy": float(_entropy(concepts)) if concepts is not None else None,
        "length": float(words),
    }


@dataclass(frozen=True)
class Calibration:
    features: tuple[str, ...]
    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: float
    good: str = ""             # what "good" meant when it was fitted, in words
    check_below: float = 0.5   # the suggested threshold under which a caption should be read first

    def predict(self, values: dict[str, float | None]) -> float | None:
        """Confidence in [0, 1], or None when a feature it needs is missing."""
        x = [values.get(name) for name in self.features]
        if any(v is None or not math.isfinite(v) for v in x):
            return None
        z = self.intercept + float(np.dot(self.coef, (np.asarray(x, dtype=np.float64) - self.mean) / self.scale))
        return float(1.0 / (1.0 + math.exp(-max(-60.0, min(60.0, z)))))

    def to_json(self) -> dict[str, Any]:
        return {"features": list(self.features), "mean": [round(float(v), 6) for v in self.mean],
                "scale": [round(float(v), 6) for v in self.scale], "coef": [round(float(v), 6) for v in self.coef],
                "intercept": round(float(self.intercept), 6), "good": self.good, "check_below": self.check_below}

    @classmethod
    def from_json(cls, data: Any) -> "Calibration":
        """Raises ValueError with the reason when the manifest entry is malformed."""
        if not isinstance(data, dict):
            raise ValueError("calibration must be an object")
        names = data.get("features")
        if not isinstance(names, list) or not names or any(n not in FEATURES for n in names):
            raise ValueError(f"calibration.features must list some of {', '.join(FEATURES)}")
        arrays = {}
        for key in ("mean", "scale", "coef"):
            value = data.get(key)
            if (not isinstance(value, list) or len(value) != len(names)
                    or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                               for v in value)):
                raise ValueError(f"calibration.{key} must be {len(names)} finite numbers")
            arrays[key] = np.asarray(value, dtype=np.float64)
        if np.any(arrays["scale"] <= 0):
            raise ValueError("calibration.scale must be positive")
        intercept, below = data.get("intercept"), data.get("check_below", 0.5)
        for key, value in (("intercept", intercept), ("check_below", below)):
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
                raise ValueError(f"calibration.{key} must be a finite number")
        if not 0.0 <= below <= 1.0:
            raise ValueError("calibration.check_below must be between 0 and 1")
        return cls(tuple(names), arrays["mean"], arrays["scale"], arrays["coef"], float(intercept),
                   str(data.get("good", "")), float(below))


def _logistic(x: np.ndarray, y: np.ndarray, l2: float) -> tuple[np.ndarray, float]:
    """L2-regularised logistic regression by Newton's method (the intercept is not penalised)."""
    n, d = x.shape
    a = np.hstack([x, np.ones((n, 1))])
    w = np.zeros(d + 1)
    penalty = np.full(d + 1, l2)
    penalty[-1] = 0.0
    for _ in range(100):
        p = 1.0 / (1.0 + np.exp(-np.clip(a @ w, -60, 60)))
        grad = a.T @ (p - y) + penalty * w
        hess = (a * (p * (1 - p))[:, None]).T @ a + np.diag(penalty + 1e-9)
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return w[:-1], float(w[-1])


def fit(rows: Sequence[dict[str, float | None]], good: Sequence[bool], *, names: Sequence[str] | None = None,
        l2: float = 1.0, definition: str = "", check_below: float = 0.5) -> Calibration:
    """Fit on held-out captions; rows missing a feature are left out; wrong-signed features are dropped."""
    names = [n for n in (names or FEATURES) if all(r.get(n) is not None for r in rows)]
    y = np.asarray(good, dtype=np.float64)
    if len(set(y.tolist())) < 2:
        raise ValueError("fitting a confidence needs both good and bad captions")
    while True:
        x = np.asarray([[r[n] for n in names] for r in rows], dtype=np.float64)
        mean, scale = x.mean(axis=0), x.std(axis=0)
        scale[scale < 1e-9] = 1.0
        coef, intercept = _logistic((x - mean) / scale, y, l2)
        wrong = [i for i, n in enumerate(names) if FEATURES[n] * coef[i] < 0]
        if not wrong:
            return Calibration(tuple(names), mean, scale, coef, intercept, definition, check_below)
        names = [n for i, n in enumerate(names) if i != max(wrong, key=lambda i: abs(coef[i]))]


def auroc(scores: Sequence[float], labels: Sequence[bool]) -> float:
    """Area under the ROC curve: the chance that a random good caption outranks a random bad one."""
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels, dtype=bool)
    pos, neg = s[y], s[~y]
    if len(pos) == 0 or len(neg) == 0:
        return float("nan")
    wins = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return float(wins / (len(pos) * len(neg)))


def reliability(scores: Sequence[float], labels: Sequence[bool], bins: int = 10) -> list[tuple[float, float, int]]:
    """(mean confidence, fraction good, count) per confidence bin, for the reliability diagram."""
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels, dtype=np.float64)
    edges = np.linspace(0, 1, bins + 1)
    out = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        inside = (s >= lo) & ((s < hi) if hi < 1 else (s <= hi))
        if inside.any():
            out.append((float(s[inside].mean()), float(y[inside].mean()), int(inside.sum())))
    return out
