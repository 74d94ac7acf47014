"""Seed model decoding: the legacy app's procedure vs the engine, side by side, same captions.

The FULL-size seed topology (V = 18062, 74-token window, 19,336,334 parameters) with
random weights; the output layer is scaled up (kernel x 20) so that arg-max decisions
are far from ties, and the end token (and padding id 0) made impossible so that every
caption runs exactly ``--steps`` steps on both sides. Image features are random
1920-D vectors: DenseNet201 is the same on both sides, decoding is what is measured.

* seed: the web app's loop, literally: per step ``texts_to_sequences`` + ``pad_sequences``
  + ``model.predict`` + a linear scan of ``word_index`` (a real Keras legacy Tokenizer
  fitted on V - 1 words), one image at a time.
* engine: ``decoding.greedy`` over ``SeedStepModel``, as the Captioner calls it
  (batched; one compiled step per token for all images).

Run:  .venv/bin/python benchmarks/bench_seed_decoding.py [--steps 20] [--batch 10]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

V, L, FEATURES = 18062, 74, 1920


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def build(seed: int = 0):
    import keras
    from keras.src.legacy.preprocessing.text import Tokenizer

    from imgcap_desktop.core.families.seed import build_seed_model

    words = ["startseq", "endseq"] + [f"w{i}" for i in range(V - 3)]
    tokenizer = Tokenizer()
    tokenizer.fit_on_texts([" ".join(words)])
    assert len(tokenizer.word_index) + 1 == V
    keras.utils.set_random_seed(seed)
    model, roles = build_seed_model(V, L)
    kernel, bias = roles["output"].get_weights()
    bias = np.zeros_like(bias)
    bias[tokenizer.word_index["endseq"]] = -1e4  # never ends: every caption runs the full --steps
    bias[0] = -1e4                                # nor stops at the padding id (no word)
    roles["output"].set_weights([kernel * 20, bias])
    (emb,) = roles["embedding"].get_weights()
    roles["embedding"].set_weights([emb * 20])    # prefixes that differ give different states
    return model, roles, tokenizer


def seed_captions(model, tokenizer, features, steps):
    """The legacy web app's decoding, one image at a time (``max_length`` replaced by ``steps`` as the cap)."""
    from tests.support.seed import legacy_greedy

    return [caption for caption, _ in legacy_greedy(model, tokenizer, features, steps=steps, max_length=L)]


def engine_captions(step_model, vocab, stops, features, steps, beam=1):
    from imgcap_desktop.core import decoding

    ranked = decoding.beam_search(step_model, features, beam=beam, start_id=vocab.start_id, stops=stops,
                                  max_length=steps)
    return [" ".join(vocab.decode(hyps[0].tokens)) for hyps in ranked]


CPU: dict[str, float] = {}


def timed(fn, *args, repeat=1, key=None):
    """Best wall-clock time of ``repeat`` runs; the CPU time (all threads) of that run goes to CPU[key]."""
    best, result = float("inf"), None
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        result = fn(*args)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        if wall < best:
            best = wall
            if key:
                CPU[key] = cpu
    return best, result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=20, help="tokens per caption on both sides (default 20)")
    parser.add_argument("--batch", type=int, default=10, help="images in the batch case (default 10)")
    parser.add_argument("--repeat", type=int, default=2, help="engine runs per case, best kept (default 2)")
    args = parser.parse_args(argv)

    import tensorflow as tf

    from imgcap_desktop.core import decoding
    from imgcap_desktop.core.families.seed import SeedStepModel
    from imgcap_desktop.core.vocab import Vocabulary

    print(f"machine: {cpu_model()}, nproc {os.cpu_count()}, TF {tf.__version__}, "
          f"intra-op threads {tf.config.threading.get_intra_op_parallelism_threads() or 'default'}")
    t0 = time.perf_counter()
    model, roles, tokenizer = build()
    print(f"model: seed topology, V={V}, window {L}, {model.count_params():,} parameters "
          f"(built in {time.perf_counter() - t0:.1f} s); {args.steps} steps per caption")
    words = [None] * V
    for word, idx in tokenizer.word_index.items():
        words[idx] = word
    vocab = Vocabulary(tuple(words))
    stops = decoding.Stops.from_vocabulary(vocab, V)
    step_model = SeedStepModel(model, roles, L)

    rng = np.random.default_rng(0)
    features = np.abs(rng.normal(0, 0.5, (args.batch, FEATURES))).astype(np.float32)

    # Warm-up (first predict / first trace of the step function), reported but not counted.
    t_seed_warm, _ = timed(seed_captions, model, tokenizer, features[:1], 1)
    t_engine_warm, _ = timed(engine_captions, step_model, vocab, stops, features[:1], 2)
    engine_captions(step_model, vocab, stops, features, 2)  # the batch shape, too
    print(f"warm-up: seed first predict {t_seed_warm:.2f} s, engine first trace {t_engine_warm:.2f} s")

    rows = []
    ok = True
    for label, feats in (("1 image", features[:1]), (f"batch of {args.batch}", features)):
        t_seed, ref = timed(seed_captions, model, tokenizer, feats, args.steps, key="seed")
        t_engine, got = timed(engine_captions, step_model, vocab, stops, feats, args.steps, repeat=args.repeat,
                              key="engine")
        same = got == ref
        ok &= same
        n = len(feats)
        rows.append((label, n, t_seed, t_engine, same))
        print(f"\n{label}: captions identical: {same}"
              + ("" if same else f"\n  seed:   {ref}\n  engine: {got}"))
        print(f"  seed    {t_seed:8.2f} s total, {t_seed / n:7.3f} s/image, "
              f"{1000 * t_seed / (n * args.steps):7.1f} ms per image-step")
        print(f"  engine  {t_engine:8.2f} s total, {t_engine / n:7.3f} s/image, "
              f"{1000 * t_engine / (n * args.steps):7.1f} ms per image-step "
              f"({1000 * t_engine / args.steps:.1f} ms per batched step)")
        print(f"  speed-up {t_seed / t_engine:6.1f}x wall clock; CPU time seed {CPU['seed']:.2f} s, "
              f"engine {CPU['engine']:.2f} s: {CPU['seed'] / CPU['engine']:.1f}x")
        if label == "1 image":
            sample = ref[0].split()
            print(f"  caption: {' '.join(sample[:6])} ... ({len(sample)} words, "
                  f"{len(set(sample))} distinct)")

    t_beam, _ = timed(engine_captions, step_model, vocab, stops, features, args.steps, 3)
    print(f"\nengine beam k=3, batch of {args.batch}: {t_beam:.2f} s ({t_beam / args.batch:.3f} s/image)")

    print(f"\nprojected to a full {L}-step caption (per-step cost x {L}):")
    for label, n, t_seed, t_engine, _ in rows:
        print(f"  {label:12s} seed {t_seed / args.steps * L / n:6.2f} s/image   "
              f"engine {t_engine / args.steps * L / n:6.2f} s/image")
    single, batch = rows[0][2] / rows[0][3], rows[1][2] / rows[1][3]
    print(f"\ntargets: >= 3x on one image: {single:.1f}x {'met' if single >= 3 else 'MISSED'}; "
          f">= 10x on a batch of 10: {batch:.1f}x {'met' if batch >= 10 else 'MISSED'}")
    if not ok:
        print("CAPTIONS DIFFER", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
