"""ImageNet sanity checks shared by the encoder tests: sample photos and the classes they must hit."""

from __future__ import annotations

from pathlib import Path

import numpy as np

SAMPLES = Path(__file__).resolve().parents[2] / "resources" / "samples"

CAT_CLASSES = {281, 282, 283, 284, 285}  # tabby, tiger cat, Persian, Siamese, Egyptian cat
COFFEE_CLASSES = {967, 968, 504}  # espresso, cup, coffee mug


def sample_photo(name: str, size: int) -> np.ndarray:
    """A sample photo as float RGB, resized whole (bilinear) to size × size, as the Lite encoders expect."""
    from PIL import Image

    with Image.open(SAMPLES / name) as im:
        im = im.convert("RGB").resize((size, size), Image.Resampling.BILINEAR)
        return np.asarray(im, dtype=np.float32)
