"""Camera RAW files (CR2, CR3, NEF, ARW, DNG, RAF, ORF, RW2) through rawpy (LibRaw).

What a RAW file gives the app: its embedded preview when the camera stored one at least
1024 px wide (the JPEG the camera made, fast, and what the photographer saw on the back of
the camera), otherwise a half-size demosaic with the camera's white balance (a quarter of
the pixels, plenty for a 224 px encoder and a preview). Either way the photo comes out
upright and sRGB, like every other format in core.images.

rawpy is an install extra in the sense that an install without it reads everything else:
a RAW file then fails with a sentence that says what to install.

LibRaw runs in a child process. The fuzz suite (tests/support/fuzz.py, target ``raw``) found
mutated DNG files on which LibRaw 0.22 dies with a segmentation fault; in-process that would
take the whole app down with a photo. One long-lived worker process (spawned, so no Qt or
TensorFlow state is inherited) decodes every RAW file; when it crashes or hangs the photo fails
with a sentence, the worker is replaced, and the next RAW file is read as usual.
"""

from __future__ import annotations

import io
import multiprocessing
import threading
from concurrent.futures import CancelledError, ProcessPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from imgcap_desktop.core.errors import CorruptImageError, ImageTooLargeError, NotAnImageError

RAW_EXTENSIONS = (".cr2", ".cr3", ".nef", ".arw", ".dng", ".raf", ".orf", ".rw2")
PREVIEW_MIN_WIDTH = 1024
#: A RAW file LibRaw has not developed in this long is taken as hostile (a real one takes < 5 s).
TIMEOUT_S = 60.0

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
    except (rawpy.LibRawError, OSError, ValueError):  # no preview, or a broken one: develop instead
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
        data = np.asarray(thumb.data)
        if data.ndim != 3 or data.shape[2] != 3 or data.dtype != np.uint8 or 0 in data.shape:
            return None  # not the 8-bit RGB a preview must be: develop the sensor data instead
        image = Image.fromarray(np.ascontiguousarray(data), "RGB")
    else:
        return None
    if image.width < PREVIEW_MIN_WIDTH and image.height < PREVIEW_MIN_WIDTH:
        return None
    transpose = _FLIP.get(int(raw.sizes.flip))
    image = image.convert("RGB")
    return image.transpose(transpose) if transpose is not None else image


def _develop(path: Path, data: bytes, max_pixels: int | None) -> Image.Image:
    """An upright sRGB image of the RAW file whose bytes are ``data`` (in the worker process)."""
    rawpy = _rawpy()
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
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8 or 0 in rgb.shape:
        raise CorruptImageError(path, f"LibRaw developed it into an array of shape {rgb.shape}")
    return Image.fromarray(np.ascontiguousarray(rgb), "RGB")


def _in_worker(path: str, data: bytes, max_pixels: int | None):
    """Runs in the worker: (shape, pixels), or (error class name, detail) for the app to raise
    (the errors' own pickling would rebuild their message from the message)."""
    try:
        image = _develop(Path(path), data, max_pixels)
    except (NotAnImageError, CorruptImageError, ImageTooLargeError) as exc:
        return type(exc).__name__, exc.detail
    except Exception as exc:  # noqa: BLE001 - whatever LibRaw raised, the app gets a typed error
        return "CorruptImageError", f"LibRaw failed on it ({str(exc).strip() or type(exc).__name__})"
    array = np.ascontiguousarray(np.asarray(image, dtype=np.uint8))
    return array.shape, array.tobytes()


_lock = threading.Lock()
# One decode at a time (the image loader's threads and the captioning worker all call load): a
# crash or a timeout is then blamed on the file that caused it, never on one queued behind it.
_decode_lock = threading.Lock()
_pool: ProcessPoolExecutor | None = None


def _worker_pool() -> ProcessPoolExecutor:
    global _pool
    with _lock:
        if _pool is None:
            _pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"))
        return _pool


def _discard(pool: ProcessPoolExecutor) -> None:
    global _pool
    with _lock:
        if _pool is pool:
            _pool = None
    for process in list((getattr(pool, "_processes", None) or {}).values()):
        process.kill()  # a hung LibRaw does not stop for a polite shutdown
    try:
        pool.shutdown(wait=False, cancel_futures=True)
    except Exception:  # noqa: BLE001 - the pool is being thrown away in any case
        pass


def load(path: Path, data: bytes, max_pixels: int | None) -> Image.Image:
    """An upright sRGB image of the RAW file whose bytes are ``data``; LibRaw runs in the worker."""
    if _rawpy() is None:
        raise NotAnImageError(path, "camera RAW files need rawpy (pip install rawpy)")
    with _decode_lock:
        pool = _worker_pool()
        try:
            result = pool.submit(_in_worker, str(path), data, max_pixels).result(timeout=TIMEOUT_S)
        except BrokenProcessPool as exc:
            _discard(pool)
            raise CorruptImageError(path, "LibRaw crashed reading it") from exc
        except FutureTimeout as exc:
            _discard(pool)
            raise CorruptImageError(path, f"LibRaw took more than {TIMEOUT_S:.0f} s on it") from exc
        except (RuntimeError, CancelledError, OSError) as exc:  # the worker could not be started or was lost
            _discard(pool)
            raise CorruptImageError(path, f"the RAW worker process failed ({exc})") from exc
    if isinstance(result[0], str):
        errors = {e.__name__: e for e in (NotAnImageError, CorruptImageError, ImageTooLargeError)}
        raise errors[result[0]](path, result[1])
    shape, pixels = result
    return Image.fromarray(np.frombuffer(pixels, dtype=np.uint8).reshape(shape), "RGB")
