"""The seed decoder's weights as plain arrays, keyed by role, read and written with h5py only.

A seed bundle's ``decoder.weights.h5`` holds ``roles/<role>/<i>``: the arrays of each layer
in ``get_weights()`` order (see :func:`seed.layer_shapes`). Keeping Keras out of the file's
layout lets the packaged app (no TensorFlow) import a seed folder and run it, and lets the
development install load the same file into the Keras graph. Bundles written by earlier
versions hold Keras 3's own layout (``layers/<class name>/vars/<i>``, the layer's name in the
``vars`` group's ``name`` attribute); they are read too.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from imgcap_desktop.core.errors import BundleError

ROLES = ("embedding", "image_dense", "bilstm", "lstm", "dense", "batchnorm", "output")


def write_roles(roles: dict[str, list[np.ndarray]], path: str | os.PathLike) -> Path:
    import h5py

    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with h5py.File(tmp, "w") as f:
            f.attrs["format"] = "imgcap-seed-roles"
            for role in ROLES:
                group = f.create_group(f"roles/{role}")
                for i, array in enumerate(roles[role]):
                    group.create_dataset(str(i), data=np.asarray(array, dtype=np.float32))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _keras_layout(f) -> dict[str, list[np.ndarray]]:
    """Arrays of a Keras 3 ``.weights.h5`` of the seed graph, keyed by the layers' names (= roles)."""
    found: dict[str, list[np.ndarray]] = {}

    def arrays(vars_group) -> list[np.ndarray]:
        return [np.asarray(vars_group[k]) for k in sorted(vars_group, key=int)]

    for group in f["layers"].values():
        name = group["vars"].attrs.get("name") if "vars" in group else None
        name = name.decode() if isinstance(name, bytes) else name
        if name == "bilstm":
            found[name] = arrays(group["forward_layer/cell/vars"]) + arrays(group["backward_layer/cell/vars"])
        elif name == "lstm":
            found[name] = arrays(group["cell/vars"])
        elif name in ROLES:
            found[name] = arrays(group["vars"])
    return found


def read_roles(path: str | os.PathLike) -> dict[str, list[np.ndarray]]:
    import h5py

    path = Path(path)
    try:
        with h5py.File(path, "r") as f:
            if "roles" in f:
                found = {role: [np.asarray(g[k]) for k in sorted(g, key=int)] for role, g in f["roles"].items()}
            elif "layers" in f:
                found = _keras_layout(f)
            else:
                found = {}
    except (OSError, KeyError, ValueError) as exc:
        raise BundleError(f"{path.name}: not a readable seed decoder weights file ({exc}).") from None
    missing = [r for r in ROLES if r not in found]
    if missing:
        raise BundleError(f"{path.name}: no weights for the seed model's {', '.join(missing)} layer(s).")
    return found
