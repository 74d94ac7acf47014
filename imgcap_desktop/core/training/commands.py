"""``imgcap train`` and ``imgcap evaluate``."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

from imgcap_desktop.core.training.datasets import FORMATS

# oneDNN's threaded kernels sum in an order that depends on scheduling, so under load two runs
# drift apart; TensorFlow's own kernels with op determinism do not. Set before TensorFlow loads.
REPRODUCIBLE_ENV = {"TF_ENABLE_ONEDNN_OPTS": "0"}


def _add_data_options(p, *, required: bool) -> None:
    p.add_argument("--data", action="append", required=required, metavar="DIR",
                   help="dataset folder (Flickr8k, Flickr30k, COCO or image,caption CSV); repeat to join several")
    p.add_argument("--format", choices=FORMATS, default=None, help="dataset layout (default: detected per folder)")
    p.add_argument("--split-files", default=None, metavar="DIR",
                   help="folder with train.txt, val.txt and test.txt (one photo name per line) that fix the split")


def add_parsers(sub) -> None:
    p = sub.add_parser("train", help="train a caption model and write a bundle")
    _add_data_options(p, required=True)
    p.add_argument("--family", choices=("attend", "seed"), default="attend")
    p.add_argument("--out", required=True, help="bundle folder to write (checkpoints go in OUT/.checkpoint)")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--learning-rate", type=float, default=1e-3)
    p.add_argument("--min-count", type=int, default=3, help="words seen fewer times become <unk>")
    p.add_argument("--max-length", type=int, default=22, help="longest caption in tokens")
    p.add_argument("--patience", type=int, default=4, help="epochs without a better validation CIDEr before stopping")
    p.add_argument("--seed", type=int, default=0, help="initialisation and batch order")
    p.add_argument("--split-seed", type=int, default=0, help="which photos are held out for validation and test")
    p.add_argument("--val-fraction", type=float, default=0.05)
    p.add_argument("--test-fraction", type=float, default=0.10)
    p.add_argument("--scst-epochs", type=int, default=0,
                   help="self-critical fine-tuning epochs on CIDEr-D after cross-entropy (attend family)")
    p.add_argument("--semantic", action="store_true",
                   help="also attend to the encoder's ImageNet class probabilities (attend family)")
    p.add_argument("--units", type=int, default=512, help="decoder LSTM size (attend family)")
    p.add_argument("--dropout", type=float, default=0.5)
    p.add_argument("--no-flip", action="store_true", help="no horizontal-flip augmentation")
    p.add_argument("--resume", action="store_true", help="continue from OUT/.checkpoint")
    p.add_argument("--encoder-weights", default=None, metavar="FILE")
    from imgcap_desktop.core.encoders import ENCODERS

    # Read when the parser is built, so an encoder registered by a script (dinov2_comparison.py) is offered.
    p.add_argument("--encoder", default="efficientnet_lite0",
                   choices=[name for name, spec in ENCODERS.items() if len(spec.feature_shape) == 2],
                   help="image encoder of the attend family (Lite1/Lite2 need --encoder-weights)")
    p.add_argument("--corpus", default=None, metavar="FILE",
                   help="extra caption text (Flickr8k token layout): word counts for the vocabulary's min-count "
                        "(no new words) and the text for --lm-epochs; held-out photos' captions are skipped")
    p.add_argument("--lm-epochs", type=int, default=0,
                   help="attend family: passes over the --corpus captions (no image) before the photos")
    p.add_argument("--no-corpus-counts", action="store_true",
                   help="with --corpus: the vocabulary comes from the photos' captions alone")
    p.add_argument("--name", default="", help="the bundle's name, shown in the app (default: from the encoder)")
    p.add_argument("--description", default="", help="the bundle's one-line description (default: from the data)")
    p.add_argument("--ema", type=float, default=0.0, metavar="DECAY",
                   help="validate and keep a moving average of the weights with this decay per batch (e.g. 0.99)")
    p.add_argument("--length-penalty", type=float, default=None,
                   help="beam length penalty for the bundle (default: chosen on the validation split)")
    p.add_argument("--no-bucket", action="store_true",
                   help="random batches padded to their longest caption (default: batches of similar length)")
    p.add_argument("--jit-compile", action="store_true", help="XLA-compile the train step")
    p.add_argument("--precision", choices=("float32", "mixed_bfloat16"), default="float32",
                   help="mixed_bfloat16: bfloat16 matmuls with float32 weights (fast on CPUs with AMX or AVX512-BF16)")
    p.add_argument("--fast-kernels", action="store_true",
                   help="oneDNN kernels and no op determinism: faster, but two runs of one seed differ slightly")
    p.add_argument("--cache-dir", default=None, help="feature cache folder (default: the user cache)")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("ensemble", help="combine attend bundles trained on the same data into one model")
    p.add_argument("bundles", nargs="+", help="two or more bundles with the same vocabulary and configuration")
    p.add_argument("--out", required=True)
    _add_data_options(p, required=False)
    p.set_defaults(func=cmd_ensemble)

    p = sub.add_parser("evaluate", help="score a model on a dataset (BLEU, METEOR, ROUGE-L, CIDEr)")
    _add_data_options(p, required=True)
    p.add_argument("--model", default=None, help="bundle folder (default: the default model)")
    p.add_argument("--split", default="test",
                   help="test|val|train|all, or several joined by + (val+test); without split files in the data, "
                        "the bundle's own held-out list is used")
    p.add_argument("--beam", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--captions-out", default=None, help="where to write the scored captions (JSON lines)")
    p.add_argument("--encoder-weights", default=None, metavar="FILE")
    p.add_argument("--keyword-guide", type=float, default=None, metavar="P",
                   help="name keywords of at least this probability in the caption (0: off; default: the model's)")
    p.add_argument("--no-java", action="store_true", help="skip METEOR and the Java PTB tokenizer")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("calibrate", help="fit a model's confidence and keyword threshold on held-out photos "
                                         "and write them into its manifest")
    _add_data_options(p, required=True)
    p.add_argument("--model", required=True, help="attend-family bundle folder to calibrate (changed in place)")
    p.add_argument("--judged", default=None, metavar="TSV",
                   help="photos judged by hand (columns photo, verdict: accurate|wrong detail|wrong), added "
                        "to the fitting data; e.g. benchmarks/everyday_judged.tsv")
    p.add_argument("--judged-photos", default=None, metavar="DIR",
                   help="the folder the --judged TSV's photo names are in (default: the TSV's folder)")
    p.add_argument("--good-cider", type=float, default=0.5,
                   help="a caption is good when its CIDEr-D against the photo's references reaches this")
    p.add_argument("--check-below", type=float, default=0.5,
                   help="the confidence below which the app suggests reading a caption first")
    p.add_argument("--beam", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_calibrate)


def cmd_train(args) -> int:
    import os

    if "tensorflow" not in sys.modules and not args.fast_kernels:
        for key, value in REPRODUCIBLE_ENV.items():
            os.environ.setdefault(key, value)
    from imgcap_desktop.core.tf_quiet import import_tensorflow
    from imgcap_desktop.core.training.train import TrainConfig, train

    import_tensorflow()

    cfg = TrainConfig(
        data=args.data, out=args.out, format=args.format, split_files=args.split_files, family=args.family, epochs=args.epochs,
        batch_size=args.batch_size, learning_rate=args.learning_rate, min_count=args.min_count,
        max_length=args.max_length, patience=args.patience, seed=args.seed, split_seed=args.split_seed, val_fraction=args.val_fraction,
        test_fraction=args.test_fraction, flip=not args.no_flip, resume=args.resume,
        encoder_weights=args.encoder_weights, corpus=args.corpus, cache_dir=args.cache_dir,
        progress=not args.no_progress, scst_epochs=args.scst_epochs, units=args.units, dropout=args.dropout, lm_epochs=args.lm_epochs, corpus_counts=not args.no_corpus_counts, ema=args.ema,
        length_penalty=args.length_penalty, semantic=args.semantic, encoder=args.encoder,
        bucket=not args.no_bucket, jit_compile=args.jit_compile, deterministic=not args.fast_kernels,
        precision=args.precision, name=args.name, description=args.description,
        command="imgcap " + shlex.join(sys.argv[1:]))
    out = train(cfg)
    manifest = json.loads((Path(out) / "manifest.json").read_text())
    print(f"wrote {out}")
    print(json.dumps(manifest.get("metrics", {}), indent=2))
    return 0


def cmd_ensemble(args) -> int:
    from imgcap_desktop.core.training.ensemble import merge

    out = merge(args.bundles, args.out, data=args.data, split_files=args.split_files, fmt=args.format)
    manifest = json.loads((Path(out) / "manifest.json").read_text())
    print(f"wrote {out}")
    print(json.dumps(manifest.get("metrics", {}), indent=2))
    return 0


def _evaluation_keys(dataset, split: str, manifest) -> list[str]:
    if "+" in split:
        # Pooled splits ("val+test"): one larger set, one IDF, a steadier CIDEr.
        return [k for part in split.split("+") for k in _evaluation_keys(dataset, part, manifest)]
    usable = sorted(k for k in dataset.images if dataset.captions.get(k))
    if split == "all":
        return usable
    if dataset.splits.get(split):
        return [k for k in dataset.splits[split] if k in dataset.images]
    held_out = manifest.provenance.get("test_images") if split == "test" else None
    if held_out:
        return [k for k in held_out if k in dataset.images]
    from imgcap_desktop.core.training.datasets import split_keys

    settings = manifest.provenance.get("settings", {})
    splits = split_keys(usable, val_fraction=settings.get("val_fraction", 0.05),
                        test_fraction=settings.get("test_fraction", 0.10),
                        seed=settings.get("split_seed", settings.get("seed", 0)))
    return splits.get(split, [])


def cmd_evaluate(args) -> int:
    from imgcap_desktop.core.captioner import Captioner
    from imgcap_desktop.core.training.datasets import clean_caption, load_training_data
    from imgcap_desktop.core.records import make_record
    from imgcap_desktop.core.training.metrics import score_captions

    try:
        dataset = load_training_data(args.data, args.format, args.split_files)
    except ValueError as exc:
        print(f"imgcap: {exc}", file=sys.stderr)
        return 2
    for note in dataset.notes:
        print(f"data:   {note}", file=sys.stderr)
    captioner = Captioner.load(args.model, encoder_weights=args.encoder_weights)
    keys = _evaluation_keys(dataset, args.split, captioner.manifest)
    if not keys:
        print(f"imgcap: no images in the '{args.split}' split of {', '.join(args.data)}", file=sys.stderr)
        return 2
    from tqdm import tqdm

    predictions, failures = {}, 0
    out_path = Path(args.captions_out or f"captions-{args.split}.jsonl")
    with open(out_path, "w", encoding="utf-8") as out:
        records = captioner.caption_paths([dataset.images[k] for k in keys], beam=args.beam,
                                          batch_size=args.batch_size, keyword_guide=args.keyword_guide)
        for key, record in tqdm(zip(keys, records), total=len(keys), unit="photo", file=sys.stderr):
            if record.ok:
                predictions[key] = record.caption.text
            else:
                failures += 1
            out.write(json.dumps(make_record(key, caption=record.caption, error=record.error),
                                 ensure_ascii=False) + "\n")
    drop = captioner.manifest.family == "seed"
    references = {k: [" ".join(clean_caption(c, drop_single_letters=drop)) for c in dataset.captions[k]]
                  for k in predictions}
    report = score_captions(predictions, references, use_java=False if args.no_java else None)
    print(f"model:  {captioner.name}")
    print(f"split:  {args.split} ({len(predictions)} images scored, {failures} failed)")
    for name, value in report.scores.items():
        print(f"{name:8s} {value:.4f}")
    for note in report.notes:
        print(f"note:   {note}")
    print(f"captions written to {out_path}")
    return 1 if failures else 0


def cmd_calibrate(args) -> int:
    from imgcap_desktop.core.training.calibrate import calibrate

    try:
        calibrate(args.model, args.data, split_files=args.split_files, fmt=args.format, judged=args.judged, judged_photos=args.judged_photos,
                  beam=args.beam, batch_size=args.batch_size, good_cider=args.good_cider,
                  check_below=args.check_below, progress=not args.no_progress)
    except ValueError as exc:
        print(f"imgcap: {exc}", file=sys.stderr)
        return 2
    print(f"calibrated {args.model} (manifest, reliability.png, calibration.json)")
    return 0
