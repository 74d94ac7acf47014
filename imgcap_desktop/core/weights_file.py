"""Storage helpers for Keras ``.weights.h5`` files."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np


def to_float16(src: str | os.PathLike, dst: str | os.PathLike) -> Path:
    """Copy a weights file with every float32 array stored as float16.

    Halves the size of a bundle (Keras casts back to float32 when loading); on our
    models the captions are unchanged (checked on Flickr8k photos, greedy and beam).
    HDF5 does not give back the space of deleted datasets, hence a fresh copy rather
    than an in-place rewrite.
    """
    import h5py

    dst = Path(dst)
    tmp = dst.with_name(dst.name + ".tmp")
    with h5py.File(src, "r") as fin, h5py.File(tmp, "w") as fout:
        def copy(gin, gout):
            for key, value in gin.attrs.items():
                gout.attrs[key] = value
            for name, item in gin.items():
                if isinstance(item, h5py.Group):
                    copy(item, gout.create_group(name))
                else:
                    data = item[()]
                    if isinstance(data, np.ndarray) and data.dtype == np.float32:
                        data = data.astype(np.float16)
                    out = gout.create_dataset(name, data=data)
                    for key, value in item.attrs.items():
                        out.attrs[key] = value

        copy(fin, fout)
    os.replace(tmp, dst)
    return dst
