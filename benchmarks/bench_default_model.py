"""Speed and size of the default model, measured side by side in one run.

Prints, for the bundle in models/default (or --model):
- bundle size on disk (target <= 60 MB) and load time after TensorFlow is imported (target <= 3 s);
- the marginal cost of one more caption when captioning many photos, as `imgcap caption` does
  (time for N photos minus time for N/10 photos, divided by the difference; target <= 80 ms,
  goal 40 ms), for greedy decoding, beam 3 and the model's default beam, and their ratios to
  greedy (target: beam 3 <= 2x greedy);
- the same on the LiteRT runtime when the bundle has an export;
- what the confidence, the keywords and the kept attention cost per photo, side by side with
  decoding that keeps no attention (Keras, the model's beam, a batch of 16 photos' features).

Photos: the Flickr8k photos in ../shared/data when present (not redistributed), otherwise
distinct crops of resources/samples.

    .venv/bin/python benchmarks/bench_default_model.py [--photos 100] [--model DIR]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def photo_set(n: int) -> list[Path]:
    shared = ROOT.parent / "shared" / "data" / "flickr8k-subset" / "Images"
    if shared.is_dir():
        photos = sorted(shared.glob("*.jpg"))[:n]
        if len(photos) == n:
            return photos
    from PIL import Image

    out = Path(tempfile.mkdtemp(prefix="imgcap-bench-"))
    samples = sorted((ROOT / "resources" / "samples").glob("*.jpg"))
    photos = []
    for i in range(n):
        img = Image.open(samples[i % len(samples)]).convert("RGB")
        w, h = img.size
        box = (i % 7 * w // 40, i % 5 * h // 40, w - i % 3 * w // 30, h - i % 4 * h // 30)
        path = out / f"p{i:03d}.jpg"
        img.crop(box).save(path, quality=90)
        photos.append(path)
    return photos


def timed_run(captioner, photos, beam) -> float:
    began = time.perf_counter()
    records = list(captioner.caption_paths(photos, beam=beam, batch_size=16))
    elapsed = time.perf_counter() - began
    assert all(r.ok for r in records), [r.error for r in records if not r.ok][:3]
    return elapsed


def marginal(captioner, photos, beam) -> tuple[float, float]:
    small = photos[: max(1, len(photos) // 10)]
    # Warm-up on both sets: every batch shape is traced before anything is timed.
    timed_run(captioner, small, beam)
    timed_run(captioner, photos, beam)
    t_small = timed_run(captioner, small, beam)
    t_all = timed_run(captioner, photos, beam)
    return (t_all - t_small) / (len(photos) - len(small)), t_all / len(photos)


def extras_cost(captioner, photos, repeats: int = 5) -> None:
    """Decoding with and without kept attention, and the ImageNet head + confidence + keywords, timed
    on the same 16 photos' features in one run (best of ``repeats``)."""
    import numpy as np

    from imgcap_desktop.core import decoding, keywords
    from imgcap_desktop.core.confidence import features_of
    from imgcap_desktop.core.images import open_for_model
    from imgcap_desktop.core.options import DecodeOptions

    spec = captioner.spec
    batch = np.stack([open_for_model(p, spec.input_size, resample=spec.resample) for p in photos[:16]])
    features = captioner.encoder(batch.astype(np.float32))
    options = captioner.resolve(DecodeOptions())

    def decode(keep):
        return decoding.beam_search(captioner.step_model, features, beam=options.beam, start_id=captioner._start_id,
                                    stops=captioner._stops, max_length=options.max_length,
                                    length_penalty=options.length_penalty, keep_attention=keep,
                                    no_repeat_ngram=int(captioner.manifest.decoding.get("no_repeat_ngram", 0)))

    def best(fn):
        fn()
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        return min(times) / len(features)

    without, with_attention = best(lambda: decode(False)), best(lambda: decode(True))
    ranked = decode(True)

    def extras():
        concepts = captioner.step_model.concepts(features)
        for i, hyps in enumerate(ranked):
            h = hyps[0]
            signals = features_of(h.token_log_probs, [x.score(options.length_penalty) for x in hyps], len(h.tokens),
                                  np.stack(h.attention), concepts[i])
            if captioner.calibration is not None:
                captioner.calibration.predict(signals)
            keywords.from_probabilities(concepts[i], captioner.keyword_threshold)

    added = best(extras)
    print(f"decoding (beam {options.beam}, 16 photos): {without * 1000:.2f} ms/photo without kept attention, "
          f"{with_attention * 1000:.2f} ms/photo with it ({with_attention / without:.3f}x); ImageNet head + "
          f"confidence + keywords {added * 1000:.2f} ms/photo more")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--photos", type=int, default=100)
    parser.add_argument("--model", default=str(ROOT / "models" / "default"))
    args = parser.parse_args()
    bundle = Path(args.model)
    size = sum(f.stat().st_size for f in bundle.iterdir() if f.is_file())
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    print(f"machine: {cpu}, nproc {os.cpu_count()}, {platform.python_version()}")
    print(f"bundle {bundle.name}: {size / 1e6:.1f} MB in its files (litert/ export not counted; target <= 60 MB)")

    t0 = time.perf_counter()
    import tensorflow as tf  # noqa: F401  (the load target is measured after this import)
    t_tf = time.perf_counter() - t0
    from imgcap_desktop.core.captioner import Captioner

    t0 = time.perf_counter()
    captioner = Captioner.load(bundle, runtime="keras")
    t_load = time.perf_counter() - t0
    print(f"import tensorflow {t_tf:.2f} s; bundle load after it {t_load:.2f} s (target <= 3 s)")

    photos = photo_set(args.photos)
    extras_cost(captioner, photos)
    print(f"{len(photos)} photos; marginal = (time for all - time for a tenth) / the difference, batch 16")
    rows = {}
    for runtime in ("keras", "litert"):
        if runtime == "litert":
            if not (bundle / "litert" / "litert.json").is_file():
                print("litert: no export in the bundle (imgcap export-litert); skipped")
                continue
            captioner = Captioner.load(bundle, runtime="litert")
        # Greedy, beam 3 (the target's ratio) and the model's own default width.
        beams = sorted({1, 3, captioner.default_beam()})
        for beam in beams:
            rows[runtime, beam] = marginal(captioner, photos, beam)
            m, mean = rows[runtime, beam]
            print(f"{runtime:6s} beam {beam}: marginal {m * 1000:6.1f} ms/photo, mean {mean * 1000:6.1f} ms/photo "
                  f"(target <= 80 ms, goal 40 ms)")
        for beam in beams[1:]:
            ratio = rows[runtime, beam][0] / rows[runtime, 1][0]
            target = " (target <= 2x)" if beam == 3 else ""
            print(f"{runtime:6s} beam {beam} / greedy marginal ratio: {ratio:.2f}x{target}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
