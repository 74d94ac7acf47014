"""Write a caption into a photo's own metadata ("Write into photo"), and read what is there, with exiv2.

Exiv2 (through python-exiv2, the PyPI package ``exiv2``) edits the container and never decodes
the image data. Where the caption goes, so that photo managers, screen readers and exiftool
find it:

* EXIF ``ImageDescription``, UTF-8;
* XMP ``dc:description`` and ``Iptc4xmpCore:AltTextAccessibility`` (the IPTC 2021 alt-text
  field), both ``rdf:Alt`` with ``x-default``;
* the legacy IPTC-IIM ``Caption-Abstract`` (2:120), with the record's character set set to UTF-8;
* the keywords, when given, as XMP ``dc:subject`` (IPTC Core's Keywords) and IPTC-IIM
  ``Keywords`` (2:25), which older tools read.

Formats written: JPEG, PNG, WebP and TIFF (WebP carries no IPTC-IIM block; exiv2 writes the
XMP and EXIF there). HEIC and AVIF are read but not written (exiv2 0.28 writes no ISO-BMFF
file), and camera RAW files are not written into either: their captions go in XMP sidecars.
Everything else in the file (other EXIF tags, maker notes, other XMP properties, ICC
profiles) is kept by exiv2.

The photo is edited in memory and written to a temporary file that is renamed over it
(``export.atomic_writer``: permission bits and owner kept); on any failure the photo is left byte-identical and a
:class:`~imgcap_desktop.core.errors.SaveError` explains what to do. Why exiv2 rather than the
container code this module used to hold, and its licence, is in the README ("Writing into the
photo").
"""

from __future__ import annotations

import functools
import os
import threading
from pathlib import Path
from typing import Sequence

from imgcap_desktop.core.errors import MetadataFormatError, SaveError
from imgcap_desktop.core.export import atomic_writer, check_writable, save_error
from imgcap_desktop.core.xmp_packet import clean_text

__all__ = ["read_description", "read_keywords", "read_metadata", "write_description", "SUPPORTED_FORMATS"]

SUPPORTED_FORMATS = ("JPEG", "PNG", "WebP", "TIFF")
_WRITABLE = {"image/jpeg": "JPEG", "image/png": "PNG", "image/webp": "WebP", "image/tiff": "TIFF"}
_WITH_IPTC = {"JPEG", "PNG", "TIFF"}
_UTF8 = "\x1b%G"  # ISO 2022 escape for UTF-8: IPTC-IIM's 1:90 CodedCharacterSet

EXIF_DESCRIPTION = "Exif.Image.ImageDescription"
XMP_DESCRIPTION = "Xmp.dc.description"
XMP_ALT_TEXT = "Xmp.iptc.AltTextAccessibility"
XMP_SUBJECT = "Xmp.dc.subject"
IPTC_CAPTION = "Iptc.Application2.Caption"
IPTC_KEYWORDS = "Iptc.Application2.Keywords"
IPTC_CHARSET = "Iptc.Envelope.CharacterSet"

# What cameras put in EXIF ImageDescription when nobody wrote one (the list digiKam and others
# ignore too): read as no description, so such a photo is still captioned.
_CAMERA_PLACEHOLDERS = frozenset(s.casefold() for s in (
    "OLYMPUS DIGITAL CAMERA", "SONY DSC", "KODAK Digital Still Camera", "DIGITAL CAMERA", "DCF 1.0",
    "Default", "Exif_JPEG_PICTURE", "SAMSUNG", "LEICA", "MINOLTA DIGITAL CAMERA", "PENTAX DIGITAL CAMERA",
    "Hewlett-Packard", "Camera", "Picasa", "<KENOX S630  / Samsung S630>"))

# exiv2's XMP toolkit keeps process-wide state (namespace registry); calls are serialised.
_lock = threading.Lock()


def _failures(exiv2) -> tuple[type[BaseException], ...]:
    # python-exiv2 turns exiv2's own errors into Exiv2Error and the C++ standard ones it lets
    # through (std::overflow_error on a hostile size field, ...) into Python's built-in kinds.
    # SWIG maps anything else it catches (std::bad_alloc on a hostile size, ...) to SystemError.
    return (exiv2.Exiv2Error, OverflowError, RuntimeError, ValueError, IndexError, UnicodeError, SystemError,
            MemoryError, TypeError)


@functools.cache
def _exiv2():
    import exiv2

    # exiv2 logs warnings about odd files to stderr; the caller gets a sentence instead.
    exiv2.LogMsg.setLevel(exiv2.LogMsg.Level.mute)
    return exiv2


def _raw_suffixes() -> frozenset[str]:
    from imgcap_desktop.core.raw_photos import RAW_EXTENSIONS

    return frozenset(RAW_EXTENSIONS)


def _unsupported(path: Path, why: str = "") -> MetadataFormatError:
    kind = path.suffix.lower() or "these"
    return MetadataFormatError(
        path,
        f"Cannot write metadata into {path.name}: {why or f'{kind} files are not supported'} "
        "(only JPEG, PNG, WebP and TIFF); use an XMP sidecar instead.",
    )


def _set_text(data, key: str, value: str) -> None:
    """Replace every entry under ``key`` with one entry of ``value``."""
    exiv2 = _exiv2()
    _erase(data, key)
    if key.startswith("Xmp."):
        data.add(exiv2.XmpKey(key), exiv2.LangAltValue(value))
    elif key.startswith("Iptc."):
        data.add(exiv2.IptcKey(key), exiv2.StringValue(value))
    else:
        data[key] = value


def _erase(data, key: str) -> None:
    while True:
        found = data.findKey(_key_of(key))
        if found == data.end():
            return
        data.erase(found)


def _key_of(key: str):
    exiv2 = _exiv2()
    if key.startswith("Xmp."):
        return exiv2.XmpKey(key)
    if key.startswith("Iptc."):
        return exiv2.IptcKey(key)
    return exiv2.ExifKey(key)


def _set_keywords(image, kind: str, keywords: Sequence[str], *, xmp: bool = True) -> None:
    exiv2 = _exiv2()
    words = [w for w in (clean_text(" ".join(k.split())) for k in keywords) if w]
    if xmp:
        _set_subject(image.xmpData(), words)
    if kind in _WITH_IPTC:
        iptc = image.iptcData()
        _erase(iptc, IPTC_KEYWORDS)
        for word in words:
            # IPTC-IIM limits a keyword to 64 bytes; exiv2 refuses longer ones on write.
            iptc.add(exiv2.IptcKey(IPTC_KEYWORDS), exiv2.StringValue(_truncate_utf8(word, 64)))


def _set_subject(xmp, words: list[str]) -> None:
    exiv2 = _exiv2()
    _erase(xmp, XMP_SUBJECT)
    if words:
        bag = exiv2.XmpArrayValue(exiv2.TypeId.xmpBag)
        for word in words:
            bag.read(word)
        xmp.add(exiv2.XmpKey(XMP_SUBJECT), bag)


def _truncate_utf8(text: str, limit: int) -> str:
    data = text.encode("utf-8")[:limit]
    return data.decode("utf-8", errors="ignore")


def write_description(path: Path, text: str, keywords: Sequence[str] | None = None) -> None:
    """Store ``text`` as the photo's EXIF, XMP, IPTC alt-text and IPTC-IIM description, and
    ``keywords`` (unless None, which keeps what is there) as its XMP ``dc:subject`` and IPTC-IIM
    Keywords.

    The image data is not re-encoded; other metadata is kept. Raises :class:`SaveError` (the
    file untouched) if the file is read-only, damaged, or in a format that cannot carry the caption.
    """
    # Write through a symlink to the photo itself instead of replacing the link.
    path = Path(os.path.realpath(path))
    check_writable(path)
    if path.suffix.lower() in _raw_suffixes():
        raise _unsupported(path, "exiv2 can write into camera RAW files, but this app keeps them untouched")
    value = clean_text(text)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise save_error(path, exc) from exc
    exiv2 = _exiv2()
    with _lock:
        # Edited in memory (exiv2's MemIo), then written like every other save: atomic_writer.
        try:
            image = exiv2.ImageFactory.open(data)
            image.readMetadata()
        except _failures(exiv2) as exc:
            raise _unsupported(path) if _not_an_image(exc) else _damaged(path, exc) from None
        kind = _WRITABLE.get(image.mimeType())
        if kind is None:
            raise _unsupported(path)
        try:
            _set_text(image.exifData(), EXIF_DESCRIPTION, value)
            xmp = image.xmpData()
            _set_text(xmp, XMP_DESCRIPTION, value)
            _set_text(xmp, XMP_ALT_TEXT, value)
            if keywords is not None:
                _set_keywords(image, kind, keywords)
            elif kind in _WITH_IPTC:
                # The record is relabelled UTF-8 below: keywords kept from it are rewritten so.
                record = image.iptcData()
                kept = _field(lambda: _iptc_keywords(record), [])
                if kept:
                    _set_keywords(image, kind, kept, xmp=False)
            if kind in _WITH_IPTC:
                iptc = image.iptcData()
                _set_text(iptc, IPTC_CAPTION, _truncate_utf8(value, 2000))  # 2:120 holds 2,000 bytes
                _set_text(iptc, IPTC_CHARSET, _UTF8)
            image.writeMetadata()
            with image.io().mmap() as edited:
                new = bytes(edited)
        except _failures(exiv2) as exc:
            raise _damaged(path, exc) from None
        finally:
            del image
    with atomic_writer(path) as fh:
        fh.write(new)


def _not_an_image(exc) -> bool:
    exiv2 = _exiv2()
    return isinstance(exc, exiv2.Exiv2Error) and exc.code in (exiv2.ErrorCode.kerFileContainsUnknownImageType, exiv2.ErrorCode.kerNotAnImage)


def _damaged(path: Path, exc) -> SaveError:
    why = str(getattr(exc, "message", None) or exc).strip().rstrip(".") or "its structure is damaged"
    return SaveError(path, f"Cannot write metadata into {path.name}: exiv2 says {why[:200]}; "
                           "the file was not changed.")


def _text(value: str) -> str:
    """python-exiv2 decodes with surrogateescape: bytes that are not UTF-8 are taken as Latin-1."""
    data = value.encode("utf-8", "surrogateescape")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def _lang_alt(data, key: str) -> str | None:
    """An rdf:Alt's x-default text, else its first language's; a plain text property as it is."""
    found = data.findKey(_key_of(key))
    if found == data.end():
        return None
    value = found.getValue()
    if hasattr(value, "items"):
        entries = dict(value.items())
        text = entries.get("x-default") or next(iter(entries.values()), "")
    else:
        text = found.toString()
    return _text(text).strip() or None


def _field(read, default=None):
    # One unreadable field must not hide the others.
    try:
        return read()
    except Exception:  # noqa: BLE001 - python-exiv2 raises built-in kinds too (see _failures)
        return default


def read_metadata(path: Path) -> tuple[dict[str, str | None], tuple[str, ...]]:
    """What the file says now, read once: its descriptions (as :func:`read_description` gives
    them) and its keywords (XMP ``dc:subject``, else IPTC-IIM Keywords). Lenient the same way."""
    path = Path(path)
    result: dict[str, str | None] = {"exif": None, "xmp": None, "iptc": None}
    try:
        with open(path, "rb"):
            pass
    except OSError as exc:
        raise SaveError(path, f"Cannot read {path.name}: {exc.strerror or exc}.") from exc
    exiv2 = _exiv2()
    with _lock:
        try:
            image = exiv2.ImageFactory.open(str(path))
            image.readMetadata()
        except _failures(exiv2):
            return result, ()
        try:
            exif, xmp, iptc = image.exifData(), image.xmpData(), image.iptcData()
            result["exif"] = _field(lambda: _exif_description(exif))
            result["xmp"] = _field(lambda: _lang_alt(xmp, XMP_DESCRIPTION))
            result["iptc"] = _field(lambda: _lang_alt(xmp, XMP_ALT_TEXT))
            words = _field(lambda: _xmp_subject(xmp), []) or _field(lambda: _iptc_keywords(iptc), [])
        except _failures(exiv2):
            return result, ()
        finally:
            del image
    unique: list[str] = []
    for word in (w.strip() for w in words):
        if word and word not in unique:
            unique.append(word)
    return result, tuple(unique)


def _exif_description(exif) -> str | None:
    found = exif.findKey(_key_of(EXIF_DESCRIPTION))
    if found == exif.end():
        return None
    text = _text(found.toString()).strip("\x00 \t\r\n")
    return text if text and text.casefold() not in _CAMERA_PLACEHOLDERS else None


def _xmp_subject(xmp) -> list[str]:
    found = xmp.findKey(_key_of(XMP_SUBJECT))
    return [] if found == xmp.end() else [_text(found.toString(i)) for i in range(found.count())]


def _iptc_keywords(iptc) -> list[str]:
    return [_text(d.toString()) for d in iptc if d.key() == IPTC_KEYWORDS]


def read_description(path: Path) -> dict[str, str | None]:
    """What the file says now: ``{"exif": ..., "xmp": ..., "iptc": ...}``.

    ``xmp`` is ``dc:description``, ``iptc`` is ``Iptc4xmpCore:AltTextAccessibility``.
    Lenient: a field that is absent or unreadable (or a format without such
    metadata) reads as ``None``; only a file that cannot be opened raises.
    """
    return read_metadata(path)[0]


def read_keywords(path: Path) -> tuple[str, ...]:
    """The photo's keywords; empty when there are none or they cannot be read."""
    return read_metadata(path)[1]
