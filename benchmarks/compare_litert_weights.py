"""float32 against float16 (or int8) LiteRT weights for a bundle, side by side in one run.

Exports the bundle twice into a scratch copy (float32 and the other weights), captions the same
photos with both on the LiteRT runtime, and prints: the export sizes, how many captions are
word-for-word identical, the confidence and keyword agreement, CIDEr-D / BLEU-4 of each against
the references (the 800 Flickr8k test photos when ../shared/data is there), and the speed.

    .venv/bin/python benchmarks/compare_litert_weights.py [--model models/default] [--photos 800] \
        [--against float16|int8]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DATA = ROOT.parent / "shared" / "data"


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default=str(ROOT / "models" / "default"))
    parser.add_argument("--photos", type=int, default=800)
    parser.add_argument("--against", choices=("float16", "int8"), default="float16")
    args = parser.parse_args()
    other = args.against

    from imgcap_desktop.core.captioner import Captioner
    from imgcap_desktop.core.export_litert import export_bundle
    from imgcap_desktop.core.training.datasets import clean_caption, load_training_data
    from imgcap_desktop.core.training.metrics import score_captions

    dataset = load_training_data([str(DATA / "flickr8k-subset"), str(DATA / "flickr8k-extra")], None,
                                 str(DATA / "flickr8k-splits"))
    keys = [k for k in dataset.splits["test"] if k in dataset.images][: args.photos]
    paths = [dataset.images[k] for k in keys]
    scratch = Path(tempfile.mkdtemp(prefix="imgcap-weights-"))
    results = {}
    for precision in ("float32", other):
        copy = scratch / precision
        shutil.copytree(args.model, copy, ignore=shutil.ignore_patterns(".*", "litert"))
        export_bundle(copy, precision=precision)
        size = sum(f.stat().st_size for f in (copy / "litert").glob("*.tflite"))
        captioner = Captioner.load(copy, runtime="litert")
        list(captioner.caption_paths(paths[:16]))  # warm-up
        began = time.perf_counter()
        captions = [r.caption for r in captioner.caption_paths(paths, batch_size=16)]
        elapsed = time.perf_counter() - began
        results[precision] = (size, captions, elapsed)
        print(f"{precision}: export {size / 2**20:.1f} MiB, {len(paths)} photos in {elapsed:.1f} s "
              f"({1000 * elapsed / len(paths):.1f} ms/photo)", flush=True)
    a, b = results["float32"][1], results[other][1]
    same = sum(x.text == y.text for x, y in zip(a, b))
    print(f"identical captions: {same} of {len(a)}")
    for x, y, key in zip(a, b, keys):
        if x.text != y.text and same > len(a) - 6:
            print(f"  {key}: float32 '{x.text}' / {other} '{y.text}'")
    deltas = [abs(x.confidence - y.confidence) for x, y in zip(a, b) if x.confidence is not None]
    if deltas:
        print(f"confidence: largest difference {max(deltas):.4f}, mean {sum(deltas) / len(deltas):.5f}")
    print(f"identical keywords: {sum(x.keywords == y.keywords for x, y in zip(a, b))} of {len(a)}")
    refs = {k: [" ".join(clean_caption(c)) for c in dataset.captions[k]] for k in keys}
    for precision in ("float32", other):
        report = score_captions({k: c.text for k, c in zip(keys, results[precision][1])}, refs, use_java=False)
        print(f"{precision}: CIDEr {report.scores.get('CIDEr', float('nan')):.4f}, "
              f"BLEU-4 {report.scores.get('BLEU-4', float('nan')):.4f}")
    shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
