"""Where a caption goes besides the output stream: the same targets the app writes.

`imgcap caption --write txt,metadata --overwrite never|always` calls :func:`write_targets`
for every captioned photo, and the record says what happened to each target:
``{"target": "txt", "path": "...", "result": "written" | "kept" | "failed", "error": ...}``.

- ``txt``: the NAME.txt sidecar beside the photo, named as the app names it (``x.jpg.txt``
  and ``x.png.txt`` when two photos share a stem in one folder, so neither overwrites the
  other's);
- ``xmp``: an XMP sidecar beside the photo (``photo.jpg.xmp``, as darktable and digiKam name it,
  or ``photo.xmp``, Lightroom's name, with ``xmp_naming="base"``; core.xmp_sidecar), updated in
  place when one exists, the photo untouched;
- ``metadata``: the photo's own EXIF/XMP/IPTC description, and its keywords as XMP ``dc:subject``
  (IPTC Core's Keywords), pixels untouched.

``never`` (the default) keeps an existing sidecar, and an existing description in the photo,
as they are and says so; ``always`` replaces them. Nothing ever asks: the CLI runs without a
terminal too.
"""

from __future__ import annotations

from pathlib import Path

from imgcap_desktop.core.errors import ImgcapError, SidecarExistsError

TARGETS = ("txt", "xmp", "metadata")
POLICIES = ("never", "always")


def parse_targets(text: str) -> tuple[str, ...]:
    """``"txt,metadata"`` -> ``("txt", "metadata")``; ValueError names what is unknown."""
    targets = tuple(dict.fromkeys(t.strip() for t in text.split(",") if t.strip()))
    unknown = [t for t in targets if t not in TARGETS]
    if unknown or not targets:
        raise ValueError(f"unknown target {', '.join(unknown) or repr(text)}; use {', '.join(TARGETS)}")
    return targets


def write_targets(image: Path, caption: str, targets: tuple[str, ...], overwrite: str = "never",
                  keywords: tuple[str, ...] | None = None, xmp_naming: str = "full",
                  caption_suffix: str = ".txt") -> list[dict]:
    from imgcap_desktop.core.export import sidecar_path, write_sidecar

    done: list[dict] = []
    for target in targets:
        if target == "txt":
            where = sidecar_path(image, caption_suffix)
            try:
                write_sidecar(image, caption, overwrite=overwrite == "always", suffix=caption_suffix)
                done.append(_entry(target, where, "written"))
            except SidecarExistsError:
                done.append(_entry(target, where, "kept"))
            except (ImgcapError, OSError, ValueError) as exc:
                done.append(_entry(target, where, "failed", str(exc)))
        elif target == "xmp":
            from imgcap_desktop.core import xmp_sidecar

            where = xmp_sidecar.target_for(image, xmp_naming)
            try:
                if overwrite == "never" and xmp_sidecar.sidecar_description(where):
                    done.append(_entry(target, where, "kept"))
                    continue
                done.append(_entry(target, xmp_sidecar.write_sidecar(image, caption, keywords, naming=xmp_naming),
                                   "written"))
            except (ImgcapError, OSError, ValueError) as exc:
                done.append(_entry(target, where, "failed", str(exc)))
        elif target == "metadata":
            from imgcap_desktop.core.metadata import read_description, write_description

            try:
                if overwrite == "never" and any(read_description(image).values()):
                    done.append(_entry(target, image, "kept"))
                    continue
                write_description(image, caption, keywords)
                done.append(_entry(target, image, "written"))
            except (ImgcapError, OSError, ValueError) as exc:
                done.append(_entry(target, image, "failed", str(exc)))
    return done


def _entry(target: str, path: Path, result: str, error: str | None = None) -> dict:
    return {"target": target, "path": str(path), "result": result, "error": error}


def already_written(image: Path) -> tuple[tuple[str, str] | None, tuple[str, ...]]:
    """What someone already wrote for ``image``, each file read at most once.

    The caption and where it is: ``(text, "NAME.txt")`` from the sidecar the app and `--write txt`
    use (or kohya's ``NAME.caption``), else ``(text, "NAME.jpg.xmp")`` from an XMP sidecar
    (darktable, digiKam, Lightroom), else ``(text, "the photo")`` from its EXIF/XMP/IPTC
    description; None when there is none. The keywords: the XMP sidecar's, else the photo's own
    ``dc:subject``. Whatever cannot be read counts as absent (the photo itself may still open)."""
    from imgcap_desktop.core.export import CAPTION_SUFFIXES, read_sidecar, sidecar_path
    from imgcap_desktop.core.metadata import read_metadata
    from imgcap_desktop.core.xmp_sidecar import read_sidecar as read_xmp_sidecar

    caption: tuple[str, str] | None = None
    for suffix in CAPTION_SUFFIXES:
        try:
            text = read_sidecar(image, suffix)
        except (ImgcapError, OSError, ValueError):
            text = None
        if text and text.strip():
            caption = text.strip(), sidecar_path(image, suffix).name
            break
    try:
        text, keywords, path = read_xmp_sidecar(image)
    except (ImgcapError, OSError, ValueError):
        text, keywords, path = None, (), None
    if caption is None and text and text.strip() and path is not None:
        caption = text.strip(), path.name
    if caption is None or not keywords:
        try:
            found, own_keywords = read_metadata(image)
        except (ImgcapError, OSError, ValueError):
            found, own_keywords = {}, ()
        keywords = keywords or own_keywords
        if caption is None:
            value = next((found[k] for k in ("xmp", "exif", "iptc") if found.get(k) and found[k].strip()), None)
            caption = (value.strip(), "the photo") if value else None
    return caption, tuple(keywords)


def existing_caption(image: Path) -> tuple[str, str] | None:
    """The caption part of :func:`already_written`."""
    return already_written(image)[0]


def existing_keywords(image: Path) -> tuple[str, ...]:
    """The keywords part of :func:`already_written`."""
    return already_written(image)[1]
