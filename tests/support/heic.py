"""HEIC files for the tests. The app reads HEIC through pi-heif, which decodes only, so the
tests encode theirs with pillow-heif (x265) without registering it as Pillow's HEIF plugin:
what reads the file in a test is always the app's own reader."""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO

from PIL import Image


def save_heic(image: Image.Image, target: Path | BinaryIO, **options) -> None:
    """Write image as HEIC to a path or a file object; options as pillow-heif's save takes them
    (quality, exif, xmp)."""
    import pillow_heif

    pillow_heif.from_pillow(image).save(target, **options)
