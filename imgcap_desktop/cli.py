"""``imgcap``: caption photos, inspect and import models, train and evaluate.

TensorFlow is imported only inside the commands that need it, so ``--help``,
``--version`` and ``info`` answer at once.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
from pathlib import Path

from imgcap_desktop import __version__
from imgcap_desktop.core.errors import ImgcapError
from imgcap_desktop.core.options import DECODING_OPTIONS, DecodeOptions
from imgcap_desktop.core.records import CSV_COLUMNS, csv_row, make_record

EXIT_OK, EXIT_SOME_FAILED, EXIT_ERROR = 0, 1, 2
PROGRESS_FROM = 10  # below this many photos a bar is noise


def _write_targets(text: str):
    from imgcap_desktop.core.writers import parse_targets

    try:
        return parse_targets(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _checked(option):
    def parse(text: str):
        try:
            return option.parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    parse.__name__ = option.type.__name__  # argparse names the type in its messages
    return parse


def _add_decoding_options(parser: argparse.ArgumentParser) -> None:
    for option in DECODING_OPTIONS:
        default = "the model's own" if option.default is None else option.default
        parser.add_argument(option.flag, type=_checked(option), default=option.default, dest=option.name,
                            help=f"{option.help} (default {default})")


def _add_model_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default=None,
                        help="model bundle folder, or a seed folder with image_caption.h5 + tokenizer.pkl "
                             "(default: the bundled default model)")
    parser.add_argument("--encoder-weights", default=None, metavar="FILE",
                        help="image encoder weights file (e.g. DenseNet201 ImageNet weights for a seed model)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="imgcap", description="Offline image captioning.")
    parser.add_argument("--version", action="version", version=f"imgcap {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("caption", help="caption photos and folders")
    p.add_argument("paths", nargs="+", help="image files or folders (walked recursively); with --engine ray also "
                   "text files of paths and URIs such as s3://bucket/photos/")
    _add_model_options(p)
    _add_decoding_options(p)
    p.add_argument("--format", choices=("text", "jsonl", "csv", "parquet"), default=None,
                   help="text, jsonl or csv on stdout (default text); with --engine ray: jsonl (default) "
                        "or parquet shards in --out")
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    p.add_argument("--write", type=_write_targets, default=(), metavar="txt,xmp,metadata",
                   help="also write each caption: txt (NAME.txt beside the photo), xmp (an XMP sidecar, "
                        "NAME.jpg.xmp, with the keywords), metadata (into the photo's EXIF/XMP/IPTC "
                        "description and keywords); each record says what was written where")
    p.add_argument("--caption-ext", choices=(".txt", ".caption"), default=".txt",
                   help="with --write txt: the caption file's extension (.caption for kohya's "
                        "--caption_extension .caption and OneTrainer)")
    p.add_argument("--dataset", choices=("hf", "coco"), default=None,
                   help="also write the captions as a training set: hf (Hugging Face imagefolder "
                        "metadata.jsonl) or coco (COCO captions JSON), into --dataset-out")
    p.add_argument("--dataset-out", type=Path, default=None, metavar="FILE",
                   help="with --dataset: the file to write (default: metadata.jsonl or captions.json in the "
                        "photos' common folder)")
    p.add_argument("--xmp-name", choices=("full", "base"), default="full",
                   help="with --write xmp: NAME.jpg.xmp (full: darktable, digiKam; the default) or NAME.xmp "
                        "(base: Lightroom, Capture One); an existing sidecar under either name is updated")
    p.add_argument("--overwrite", choices=("never", "always"), default="never",
                   help="with --write: keep (never, the default) or replace (always) an existing caption "
                        "file or description; nothing ever asks")
    p.add_argument("--attention-out", type=Path, default=None, metavar="DIR",
                   help="write NAME.attention.png per photo into DIR: every word's attention over the photo "
                        "(attend-family models); each record's 'written' says where")
    p.add_argument("--engine", choices=("local", "ray"), default="local",
                   help="ray: batch inference on Ray Data, on this machine or a cluster (needs the "
                        "'distributed' extra)")
    p.add_argument("--address", default=None,
                   help="with --engine ray: the cluster (auto, or ray://HOST:PORT); default: start Ray here")
    p.add_argument("--out", type=Path, default=None,
                   help="with --engine ray: the output folder (required); a second run skips what is in it")
    p.add_argument("--workers", type=int, default=None,
                   help="with --engine ray: captioning actors (default: one per CPU)")
    p.add_argument("--gpus-per-worker", type=float, default=0.0,
                   help="with --engine ray: GPUs each actor reserves (e.g. 1; default 0, CPU only)")
    p.set_defaults(func=cmd_caption)

    p = sub.add_parser("info", help="show what a model bundle's manifest says")
    p.add_argument("bundle", nargs="?", default=None, help="bundle folder (default: the default model)")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("import-seed", help="turn image_caption.h5 + tokenizer.pkl into a bundle")
    p.add_argument("models_dir")
    p.add_argument("--out", required=True, help="bundle folder to create")
    p.add_argument("--encoder-weights", default=None, metavar="FILE",
                   help="DenseNet201 ImageNet weights (.h5) to store inside the bundle")
    p.set_defaults(func=cmd_import_seed)

    try:
        from imgcap_desktop.core.training import commands as training_commands
    except ImportError:
        training_commands = None
    if training_commands is not None:
        training_commands.add_parsers(sub)
    else:
        for name in ("train", "evaluate", "ensemble", "calibrate"):
            _needs_development_install(sub, name)
    try:
        from imgcap_desktop.core import export_litert
    except ImportError:
        export_litert = None
    if export_litert is not None:
        export_litert.add_parser(sub)
    else:
        _needs_development_install(sub, "export-litert")
    return parser


def _needs_development_install(sub, name: str) -> None:
    """A command this build leaves out (the packaged app has no TensorFlow) still answers, in a sentence."""
    # No option prefix: every word after the command, "--data" included, is just taken.
    p = sub.add_parser(name, help=f"{name} (needs the development install)", add_help=False, prefix_chars="\0")
    p.add_argument("rest", nargs="*")

    def refuse(args) -> int:
        print(f"imgcap {name} needs the development install with TensorFlow (pip install imgcap-desktop, "
              f"or `make test` in a checkout); this build runs caption, info and import-seed.", file=sys.stderr)
        return EXIT_ERROR

    p.set_defaults(func=refuse)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except ImgcapError as exc:
        print(f"imgcap: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("imgcap: interrupted", file=sys.stderr)
        return 130


# --- commands ---------------------------------------------------------------


def cmd_caption(args) -> int:
    if args.engine == "ray":
        return _caption_on_ray(args)
    if args.format == "parquet" or args.out is not None or args.address or args.workers or args.gpus_per_worker:
        print("imgcap: --out, --address, --workers, --gpus-per-worker and --format parquet go with --engine ray",
              file=sys.stderr)
        return EXIT_ERROR
    args.format = args.format or "text"
    from imgcap_desktop.core.images import collect_images

    found = collect_images(args.paths)
    if found.skipped:
        print(f"imgcap: skipped {len(found.skipped)} file(s) that are not images", file=sys.stderr)
    # Said before TensorFlow and the model load (seconds), and not counted as photos that failed.
    missing = [p for p in found.images if not os.path.lexists(p)]
    for path in missing:
        print(f"imgcap: {path}: no such file or folder", file=sys.stderr)
    found.images = [p for p in found.images if p not in missing]
    if not found.images:
        print("imgcap: no images to caption", file=sys.stderr)
        return EXIT_ERROR

    from imgcap_desktop.core.captioner import Captioner
    from imgcap_desktop.core.results import CaptionResult
    from imgcap_desktop.core.writers import write_targets

    captioner = Captioner.load(args.model, encoder_weights=args.encoder_weights)
    maps = _AttentionWriter(args.attention_out, captioner) if args.attention_out else None
    writer = _RecordWriter(args.format, sys.stdout)
    failures = 0
    # A second name of one file (a symlink, a hard link) gets its own record, from one captioning.
    copies: dict[Path, list[Path]] = {}
    for copy, original in found.same_as.items():
        copies.setdefault(original, []).append(copy)
    unique = [p for p in found.images if p not in found.same_as]
    results = captioner.caption_paths(unique, **DecodeOptions.from_values(vars(args)).as_kwargs())
    bar = None
    if not args.no_progress and len(found.images) >= PROGRESS_FROM:
        from tqdm import tqdm

        bar = tqdm(total=len(found.images), unit="photo", file=sys.stderr, dynamic_ncols=True)
    writes: dict[str, int] = {}
    dataset_records: list[dict] = []
    for first in results:
        for result in [first] + [CaptionResult(p, first.caption, first.error) for p in copies.get(first.path, [])]:
            failures += not result.ok
            written = write_targets(result.path, result.caption.text, args.write, args.overwrite,
                                    keywords=_model_keywords(result, args.write), xmp_naming=args.xmp_name,
                                    caption_suffix=args.caption_ext) if result.ok and args.write else []
            if maps is not None and result.ok:
                written.append(maps.write(result))
            for entry in written:
                writes[entry["result"]] = writes.get(entry["result"], 0) + 1
            record = make_record(result.path, caption=result.caption, error=result.error, written=written)
            writer.write(result, record)
            if args.dataset:
                dataset_records.append(record)
            if bar is not None:
                bar.update(1)
    if bar is not None:
        bar.close()
    sys.stdout.flush()
    if writes:
        print("imgcap: " + ", ".join(f"{count} {what}" for what, count in sorted(writes.items()))
              + (" (kept: an existing caption, see --overwrite)" if writes.get("kept") else ""), file=sys.stderr)
    dataset_ok = _write_dataset(args, dataset_records) if args.dataset else True
    if failures:
        print(f"imgcap: {failures} of {len(found.images)} photo(s) failed", file=sys.stderr)
    return EXIT_SOME_FAILED if failures or missing or not dataset_ok else EXIT_OK


def _write_dataset(args, records: list[dict]) -> bool:
    """``--dataset``: the training-set file; False when it, or a photo in it, could not be written."""
    from imgcap_desktop.core.dataset_layouts import DEFAULT_NAMES, common_folder, write_dataset

    out = args.dataset_out or (common_folder([r["image"] for r in records]) or Path.cwd()) / DEFAULT_NAMES[args.dataset]
    if args.dataset_out is None and out.exists() and args.overwrite != "always":
        # A metadata.jsonl someone made by hand is not replaced by one found by default.
        print(f"imgcap: {out} already exists and was kept; give --dataset-out FILE or --overwrite always",
              file=sys.stderr)
        return False
    try:
        report = write_dataset(args.dataset, records, out)
    except (ImgcapError, OSError) as exc:
        print(f"imgcap: {exc}", file=sys.stderr)
        return False
    for sentence in report.left_out:
        print(f"imgcap: {sentence}", file=sys.stderr)
    print(f"imgcap: {report.written} caption(s) in {out}", file=sys.stderr)
    return not report.left_out


def _caption_on_ray(args) -> int:
    from imgcap_desktop.core import distributed

    if args.out is None:
        print("imgcap: --engine ray writes sharded files: give the folder with --out DIR", file=sys.stderr)
        return EXIT_ERROR
    if args.attention_out or args.dataset:
        print("imgcap: --attention-out and --dataset go with the local engine", file=sys.stderr)
        return EXIT_ERROR
    if args.write:
        print("imgcap: --write goes with the local engine (Ray workers need not see the photos' folders "
              "as writable)", file=sys.stderr)
        return EXIT_ERROR
    if args.format not in (None, "jsonl", "parquet"):
        print("imgcap: --engine ray writes jsonl or parquet", file=sys.stderr)
        return EXIT_ERROR
    if args.no_progress:
        os.environ.setdefault("RAY_DATA_DISABLE_PROGRESS_BARS", "1")
    summary = distributed.caption(
        [str(p) for p in args.paths], args.out, model=args.model, encoder_weights=args.encoder_weights,
        decode=DecodeOptions.from_values(vars(args)).as_kwargs(), address=args.address, workers=args.workers,
        fmt=args.format or "jsonl", gpus_per_worker=args.gpus_per_worker)
    print(f"imgcap: {summary.written} record(s) written to {summary.out}"
          + (f", {summary.failed} of them failed photos" if summary.failed else "")
          + (f"; {summary.skipped} skipped as already done" if summary.skipped else ""), file=sys.stderr)
    return EXIT_SOME_FAILED if summary.failed or summary.missing else EXIT_OK


def _model_keywords(result, targets) -> tuple[str, ...] | None:
    """The model's keywords to write, or None to keep what the photo (or its sidecar) has: the
    model never replaces keywords a person gave, and no keywords delete none."""
    from imgcap_desktop.core.writers import existing_keywords

    if not {"xmp", "metadata"} & set(targets):
        return None  # a caption file keeps no keywords: nothing to look up
    if not result.caption.keywords or existing_keywords(result.path):
        return None
    return result.caption.keywords


class _AttentionWriter:
    """``--attention-out DIR``: one strip of per-word attention maps per photo."""

    def __init__(self, folder: Path, captioner):
        self.folder = folder
        self.grid = captioner.grid_shape
        self.used: set[str] = set()
        if self.grid is None:
            print(f"imgcap: {captioner.name} has no spatial attention (only attend-family models look at parts "
                  f"of the photo); no attention maps written", file=sys.stderr)
        else:
            folder.mkdir(parents=True, exist_ok=True)

    def _name(self, path: Path) -> Path:
        # Two photos with one name in different folders must not overwrite each other's strip.
        name, n = f"{path.stem}.attention.png", 1
        while name in self.used:
            n += 1
            name = f"{path.stem}-{n}.attention.png"
        self.used.add(name)
        return self.folder / name

    def write(self, result) -> dict:
        from imgcap_desktop.core.attention_maps import write_strip
        from imgcap_desktop.core.images import load_rgb

        caption = result.caption
        if self.grid is None or caption.attention is None:
            return {"target": "attention", "path": None, "result": "failed",
                    "error": "this model has no spatial attention"}
        out = self._name(Path(result.path))
        try:
            write_strip(load_rgb(result.path), caption.text.split(), caption.attention, self.grid, out)
            return {"target": "attention", "path": str(out), "result": "written", "error": None}
        except (ImgcapError, OSError, ValueError) as exc:
            return {"target": "attention", "path": str(out), "result": "failed", "error": str(exc)}


class _RecordWriter:
    """Text lines for people; JSONL and CSV in the one record schema of core.records."""

    def __init__(self, fmt: str, stream):
        self.fmt = fmt
        self.stream = stream
        if fmt == "csv":
            self.csv = csv.writer(stream)
            self.csv.writerow(CSV_COLUMNS)

    def write(self, result, record: dict) -> None:
        if self.fmt == "text":
            text = result.caption.text if result.ok else "ERROR: " + (result.error or "")
            self.stream.write(f"{result.path}\t{text}\n")
        else:
            if self.fmt == "jsonl":
                self.stream.write(json.dumps(record, ensure_ascii=False) + "\n")
            else:
                self.csv.writerow(csv_row(record))
        self.stream.flush()


def cmd_info(args) -> int:
    from imgcap_desktop.core.bundle import read_bundle
    from imgcap_desktop.core.paths import default_bundle_dir
    from imgcap_desktop.core.runtime_litert import export_problem, tensorflow_available

    # Without TensorFlow (the packaged build) the Keras weight files are not shipped: the
    # LiteRT export is what runs, and it is checked instead.
    keras = tensorflow_available()
    bundle = read_bundle(args.bundle or default_bundle_dir(), keras_weights=keras)
    if not keras:
        problem = export_problem(bundle.path)
        if problem:
            raise ImgcapError(problem + ".")
    m = bundle.manifest
    print(f"name:          {m.name}")
    if m.description:
        print(f"description:   {m.description}")
    print(f"folder:        {bundle.path}")
    print(f"format:        {m.format} v{m.format_version}")
    print(f"family:        {m.family} {json.dumps(m.family_config)}")
    print(f"encoder:       {m.encoder} -> features {m.feature_shape}"
          + ("" if m.encoder_weights else "  (weights not bundled)"))
    print(f"vocabulary:    {bundle.vocabulary.size} entries, max length {m.max_length}, "
          f"tokens {m.tokens['start']} / {m.tokens['end']}")
    print(f"decoding:      {json.dumps(m.decoding)}")
    for name, entry in m.files.items():
        print(f"file:          {name}  {entry.get('size', '?')} bytes  sha256 {entry['sha256'][:16]}…")
    for key, value in m.provenance.items():
        print(f"provenance:    {key}: {json.dumps(value, ensure_ascii=False)}")
    for key, value in m.metrics.items():
        print(f"metric:        {key}: {value}")
    print("checksums:     all files match" + ("" if keras else " (Keras weight files not in this build; "
                                                   "the LiteRT export checked)"))
    return EXIT_OK


def cmd_import_seed(args) -> int:
    from imgcap_desktop.core.seed_import import import_seed

    out = import_seed(args.models_dir, args.out, encoder_weights=args.encoder_weights)
    print(f"imported {args.models_dir} -> {out}")
    return EXIT_OK


if __name__ == "__main__":
    raise SystemExit(main())
