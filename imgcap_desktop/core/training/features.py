"""Encoder features on disk, keyed by image content and encoder weights.

Extraction is the expensive part of training on a CPU; keying by the bytes of
the photo (not its path) and by the encoder's weights means a second run, a
renamed folder or a different split reuses every vector already computed.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Sequence

import numpy as np

from imgcap_desktop.core.bundle import sha256_of
from imgcap_desktop.core.encoders import Encoder, EncoderSpec
from imgcap_desktop.core.images import open_for_model
from imgcap_desktop.core.paths import user_cache_dir


def content_key(path: Path) -> str:
    return sha256_of(path)


class FeatureCache:
    def __init__(self, spec: EncoderSpec, weights_path: Path, cache_dir: Path | None = None):
        self.spec = spec
        self.weights_path = Path(weights_path)
        tag = f"{spec.name}-{sha256_of(self.weights_path)[:16]}"
        self.folder = Path(cache_dir or user_cache_dir() / "features") / tag
        self._encoder: Encoder | None = None
        self.extracted = 0   # how many vectors this instance computed (the rest came from disk)

    def _file(self, key: str, flipped: bool) -> Path:
        return self.folder / key[:2] / f"{key}{'-flip' if flipped else ''}.npy"

    def encoder(self) -> Encoder:
        if self._encoder is None:
            self._encoder = Encoder(self.spec, self.weights_path)
        return self._encoder

    def features(self, paths: Sequence[Path], *, flipped: bool = False, batch_size: int = 16,
                 progress: str | None = None) -> np.ndarray:
        """float16 features (len(paths), *feature_shape), computing only what is not on disk."""
        keys = [content_key(p) for p in paths]
        out = np.zeros((len(paths), *self.spec.feature_shape), dtype=np.float16)
        todo = []
        for i, key in enumerate(keys):
            file = self._file(key, flipped)
            if file.is_file():
                out[i] = np.load(file)
            else:
                todo.append(i)
        bar = None
        if todo and progress:
            from tqdm import tqdm

            bar = tqdm(total=len(todo), desc=progress, unit="img", dynamic_ncols=True)
        for start in range(0, len(todo), batch_size):
            chunk = todo[start:start + batch_size]
            arrays = [open_for_model(paths[i], self.spec.input_size, resample=self.spec.resample) for i in chunk]
            batch = np.stack(arrays)
            if flipped:
                batch = batch[:, :, ::-1, :]
            vectors = self.encoder()(batch).astype(np.float16)
            for i, vec in zip(chunk, vectors):
                out[i] = vec
                self._store(self._file(keys[i], flipped), vec)
            self.extracted += len(chunk)
            if bar is not None:
                bar.update(len(chunk))
        if bar is not None:
            bar.close()
        return out

    @staticmethod
    def _store(file: Path, vec: np.ndarray) -> None:
        file.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=file.parent, suffix=".npy.tmp")
        with os.fdopen(fd, "wb") as f:
            np.save(f, vec)
        os.replace(tmp, file)
