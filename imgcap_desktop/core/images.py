"""Turn user files into RGB pixels, safely.

Everything that reads an image goes through :func:`load_rgb` (or
:func:`thumbnail`), so every caller gets the same answers for the awkward cases:
16-bit and float scans, CMYK JPEGs, transparent PNGs, rotated phone photos,
truncated downloads, decompression bombs, FIFOs and symlink loops. Bad input never
escapes as anything but an :class:`~imgcap_desktop.core.errors.ImageLoadError`
subclass whose message names the file, so a batch can report one line per file
and carry on.

No Qt and no TensorFlow here: the GUI, the CLI and training all share this module.
"""

from __future__ import annotations

import errno
import functools
import io
import os
import re
import stat
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError, features

from imgcap_desktop.core import raw_photos
from imgcap_desktop.core.errors import (
    CorruptImageError,
    ImageLoadError,
    ImageTooLargeError,
    NotAnImageError,
    UnreadableFileError,
)

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "IMAGE_EXTENSIONS",
    "RESAMPLE_FILTERS",
    "CollectedFiles",
    "collect_images",
    "load_rgb",
    "open_for_model",
    "thumbnail",
]

# --- formats ----------------------------------------------------------------

# A fixed table rather than Image.registered_extensions(): the registry also lists
# save-only formats (PDF), stubs that need a handler (HDF5, GRIB, BUFR), EPS (which
# shells out to Ghostscript, a long history of RCEs on untrusted files) and whatever
# third-party plugins happened to be imported first, so folder scans would depend on
# import order. Optional codecs are included only when this Pillow build has them.
_FORMAT_TABLE: dict[str, tuple[tuple[str, ...], str | None]] = {
    # Pillow format id: (suffixes, feature this build must have or None)
    "JPEG": ((".jpg", ".jpeg", ".jpe", ".jfif"), None),  # also opens .mpo content
    "PNG": ((".png", ".apng"), None),
    "GIF": ((".gif",), None),
    "BMP": ((".bmp",), None),
    "DIB": ((".dib",), None),
    "WEBP": ((".webp",), "webp"),
    "TIFF": ((".tif", ".tiff"), None),
    "PPM": ((".ppm", ".pgm", ".pbm", ".pnm", ".pfm"), None),
    "ICO": ((".ico",), None),
    "ICNS": ((".icns",), None),
    "TGA": ((".tga",), None),
    "PCX": ((".pcx",), None),
    "SGI": ((".sgi", ".rgb", ".rgba", ".bw"), None),
    "QOI": ((".qoi",), None),
    "DDS": ((".dds",), None),
    "PSD": ((".psd",), None),
    "JPEG2000": ((".jp2", ".j2k", ".jpx", ".jpf", ".j2c", ".jpc"), "jpg_2000"),
    "AVIF": ((".avif", ".avifs"), "avif"),
    # Phones' default (iPhone, many Android): pi-heif (libheif and libde265, decoding only) registers
    # the format below. It applies the photo's rotation itself and resets the EXIF orientation, so
    # nothing turns twice. pi-heif rather than pillow-heif: the app never writes HEIC, and pillow-heif
    # carries the x265 encoder (22 MB, GPL) into the packaged app for nothing.
    "HEIF": ((".heic", ".heif", ".hif"), None),
}


def _register_plugins() -> None:
    try:
        import pi_heif
    except ImportError:
        return  # an install without it reads everything else
    pi_heif.register_heif_opener()


def _available_formats() -> dict[str, tuple[str, ...]]:
    Image.init()
    _register_plugins()
    available: dict[str, tuple[str, ...]] = {}
    for fmt, (suffixes, feature) in _FORMAT_TABLE.items():
        if fmt not in Image.OPEN:
            continue
        if feature is not None and not features.check(feature):
            continue
        available[fmt] = suffixes
    # MPO files (multi-picture JPEGs from phones and 3D cameras) are opened by the
    # JPEG plugin, so "JPEG" covers them; only the suffix needs listing.
    if "JPEG" in available:
        available["JPEG"] = available["JPEG"] + (".mpo",)
    return available


_AVAILABLE = _available_formats()

# Camera RAW goes through rawpy (core.raw_photos), chosen by suffix: LibRaw, not Pillow, reads it.
IMAGE_EXTENSIONS: frozenset[str] = frozenset(
    [s for suffixes in _AVAILABLE.values() for s in suffixes]
    + (list(raw_photos.RAW_EXTENSIONS) if raw_photos.available() else []))

# Image.open tries only these, whatever the file is called: content decides the
# format, and a renamed EPS or a stub format is still refused as "not an image".
_OPEN_FORMATS: tuple[str, ...] = tuple(sorted(_AVAILABLE))

# 120 megapixels. Large enough for the biggest photos people actually caption
# (100-MP medium format such as Fujifilm GFX100, 11648 x 8736 = 102 MP; 61-MP full
# frame; stitched panoramas of that order), small enough that one decode stays
# under about 1 GB (4 bytes/pixel while decoding with alpha + 3 bytes/pixel RGB).
# It sits below Pillow's own hard limit (2 x Image.MAX_IMAGE_PIXELS, about
# 179 MP) so that this number, not Pillow's, decides; between Pillow's warning
# threshold (about 89 MP) and this limit Pillow may emit a DecompressionBombWarning,
# which is harmless unless warnings are turned into errors.
DEFAULT_MAX_PIXELS: int = 120_000_000

# Animations (GIF, WebP, APNG) are decoded frame by frame onto a canvas of their full size,
# with alpha, and have no reduced decode: a 20 KB WebP claiming a 983200 x 112 canvas cost
# 3 s and 1.9 GB under the photo limit. No real animation is near this size (4K video
# frames are 8.3 MP), so animations get a limit of their own.
MAX_ANIMATION_PIXELS: int = 16_000_000

RESAMPLE_FILTERS: dict[str, Image.Resampling] = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
}

_WHITE = (255, 255, 255)
_ALPHA_MODES = frozenset({"RGBA", "RGBa", "LA", "La", "PA"})


# --- opening files ----------------------------------------------------------


def _os_error_detail(exc: OSError) -> str:
    code = exc.errno
    if code in (errno.ENOENT, errno.ENOTDIR):
        return "no such file"
    if code == errno.ELOOP:
        return "symbolic link loop"
    if code in (errno.EACCES, errno.EPERM):
        return "permission denied"
    if code == errno.EISDIR:
        return "it is a folder"
    return exc.strerror or type(exc).__name__


def _refuse_non_regular(path: Path, mode: int) -> None:
    if stat.S_ISREG(mode):
        return
    if stat.S_ISDIR(mode):
        raise UnreadableFileError(path, "it is a folder")
    # FIFOs, sockets and devices: reading one can block forever or have side effects.
    raise UnreadableFileError(path, "not a regular file")


@contextmanager
def _open_regular_file(path: Path) -> Iterator[BinaryIO]:
    try:
        # stat before open: opening some devices has side effects (tape rewind,
        # modem hang-up), so non-regular files are refused without being opened.
        _refuse_non_regular(path, os.stat(path).st_mode)
        # O_NONBLOCK: if the path was swapped for a FIFO after the stat, open()
        # returns at once instead of waiting for a writer; fstat then refuses it.
        flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
        fd = os.open(path, flags)
    except OSError as exc:
        if exc.errno == errno.ENOENT and os.path.islink(path):
            raise UnreadableFileError(path, f"it is a link to {os.readlink(path)}, which does not exist") from exc
        raise UnreadableFileError(path, _os_error_detail(exc)) from exc
    try:
        info = os.fstat(fd)
        _refuse_non_regular(path, info.st_mode)
        handle = _SizedReader(io.FileIO(fd, "rb"), info.st_size)
    except BaseException:
        os.close(fd)
        raise
    with handle:
        yield handle


class _SizedReader(io.BufferedReader):
    """A file that never allocates for more bytes than it has left.

    ``read(n)`` sets aside n bytes before reading; Pillow asks for a chunk's declared length,
    so a 119-byte PNG whose IDAT claims 4 GB asked for a 4 GB buffer (a MemoryError, or a
    4 GB commit on Windows) to read nothing."""

    def __init__(self, raw, size: int):
        super().__init__(raw)
        self._size = size

    def read(self, n: int | None = -1) -> bytes:
        if n is not None and n > 0:
            n = min(n, max(self._size - self.tell(), 0))
            if n == 0:
                return b""
        return super().read(n)


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text if len(text) <= 120 else text[:117] + "..."


_BOMB_DETAIL = "its size is above Pillow's decompression-bomb limit"


def _too_large_detail(width: int, height: int, max_pixels: int) -> str:
    return f"{width} x {height} pixels, the limit is {max_pixels:,} pixels"


# Pillow treats a parse error in a plugin's header code as "not this format" and
# moves on, so a PNG with a damaged chunk ends as UnidentifiedImageError, the same
# as a text file. A recognisable signature turns that back into "corrupt".
_SIGNATURES: tuple[tuple[int, bytes, str], ...] = (
    (0, b"\x89PNG\r\n\x1a\n", "PNG"),
    (0, b"\xff\xd8\xff", "JPEG"),
    (0, b"GIF87a", "GIF"),
    (0, b"GIF89a", "GIF"),
    (0, b"II*\x00", "TIFF"),
    (0, b"MM\x00*", "TIFF"),
    (8, b"WEBP", "WebP"),
    (4, b"ftypheic", "HEIC"),
    (4, b"ftypmif1", "HEIF"),
    (4, b"ftypavif", "AVIF"),
)


def _unidentified(handle: BinaryIO, path: Path) -> ImageLoadError:
    try:
        handle.seek(0)
        head = handle.read(16)
    except (OSError, ValueError):
        return NotAnImageError(path)
    if not head:
        return NotAnImageError(path, "the file is empty")
    for offset, magic, name in _SIGNATURES:
        if head[offset : offset + len(magic)] == magic:
            return CorruptImageError(path, f"it starts like a {name} file but its header is damaged")
    return NotAnImageError(path)


def _open_big_jpeg(handle: BinaryIO) -> Image.Image | None:
    """A JPEG over Pillow's own size limit, opened without that check (which would refuse a
    panorama that a 1/2..1/8 scale decode handles); None for anything else."""
    from PIL import JpegImagePlugin

    try:
        handle.seek(0)
        if handle.read(3) != b"\xff\xd8\xff":
            return None
        handle.seek(0)
        return JpegImagePlugin.JpegImageFile(handle)
    except Exception:  # noqa: BLE001 - any parse problem: the caller's refusal stands
        return None


def _identify(handle: BinaryIO, path: Path, max_pixels: int | None) -> Image.Image:
    try:
        im = Image.open(handle, formats=_OPEN_FORMATS)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        # Without a limit of ours, Pillow's own stands.
        jpeg = _open_big_jpeg(handle) if max_pixels is not None else None
        if jpeg is not None:
            return jpeg  # _plan_decode decides whether a reduced decode fits
        # Pillow's own text talks of a "DOS attack"; users need the size fact only.
        raise ImageTooLargeError(path, _BOMB_DETAIL) from exc
    except UnidentifiedImageError as exc:
        raise _unidentified(handle, path) from exc
    except MemoryError as exc:
        raise ImageTooLargeError(path, "not enough memory to open it") from exc
    except OSError as exc:
        if exc.errno is not None:  # a real I/O error, not a Pillow parse error
            raise UnreadableFileError(path, _os_error_detail(exc)) from exc
        raise CorruptImageError(path, _short(exc)) from exc
    except Exception as exc:  # plugins raise ValueError, SyntaxError, struct.error, ...
        raise CorruptImageError(path, _short(exc)) from exc
    width, height = im.size
    if width <= 0 or height <= 0:
        raise CorruptImageError(path, f"it claims a size of {width} x {height} pixels")
    return im


#: The reduced sizes libjpeg can decode to directly (its DCT scaling), as divisors.
_JPEG_SCALES = (2, 4, 8)


def _is_animated(im: Image.Image) -> bool:
    try:
        # GIF finds out by reading ahead to the second frame, which a damaged file may not have.
        return bool(getattr(im, "is_animated", False))
    except Exception:  # noqa: BLE001 - the decode that follows reports the damage
        return False


def _plan_decode(im: Image.Image, path: Path, max_pixels: int | None, draft_size: tuple[int, int] | None) -> None:
    """Decide, on the header's size and before a single pixel is decoded, how big the decode is.

    A JPEG larger than ``max_pixels`` (a stitched panorama, say) is decoded at 1/2, 1/4 or
    1/8 scale, the first that fits: that costs no more memory than a photo of the limit's
    size, and the model sees a few hundred pixels anyway. Other formats have no reduced
    decode, so above the limit they are refused, as is a JPEG that would not fit even at 1/8
    (a header claiming gigapixels is a decompression bomb, not a photo).
    """
    width, height = im.size
    request = draft_size
    if max_pixels is not None and width * height > MAX_ANIMATION_PIXELS and _is_animated(im):
        raise ImageTooLargeError(path, f"an animation of {width} x {height} pixels; the limit for animations "
                                       f"is {MAX_ANIMATION_PIXELS:,} pixels")
    if max_pixels is not None and width * height > max_pixels:
        scale = next((s for s in _JPEG_SCALES if -(-width // s) * -(-height // s) <= max_pixels), None)
        if im.format != "JPEG" or scale is None:
            detail = _too_large_detail(width, height, max_pixels)
            if im.format == "JPEG":
                detail += ", even decoded at 1/8 scale"
            raise ImageTooLargeError(path, detail)
        # Pillow's draft picks the largest scale whose result is at least the request.
        needed = (max(1, width // scale), max(1, height // scale))
        request = needed if draft_size is None else (min(needed[0], draft_size[0]), min(needed[1], draft_size[1]))
    if request is None:
        return
    try:
        # JPEG only (others ignore it): libjpeg decodes at the smallest of 1/1..1/8 scale
        # that is still at least `request`.
        im.draft("RGB", request)
    except Exception:
        pass  # a full-size decode is slower but still correct, and within the limit if we got here
    if max_pixels is not None and im.size[0] * im.size[1] > max_pixels:
        raise ImageTooLargeError(path, _too_large_detail(width, height, max_pixels))


def _decode(im: Image.Image, path: Path) -> None:
    try:
        im.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        # Pillow's own text talks of a "DOS attack"; users need the size fact only.
        raise ImageTooLargeError(path, _BOMB_DETAIL) from exc
    except MemoryError as exc:
        raise ImageTooLargeError(path, "not enough memory to decode it") from exc
    except OSError as exc:
        if exc.errno is not None:
            raise UnreadableFileError(path, _os_error_detail(exc)) from exc
        raise CorruptImageError(path, _short(exc)) from exc
    except Exception as exc:
        raise CorruptImageError(path, _short(exc)) from exc


def _apply_orientation(im: Image.Image) -> None:
    try:
        # In place: the copy exif_transpose otherwise returns for every unrotated
        # image would double peak memory for nothing.
        ImageOps.exif_transpose(im, in_place=True)
    except Exception:
        # Malformed EXIF must not cost the user the whole image: an unrotated
        # caption beats an error record.
        pass


# --- pixel modes --------------------------------------------------------------


def _transparent_mask(arr: np.ndarray, info: dict) -> np.ndarray | None:
    value = info.get("transparency")
    if isinstance(value, int) and not isinstance(value, bool):
        return arr == value
    return None


def _grey_to_rgb(grey: np.ndarray, transparent: np.ndarray | None) -> Image.Image:
    if transparent is not None and transparent.any():
        grey = grey.copy()
        grey[transparent] = 255
    return Image.fromarray(grey, "L").convert("RGB")


def _scale_uint16(arr: np.ndarray) -> np.ndarray:
    # x * 255 / 65535 rounded, so 0 -> 0, 32768 -> 128, 65535 -> 255. Pillow's own
    # I;16 -> L conversion clips instead, turning every value above 255 white.
    return ((arr.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)


def _stretch(arr: np.ndarray) -> np.ndarray:
    lo, hi = float(arr.min()), float(arr.max())
    if hi <= lo:
        return np.zeros(arr.shape, np.uint8)
    scaled = (arr.astype(np.float64) - lo) * (255.0 / (hi - lo))
    return np.rint(scaled).astype(np.uint8)


def _int_to_rgb(im: Image.Image) -> Image.Image:
    arr = np.asarray(im)
    mask = _transparent_mask(arr, im.info)
    if im.mode.startswith("I;16"):
        return _grey_to_rgb(_scale_uint16(arr), mask)
    # Mode "I" carries no bit depth, so guess it from the values: 8-bit data as is,
    # 16-bit data (TIFF and older Pillow PNGs) like I;16, anything else stretched.
    lo, hi = int(arr.min()), int(arr.max())
    if lo >= 0 and hi <= 255:
        grey = arr.astype(np.uint8)
    elif lo >= 0 and hi <= 65535:
        grey = _scale_uint16(arr)
    else:
        grey = _stretch(arr)
    return _grey_to_rgb(grey, mask)


def _float_to_rgb(im: Image.Image) -> Image.Image:
    arr = np.asarray(im, dtype=np.float32)
    finite = np.isfinite(arr)
    if not finite.all():
        fill = float(arr[finite].min()) if finite.any() else 0.0
        arr = np.where(finite, arr, fill)
    lo, hi = (float(arr.min()), float(arr.max())) if arr.size else (0.0, 0.0)
    # Float images are usually normalised 0..1 (PFM, scientific TIFF); some hold
    # 0..255; anything else (HDR radiance, depth maps) has no fixed scale, so its
    # own range is stretched. Pillow's F -> L conversion truncates 0.5 to 0.
    if lo >= 0.0 and hi <= 1.0:
        grey = np.rint(arr * 255.0).astype(np.uint8)
    elif lo >= 0.0 and hi <= 255.0:
        grey = np.rint(arr).astype(np.uint8)
    else:
        grey = _stretch(arr)
    return _grey_to_rgb(grey, None)


def _flatten_on_white(im: Image.Image) -> Image.Image:
    rgba = im if im.mode == "RGBA" else None
    if rgba is None:
        try:
            rgba = im.convert("RGBA")
        except ValueError:
            # Premultiplied "La" has no direct RGBA conversion.
            rgba = im.convert("LA").convert("RGBA")
    background = Image.new("RGB", rgba.size, _WHITE)
    # The RGB of fully transparent pixels is often black; pasting through the alpha
    # channel hides it instead of showing it, which is what any viewer does.
    background.paste(rgba, mask=rgba.getchannel("A"))
    return background


def _to_rgb(im: Image.Image, path: Path) -> Image.Image:
    mode = im.mode
    try:
        if mode == "RGB" and "transparency" not in im.info:
            return im
        if mode.startswith("I"):
            return _int_to_rgb(im)
        if mode == "F":
            return _float_to_rgb(im)
        if mode in _ALPHA_MODES or im.has_transparency_data:
            return _flatten_on_white(im)
        # "1", "L", "P", "CMYK", "YCbCr", "LAB", "HSV", ...
        return im.convert("RGB")
    except MemoryError as exc:
        raise ImageTooLargeError(path, "not enough memory to convert it") from exc
    except (ValueError, KeyError) as exc:
        raise NotAnImageError(path, f"pixel mode {mode} cannot be converted to RGB") from exc
    except Exception as exc:
        raise CorruptImageError(path, _short(exc)) from exc


# Modes littleCMS converts, and the mode each becomes (alpha kept, then flattened as usual).
_ICC_OUTPUT = {"RGB": "RGB", "CMYK": "RGB", "L": "RGB", "RGBA": "RGBA", "LA": "RGBA"}


@functools.lru_cache(maxsize=16)
def _srgb_transform(profile: bytes, mode: str, output: str):
    from PIL import ImageCms

    source = ImageCms.ImageCmsProfile(io.BytesIO(profile))
    if mode == "RGB" and "srgb" in ImageCms.getProfileDescription(source).casefold():
        # Already sRGB: a round trip would only add rounding, and would move the old seed
        # model's input away from the web app's (which ignored profiles) for most photos.
        return None
    return ImageCms.buildTransform(source, ImageCms.createProfile("sRGB"), mode, output,
                                   renderingIntent=ImageCms.Intent.PERCEPTUAL)


def _color_managed(im: Image.Image) -> Image.Image:
    """Pixels through the photo's embedded ICC profile into sRGB, which is what the models
    were trained on and what screens assume. Without it a CMYK JPEG's colours are far off
    (and captions change: "white shirt" became "red shirt"), and wide-gamut photos look dull.
    A profile that cannot be used is ignored: the photo still opens, with its colours as stored."""
    profile = im.info.get("icc_profile")
    output = _ICC_OUTPUT.get(im.mode)
    if not profile or output is None:
        return im
    try:
        source = im.convert("RGBA") if im.mode == "LA" else im  # littleCMS has no grey+alpha input
        transform = _srgb_transform(bytes(profile), source.mode, output)
        if transform is None:
            return im
        from PIL import ImageCms

        converted = ImageCms.applyTransform(source, transform)
    except Exception:  # noqa: BLE001 - a broken profile must not cost the photo
        return im
    converted.info = {k: v for k, v in im.info.items() if k != "icc_profile"}
    return converted


def _read_rgb(
    path: str | os.PathLike[str],
    max_pixels: int | None,
    draft_size: tuple[int, int] | None = None,
) -> Image.Image:
    path = Path(os.fspath(path))
    if raw_photos.is_raw(path):
        with _open_regular_file(path) as handle:
            data = handle.read()
        return raw_photos.load(path, data, max_pixels)
    with _open_regular_file(path) as handle:
        im = _identify(handle, path, max_pixels)
        _plan_decode(im, path, max_pixels, draft_size)
        _decode(im, path)
        _apply_orientation(im)
        return _to_rgb(_color_managed(im), path)


# --- public API ---------------------------------------------------------------


def load_rgb(path: str | os.PathLike[str], *, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Open any image Pillow reads and return it fully decoded as 8-bit RGB.

    The first frame of an animation is used; the EXIF orientation is applied;
    transparency is flattened onto white; 16-bit and float images are scaled to
    0..255 rather than clipped. ``max_pixels=None`` leaves only Pillow's own limit.

    Raises :class:`UnreadableFileError`, :class:`NotAnImageError`,
    :class:`CorruptImageError` or :class:`ImageTooLargeError`, and nothing else
    for bad input.
    """
    return _read_rgb(path, max_pixels)


def image_size(path: str | os.PathLike[str]) -> tuple[int, int]:
    """(width, height) as the photo is shown (EXIF orientation applied), read from its header
    only; raises the same errors as :func:`load_rgb` for a file that is not an image."""
    path = Path(os.fspath(path))
    with _open_regular_file(path) as handle:
        im = _identify(handle, path, None)
        width, height = im.size
        try:
            orientation = im.getexif().get(0x0112, 1)
        except Exception:  # malformed EXIF: the stored size is the best answer
            orientation = 1
        return (height, width) if orientation in (5, 6, 7, 8) else (width, height)


def open_for_model(
    path: str | os.PathLike[str],
    size: int,
    *,
    resample: str = "nearest",
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
) -> np.ndarray:
    """Return the image squashed (not cropped) to ``size x size`` as float32 0..255.

    The default ``"nearest"`` reproduces ``keras.utils.load_img(target_size=...)``,
    which is what the legacy seed model's features were extracted with.
    """
    if size < 1:
        raise ValueError(f"size must be a positive number of pixels, not {size}")
    try:
        resample_filter = RESAMPLE_FILTERS[resample]
    except KeyError:
        raise ValueError(
            f"unknown resample filter {resample!r}; use one of {', '.join(RESAMPLE_FILTERS)}"
        ) from None
    im = load_rgb(path, max_pixels=max_pixels)
    if im.size != (size, size):
        try:
            im = im.resize((size, size), resample_filter)
        except MemoryError as exc:
            raise ImageTooLargeError(Path(os.fspath(path)), "not enough memory to resize it") from exc
    return np.asarray(im, dtype=np.float32)


def thumbnail(
    path: str | os.PathLike[str],
    max_side: int,
    *,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
) -> Image.Image:
    """Return an RGB preview no larger than ``max_side`` on either side.

    Same orientation, transparency and error rules as :func:`load_rgb`; never
    enlarges a small image.
    """
    if max_side < 1:
        raise ValueError(f"max_side must be a positive number of pixels, not {max_side}")
    im = _read_rgb(path, max_pixels, draft_size=(max_side, max_side))
    if im.width > max_side or im.height > max_side:
        try:
            im.thumbnail((max_side, max_side), Image.Resampling.BICUBIC)
        except MemoryError as exc:
            raise ImageTooLargeError(Path(os.fspath(path)), "not enough memory to resize it") from exc
    return im


# --- finding images -------------------------------------------------------------


@dataclass
class CollectedFiles:
    """What :func:`collect_images` found.

    ``images`` holds every image file found in folders plus every path named
    explicitly (even a missing one, so the caller reports it); ``skipped`` holds
    the non-image files found in folders; ``unreadable_folders`` holds folders that
    could not be listed (permission denied, vanished while walking).
    """

    images: list[Path] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)
    unreadable_folders: list[Path] = field(default_factory=list)
    #: image path -> the earlier path in ``images`` that is the same file (a symlink or hard
    #: link to it): each path is listed, and a caller can caption the file once for both.
    same_as: dict[Path, Path] = field(default_factory=dict)


_DIGITS = re.compile(r"(\d+)")


def _natural_key(name: str) -> tuple:
    # "img2" before "img10", case-insensitive; the raw name breaks ties so the
    # order never depends on the order the file system lists entries in.
    parts = _DIGITS.split(name.casefold())
    return (tuple(int(p) if i % 2 else p for i, p in enumerate(parts)), name)


def _identity(path: Path) -> str:
    try:
        return os.path.normcase(os.path.realpath(path))
    except (OSError, ValueError, RuntimeError):
        return os.path.normcase(os.path.abspath(path))


def _is_image_name(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS


def collect_images(paths: Iterable[str | os.PathLike[str]]) -> CollectedFiles:
    """Expand files and folders into the list of images to caption.

    Folders are walked recursively, depth first: a folder's files in natural order,
    then its sub-folders in natural order. Names starting with ``.`` are ignored
    inside folders. Symlinked folders are followed but each real folder is walked
    once, so symlink loops end. Nothing is opened or read, only listed.
    """
    result = CollectedFiles()
    seen_images: set[str] = set()
    first_of_file: dict[str, Path] = {}
    seen_skipped: dict[str, Path] = {}
    visited_dirs: set[tuple[int, int]] = set()

    def keep_image(path: Path, *, explicit: bool) -> None:
        # Paths, not files, are what the caller reports on: two names of one file are two images.
        key = os.path.normcase(os.path.abspath(path))
        if key in seen_images:
            return
        same = _identity(path)
        if key in seen_skipped:
            if not explicit:
                return
            # Found in a folder first, named by the user later: the explicit
            # request wins, so the caller reports it rather than counting it.
            result.skipped.remove(seen_skipped.pop(key))
        seen_images.add(key)
        result.images.append(path)
        if same in first_of_file:
            result.same_as[path] = first_of_file[same]
        else:
            first_of_file[same] = path

    def keep_skipped(path: Path) -> None:
        key = os.path.normcase(os.path.abspath(path))
        if key not in seen_images and key not in seen_skipped:
            seen_skipped[key] = path
            result.skipped.append(path)

    def walk(root: Path) -> None:
        stack = [root]
        while stack:
            folder = stack.pop()
            try:
                info = os.stat(folder)
                dir_id = (info.st_dev, info.st_ino)
                if dir_id in visited_dirs:
                    continue
                visited_dirs.add(dir_id)
                with os.scandir(folder) as it:
                    entries = [e for e in it if not e.name.startswith(".")]
            except OSError:
                result.unreadable_folders.append(folder)
                continue
            files: list[str] = []
            subdirs: list[str] = []
            for entry in entries:
                try:
                    # Follows symlinks; a link loop or dangling link is "not a dir".
                    is_dir = entry.is_dir()
                except OSError:
                    is_dir = False
                (subdirs if is_dir else files).append(entry.name)
            for name in sorted(files, key=_natural_key):
                path = folder / name
                if _is_image_name(path):
                    keep_image(path, explicit=False)
                else:
                    keep_skipped(path)
            stack.extend(folder / name for name in sorted(subdirs, key=_natural_key, reverse=True))

    for raw in paths:
        path = Path(os.fspath(raw))
        try:
            path = path.expanduser()
        except RuntimeError:
            pass  # no home directory to expand "~" to: keep the name as typed
        if os.path.isdir(path):
            walk(path)
        else:
            # Named explicitly: kept whatever it is (missing, FIFO, text file, link
            # loop) so the caller turns it into one error record the user can see.
            keep_image(path, explicit=True)
    return result
