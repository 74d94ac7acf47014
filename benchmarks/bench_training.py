"""Training speed of the attend decoder: captions per second, recipes side by side in one run.

Each recipe runs in its own subprocess (oneDNN and op determinism are fixed when TensorFlow
loads), on the same captions and the same random features, with the real train step of
``imgcap train`` (``training.train.make_train_step``) and its batch plan. Printed for each:
captions/s after the traces are built (the first pass over every width is not timed), padded
tokens per caption, and the ratio to the old recipe. Beside them, the physical estimate:
FLOPs per caption of the decoder's forward and backward passes, and this machine's measured
float32 matmul GFLOPS, so the distance to the hardware's limit is visible.

Captions: the real cleaned caption lengths of ../shared/data/flickr8k-splits/train.txt when
that folder is present, otherwise lengths drawn to match Flickr8k's (mean 12.4 tokens).

    .venv/bin/python benchmarks/bench_training.py [--captions 6400] [--vocab 2900] [--recipes old,shipped]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# name -> (batch size, bucketed, jit_compile, deterministic[, keras dtype policy])
RECIPES = {
    "bucketed+b128+bf16": (128, True, False, False, "mixed_bfloat16"),
    "old": (64, False, False, True),           # the v1 recipe: random batches, oneDNN off, op determinism
    "old+onednn": (64, False, False, False),
    "bucketed": (64, True, False, True),
    "bucketed+onednn": (64, True, False, False),
    "bucketed+b128": (128, True, False, True),
    "bucketed+b128+onednn": (128, True, False, False),
    "bucketed+b256+onednn": (256, True, False, False),
    "bucketed+b128+xla": (128, True, True, False),
    "shipped": (128, True, False, False, "mixed_bfloat16"),  # = bucketed+b128+bf16, what the model card runs
}


def caption_lengths(n: int, max_length: int) -> np.ndarray:
    data = ROOT.parent / "shared" / "data"
    split = data / "flickr8k-splits" / "train.txt"
    if split.is_file():
        from imgcap_desktop.core.training.datasets import clean_caption, read_dataset

        names = set(split.read_text().split())
        lengths = []
        for folder in ("flickr8k-subset", "flickr8k-extra"):
            ds = read_dataset(data / folder)
            lengths += [min(len(clean_caption(c)), max_length - 1) + 2
                        for k in ds.captions if k in names for c in ds.captions[k]]
        lengths = np.array(lengths)
        return np.random.default_rng(0).choice(lengths, size=min(n, len(lengths)), replace=False)
    rng = np.random.default_rng(0)
    return np.clip(np.round(rng.gamma(9.0, 1.15, size=n)) + 2, 4, max_length + 1).astype(int)


def matmul_gflops() -> float:
    import tensorflow as tf

    a = tf.random.normal((1024, 1024))
    b = tf.random.normal((1024, 1024))
    tf.matmul(a, b).numpy()
    began, reps = time.perf_counter(), 20
    for _ in range(reps):
        out = tf.matmul(a, b)
    out.numpy()
    return 2 * 1024 ** 3 * reps / (time.perf_counter() - began) / 1e9


def flops_per_caption(config: dict, tokens: float) -> float:
    """Multiply-adds of one caption's forward pass x2 (FLOPs), x3 for forward + backward."""
    from imgcap_desktop.core.families.attend import full_config

    c = full_config(config)
    f, d, a, h, e, o, v = (c["feature_dim"], c["proj_dim"], c["attention_dim"], c["units"], c["embed_dim"],
                           c["output_dim"], c["vocab_size"])
    cells = c["grid_cells"] + (1 if c["semantic"] else 0)
    once = c["grid_cells"] * f * d + cells * d * a + 2 * d * h
    if c["semantic"]:
        once += f * c["classes"] + c["classes"] * d
    per_step = h * a + cells * a + cells * d + h * d + (e + d + h) * 4 * h + (h + d + e) * o + o * v
    return 3 * 2 * (once + tokens * per_step)


def run_recipe(name: str, n: int, vocab: int, max_length: int, seconds: float) -> dict:
    batch, bucketed, jit, deterministic, *policy = RECIPES[name]
    import keras
    import tensorflow as tf

    if policy:
        keras.mixed_precision.set_global_policy(policy[0])
    from imgcap_desktop.core.families.attend import build_decoder
    from imgcap_desktop.core.training.train import _trim, batch_plan, make_train_step, traced_widths

    if deterministic:
        tf.config.experimental.enable_op_determinism()
    keras.utils.set_random_seed(0)
    config = {"vocab_size": vocab, "max_length": max_length, "units": 512, "embed_dim": 256, "dropout": 0.5,
              "feature_dim": 1280, "grid_cells": 49, "semantic": 1}
    model = build_decoder(config)
    optimizer = keras.optimizers.Adam(learning_rate=5e-4, clipnorm=5.0)
    step = make_train_step(model, optimizer, vocab, label_smoothing=0.1, attention_reg=1.0, jit_compile=jit)
    rng = np.random.default_rng(0)
    lengths = caption_lengths(n, max_length)
    width = max_length + 1
    tokens_all = np.zeros((len(lengths), width), np.int32)
    for i, length in enumerate(lengths):
        tokens_all[i, :length] = rng.integers(3, vocab, size=length)
    feats = rng.standard_normal((256, 49, 1280)).astype(np.float32)
    widths = traced_widths(width)

    # Warm-up: trace every width this plan can produce before timing.
    began = time.perf_counter()
    for w in widths:
        step(tf.constant(feats[:batch]), tf.constant(np.pad(tokens_all[:batch, :w - 1], ((0, 0), (0, 1)),
                                                             constant_values=1)))
    trace_s = time.perf_counter() - began

    done, padded, elapsed = 0, 0, 0.0
    while elapsed < seconds:
        plan = batch_plan(lengths, batch, rng, bucketed=bucketed)
        began = time.perf_counter()
        losses = []
        for rows in plan:
            tokens = _trim(tokens_all[rows], widths)
            losses.append(step(tf.constant(feats[rows % len(feats)]), tf.constant(tokens)))
            done += len(rows)
            padded += tokens.shape[1] * len(rows)
            if time.perf_counter() - began + elapsed > seconds:
                break
        float(losses[-1])
        elapsed += time.perf_counter() - began
    return {"recipe": name, "batch": batch, "captions_per_s": done / elapsed, "padded_tokens": padded / done,
            "real_tokens": float(lengths.mean()), "trace_s": trace_s, "config": config}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--captions", type=int, default=6400)
    parser.add_argument("--vocab", type=int, default=2900, help="vocabulary size (the default model's)")
    parser.add_argument("--max-length", type=int, default=22)
    parser.add_argument("--seconds", type=float, default=40.0, help="timed seconds per recipe")
    parser.add_argument("--recipes", default="old,shipped", help=f"comma-separated, of: {', '.join(RECIPES)}")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        result = run_recipe(args.child, args.captions, args.vocab, args.max_length, args.seconds)
        print("RESULT " + json.dumps(result))
        return 0

    import tensorflow as tf  # noqa: F401  (for the matmul figure, in this process with oneDNN on)

    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() else ""
    gflops = matmul_gflops()
    print(f"machine: {cpu}, nproc {os.cpu_count()}, python {platform.python_version()}, tensorflow {tf.__version__}")
    print(f"float32 matmul 1024x1024: {gflops:.1f} GFLOPS")
    results = []
    for name in args.recipes.split(","):
        env = dict(os.environ, TF_ENABLE_ONEDNN_OPTS="0" if RECIPES[name][3] else "1", TF_CPP_MIN_LOG_LEVEL="2")
        out = subprocess.run([sys.executable, __file__, "--child", name, "--captions", str(args.captions),
                              "--vocab", str(args.vocab), "--max-length", str(args.max_length),
                              "--seconds", str(args.seconds)], env=env, capture_output=True, text=True)
        line = next((x for x in out.stdout.splitlines() if x.startswith("RESULT ")), None)
        if line is None:
            print(f"{name}: failed\n{out.stderr[-2000:]}")
            continue
        results.append(json.loads(line[7:]))
    if not results:
        return 1
    base = results[0]["captions_per_s"]
    print(f"{'recipe':24s} {'batch':>5s} {'captions/s':>10s} {'vs ' + results[0]['recipe']:>10s} "
          f"{'tokens/caption (padded)':>24s} {'traces s':>8s} {'GFLOPS done':>11s}")
    for r in results:
        flops = flops_per_caption(r["config"], r["padded_tokens"] - 1)
        print(f"{r['recipe']:24s} {r['batch']:5d} {r['captions_per_s']:10.1f} {r['captions_per_s'] / base:9.2f}x "
              f"{r['padded_tokens']:24.1f} {r['trace_s']:8.1f} {flops * r['captions_per_s'] / 1e9:11.1f}")
    real = flops_per_caption(results[0]["config"], results[0]["real_tokens"] - 1)
    print(f"FLOPs per caption (forward + backward, {results[0]['real_tokens']:.1f} real tokens): {real / 1e9:.2f} GFLOP;"
          f" at the measured matmul rate the limit is {gflops * 1e9 / real:.0f} captions/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
