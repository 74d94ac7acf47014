"""What naming the ImageNet head's sure keywords in the caption does to the scores.

The model's ImageNet head is right about far more photos than its caption is (keyword
precision 0.78 at the 0.70 line on the test photos, where most everyday captions are wrong).
With ``keyword_guide`` set, a caption that leaves out a keyword at or above that line is
searched again with the keyword required (constrained beam search). This prints, for each
line, CIDEr on the validation and test photos (pycocoevalcap, Python tokenizer) and how many
captions changed, then the everyday photos' captions side by side. Photos are encoded once.

    .venv/bin/python benchmarks/keyword_guide.py --data ../shared/data [--everyday DIR] \\
        [--lines 0,0.9,0.8,0.7,0.6] [--model models/default]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from imgcap_desktop.core.captioner import Captioner
from imgcap_desktop.core.images import open_for_model
from imgcap_desktop.core.training.datasets import clean_caption, load_training_data
from imgcap_desktop.core.training.metrics import score_captions


def encode(captioner: Captioner, paths: list[Path], batch: int = 16) -> np.ndarray:
    spec = captioner.spec
    out = []
    for start in range(0, len(paths), batch):
        arrays = [open_for_model(p, spec.input_size, resample=spec.resample) for p in paths[start:start + batch]]
        out.append(captioner.encoder(np.stack(arrays)))
    return np.concatenate(out)


def captions(captioner: Captioner, features: np.ndarray, line: float, batch: int = 16) -> list[str]:
    texts = []
    for start in range(0, len(features), batch):
        texts += [c.text for c in captioner.caption_features(features[start:start + batch], keyword_guide=line)]
    return texts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="the shared data folder (flickr8k-subset, -extra, -splits)")
    parser.add_argument("--model", default=None)
    parser.add_argument("--lines", default="0,0.9,0.8,0.7,0.6")
    parser.add_argument("--splits", default="val,test")
    parser.add_argument("--everyday", default=None, metavar="DIR", help="other photos to print captions for")
    args = parser.parse_args()
    data = Path(args.data)
    dataset = load_training_data([data / "flickr8k-subset", data / "flickr8k-extra"], None, data / "flickr8k-splits")
    captioner = Captioner.load(args.model)
    lines = [float(x) for x in args.lines.split(",")]
    print(f"model: {captioner.name}; beam {captioner.default_beam()}")
    for split in filter(None, args.splits.split(",")):
        keys = dataset.splits[split]
        features = encode(captioner, [Path(dataset.images[k]) for k in keys])
        refs = {k: [" ".join(clean_caption(c)) for c in dataset.captions[k]] for k in keys}
        plain = None
        for line in lines:
            texts = captions(captioner, features, line)
            plain = plain or texts
            cider = score_captions(dict(zip(keys, texts)), refs, use_java=False).scores["CIDEr"]
            changed = sum(a != b for a, b in zip(plain, texts))
            print(f"{split:5s} {len(keys)} photos, line {line:.2f}: CIDEr {cider:.4f}, {changed} captions changed",
                  flush=True)
    if args.everyday:
        paths = sorted(p for p in Path(args.everyday).iterdir() if p.is_file())
        features = encode(captioner, paths)
        table = [captions(captioner, features, line) for line in lines]
        for i, path in enumerate(paths):
            print(f"{path.name}: " + " | ".join(f"{line:g}: {t[i]}" for line, t in zip(lines, table)))


if __name__ == "__main__":
    main()
