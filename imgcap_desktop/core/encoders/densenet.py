"""DenseNet201 penultimate features (1920-D), as the legacy seed app computed them."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from imgcap_desktop.core.errors import BundleError


def _has_classifier(path: Path) -> bool:
    import h5py

    try:
        with h5py.File(path, "r") as f:
            root = f["model_weights"] if "model_weights" in f else f
            names = [n.decode() if isinstance(n, bytes) else n for n in root.attrs.get("layer_names", list(root.keys()))]
            if "layers" in root and not names:
                names = list(root["layers"].keys())
            return any(n in ("fc1000", "predictions") for n in names) or "layers/predictions" in root
    except OSError as exc:
        raise BundleError(f"{path.name}: not a readable DenseNet201 weights file ({exc}).") from None


def build(weights_path: Path):
    import keras
    from keras.applications import DenseNet201

    weights_path = Path(weights_path)
    top = _has_classifier(weights_path)
    try:
        if top:
            # The seed used the full classifier's second-to-last layer: the global average pool.
            full = DenseNet201(weights=None, include_top=True, input_shape=(224, 224, 3))
            full.load_weights(str(weights_path))
            return keras.Model(full.input, full.get_layer("avg_pool").output, name="densenet201_features")
        model = DenseNet201(weights=None, include_top=False, pooling="avg", input_shape=(224, 224, 3))
        model.load_weights(str(weights_path))
        return model
    except (ValueError, KeyError, OSError) as exc:
        raise BundleError(f"{weights_path.name}: cannot load DenseNet201 weights from it ({exc}).") from None


# keras.applications.densenet.preprocess_input ("torch" mode), written out so that the packaged
# app (no Keras) prepares photos the same way; a test compares the two.
MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


def preprocess(batch: np.ndarray) -> np.ndarray:
    return ((np.asarray(batch, dtype=np.float32) / 255.0 - MEAN) / STD).astype(np.float32)
