from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from PIL import Image

from imgcap_desktop.core.training.datasets import (
    CaptionDataset,
    clean_caption,
    detect_format,
    read_dataset,
    split_keys,
    text_corpus,
)

SUBSET = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "flickr8k-subset"
TOKEN_TEXT = SUBSET.parent / "flickr8k-captions-text" / "Flickr8k.token.txt"


def _jpg(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 6), (200, 30, 30)).save(path, "JPEG")


def _write(path: Path, text: str, *, bom: bool = False, crlf: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if crlf:
        text = text.replace("\n", "\r\n")
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8"))


# --- flickr8k ---------------------------------------------------------------------------


@pytest.fixture
def flickr8k(tmp_path: Path) -> Path:
    root = tmp_path / "f8k"
    _write(
        root / "Flickr8k.token.txt",
        "a.jpg#0\tA dog runs .\n"
        "a.jpg#1 A dog is running on grass .  \n"  # space instead of tab, as in the real file
        "b.jpg.1#0\tTwo people wait .\n"  # ".1" duplicate marker
        "b.jpg.1#1\tPeople on a platform .\n"
        "c.jpg#0\tA red car .\n"
        "garbage line without separator\n"
        "d.jpg#0\tNo image for this one .\n",
        bom=True,
        crlf=True,
    )
    for name in ("a.jpg", "b.jpg", "c.jpg"):
        _jpg(root / "Flicker8k_Dataset" / name)
    _write(root / "Flickr_8k.trainImages.txt", "a.jpg\nd.jpg\n")
    _write(root / "Flickr_8k.devImages.txt", "b.jpg\n")
    _write(root / "Flickr_8k.testImages.txt", "c.jpg\n", crlf=True)
    return root


def test_flickr8k_layout(flickr8k: Path) -> None:
    assert detect_format(flickr8k) == "flickr8k"
    ds = read_dataset(flickr8k)
    assert isinstance(ds, CaptionDataset) and ds.format == "flickr8k"
    assert ds.captions["a.jpg"] == ["A dog runs .", "A dog is running on grass ."]
    assert ds.captions["b.jpg"] == ["Two people wait .", "People on a platform ."]
    assert set(ds.images) == {"a.jpg", "b.jpg", "c.jpg"}
    assert ds.images["b.jpg"] == flickr8k / "Flicker8k_Dataset" / "b.jpg"
    assert ds.missing == ["d.jpg"]
    # d.jpg is listed for training but has no image, so it is not offered for training.
    assert ds.splits == {"train": ["a.jpg"], "val": ["b.jpg"], "test": ["c.jpg"]}
    assert ds.skipped_rows == 1
    assert any("d.jpg" in note for note in ds.notes)
    assert len(ds.pairs()) == 5


def test_flickr8k_lower_case_images_folder_without_splits(tmp_path: Path) -> None:
    _write(tmp_path / "Flickr8k.token.txt", "x.jpg#0\tA cat .\n")
    _jpg(tmp_path / "images" / "x.jpg")
    ds = read_dataset(tmp_path, "flickr8k")
    assert ds.images == {"x.jpg": tmp_path / "images" / "x.jpg"}
    assert ds.splits == {}


# --- csv --------------------------------------------------------------------------------


def test_csv_layout_with_bom_quotes_and_missing_image(tmp_path: Path) -> None:
    _write(
        tmp_path / "captions.txt",
        "image,caption\n"
        'p.jpg,"A dog shakes its head near the shore , a red ball next to it ."\n'
        "p.jpg,A dog on the beach .\n"
        "q.jpg,Unquoted, with a comma\n"
        "q.jpg,\n"  # empty caption
        "\n"
        "gone.jpg,A missing photo .\n",
        bom=True,
        crlf=True,
    )
    _jpg(tmp_path / "Images" / "p.jpg")
    _jpg(tmp_path / "Images" / "q.jpg")
    assert detect_format(tmp_path) == "csv"
    ds = read_dataset(tmp_path)
    assert ds.captions["p.jpg"][0] == "A dog shakes its head near the shore , a red ball next to it ."
    assert ds.captions["q.jpg"] == ["Unquoted, with a comma"]
    assert ds.missing == ["gone.jpg"]
    assert set(ds.images) == {"p.jpg", "q.jpg"}
    assert ds.splits == {}
    assert ds.skipped_rows == 1


def test_csv_without_header_is_rejected(tmp_path: Path) -> None:
    _write(tmp_path / "captions.csv", "p.jpg,A dog .\n")
    with pytest.raises(ValueError, match="image,caption"):
        detect_format(tmp_path)


# --- flickr30k ----------------------------------------------------------------------------


def test_flickr30k_layout_nested_images_and_malformed_row(tmp_path: Path) -> None:
    _write(
        tmp_path / "results.csv",
        "image_name| comment_number| comment\n"
        "1000092795.jpg| 0| Two young guys with shaggy hair look at their hands .\n"
        "1000092795.jpg| 1| Two friends | one in a hat | enjoy time outside .\n"
        "2199200615.jpg| 4   A dog runs across the grass .\n"  # the real file's broken row
        "10002456.jpg| 0| Several men in hard hats .\n"
        "77777.jpg| 0| Image not downloaded .\n",
        bom=True,
    )
    nested = tmp_path / "flickr30k_images" / "flickr30k_images"
    _jpg(nested / "1000092795.jpg")
    _jpg(nested / "10002456.jpg")
    _jpg(nested / "2199200615.jpg")
    assert detect_format(tmp_path) == "flickr30k"
    ds = read_dataset(tmp_path)
    assert ds.captions["1000092795.jpg"] == [
        "Two young guys with shaggy hair look at their hands .",
        "Two friends | one in a hat | enjoy time outside .",
    ]
    assert "2199200615.jpg" not in ds.captions
    assert ds.skipped_rows == 1
    assert any("1 malformed" in note for note in ds.notes)
    assert ds.images["10002456.jpg"] == nested / "10002456.jpg"
    assert ds.missing == ["77777.jpg"]
    assert ds.splits == {}


# --- coco -------------------------------------------------------------------------------


def test_coco_layout_with_splits(tmp_path: Path) -> None:
    train = {
        "images": [{"id": 1, "file_name": "COCO_train2014_000000000001.jpg"},
                   {"id": 2, "file_name": "COCO_train2014_000000000002.jpg"}],
        "annotations": [{"image_id": 1, "id": 10, "caption": "A cat on a sofa.\n"},
                        {"image_id": 1, "id": 11, "caption": "  A sleeping cat. "},
                        {"image_id": 2, "id": 12, "caption": "A bus."},
                        {"image_id": 99, "id": 13, "caption": "orphan"}],
    }
    val = {
        "images": [{"id": 3, "file_name": "COCO_val2014_000000000003.jpg"}],
        "annotations": [{"image_id": 3, "id": 14, "caption": "A kite."}],
    }
    _write(tmp_path / "annotations" / "captions_train2014.json", json.dumps(train), bom=True)
    _write(tmp_path / "annotations" / "captions_val2014.json", json.dumps(val))
    _write(tmp_path / "annotations" / "instances_train2014.json", "{}")
    _jpg(tmp_path / "train2014" / "COCO_train2014_000000000001.jpg")
    _jpg(tmp_path / "images" / "val2014" / "COCO_val2014_000000000003.jpg")
    assert detect_format(tmp_path) == "coco"
    ds = read_dataset(tmp_path)
    assert ds.captions["COCO_train2014_000000000001.jpg"] == ["A cat on a sofa.", "A sleeping cat."]
    assert ds.splits == {"train": ["COCO_train2014_000000000001.jpg"], "val": ["COCO_val2014_000000000003.jpg"]}
    assert ds.missing == ["COCO_train2014_000000000002.jpg"]
    assert ds.skipped_rows == 1


# --- detection errors -----------------------------------------------------------------------


def test_unknown_folder_gives_a_clear_sentence(tmp_path: Path) -> None:
    _jpg(tmp_path / "photo.jpg")
    with pytest.raises(ValueError, match=r"holds no known caption dataset: expected Flickr8k\.token\.txt"):
        detect_format(tmp_path)
    with pytest.raises(ValueError, match="not a folder"):
        detect_format(tmp_path / "nope")
    with pytest.raises(ValueError, match="Unknown dataset format"):
        read_dataset(tmp_path, "imagenet")
    with pytest.raises(ValueError, match="has no results.csv"):
        read_dataset(tmp_path, "flickr30k")


# --- text -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "kwargs", "expected"),
    [
        ("A dog runs .", {}, ["a", "dog", "runs"]),
        ("A dog runs .", {"drop_single_letters": True}, ["dog", "runs"]),
        ("  Two  dogs, 3 balls!\t", {}, ["two", "dogs", "balls"]),
        ("A tri-colored dog's toy", {}, ["a", "tri", "colored", "dogs", "toy"]),
        ("Café I saw", {"drop_single_letters": True}, ["cafe", "saw"]),
        ("... 123 !", {}, []),
    ],
)
def test_clean_caption(text: str, kwargs: dict, expected: list[str]) -> None:
    assert clean_caption(text, **kwargs) == expected


def test_text_corpus(tmp_path: Path) -> None:
    path = tmp_path / "Flickr8k.token.txt"
    _write(path, "a.jpg#0\tA dog runs .\na.jpg.1#1 Two cats !\nb.jpg#0\t...\n", bom=True, crlf=True)
    assert text_corpus(path) == [["a", "dog", "runs"], ["two", "cats"]]
    # Held-out photos' captions stay out of language-model pre-training, duplicate marker or not.
    assert text_corpus(path, exclude={"a.jpg"}) == []


# --- splits -----------------------------------------------------------------------------


def test_split_keys_is_deterministic_disjoint_and_complete() -> None:
    keys = [f"img{i:03d}.jpg" for i in range(100)]
    a = split_keys(keys, val_fraction=0.1, test_fraction=0.2, seed=7)
    b = split_keys(list(reversed(keys)), val_fraction=0.1, test_fraction=0.2, seed=7)
    assert a == b
    assert (len(a["train"]), len(a["val"]), len(a["test"])) == (70, 10, 20)
    assert set(a["train"]) | set(a["val"]) | set(a["test"]) == set(keys)
    assert not (set(a["train"]) & set(a["val"]) or set(a["train"]) & set(a["test"]) or set(a["val"]) & set(a["test"]))
    assert split_keys(keys, val_fraction=0.1, test_fraction=0.2, seed=8) != a


def test_split_keys_small_sets_and_bad_fractions() -> None:
    small = split_keys(["a", "b", "c"], val_fraction=0.1, test_fraction=0.1, seed=0)
    assert [len(small[s]) for s in ("train", "val", "test")] == [1, 1, 1]
    assert split_keys([], val_fraction=0.1, test_fraction=0.1, seed=0) == {"train": [], "val": [], "test": []}
    with pytest.raises(ValueError):
        split_keys(["a"], val_fraction=0.6, test_fraction=0.5, seed=0)
    with pytest.raises(ValueError):
        split_keys(["a"], val_fraction=-0.1, test_fraction=0.0, seed=0)


# --- the real data (CI only) -------------------------------------------------------------


@pytest.mark.skipif(not SUBSET.is_dir(), reason="../shared/data/flickr8k-subset is not present")
def test_real_flickr8k_subset() -> None:
    ds = read_dataset(SUBSET)
    assert ds.format == "csv"
    assert len(ds.images) == 894
    assert ds.missing == [] and ds.skipped_rows == 0
    counts = Counter(len(c) for c in ds.captions.values())
    # The subset's captions.txt lost the caption that Flickr8k.token.txt separates with
    # a space instead of a tab for these three images; all others have their five.
    short = {k for k, c in ds.captions.items() if len(c) != 5}
    assert short == {"1000268201_693b08cb0e.jpg", "1001773457_577c3a7d70.jpg", "1002674143_1b742ab4b8.jpg"}
    assert counts == {5: 891, 4: 3}
    if TOKEN_TEXT.is_file():
        corpus = text_corpus(TOKEN_TEXT)
        assert len(corpus) == 39460


# --- several folders and split files ------------------------------------------------------


def _csv_folder(root: Path, names: list[str]) -> Path:
    rows = ["image,caption"] + [f"{n},a photo called {n[:-4]}" for n in names]
    _write(root / "captions.txt", "\n".join(rows) + "\n")
    for n in names:
        _jpg(root / "Images" / n)
    return root


def test_several_folders_of_different_layouts_are_joined(tmp_path, flickr8k):
    from imgcap_desktop.core.training.datasets import read_datasets

    extra = _csv_folder(tmp_path / "extra", ["x.jpg", "y.jpg"])
    joined = read_datasets([flickr8k, extra])
    assert set(joined.images) == {"a.jpg", "b.jpg", "c.jpg", "x.jpg", "y.jpg"}
    assert joined.images["x.jpg"].parent == extra / "Images"
    assert joined.captions["x.jpg"] == ["a photo called x"]
    assert joined.missing == ["d.jpg"]
    assert joined.format == "flickr8k+csv"
    assert joined.splits["train"] == ["a.jpg"]  # the Flickr8k folder's own split lists survive


def test_the_same_photo_in_two_folders_is_an_error_naming_both(tmp_path):
    from imgcap_desktop.core.training.datasets import read_datasets

    one = _csv_folder(tmp_path / "one", ["x.jpg", "y.jpg"])
    two = _csv_folder(tmp_path / "two", ["y.jpg", "z.jpg"])
    with pytest.raises(ValueError) as exc:
        read_datasets([one, two])
    assert "y.jpg" in str(exc.value) and str(one) in str(exc.value) and str(two) in str(exc.value)


def test_split_files_fix_the_split_and_report_names_not_found(tmp_path):
    from imgcap_desktop.core.training.datasets import load_training_data

    one = _csv_folder(tmp_path / "one", ["a.jpg", "b.jpg", "c.jpg"])
    two = _csv_folder(tmp_path / "two", ["d.jpg", "e.jpg"])
    splits = tmp_path / "splits"
    _write(splits / "train.txt", "a.jpg\nd.jpg\nghost1.jpg\nghost2.jpg\n")
    _write(splits / "val.txt", "b.jpg\n")
    _write(splits / "test.txt", "c.jpg\n")
    dataset = load_training_data([str(one), str(two)], split_files=splits)
    assert dataset.splits == {"train": ["a.jpg", "d.jpg"], "val": ["b.jpg"], "test": ["c.jpg"]}
    notes = " ".join(dataset.notes)
    assert "2 of 4 photo name(s) are not in the data, e.g. ghost1.jpg" in notes
    assert "1 captioned photo(s) in the data are in none of the split files" in notes  # e.jpg


def test_a_photo_in_two_split_files_is_an_error(tmp_path):
    from imgcap_desktop.core.training.datasets import load_training_data

    one = _csv_folder(tmp_path / "one", ["a.jpg", "b.jpg"])
    splits = tmp_path / "splits"
    _write(splits / "train.txt", "a.jpg\nb.jpg\n")
    _write(splits / "test.txt", "b.jpg\n")
    with pytest.raises(ValueError, match="b.jpg is listed in both train.txt and test.txt"):
        load_training_data(str(one), split_files=splits)


def test_split_files_folder_without_train_txt_is_refused(tmp_path):
    from imgcap_desktop.core.training.datasets import load_training_data

    one = _csv_folder(tmp_path / "one", ["a.jpg"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="has no train.txt"):
        load_training_data(str(one), split_files=tmp_path / "empty")


def test_batch_plan_sees_every_caption_once_and_buckets_by_length():
    import numpy as np

    from imgcap_desktop.core.training.train import batch_plan

    rng = np.random.default_rng(0)
    lengths = rng.integers(5, 24, size=1000)
    plan = batch_plan(lengths, 64, rng)
    rows = np.concatenate(plan)
    assert sorted(rows.tolist()) == list(range(1000))
    spread = [lengths[b].max() - lengths[b].min() for b in plan]
    assert max(spread) <= 2  # 1000 captions over 19 lengths: a batch of 64 spans at most two or three lengths
    random_plan = batch_plan(lengths, 64, np.random.default_rng(0), bucketed=False)
    assert np.mean([lengths[b].max() for b in random_plan]) > np.mean([lengths[b].max() for b in plan]) + 5
