"""Read captioned-image datasets in the layouts people actually download.

Four layouts are understood (see :func:`detect_format`):

``flickr8k``
    ``Flickr8k.token.txt`` (``NAME.jpg#K<TAB>caption``), images in ``Flicker8k_Dataset/``
    (the official archive's spelling), ``Flickr8k_Dataset/``, ``Images/`` or ``images/``,
    optional ``Flickr_8k.{train,dev,test}Images.txt`` split lists (``dev`` -> ``"val"``).
``flickr30k``
    ``results.csv`` (``image_name| comment_number| comment``), images in
    ``flickr30k_images/`` (the Kaggle archive nests it twice), ``Images/`` or ``images/``.
``coco``
    ``annotations/captions_{train,val}{2014,2017}.json``, images in ``train2014/`` ... or
    ``images/train2014/`` ...; the split comes from the annotation file name.
``csv``
    ``captions.txt`` or ``captions.csv`` with an ``image,caption`` header, images in
    ``Images/`` or ``images/`` (the Kaggle Flickr8k layout).

Nothing here imports TensorFlow or Qt: the training loop, the CLI and the tests share it.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import random
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

FORMATS = ("flickr8k", "flickr30k", "coco", "csv")

_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")

_FLICKR8K_TOKEN_FILES = ("Flickr8k.token.txt",)
_FLICKR8K_IMAGE_DIRS = ("Flicker8k_Dataset", "Flickr8k_Dataset", "Images", "images")
_FLICKR8K_SPLIT_FILES = {
    "train": "Flickr_8k.trainImages.txt",
    "val": "Flickr_8k.devImages.txt",
    "test": "Flickr_8k.testImages.txt",
}
_FLICKR30K_FILES = ("results.csv",)
_FLICKR30K_IMAGE_DIRS = ("flickr30k_images", "Images", "images")
_CSV_FILES = ("captions.txt", "captions.csv")
_CSV_IMAGE_DIRS = ("Images", "images")
_COCO_ANNOTATION = re.compile(r"^captions_(train|val)(\d{4})\.json$", re.IGNORECASE)

# "NAME.jpg#3<TAB>caption"; the real Flickr8k.token.txt also has a few lines where a
# space stands in for the tab, so any whitespace run is accepted as the separator.
_TOKEN_LINE = re.compile(r"^(?P<name>\S+?)#(?P<k>\d+)\s+(?P<caption>.*)$")
# Flickr8k.token.txt lists one image as "2258277193_586949ec62.jpg.1": the ".1" is a
# duplicate marker, not part of any file name.
_DUPLICATE_SUFFIX = re.compile(r"(\.(?:jpe?g|png|bmp|gif|webp|tiff?))\.\d+$", re.IGNORECASE)


@dataclass
class CaptionDataset:
    """Captions and image paths of one dataset folder.

    ``splits`` holds only keys that have both captions and an image file, so a training
    loop can use it without checking; keys whose image is absent are in ``missing``.
    """

    root: Path
    images: dict[str, Path]
    captions: dict[str, list[str]]
    splits: dict[str, list[str]]
    missing: list[str]
    format: str = ""
    skipped_rows: int = 0
    notes: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.images)

    def pairs(self, keys: Iterable[str] | None = None) -> list[tuple[Path, str]]:
        """(image path, raw caption) for every caption of every usable key."""
        keys = self.images.keys() if keys is None else keys
        return [(self.images[k], c) for k in keys if k in self.images for c in self.captions.get(k, ())]


# --- detection ------------------------------------------------------------------------


def _child(folder: Path, names: Iterable[str], *, want_dir: bool | None = None) -> Path | None:
    """First of ``names`` present in ``folder``, matched case-insensitively.

    Archives get re-zipped on Windows and macOS and come back as ``images`` or
    ``flickr8k.token.txt``; an exact-case lookup would call those folders unknown.
    """
    try:
        entries = {p.name.lower(): p for p in folder.iterdir()}
    except OSError:
        return None
    for name in names:
        exact = folder / name
        candidate = exact if exact.exists() else entries.get(name.lower())
        if candidate is None:
            continue
        if want_dir is True and not candidate.is_dir():
            continue
        if want_dir is False and not candidate.is_file():
            continue
        return candidate
    return None


def _coco_annotation_files(root: Path) -> list[Path]:
    ann_dir = _child(root, ("annotations",), want_dir=True)
    if ann_dir is None:
        return []
    return sorted(p for p in ann_dir.iterdir() if p.is_file() and _COCO_ANNOTATION.match(p.name))


def _csv_header(path: Path) -> list[str]:
    with path.open("r", encoding="utf-8-sig", errors="replace", newline="") as fh:
        first = next(csv.reader(fh), [])
    return [h.strip().lower() for h in first]


def detect_format(root: Path) -> str:
    """Name the layout of ``root``: ``"flickr8k"``, ``"flickr30k"``, ``"coco"`` or ``"csv"``."""
    root = Path(root)
    if not root.is_dir():
        raise ValueError(f"{root} is not a folder; point to the folder that holds the captions file.")
    if _child(root, _FLICKR8K_TOKEN_FILES, want_dir=False):
        return "flickr8k"
    if _child(root, _FLICKR30K_FILES, want_dir=False):
        return "flickr30k"
    if _coco_annotation_files(root):
        return "coco"
    csv_file = _child(root, _CSV_FILES, want_dir=False)
    if csv_file is not None:
        header = _csv_header(csv_file)
        if "image" in header and "caption" in header:
            return "csv"
        raise ValueError(
            f"{csv_file.name} in {root} has no 'image,caption' header line "
            f"(found {','.join(header) or 'an empty first line'})."
        )
    raise ValueError(
        f"{root} holds no known caption dataset: expected Flickr8k.token.txt (Flickr8k), "
        "results.csv (Flickr30k), annotations/captions_*.json (COCO) or captions.txt / "
        "captions.csv with an 'image,caption' header."
    )


# --- reading --------------------------------------------------------------------------


def _strip_duplicate_suffix(name: str) -> str:
    return _DUPLICATE_SUFFIX.sub(r"\1", name.strip())


def _index_images(folder: Path) -> dict[str, Path]:
    """File name -> path for images in ``folder`` and one level below it.

    One level of nesting covers archives that unpack as ``flickr30k_images/flickr30k_images``.
    scandir keeps this to one directory read per folder, which matters at 30k+ files.
    """
    found: dict[str, Path] = {}
    subdirs: list[str] = []
    try:
        with os.scandir(folder) as it:
            for entry in it:
                if entry.is_dir():
                    subdirs.append(entry.path)
                elif entry.name.lower().endswith(_IMAGE_SUFFIXES):
                    found.setdefault(entry.name, Path(entry.path))
    except OSError:
        return found
    for sub in sorted(subdirs):
        try:
            with os.scandir(sub) as it:
                for entry in it:
                    if entry.is_file() and entry.name.lower().endswith(_IMAGE_SUFFIXES):
                        found.setdefault(entry.name, Path(entry.path))
        except OSError:
            continue
    return found


def _locate_images(folders: list[Path], keys: Iterable[str]) -> tuple[dict[str, Path], list[str]]:
    index: dict[str, Path] = {}
    for folder in folders:
        for name, path in _index_images(folder).items():
            index.setdefault(name, path)
    images: dict[str, Path] = {}
    missing: list[str] = []
    for key in keys:
        path = index.get(key) or index.get(Path(key).name)
        if path is None:
            missing.append(key)
        else:
            images[key] = path
    return images, missing


def _image_dirs(root: Path, names: Iterable[str]) -> list[Path]:
    dirs = [d for d in (_child(root, (n,), want_dir=True) for n in names) if d is not None]
    # Images lying next to the captions file are a common home-made layout.
    return list(dict.fromkeys(dirs)) + [root]


def _read_lines(path: Path) -> list[str]:
    # errors="replace": one stray Latin-1 byte should cost one caption, not the dataset.
    with path.open("r", encoding="utf-8-sig", errors="replace", newline=None) as fh:
        return [line.rstrip("\r\n") for line in fh]


def _add(captions: dict[str, list[str]], key: str, caption: str) -> bool:
    caption = " ".join(caption.split())
    if not key or not caption:
        return False
    captions.setdefault(key, []).append(caption)
    return True


def _read_flickr8k(root: Path) -> tuple[dict[str, list[str]], dict[str, list[str]], int, list[Path]]:
    token_file = _child(root, _FLICKR8K_TOKEN_FILES, want_dir=False)
    assert token_file is not None
    captions, skipped = _parse_token_lines(_read_lines(token_file))
    splits: dict[str, list[str]] = {}
    for split, file_name in _FLICKR8K_SPLIT_FILES.items():
        split_file = _child(root, (file_name,), want_dir=False)
        if split_file is None:
            continue
        names = (_strip_duplicate_suffix(line) for line in _read_lines(split_file) if line.strip())
        splits[split] = [n for n in dict.fromkeys(names) if n in captions]
    return captions, splits, skipped, _image_dirs(root, _FLICKR8K_IMAGE_DIRS)


def _parse_token_lines(lines: Iterable[str]) -> tuple[dict[str, list[str]], int]:
    captions: dict[str, list[str]] = {}
    skipped = 0
    for line in lines:
        if not line.strip():
            continue
        match = _TOKEN_LINE.match(line.strip())
        if match is None:
            # Some derived files drop the "#K" but keep the tab.
            name, tab, caption = line.strip().partition("\t")
            if not tab:
                skipped += 1
                continue
        else:
            name, caption = match["name"], match["caption"]
        if not _add(captions, _strip_duplicate_suffix(name), caption):
            skipped += 1
    return captions, skipped


def _read_flickr30k(root: Path) -> tuple[dict[str, list[str]], dict[str, list[str]], int, list[Path]]:
    results = _child(root, _FLICKR30K_FILES, want_dir=False)
    assert results is not None
    captions: dict[str, list[str]] = {}
    skipped = 0
    lines = _read_lines(results)
    start = 1 if lines and "image_name" in lines[0].lower() else 0
    for line in lines[start:]:
        if not line.strip():
            continue
        parts = [p.strip() for p in line.split("|", 2)]
        # The Kaggle results.csv has rows where the "|" after the comment number is
        # missing; their caption cannot be told apart from the number, so they go.
        if len(parts) != 3 or not parts[1].isdigit():
            skipped += 1
            continue
        if not _add(captions, _strip_duplicate_suffix(parts[0]), parts[2]):
            skipped += 1
    return captions, {}, skipped, _image_dirs(root, _FLICKR30K_IMAGE_DIRS)


def _read_csv(root: Path) -> tuple[dict[str, list[str]], dict[str, list[str]], int, list[Path]]:
    csv_file = _child(root, _CSV_FILES, want_dir=False)
    assert csv_file is not None
    captions: dict[str, list[str]] = {}
    skipped = 0
    with csv_file.open("r", encoding="utf-8-sig", errors="replace", newline="") as fh:
        reader = csv.reader(fh)
        header = [h.strip().lower() for h in next(reader, [])]
        if "image" not in header or "caption" not in header:
            raise ValueError(f"{csv_file} has no 'image,caption' header line.")
        i_image, i_caption = header.index("image"), header.index("caption")
        caption_is_last = i_caption == len(header) - 1
        for row in reader:
            if not any(cell.strip() for cell in row):
                continue
            if len(row) <= max(i_image, i_caption):
                skipped += 1
                continue
            if len(row) > len(header) and caption_is_last:
                # An unquoted comma inside the caption split it into extra fields.
                caption = ",".join(row[i_caption:])
            else:
                caption = row[i_caption]
            if not _add(captions, _strip_duplicate_suffix(row[i_image]), caption):
                skipped += 1
    return captions, {}, skipped, _image_dirs(root, _CSV_IMAGE_DIRS)


def _read_coco(root: Path, notes: list[str]) -> tuple[dict[str, list[str]], dict[str, list[str]], int, list[Path]]:
    files = _coco_annotation_files(root)
    years = sorted({_COCO_ANNOTATION.match(f.name)[2] for f in files})
    if len(years) > 1:
        # 2014 and 2017 hold the same photos under different names and splits; reading
        # both would count every photo twice.
        notes.append(f"COCO annotations for {', '.join(years)} found; only {years[-1]} was read.")
        files = [f for f in files if _COCO_ANNOTATION.match(f.name)[2] == years[-1]]
    captions: dict[str, list[str]] = {}
    splits: dict[str, list[str]] = {}
    skipped = 0
    image_dirs: list[Path] = []
    images_dir = _child(root, ("images",), want_dir=True)
    for ann_file in files:
        split, year = _COCO_ANNOTATION.match(ann_file.name).groups()
        split = split.lower()
        with ann_file.open("r", encoding="utf-8-sig") as fh:
            try:
                data = json.load(fh)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{ann_file} is not valid JSON ({exc.msg} at line {exc.lineno}).") from exc
        if not isinstance(data, dict) or "images" not in data or "annotations" not in data:
            raise ValueError(f"{ann_file} has no 'images' and 'annotations' lists; is it a COCO captions file?")
        id_to_name = {}
        for img in data["images"]:
            try:
                id_to_name[img["id"]] = str(img["file_name"])
            except (KeyError, TypeError):
                skipped += 1
        split_keys_seen: dict[str, None] = {}
        for ann in data["annotations"]:
            try:
                name = id_to_name[ann["image_id"]]
                caption = str(ann["caption"])
            except (KeyError, TypeError):
                skipped += 1
                continue
            if _add(captions, name, caption):
                split_keys_seen.setdefault(name)
            else:
                skipped += 1
        existing = splits.setdefault(split, [])
        already = set(existing)
        existing.extend(k for k in split_keys_seen if k not in already)
        folder = f"{split}{year}"
        for base in (root, images_dir):
            if base is not None:
                found = _child(base, (folder,), want_dir=True)
                if found is not None:
                    image_dirs.append(found)
    if images_dir is not None:
        image_dirs.append(images_dir)
    image_dirs.append(root)
    return captions, splits, skipped, list(dict.fromkeys(image_dirs))


def read_dataset(root: Path, fmt: str | None = None) -> CaptionDataset:
    """Read the captions of ``root`` and find their image files.

    Missing image files are listed in ``missing`` rather than raised: a partly
    downloaded dataset is still useful for training on what is there.
    """
    root = Path(root)
    fmt = detect_format(root) if fmt is None else fmt.lower()
    if fmt not in FORMATS:
        raise ValueError(f"Unknown dataset format {fmt!r}; use one of {', '.join(FORMATS)}.")
    if not root.is_dir():
        raise ValueError(f"{root} is not a folder; point to the folder that holds the captions file.")
    notes: list[str] = []
    if fmt == "flickr8k":
        found = _child(root, _FLICKR8K_TOKEN_FILES, want_dir=False)
        what = "Flickr8k.token.txt"
    elif fmt == "flickr30k":
        found = _child(root, _FLICKR30K_FILES, want_dir=False)
        what = "results.csv"
    elif fmt == "coco":
        found = next(iter(_coco_annotation_files(root)), None)
        what = "annotations/captions_*.json"
    else:
        found = _child(root, _CSV_FILES, want_dir=False)
        what = "captions.txt or captions.csv"
    if found is None:
        raise ValueError(f"{root} has no {what}, which the {fmt} layout needs.")

    if fmt == "flickr8k":
        captions, splits, skipped, dirs = _read_flickr8k(root)
    elif fmt == "flickr30k":
        captions, splits, skipped, dirs = _read_flickr30k(root)
    elif fmt == "coco":
        captions, splits, skipped, dirs = _read_coco(root, notes)
    else:
        captions, splits, skipped, dirs = _read_csv(root)

    images, missing = _locate_images(dirs, captions)
    splits = {name: [k for k in keys if k in images] for name, keys in splits.items()}
    if skipped:
        notes.append(f"{skipped} malformed or empty caption row(s) were skipped.")
    if missing:
        notes.append(f"{len(missing)} image(s) named in the captions were not found, e.g. {missing[0]}.")
    for note in notes:
        log.warning("%s: %s", root, note)
    return CaptionDataset(
        root=root,
        images=images,
        captions=captions,
        splits=splits,
        missing=missing,
        format=fmt,
        skipped_rows=skipped,
        notes=notes,
    )


# --- text -----------------------------------------------------------------------------

_NON_LETTERS = re.compile(r"[^a-z]+")
_APOSTROPHES = re.compile(r"['\u2019\u2018`]")


def clean_caption(text: str, *, drop_single_letters: bool = False) -> list[str]:
    """Lower-cased a-z words of ``text``, without start/end markers.

    Accents are folded ("café" -> "cafe") rather than cutting the word in two.
    Apostrophes are removed inside words ("dog's" -> "dogs", "don't" -> "dont") so they
    do not leave orphan "s"/"t" tokens in the vocabulary. Any other non-letter splits
    words ("tri-colored" -> "tri colored"), as a Keras Tokenizer's filters did.
    ``drop_single_letters=True`` also removes one-letter words such as "a", which is
    what the legacy seed model's vocabulary was built with.
    """
    folded = unicodedata.normalize("NFKD", text.lower())
    folded = "".join(ch for ch in folded if not unicodedata.combining(ch))
    folded = _APOSTROPHES.sub("", folded)
    words = _NON_LETTERS.sub(" ", folded).split()
    if drop_single_letters:
        words = [w for w in words if len(w) > 1]
    return words


def text_corpus(path: Path, *, drop_single_letters: bool = False,
                exclude: Iterable[str] = ()) -> list[list[str]]:
    """Cleaned token lists of the captions in a ``NAME.jpg#K<TAB>caption`` text file.

    Meant for vocabulary statistics and language-model pre-training, so captions that
    clean to nothing are left out and image names are not kept. ``exclude`` names
    images whose captions must not be seen (a held-out split scored later).
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path} is not a file; expected a caption text file such as Flickr8k.token.txt.")
    captions, _ = _parse_token_lines(_read_lines(path))
    left_out = set(exclude)
    corpus: list[list[str]] = []
    for name, texts in captions.items():
        if name in left_out:
            continue
        for caption in texts:
            tokens = clean_caption(caption, drop_single_letters=drop_single_letters)
            if tokens:
                corpus.append(tokens)
    return corpus


# --- splits ---------------------------------------------------------------------------


def split_keys(keys: Iterable[str], *, val_fraction: float, test_fraction: float, seed: int) -> dict[str, list[str]]:
    """Split ``keys`` into disjoint ``"train"``, ``"val"`` and ``"test"`` lists.

    Keys are sorted before a seeded shuffle so the result depends only on the set of
    keys and the seed, not on the order a folder listing happened to return. Each list
    is sorted again so that split files diff cleanly.
    """
    for name, value in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not 0.0 <= value < 1.0:
            raise ValueError(f"{name} must be at least 0 and below 1, not {value}.")
    if val_fraction + test_fraction >= 1.0:
        raise ValueError(
            f"val_fraction + test_fraction must leave keys for training (got {val_fraction + test_fraction})."
        )
    ordered = sorted(set(keys))
    random.Random(seed).shuffle(ordered)
    n = len(ordered)

    def count(fraction: float) -> int:
        wanted = int(n * fraction + 0.5)
        # A requested split should never come out empty just because the set is small.
        return max(wanted, 1) if fraction > 0 and n >= 3 else wanted

    n_test = count(test_fraction)
    n_val = min(count(val_fraction), max(n - n_test - 1, 0))
    test = ordered[:n_test]
    val = ordered[n_test : n_test + n_val]
    train = ordered[n_test + n_val :]
    return {"train": sorted(train), "val": sorted(val), "test": sorted(test)}


# --- several folders, fixed split files -------------------------------------------------

SPLIT_NAMES = ("train", "val", "test")


def data_folders(data: str | os.PathLike | Iterable[str | os.PathLike]) -> list[Path]:
    """``--data`` as a list of folders (one folder, as older manifests record it, or several)."""
    if isinstance(data, (str, os.PathLike)):
        return [Path(data)]
    return [Path(d) for d in data]


def read_datasets(roots: Iterable[str | os.PathLike], fmt: str | None = None) -> CaptionDataset:
    """Join several dataset folders, each in any supported layout, into one dataset.

    A photo name found in two folders is an error naming both: its captions could be
    counted twice, or one folder's photo trained under the other's captions.
    """
    roots = [Path(r) for r in roots]
    if not roots:
        raise ValueError("no dataset folder given; pass --data DIR at least once.")
    parts = [read_dataset(r, fmt) for r in roots]
    if len(parts) == 1:
        return parts[0]
    owner: dict[str, Path] = {}
    joined = CaptionDataset(root=roots[0], images={}, captions={}, splits={}, missing=[],
                            format="+".join(dict.fromkeys(p.format for p in parts)))
    for part in parts:
        for key in part.captions:
            if key in owner:
                raise ValueError(f"the photo {key} is in both {owner[key]} and {part.root}; "
                                 "a photo may be in only one --data folder.")
            owner[key] = part.root
        joined.images.update(part.images)
        joined.captions.update(part.captions)
        joined.missing += part.missing
        joined.skipped_rows += part.skipped_rows
        joined.notes += [f"{part.root}: {n}" for n in part.notes]
        for name, keys in part.splits.items():
            joined.splits.setdefault(name, []).extend(keys)
    return joined


def apply_split_files(dataset: CaptionDataset, folder: str | os.PathLike) -> list[str]:
    """Replace the dataset's splits with ``train.txt`` / ``val.txt`` / ``test.txt`` from ``folder``.

    One photo name per line. Names with no captioned photo in the data are counted and
    reported (the returned sentences, also added to ``dataset.notes``), never dropped in
    silence; a name listed in two split files is an error.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"{folder} is not a folder; --split-files needs a folder with train.txt, val.txt, test.txt.")
    files = {name: folder / f"{name}.txt" for name in SPLIT_NAMES if (folder / f"{name}.txt").is_file()}
    if "train" not in files:
        raise ValueError(f"{folder} has no train.txt; --split-files needs at least train.txt (and val.txt, test.txt).")
    splits: dict[str, list[str]] = {}
    seen: dict[str, str] = {}
    report: list[str] = []
    for name, file in files.items():
        names = [_strip_duplicate_suffix(line) for line in _read_lines(file) if line.strip()]
        found, absent = [], []
        for key in dict.fromkeys(names):
            if key in seen:
                raise ValueError(f"{key} is listed in both {seen[key]}.txt and {name}.txt in {folder}.")
            seen[key] = name
            (found if key in dataset.images and dataset.captions.get(key) else absent).append(key)
        splits[name] = found
        if absent:
            report.append(f"{file}: {len(absent)} of {len(names)} photo name(s) are not in the data, "
                          f"e.g. {absent[0]}; they are left out of the {name} split.")
    unlisted = sum(1 for k in dataset.images if k not in seen and dataset.captions.get(k))
    if unlisted:
        report.append(f"{unlisted} captioned photo(s) in the data are in none of the split files; they are not used.")
    for name in SPLIT_NAMES:
        splits.setdefault(name, [])
    dataset.splits = splits
    dataset.notes += report
    for line in report:
        log.warning("%s", line)
    return report


def load_training_data(data, fmt: str | None = None, split_files: str | os.PathLike | None = None) -> CaptionDataset:
    """``--data DIR ...`` joined, with ``--split-files`` applied when given: what train, evaluate and ensemble read."""
    dataset = read_datasets(data_folders(data), fmt)
    if split_files:
        apply_split_files(dataset, split_files)
    return dataset
