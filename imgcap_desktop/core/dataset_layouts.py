"""Captions as the files training tools read.

- Hugging Face ``imagefolder``: ``metadata.jsonl`` at the root of the photos' folder, one
  ``{"file_name": "sub/photo.jpg", "text": "..."}`` per line (``datasets.load_dataset("imagefolder",
  data_dir=...)`` reads it; ``file_name`` must be relative to that file's folder, so photos outside
  it cannot be listed and are reported instead).
- COCO captions: one JSON file with ``images`` (id, file_name, width, height) and ``annotations``
  (id, image_id, caption), as ``captions_train2017.json`` has them; ``file_name`` is relative to the
  JSON's folder when the photo is inside it, else absolute.
- kohya / OneTrainer: one caption file per photo with a chosen extension (``.txt`` or
  ``.caption``), which is core.export.write_sidecar with ``suffix``.

Both files are written atomically (core.export.atomic_writer). The records are those of
core.records: only captioned photos (status ``done`` or ``found``) are written.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from imgcap_desktop.core.export import atomic_writer, check_writable

LAYOUTS = ("hf", "coco")
DEFAULT_NAMES = {"hf": "metadata.jsonl", "coco": "captions.json"}


@dataclass
class DatasetReport:
    written: int = 0
    left_out: list[str] = field(default_factory=list)   # one sentence per photo not written
    left_out_paths: list[str] = field(default_factory=list)


def _captioned(records: Iterable[dict]) -> list[dict]:
    return [r for r in records if r.get("caption") and r.get("status") in ("done", "found")]


def _relative(path: Path, root: Path) -> str | None:
    try:
        return Path(os.path.abspath(path)).relative_to(Path(os.path.abspath(root))).as_posix()
    except ValueError:
        return None


def common_folder(paths: Iterable[str | os.PathLike]) -> Path | None:
    """The deepest folder holding every photo (where an imagefolder's metadata.jsonl goes)."""
    folders = [os.path.dirname(os.path.abspath(p)) for p in paths]
    return Path(os.path.commonpath(folders)) if folders else None


def write_hf_metadata(records: Iterable[dict], out: Path) -> DatasetReport:
    out = Path(out)
    root = out.parent
    report = DatasetReport()
    lines = []
    for record in _captioned(records):
        name = _relative(Path(record["image"]), root)
        if name is None:
            report.left_out.append(f"{Path(record['image']).name}: not inside {root}, so metadata.jsonl there "
                                   f"cannot name it")
            report.left_out_paths.append(record["image"])
            continue
        row = {"file_name": name, "text": record["caption"]}
        if record.get("keywords"):
            row["keywords"] = list(record["keywords"])
        lines.append(json.dumps(row, ensure_ascii=False))
    check_writable(out)
    with atomic_writer(out, binary=False, newline="\n") as fh:
        fh.write("".join(line + "\n" for line in lines))
    report.written = len(lines)
    return report


def _size(path: Path) -> tuple[int, int] | None:
    from imgcap_desktop.core.images import image_size
    from imgcap_desktop.core.raw_photos import is_raw

    if is_raw(path):
        return None  # a RAW file's TIFF header gives its thumbnail's size, not the photo's

    try:
        return image_size(path)
    except Exception:  # noqa: BLE001 - a size is optional in COCO; the caption is not lost for it
        return None


def write_coco(records: Iterable[dict], out: Path) -> DatasetReport:
    out = Path(out)
    images, annotations = [], []
    for number, record in enumerate(_captioned(records), start=1):
        path = Path(record["image"])
        entry = {"id": number, "file_name": _relative(path, out.parent) or os.path.abspath(path)}
        size = _size(path)
        if size is not None:
            entry["width"], entry["height"] = size
        images.append(entry)
        annotations.append({"id": number, "image_id": number, "caption": record["caption"]})
    document = {
        "info": {"description": "captions from imgcap-desktop",
                 "date_created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")},
        "licenses": [], "images": images, "annotations": annotations,
    }
    check_writable(out)
    with atomic_writer(out, binary=False, newline="\n") as fh:
        json.dump(document, fh, ensure_ascii=False, indent=1)
        fh.write("\n")
    return DatasetReport(written=len(images))


def write_dataset(layout: str, records: Iterable[dict], out: Path) -> DatasetReport:
    if layout == "hf":
        return write_hf_metadata(records, out)
    if layout == "coco":
        return write_coco(records, out)
    raise ValueError(f"unknown dataset layout {layout!r}; use {', '.join(LAYOUTS)}")
