"""Camera RAW files (CR2, CR3, NEF, ARW, DNG, RAF, ORF, RW2) through rawpy (LibRaw).

What a RAW file gives the app: its embedded preview when the camera stored one at least
1024 px wide (the JPEG the camera made, fast, and what the photographer saw on the back of
the camera), otherwise a half-size demosaic with the camera's white balance (a quarter of
the pixels, plenty for a 224 px encoder and a preview). Either way the photo comes out
upright and sRGB, like every other format in core.images.

rawpy is an install extra in the sense that an install without it reads everything else:
a RAW file then fails with a sentence that says what to install.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from imgcap_desktop.core.errors import CorruptImageError, ImageTooLargeError, NotAnImageError

RAW_EXTENSIONS = (".cr2", ".cr3", ".nef", ".arw", ".dng", ".raf", ".orf", ".rw2")
PREVIEW_MIN_WIDTH = 1024

# LibRaw's sizes.flip: 0 upright, 3 upside down, 5 turned left, 6 turned right.
_FLIP = {3: Image.Transpose.ROTATE_180, 5: Image.Transpose.ROTATE_90, 6: Image.Transpose.ROTATE_270}


def _rawpy():
    try:
        import rawpy
    except ImportError:
        return None
    return rawpy


def available() -> bool:
    return _rawpy() is not None


def is_raw(path: Path) -> bool:
    return Path(path).suffix.lower() in RAW_EXTENSIONS


def _preview(raw, rawpy) -> Image.Image | None:
    try:
        thumb = raw.extract_thumb()
    except (rawpy.LibRawNoThumbnailError, rawpy.LibRawUnsupportedThumbnailError):
        return None
    if thumb.format == rawpy.ThumbFormat.JPEG:
        try:
            image = Image.open(io.BytesIO(thumb.data))
            image.load()
        except Exception:  # noqa: BLE001 - a broken preview: the sensor data is still there
            return None
        if image.getexif().get(0x0112, 1) != 1:
            return ImageOps.exif_transpose(image).convert("RGB")
    elif thumb.format == rawpy.ThumbFormat.BITMAP:
        image = Image.fromarray(np.ascontiguousarray(thumb.data), "RGB")
    else:
        return None
    if image.width < PREVIEW_MIN_WIDTH and image.height < PREVIEW_MIN_WIDTH:
        return None
    transpose = _FLIP.get(int(raw.sizes.flip))
    image = image.convert("RGB")
    return image.transpose(transpose) if transpose is not None else image


def load(path: Path, data: bytes, max_pixels: int | None) -> Image.Image:
    """An upright sRGB image of the RAW file whose bytes are ``data``."""
    rawpy = _rawpy()
    if rawpy is None:
        raise NotAnImageError(path, "camera RAW files need rawpy (pip install rawpy)")
    try:
        raw = rawpy.imread(io.BytesIO(data))
    except rawpy.LibRawFileUnsupportedError as exc:
        raise NotAnImageError(path, "LibRaw does not recognise it as a camera RAW file") from exc
    except (rawpy.LibRawError, OSError, ValueError) as exc:
        raise CorruptImageError(path, f"LibRaw cannot read it ({str(exc).strip() or type(exc).__name__})") from exc
    with raw:
        width, height = int(raw.sizes.width), int(raw.sizes.height)
        if width <= 0 or height <= 0:
            raise CorruptImageError(path, f"it claims a sensor of {width} x {height} pixels")
        preview = _preview(raw, rawpy)
        if preview is not None:
            return preview
        # Half size: every 2x2 Bayer cell becomes one pixel, so this is what gets allocated.
        if max_pixels is not None and (width // 2) * (height // 2) > max_pixels:
            raise ImageTooLargeError(path, f"its sensor is {width} x {height} pixels")
        try:
            rgb = raw.postprocess(half_size=True, use_camera_wb=True, output_bps=8, no_auto_bright=False)
        except (rawpy.LibRawError, MemoryError, ValueError) as exc:
            raise CorruptImageError(path, f"LibRaw cannot develop it ({str(exc).strip() or type(exc).__name__})") \
                from exc
    return Image.fromarray(np.ascontiguousarray(rgb), "RGB")
