"""``imgcap calibrate``: fit a bundle's confidence and choose its keyword threshold on held-out photos.

The validation photos (and, optionally, photos a person judged by hand: the everyday photos the
model does badly on) fit the confidence's logistic regression and choose the keyword threshold;
the test photos only report: AUROC, a reliability table and diagram, keyword precision. The
result is written into the bundle's manifest (``calibration``, ``keywords``, ``metrics``).

"Good" is per-photo CIDEr-D against the photo's own references, at or above ``good_cider``.
CIDEr rewards the n-grams the five annotators agree on, so a caption that names the wrong
animal or invents a person scores near 0 whatever its fluency, while a plain true caption
("a dog runs through the grass") reaches 0.5-1.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from imgcap_desktop.core import confidence, keywords
from imgcap_desktop.core.bundle import read_bundle, write_manifest
from imgcap_desktop.core.training.cider import CiderD
from imgcap_desktop.core.training.datasets import clean_caption, load_training_data

GOOD_CIDER = 0.5
#: The keyword threshold is the lowest probability at which val precision reaches this: three
#: keywords in four are words the annotators used. It is a lower bound on the truth: references
#: rarely name a breed or say "building" when the photo has one.
KEYWORD_PRECISION = 0.75
THRESHOLDS = tuple(round(t, 2) for t in np.arange(0.05, 0.951, 0.05))
#: Verdicts in a judged TSV that count as a good caption.
GOOD_VERDICTS = {"accurate", "good"}


@dataclass
class Scored:
    """What calibration needs of one captioned photo."""
    key: str
    caption: str
    signals: dict
    classes: np.ndarray | None
    good: bool
    cider: float | None = None
    references: list[str] = field(default_factory=list)


def read_judged(path: str | Path, photos: str | Path | None = None) -> list[tuple[Path, str]]:
    """A TSV with a header, columns ``photo`` (relative to ``photos``, default the TSV's folder) and ``verdict``."""
    path = Path(path)
    base = Path(photos) if photos else path.parent
    rows = []
    with open(path, encoding="utf-8", newline="") as f:
        for row in csv.DictReader(f, delimiter="\t"):
            if not row.get("photo") or not row.get("verdict"):
                raise ValueError(f"{path}: every row needs a photo and a verdict")
            photo = Path(row["photo"])
            photo = photo if photo.is_absolute() else base / photo
            if not photo.is_file():
                raise ValueError(f"{path}: {photo} is not there (scripts/fetch_everyday_photos.sh DIR fetches "
                                 f"the everyday photos)")
            rows.append((photo, row["verdict"].strip().lower()))
    return rows


def _caption_all(captioner, paths: Sequence[Path], beam: int, batch_size: int, progress: str | None):
    results = captioner.caption_paths(paths, beam=beam, batch_size=batch_size)
    if progress:
        from tqdm import tqdm

        results = tqdm(results, total=len(paths), unit="photo", desc=progress)
    return list(results)


def score_split(captioner, dataset, keys: Sequence[str], *, beam: int = 0, batch_size: int = 16,
                good_cider: float = GOOD_CIDER, progress: str | None = None) -> list[Scored]:
    """Caption the photos of ``keys`` and label each by its own CIDEr-D (IDF from this split)."""
    drop = captioner.manifest.family == "seed"
    refs = {k: [clean_caption(c, drop_single_letters=drop) for c in dataset.captions[k]] for k in keys}
    cider = CiderD(refs)
    out = []
    for key, result in zip(keys, _caption_all(captioner, [dataset.images[k] for k in keys], beam, batch_size,
                                              progress)):
        if not result.ok:
            continue
        value = cider.score(key, clean_caption(result.caption.text, drop_single_letters=drop))
        out.append(Scored(key, result.caption.text, result.caption.signals, result.caption.classes,
                          value >= good_cider, value, [" ".join(r) for r in refs[key]]))
    return out


def score_judged(captioner, judged: Sequence[tuple[Path, str]], *, beam: int = 0,
                 batch_size: int = 16) -> list[Scored]:
    out = []
    for (path, verdict), result in zip(judged, _caption_all(captioner, [p for p, _ in judged], beam, batch_size,
                                                            None)):
        if result.ok:
            out.append(Scored(path.name, result.caption.text, result.caption.signals, result.caption.classes,
                              verdict in GOOD_VERDICTS))
    return out


def keyword_precision(scored: Sequence[Scored], threshold: float) -> tuple[float, int, int]:
    """(precision, keywords given, photos with any) of the keywords at ``threshold``."""
    right = given = photos = 0
    for s in scored:
        if s.classes is None:
            continue
        words = keywords.from_probabilities(s.classes, threshold)
        photos += bool(words)
        given += len(words)
        right += sum(keywords.matches(w, s.references) for w in words)
    return (right / given if given else float("nan")), given, photos


def choose_threshold(scored: Sequence[Scored], target: float = KEYWORD_PRECISION) -> float:
    """The lowest threshold (the most keywords) whose precision reaches ``target``; the most precise otherwise."""
    table = [(t, keyword_precision(scored, t)) for t in THRESHOLDS]
    for t, (precision, given, _) in table:
        if given and precision >= target:
            return t
    return max((p, t) for t, (p, g, _) in table if g)[1] if any(g for _, (_, g, _) in table) else THRESHOLDS[-1]


def draw_reliability(bins: Sequence[tuple[float, float, int]], path: Path, *, title: str) -> Path:
    """A reliability diagram: fraction good against mean confidence per bin, with the diagonal."""
    from PIL import Image, ImageDraw

    size, pad = 480, 56
    img = Image.new("RGB", (size + pad + 16, size + pad + 56), "white")
    d = ImageDraw.Draw(img)
    x0, y0 = pad, 48
    def xy(cx: float, cy: float) -> tuple[float, float]:
        return x0 + cx * size, y0 + (1 - cy) * size
    d.text((x0, 8), title, fill="black")
    for i in range(11):
        v = i / 10
        d.line([xy(v, 0), xy(v, 1)], fill=(235, 235, 235))
        d.line([xy(0, v), xy(1, v)], fill=(235, 235, 235))
        d.text((xy(v, 0)[0] - 8, y0 + size + 6), f"{v:.1f}", fill="black")
        d.text((x0 - 30, xy(0, v)[1] - 6), f"{v:.1f}", fill="black")
    d.line([xy(0, 0), xy(1, 1)], fill=(150, 150, 150), width=2)
    total = sum(n for _, _, n in bins) or 1
    for mean, frac, n in bins:
        lo = math.floor(min(mean, 0.9999) * 10) / 10
        left, top = xy(lo + 0.01, frac)
        right, bottom = xy(lo + 0.09, 0)
        d.rectangle([left, top, right, bottom], fill=(70, 120, 200))
        d.ellipse([xy(mean, frac)[0] - 4, xy(mean, frac)[1] - 4, xy(mean, frac)[0] + 4, xy(mean, frac)[1] + 4],
                  fill=(220, 80, 40))
        d.text((left, top - 14), f"{100 * n / total:.0f}%", fill=(60, 60, 60))
    d.rectangle([xy(0, 1), xy(1, 0)], outline="black")
    d.text((x0 + size / 2 - 60, y0 + size + 22), "confidence (bar: bin, dot: mean)", fill="black")
    d.text((4, y0 - 18), "fraction good", fill="black")
    img.save(path)
    return path


def _r(value: float) -> float | None:
    """Rounded for the manifest; None for NaN (an AUROC of a split with one kind of caption)."""
    return round(float(value), 4) if math.isfinite(value) else None


def expected_calibration_error(bins: Sequence[tuple[float, float, int]]) -> float:
    total = sum(n for _, _, n in bins)
    return sum(n * abs(mean - frac) for mean, frac, n in bins) / total if total else float("nan")


def calibrate(model: str | Path, data, *, split_files=None, fmt=None, judged: str | Path | None = None,
              judged_photos: str | Path | None = None,
              beam: int = 0, batch_size: int = 16, good_cider: float = GOOD_CIDER, l2: float = 1.0,
              check_below: float = 0.5, progress: bool = True, log=print) -> dict:
    """Fit, report, and write the result into the bundle at ``model``; returns the report."""
    from imgcap_desktop.core.captioner import Captioner

    dataset = load_training_data(data, fmt, split_files)
    splits = {name: [k for k in dataset.splits.get(name, []) if k in dataset.images and dataset.captions.get(k)]
              for name in ("val", "test")}
    if not splits["val"] or not splits["test"]:
        raise ValueError("calibration needs val and test photos: give --split-files (train.txt, val.txt, test.txt)")
    captioner = Captioner.load(model)
    if captioner.manifest.family != "attend":
        raise ValueError(f"{captioner.name}: only attend-family models have the ImageNet head and "
                         f"per-word log-probabilities that a confidence is fitted on")
    val = score_split(captioner, dataset, splits["val"], beam=beam, batch_size=batch_size, good_cider=good_cider,
                      progress="val" if progress else None)
    test = score_split(captioner, dataset, splits["test"], beam=beam, batch_size=batch_size,
                       good_cider=good_cider, progress="test" if progress else None)
    extra = score_judged(captioner, read_judged(judged, judged_photos), beam=beam, batch_size=batch_size) if judged else []
    fitting = val + extra
    definition = (f"per-photo CIDEr-D >= {good_cider} against the photo's references (Flickr8k val), and "
                  f"photos judged by hand")
    cal = confidence.fit([s.signals for s in fitting], [s.good for s in fitting], l2=l2, definition=definition,
                         check_below=check_below)
    predict = {id(s): cal.predict(s.signals) for s in val + test + extra}
    test_scores = [predict[id(s)] for s in test]
    test_good = [s.good for s in test]
    bins = confidence.reliability(test_scores, test_good)
    threshold = choose_threshold(val, KEYWORD_PRECISION)
    val_p, val_n, _ = keyword_precision(val, threshold)
    test_p, test_n, test_photos = keyword_precision(test, threshold)
    report = {
        "good": definition,
        "base_rate_val": round(float(np.mean([s.good for s in val])), 4),
        "base_rate_test": round(float(np.mean(test_good)), 4),
        "features": list(cal.features),
        "coef": [round(float(c), 4) for c in cal.coef],
        "auroc_test": _r(confidence.auroc(test_scores, test_good)),
        "auroc_val": _r(confidence.auroc([predict[id(s)] for s in val], [s.good for s in val])),
        "ece_test": _r(expected_calibration_error(bins)),
        "reliability_test": [[round(m, 4), round(f, 4), n] for m, f, n in bins],
        "judged_photos": len(extra),
        "judged_mean_confidence": round(float(np.mean([predict[id(s)] for s in extra])), 4) if extra else None,
        "test_mean_confidence": round(float(np.mean(test_scores)), 4),
        "keyword_threshold": threshold,
        "keyword_precision_val": _r(val_p), "keywords_val": val_n,
        "keyword_precision_test": _r(test_p), "keywords_test": test_n,
        "test_photos_with_keywords": test_photos, "test_photos": len(test),
        "per_feature_auroc_test": {
            name: _r(confidence.auroc([s.signals[name] * (sign or 1) for s in test], test_good))
            for name, sign in confidence.FEATURES.items() if all(s.signals.get(name) is not None for s in test)},
    }
    bundle = read_bundle(model)
    manifest = bundle.manifest
    manifest.calibration = cal.to_json()
    manifest.keywords = {"threshold": threshold, "precision_target": KEYWORD_PRECISION}
    manifest.metrics["confidence"] = {k: report[k] for k in (
        "auroc_test", "ece_test", "base_rate_test", "judged_photos", "judged_mean_confidence")}
    manifest.metrics["keywords"] = {k: report[k] for k in (
        "keyword_threshold", "keyword_precision_val", "keyword_precision_test", "keywords_test",
        "test_photos_with_keywords")}
    write_manifest(bundle.path, manifest)
    draw_reliability(bins, bundle.path / "reliability.png",
                     title=f"Confidence on {len(test)} held-out test photos: AUROC {report['auroc_test']}, "
                           f"ECE {report['ece_test']}")
    (bundle.path / "calibration.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    log(json.dumps(report, indent=2))
    return report
