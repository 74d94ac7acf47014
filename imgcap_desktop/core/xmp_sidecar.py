"""XMP sidecar files: the caption and keywords beside the photo, the photo itself untouched.

Photo managers disagree on the name. darktable and digiKam (by default) append ``.xmp`` to the
whole file name (``IMG_0042.CR2.xmp``); Lightroom, Adobe Bridge and Capture One replace the
extension (``IMG_0042.xmp``). Both are read here, the first one found winning in that order
(as immich does); writing uses the name the user chose (``full`` or ``base``), and ``base``
falls back to the full name when another photo in the folder has the same stem, so that
``x.jpg`` and ``x.png`` never write one ``x.xmp``.

An existing sidecar is updated, never replaced: darktable keeps its whole edit history in it,
so only ``dc:description``, ``Iptc4xmpCore:AltTextAccessibility`` and (when given)
``dc:subject`` change, with everything else kept byte for byte in meaning. The write is atomic
(a temporary file renamed into place).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

from imgcap_desktop.core.errors import SaveError
from imgcap_desktop.core.export import _reason, _shares_stem, atomic_writer, check_writable
from imgcap_desktop.core.xmp_packet import descriptions, parse_packet, subject, updated

NAMINGS = ("full", "base")
SUFFIX = ".xmp"
#: A sidecar bigger than this is not an XMP file anyone meant to give us.
MAX_BYTES = 16 * 1024 * 1024


def full_name(image: Path) -> Path:
    return image.with_name(image.name + SUFFIX)


def base_name(image: Path) -> Path:
    return image.with_suffix(SUFFIX)


def sidecar_for(image: Path, naming: str = "full") -> Path:
    """Where a sidecar for ``image`` is written: ``photo.CR2.xmp`` (full) or ``photo.xmp`` (base)."""
    if naming not in NAMINGS:
        raise ValueError(f"unknown XMP sidecar naming {naming!r}; use {' or '.join(NAMINGS)}")
    image = Path(image)
    if naming == "base" and not _shares_stem(image):
        return base_name(image)
    return full_name(image)


def find_sidecar(image: Path) -> Path | None:
    """The sidecar other tools left for ``image``, if any (``photo.CR2.xmp`` before ``photo.xmp``).
    ``photo.xmp`` is not this photo's when another photo shares the stem (``IMG_1.CR2`` beside
    ``IMG_1.JPG``: Lightroom's ``IMG_1.xmp`` belongs to the raw file), so it is then not looked at."""
    image = Path(image)
    candidates = [full_name(image)] + ([] if _shares_stem(image) else [base_name(image)])
    return next((c for c in candidates if c.is_file()), None)


def target_for(image: Path, naming: str = "full") -> Path:
    """The file :func:`write_sidecar` updates: this photo's existing sidecar, else a new one under
    ``naming``. Conflict checks read this same file."""
    return find_sidecar(image) or sidecar_for(image, naming)


def _read(path: Path) -> bytes:
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise SaveError(path, f"{path.name} is {size // (1024 * 1024)} MiB, too big for an XMP sidecar.")
        return path.read_bytes()
    except OSError as exc:
        raise SaveError(path, f"Cannot read {path.name}: {_reason(exc)}.") from exc


def read_sidecar(image: Path) -> tuple[str | None, tuple[str, ...], Path | None]:
    """(description, keywords, the sidecar's path) of ``image``'s sidecar; (None, (), None) without one.
    A sidecar that does not parse reads as empty: it is someone else's file, not an error of the photo."""
    path = find_sidecar(image)
    if path is None:
        return None, (), None
    data = _read(path)
    description, alt_text = descriptions(data)
    return description or alt_text, subject(data), path


def write_sidecar(image: Path, caption: str, keywords: Sequence[str] | None = None, *,
                  naming: str = "full") -> Path:
    """Set the caption (and keywords, unless None) in ``image``'s XMP sidecar; returns its path.

    An existing sidecar under the chosen name, or under the other name when only that one exists,
    is updated in place; a sidecar that is not XMP is refused rather than overwritten."""
    image = Path(image)
    target = target_for(image, naming)
    existing = target if target.is_file() else None
    old = _read(target) if existing is not None else None
    if old is not None and old.strip() and parse_packet(old) is None:
        raise SaveError(target, f"{target.name} is not an XMP file this app can update; it was left as it is.")
    if existing is not None:
        check_writable(target)
    body = updated(old, caption, keywords)
    data = ('<?xml version="1.0" encoding="UTF-8"?>\n' + body + "\n").encode("utf-8")
    try:
        with atomic_writer(target) as fh:
            fh.write(data)
    except OSError as exc:
        raise SaveError(target, f"Cannot write {target.name}: {_reason(exc)}.") from exc
    return target


def sidecar_description(path: Path) -> tuple[str, str] | None:
    """(caption, the file's name) when the sidecar ``path`` holds a description."""
    try:
        if not path.is_file():
            return None
        description, alt_text = descriptions(_read(path))
    except (SaveError, OSError, ValueError):
        return None
    text = description or alt_text
    return (text.strip(), os.fspath(path.name)) if text and text.strip() else None
