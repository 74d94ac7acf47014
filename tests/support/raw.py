"""Small DNG files made in the test with tifffile, which LibRaw (rawpy) reads as camera RAW.

No installable package ships a small DNG, so the tests write one: a 12-bit RGGB Bayer mosaic
of a two-colour scene (red-orange left half, blue right half) with the DNG tags LibRaw needs
(version, CFA layout, black and white level, an identity colour matrix, neutral white balance),
optionally an RGB preview in IFD0 with the raw data in a SubIFD (how cameras' DNGs are laid
out) and an orientation tag.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

LEFT, RIGHT = (0.8, 0.3, 0.2), (0.2, 0.4, 0.9)


def _mosaic(height: int, width: int) -> np.ndarray:
    scene = np.zeros((height, width, 3))
    scene[:, : width // 2] = LEFT
    scene[:, width // 2:] = RIGHT
    cfa = np.zeros((height, width), np.uint16)
    cfa[0::2, 0::2] = scene[0::2, 0::2, 0] * 4000
    cfa[0::2, 1::2] = scene[0::2, 1::2, 1] * 4000
    cfa[1::2, 0::2] = scene[1::2, 0::2, 1] * 4000
    cfa[1::2, 1::2] = scene[1::2, 1::2, 2] * 4000
    return cfa + 64


_DNG = [(50706, "B", 4, (1, 4, 0, 0)), (50707, "B", 4, (1, 1, 0, 0)),
        (50708, "s", 0, "imgcap test camera"), (271, "s", 0, "imgcap"), (272, "s", 0, "test")]
_RAW = [(33421, "H", 2, (2, 2)), (33422, "B", 4, (0, 1, 1, 2)), (50714, "H", 1, 64), (50717, "H", 1, 4095),
        (50721, "2i", 9, (1, 1, 0, 1, 0, 1, 0, 1, 1, 1, 0, 1, 0, 1, 0, 1, 1, 1)), (50778, "H", 1, 21),
        (50728, "2I", 3, (1, 1, 1, 1, 1, 1))]


def write_dng(path: Path, *, size=(384, 256), preview: tuple[int, int] | None = None,
              orientation: int = 1) -> Path:
    """A DNG of ``size`` (width, height) sensor pixels; ``preview`` (width, height) adds an RGB preview."""
    import tifffile

    width, height = size
    cfa = _mosaic(height, width)
    turned = [(274, "H", 1, orientation)]
    path.parent.mkdir(parents=True, exist_ok=True)
    with tifffile.TiffWriter(path) as tif:
        if preview is None:
            tif.write(cfa, photometric=32803, bitspersample=16, compression=None, subfiletype=0, metadata=None,
                      extratags=_DNG + _RAW + turned)
        else:
            pw, ph = preview
            image = np.zeros((ph, pw, 3), np.uint8)
            image[:, : pw // 2] = [int(255 * v) for v in LEFT]
            image[:, pw // 2:] = [int(255 * v) for v in RIGHT]
            tif.write(image, photometric="rgb", subfiletype=1, subifds=1, extratags=_DNG + turned, metadata=None)
            tif.write(cfa, photometric=32803, bitspersample=16, compression=None, subfiletype=0, extratags=_RAW,
                      metadata=None)
    return path
