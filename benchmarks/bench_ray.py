"""Photos per second for the local CLI path and for `--engine ray` with 1 and 2 workers, measured
side by side in one run on the same photos, with Ray's start-up cost and its overhead per photo.

Each engine is timed on a small and a large set of photos; the marginal cost per photo is
(time(large) - time(small)) / (large - small), and the start-up cost is what is left of
time(small). The local path is `Captioner.load` + `caption_paths` (what `imgcap caption` does).
All use the default model's LiteRT export, so no worker imports TensorFlow.

    .venv/bin/python benchmarks/bench_ray.py [--photos 200] [--small 8]
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ["IMGCAP_RUNTIME"] = "litert"
os.environ.setdefault("RAY_DATA_DISABLE_PROGRESS_BARS", "1")

from benchmarks.bench_default_model import photo_set  # noqa: E402


def time_local(photos: list[Path]) -> float:
    from imgcap_desktop.core.captioner import Captioner

    began = time.perf_counter()
    captioner = Captioner.load(None, runtime="litert")
    for result in captioner.caption_paths(photos, batch_size=8):
        assert result.ok, result.error
    return time.perf_counter() - began


def time_ray(photos: list[Path], workers: int) -> float:
    from imgcap_desktop.core import distributed

    folder = Path(tempfile.mkdtemp(prefix="imgcap-bench-ray-"))
    try:
        began = time.perf_counter()
        summary = distributed.caption([str(p) for p in photos], folder / "out", model=None, encoder_weights=None,
                                      decode={"batch_size": 8}, workers=workers, stream=open(os.devnull, "w"))
        elapsed = time.perf_counter() - began
        assert summary.written == len(photos) and not summary.failed
        return elapsed
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--photos", type=int, default=200)
    parser.add_argument("--small", type=int, default=8)
    args = parser.parse_args()
    photos = photo_set(args.photos)
    small = photos[: args.small]
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}; "
          f"{len(small)} and {len(photos)} photos, batch 8, LiteRT", flush=True)
    rows = []
    for name, run in (("local", time_local), ("ray, 1 worker", lambda p: time_ray(p, 1)),
                      ("ray, 2 workers", lambda p: time_ray(p, 2))):
        t_small, t_large = run(small), run(photos)
        marginal = (t_large - t_small) / (len(photos) - len(small))
        startup = t_small - marginal * len(small)
        rows.append((name, t_small, t_large, marginal, startup))
        print(f"{name:15s} {len(small)} photos {t_small:6.1f} s, {len(photos)} photos {t_large:6.1f} s: "
              f"{1 / marginal:6.1f} photos/s, {marginal * 1000:6.1f} ms/photo, start-up {startup:5.1f} s", flush=True)
    local_marginal = rows[0][3]
    for name, _, _, marginal, startup in rows[1:]:
        print(f"{name}: {marginal / local_marginal:.2f}x the local time per photo "
              f"({(marginal - local_marginal) * 1000:+.1f} ms per photo), start-up {startup - rows[0][4]:+.1f} s "
              f"over the local one", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
