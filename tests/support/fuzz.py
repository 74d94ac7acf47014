"""A seeded mutation fuzzer for the readers of outside data: images, bundles, vocabularies,
legacy tokenizer pickles and photo metadata.

Run as a subprocess (tests/core/test_fuzz.py, `make fuzz`):

    python tests/support/fuzz.py TARGET CASES SEED WORKDIR [--memory-mb N] [--seconds S]

Each case mutates a valid seed file (bytes flipped, numbers in headers set to extremes,
truncation, repeated or inserted chunks; for JSON, values swapped for hostile ones) and
hands it to the reader. A case passes when the reader succeeds or raises one of its
module's typed errors. It fails on any other exception, on a MemoryError or an error that
says memory ran out (the address space is capped with setrlimit, so a blow-up shows up as
one), and on taking longer than the time budget. The first failure is printed with the
case number and the mutated file is kept in WORKDIR for a rerun.
"""

from __future__ import annotations

import argparse
import copy
import io
import json
import os
import random
import resource
import signal
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

HOSTILE_VALUES = (10**12, -1, 0, 2**31, 1e308, float("nan"), "x" * 5000, None, [], {}, True, 3.5,
                  "../../etc/passwd", "/etc/passwd", [10**9] * 3, {"a": 1})


class CaseTimeout(Exception):
    pass


# --- mutations --------------------------------------------------------------------------


def mutate_bytes(data: bytes, rng: random.Random) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(6)
        # Half the edits land in the first 128 bytes, where headers keep sizes and counts.
        pos = rng.randrange(min(len(out), 128) if rng.random() < 0.5 else max(len(out), 1)) if out else 0
        if op == 0 and out:
            out[pos % len(out)] ^= 1 << rng.randrange(8)
        elif op == 1 and out:
            out[pos % len(out)] = rng.choice((0x00, 0xFF, 0x7F, 0x80))
        elif op == 2 and len(out) > 4:
            value = rng.choice((0, 1, 0xFFFF, 0x7FFF, 0xFFFFFFFF, 0x7FFFFFFF, 0x10000))
            size = rng.choice((2, 4))
            chunk = value.to_bytes(8, rng.choice(("big", "little")))[-size:]
            start = pos % (len(out) - size)
            out[start:start + size] = chunk
        elif op == 3:
            del out[rng.randrange(len(out) + 1):]
        elif op == 4 and out:
            start = rng.randrange(len(out))
            piece = out[start:start + rng.randint(1, 256)]
            insert = rng.randrange(len(out) + 1)
            out[insert:insert] = piece * rng.randint(1, 8)
        else:
            insert = rng.randrange(len(out) + 1)
            out[insert:insert] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 32)))
    return bytes(out)


def mutate_json(data, rng: random.Random):
    data = copy.deepcopy(data)
    for _ in range(rng.randint(1, 3)):
        containers = []

        def walk(node):
            if isinstance(node, dict):
                containers.append(node)
                for value in node.values():
                    walk(value)
            elif isinstance(node, list):
                containers.append(node)
                for value in node:
                    walk(value)

        walk(data)
        node = rng.choice(containers)
        if not node:
            continue
        key = rng.choice(list(node)) if isinstance(node, dict) else rng.randrange(len(node))
        if isinstance(node, dict) and rng.random() < 0.2:
            del node[key]
        else:
            node[key] = copy.deepcopy(rng.choice(HOSTILE_VALUES))
    return data


# --- seeds and readers --------------------------------------------------------------------


def image_seeds(work: Path) -> list[bytes]:
    from PIL import Image

    seeds = []
    base = Image.new("RGB", (48, 32), (200, 80, 40))
    from imgcap_desktop.core.images import IMAGE_EXTENSIONS

    formats = [("JPEG", {"quality": 80}), ("PNG", {}), ("GIF", {}), ("WEBP", {}), ("TIFF", {}), ("BMP", {})]
    formats += [(f, {"quality": 80}) for f, ext in (("HEIF", ".heic"), ("AVIF", ".avif")) if ext in IMAGE_EXTENSIONS]
    for fmt, kwargs in formats:
        buf = io.BytesIO()
        if fmt == "HEIF":  # the app's pi-heif only decodes
            from tests.support.heic import save_heic

            save_heic(base, buf, **kwargs)
        else:
            base.save(buf, fmt, **kwargs)
        seeds.append(buf.getvalue())
    frames = [Image.new("RGB", (32, 32), c) for c in ((255, 0, 0), (0, 255, 0))]
    for fmt in ("GIF", "WEBP", "PNG"):
        buf = io.BytesIO()
        frames[0].save(buf, fmt, save_all=True, append_images=frames[1:], duration=50)
        seeds.append(buf.getvalue())
    return seeds


def metadata_seeds(work: Path) -> list[bytes]:
    from imgcap_desktop.core.metadata import write_description

    seeds = []
    for data in image_seeds(work)[:4]:
        path = work / "seed-meta"
        path.write_bytes(data)
        try:
            write_description(path, "a dog on a beach, é")
        except Exception:  # noqa: BLE001 - GIF carries none: the plain file is a seed too
            pass
        seeds.append(path.read_bytes())
    return seeds


def small_vocabulary():
    from imgcap_desktop.core.vocab import Vocabulary

    captions = [["a", "dog", "runs", "on", "the", "grass"], ["two", "children", "play"], ["a", "red", "ball"]]
    return Vocabulary.from_captions(captions, min_count=1)


def bundle_seed(work: Path) -> Path:
    """A tiny but complete attend bundle (random weights): every check of read_bundle applies."""
    import h5py
    import numpy as np

    from imgcap_desktop.core.bundle import Manifest, write_manifest
    from imgcap_desktop.core.families import get_family

    folder = work / "bundle"
    folder.mkdir(exist_ok=True)
    vocab = small_vocabulary()
    vocab.to_json(folder / "vocab.json")
    config = {"vocab_size": vocab.size, "max_length": 12, "embed_dim": 8, "proj_dim": 8, "attention_dim": 8,
              "units": 8, "output_dim": 8}
    rng = np.random.default_rng(0)
    with h5py.File(folder / "decoder.weights.h5", "w") as f:
        for i, shape in enumerate(get_family("attend").weight_spec(config).shapes):
            f.create_dataset(f"w{i}", data=rng.standard_normal(shape).astype("float32"))
    manifest = Manifest(name="fuzz", family="attend", family_config=config, encoder="efficientnet_lite0",
                        feature_shape=[49, 1280], max_length=12, vocabulary="vocab.json",
                        weights="decoder.weights.h5",
                        tokens={"start": vocab.words[vocab.start_id], "end": vocab.words[vocab.end_id]})
    write_manifest(folder, manifest)
    return folder


def make_target(name: str, work: Path, seed_files: Path):
    """(seeds, run(data), allowed exception types) for one reader."""
    from imgcap_desktop.core.errors import BundleError, ImageLoadError, SaveError

    case = work / "case"
    if name == "images":
        from imgcap_desktop.core.images import load_rgb, thumbnail

        def run(data):
            case.write_bytes(data)
            load_rgb(case)
            thumbnail(case, 64)

        return image_seeds(work), run, (ImageLoadError,)
    if name == "metadata":
        from imgcap_desktop.core.metadata import read_description, write_description

        def run(data):
            case.write_bytes(data)
            read_description(case)
            write_description(case, "a dog on a beach, é", ("dog", "beach"))  # exiv2 rewrites hostile files too

        return metadata_seeds(work), run, (SaveError,)
    if name == "vocabulary":
        from imgcap_desktop.core.vocab import Vocabulary

        small_vocabulary().to_json(work / "vocab-seed.json")
        seed = json.loads((work / "vocab-seed.json").read_text())

        def run(data):
            case.write_bytes(data)
            Vocabulary.from_json(case)

        return [seed], run, (BundleError,)
    if name == "pickle":
        from imgcap_desktop.core.vocab import load_legacy_tokenizer

        seeds = [p.read_bytes() for p in sorted(seed_files.glob("*.pkl"))]
        if not seeds:
            raise SystemExit(f"no tokenizer pickles in {seed_files}")

        def run(data):
            case.write_bytes(data)
            load_legacy_tokenizer(case)

        return seeds, run, (BundleError,)
    if name == "bundle":
        from imgcap_desktop.core.bundle import MANIFEST, read_bundle

        folder = bundle_seed(work)
        seed = json.loads((folder / MANIFEST).read_text())

        def run(data):
            (folder / MANIFEST).write_bytes(data)
            read_bundle(folder)

        return [seed], run, (BundleError,)
    if name == "raw":
        from imgcap_desktop.core.images import load_rgb

        sys.path.insert(0, str(ROOT))
        from tests.support.raw import write_dng

        raw_case = work / "case.dng"
        seeds = [write_dng(work / "seed.dng", size=(64, 48)).read_bytes(),
                 write_dng(work / "seed-preview.dng", size=(64, 48), preview=(1024, 8)).read_bytes()]

        def run(data):
            raw_case.write_bytes(data)
            load_rgb(raw_case)

        return seeds, run, (ImageLoadError,)
    if name == "xmp":
        from imgcap_desktop.core.writers import already_written
        from imgcap_desktop.core.xmp_sidecar import read_sidecar, write_sidecar

        photo = work / "photo.jpg"
        photo.write_bytes(image_seeds(work)[0])
        sidecar = write_sidecar(photo, "a dog on a beach, é", ("dog", "beach"))
        seed = sidecar.read_bytes()

        def run(data):
            sidecar.write_bytes(data)
            read_sidecar(photo)
            already_written(photo)

        return [seed], run, (SaveError,)
    raise SystemExit(f"unknown target {name!r}")


# --- the loop -------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("target", choices=("images", "metadata", "vocabulary", "pickle", "bundle", "raw", "xmp"))
    parser.add_argument("cases", type=int)
    parser.add_argument("seed", type=int)
    parser.add_argument("work", type=Path)
    parser.add_argument("--seed-files", type=Path, default=None)
    parser.add_argument("--memory-mb", type=int, default=1536)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)

    seeds, run, allowed = make_target(args.target, args.work, args.seed_files or args.work)
    # Capped only now: the imports and the seeds above are the baseline, not a case.
    limit = args.memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    def timeout(signum, frame):
        raise CaseTimeout(f"took more than {args.seconds} s")

    signal.signal(signal.SIGALRM, timeout)
    rng = random.Random(args.seed)
    outcomes = {"ok": 0, "refused": 0}
    started = time.monotonic()
    for number in range(args.cases):
        seed = rng.choice(seeds)
        if isinstance(seed, bytes):
            data = mutate_bytes(seed, rng)
        elif rng.random() < 0.7:
            data = json.dumps(mutate_json(seed, rng), allow_nan=True).encode()
        else:
            data = mutate_bytes(json.dumps(seed).encode(), rng)
        signal.setitimer(signal.ITIMER_REAL, args.seconds)
        try:
            run(data)
            outcomes["ok"] += 1
        except allowed as exc:
            # The loader's own words when an allocation failed (libheif's "security limit" refusals,
            # made before allocating, mention memory too and are fine).
            if "not enough memory" in str(exc):
                return _failed(args, number, data, f"ran out of memory: {exc}")
            if "\n" in str(exc):
                return _failed(args, number, data, f"a refusal of more than one line: {exc!r}")
            outcomes["refused"] += 1
        except BaseException as exc:  # noqa: BLE001 - exactly what this loop is looking for
            return _failed(args, number, data, f"{type(exc).__name__}: {exc}")
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
    print(f"{args.target}: {args.cases} cases in {time.monotonic() - started:.1f} s, "
          f"{outcomes['ok']} read, {outcomes['refused']} refused with a typed error", flush=True)
    return 0


def _failed(args, number: int, data: bytes, what: str) -> int:
    kept = args.work / f"failure-{args.target}-{args.seed}-{number}"
    kept.write_bytes(data)
    print(f"{args.target}: case {number} (seed {args.seed}) failed: {what[:500]}; the input is {kept}", flush=True)
    return 1


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    raise SystemExit(main())
