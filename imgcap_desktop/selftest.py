"""``imgcap-desktop --self-test``: caption the bundled sample photos, no window.

Loads the default model (runtime chosen as the app would: LiteRT in the packaged
build), captions every photo in ``resources/samples/``, prints one line per photo
and a summary, and returns 0 only if every photo got a caption. ``--seed-model
FOLDER [--encoder-weights FILE]`` does the same with the old web app's model too. No Qt is
imported, so it runs without a display; the packaged app's launcher calls
:func:`run` before Qt is loaded. Also ``python -m imgcap_desktop.selftest``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

SAMPLE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".heic"}  # HEIC: the packaged app reads phone photos


def sample_photos(folder: Path | None = None) -> list[Path]:
    from imgcap_desktop.core.paths import resource_root

    folder = folder or resource_root() / "resources" / "samples"
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in SAMPLE_SUFFIXES and p.is_file())


def run(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="imgcap-desktop --self-test",
                                     description="Caption the bundled sample photos with the default model.")
    parser.add_argument("--self-test", action="store_true", help=argparse.SUPPRESS)  # tolerated when forwarded
    parser.add_argument("--model", default=None, help="model bundle (default: the bundled default model)")
    parser.add_argument("--runtime", choices=("auto", "keras", "litert"), default="auto")
    parser.add_argument("--samples", type=Path, default=None, help="folder of photos (default: the bundled samples)")
    parser.add_argument("--seed-model", default=None, metavar="FOLDER",
                        help="also caption them with the old web app's model (image_caption.h5 + tokenizer.pkl)")
    parser.add_argument("--encoder-weights", default=None, metavar="FILE",
                        help="with --seed-model: the DenseNet201 weights file, unless it lies beside the model")
    args, _unknown = parser.parse_known_args(list(argv or []))

    out = sys.stdout
    photos = sample_photos(args.samples)
    if not photos:
        print(f"self-test: FAILED: no sample photos in {args.samples or 'resources/samples'}", file=out, flush=True)
        return 1
    ok = _caption_all(photos, args.model, args.runtime, None, "", out)
    if args.seed_model:
        ok = _caption_all(photos, args.seed_model, args.runtime, args.encoder_weights, "seed ", out) and ok
    return 0 if ok else 1


def _caption_all(photos: list[Path], model, runtime: str, encoder_weights, label: str, out) -> bool:
    began = time.perf_counter()
    try:
        from imgcap_desktop.core.captioner import Captioner

        captioner = Captioner.load(model, runtime=runtime, encoder_weights=encoder_weights)
    except Exception as exc:  # any failure to load is the test's answer, in one line
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        print(f"self-test: FAILED: cannot load the {label}model: {message}", file=out, flush=True)
        return False
    loaded = time.perf_counter() - began

    good = 0
    try:
        for record in captioner.caption_paths(photos):
            if record.caption is not None and record.caption.text.strip():
                good += 1
                c = record.caption
                extra = [f"confidence {100 * c.confidence:.0f}%"] if c.confidence is not None else []
                extra += [f"keywords: {', '.join(c.keywords)}"] if c.keywords else []
                print(f"OK  {label}{record.path.name}  {c.text}" + (f"  ({'; '.join(extra)})" if extra else ""),
                      file=out, flush=True)
            else:
                why = record.error or "empty caption"
                print(f"FAIL  {label}{record.path.name}  {why}", file=out, flush=True)
    except Exception as exc:
        print(f"self-test: FAILED while captioning: {exc}", file=out, flush=True)
        return False
    total = time.perf_counter() - began
    verdict = "" if good == len(photos) else "FAILED: "
    print(f"self-test: {verdict}{label}{good}/{len(photos)} photos captioned in {total:.1f}s "
          f"(runtime {captioner.runtime}, model {captioner.name!r}, loaded in {loaded:.1f}s)", file=out, flush=True)
    return good == len(photos)


def main() -> None:
    raise SystemExit(run(sys.argv[1:]))


if __name__ == "__main__":
    main()
