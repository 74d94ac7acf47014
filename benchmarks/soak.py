"""Memory over a long run: the resident set size every 100 captions, for the Captioner facade and
for the GUI worker thread (with its queued signals), on the same photos.

A leak shows as RSS that keeps growing after the warm-up (the first few hundred captions,
where TensorFlow/LiteRT arenas and caches settle). Prints one line per 100 captions and the
growth from caption 200 to the end.

    .venv/bin/python benchmarks/soak.py [--captions 2000] [--runtime litert|keras] [--model DIR]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from benchmarks.bench_default_model import photo_set  # noqa: E402


def rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def report(name: str, samples: list[tuple[int, float]], seconds: float) -> None:
    for count, rss in samples:
        print(f"  {name:8s} {count:5d} captions  RSS {rss:7.1f} MB", flush=True)
    after_warmup = [rss for count, rss in samples if count >= 200]
    growth = after_warmup[-1] - after_warmup[0] if len(after_warmup) > 1 else 0.0
    print(f"{name}: {samples[-1][0]} captions in {seconds:.0f} s; RSS {samples[0][1]:.0f} MB at 100, "
          f"{samples[-1][1]:.0f} MB at the end, growth after 200 captions {growth:+.1f} MB", flush=True)


def soak_facade(captioner, photos, total: int, batch: int) -> None:
    samples, done, began = [], 0, time.perf_counter()
    while done < total:
        chunk = [photos[(done + i) % len(photos)] for i in range(min(100, total - done))]
        for result in captioner.caption_paths(chunk, batch_size=batch):
            assert result.ok, result.error
        done += len(chunk)
        samples.append((done, rss_mb()))
    report("facade", samples, time.perf_counter() - began)


def soak_worker(captioner, photos, total: int, batch: int) -> None:
    from PySide6.QtCore import QCoreApplication, QObject, Signal

    from imgcap_desktop.core.options import DecodeOptions
    from imgcap_desktop.gui.worker import Worker, WorkerThread

    app = QCoreApplication.instance() or QCoreApplication([])
    worker = Worker(lambda source: captioner)
    thread = WorkerThread(worker)

    class Requests(QObject):
        load = Signal(object)
        caption = Signal(list, object)

    requests = Requests()
    requests.load.connect(worker.load_model)
    requests.caption.connect(worker.caption)
    finished, results = [], []
    worker.finished.connect(lambda cancelled: finished.append(cancelled))
    worker.result.connect(lambda path, caption: results.append(caption.text))
    requests.load.emit(None)
    samples, done, began = [], 0, time.perf_counter()
    while done < total:
        chunk = [str(photos[(done + i) % len(photos)]) for i in range(min(100, total - done))]
        finished.clear()
        requests.caption.emit(chunk, DecodeOptions(batch_size=batch))
        while not finished:
            app.processEvents()
            time.sleep(0.002)
        done += len(chunk)
        results.clear()  # the window keeps its captions in the queue; here they are dropped
        samples.append((done, rss_mb()))
    thread.stop()
    report("worker", samples, time.perf_counter() - began)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--captions", type=int, default=2000)
    parser.add_argument("--photos", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--runtime", default="litert", choices=("litert", "keras"))
    parser.add_argument("--model", default=None)
    args = parser.parse_args()

    from imgcap_desktop.core.captioner import Captioner

    photos = photo_set(args.photos)
    captioner = Captioner.load(args.model, runtime=args.runtime)
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; {captioner.name} on "
          f"{captioner.runtime}; {len(photos)} distinct photos, batch {args.batch_size}", flush=True)
    soak_facade(captioner, photos, args.captions, args.batch_size)
    soak_worker(captioner, photos, args.captions, args.batch_size)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
