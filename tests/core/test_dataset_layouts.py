"""Training-set files from caption records: Hugging Face imagefolder, COCO captions, kohya
caption files; written for real photos and read back as the tools read them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from imgcap_desktop.core.dataset_layouts import common_folder, write_coco, write_dataset, write_hf_metadata
from imgcap_desktop.core.export import read_sidecar, sidecar_path, write_sidecar
from imgcap_desktop.core.records import make_record
from imgcap_desktop.core.writers import existing_caption


@pytest.fixture
def photos(tmp_path) -> list[Path]:
    out = []
    for i, (name, size) in enumerate([("a.jpg", (40, 30)), ("sub/b.png", (20, 50)), ("c.jpg", (10, 10))]):
        path = tmp_path / "set" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        exif = Image.Exif()
        if i == 0:
            exif[0x0112] = 6  # shown rotated: 30 x 40
        Image.new("RGB", size, (i * 80, 90, 200)).save(path, exif=exif.tobytes())
        out.append(path)
    return out


def records_for(photos):
    return [make_record(photos[0], text="a red square", keywords=["square"]),
            make_record(photos[1], text="a tall blue bar"),
            make_record(photos[2], error="c.jpg: is broken.")]


def test_hf_imagefolder_metadata_names_files_relative_to_its_folder(photos, tmp_path):
    out = common_folder(photos) / "metadata.jsonl"
    assert out == tmp_path / "set" / "metadata.jsonl"
    report = write_hf_metadata(records_for(photos), out)
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert rows == [{"file_name": "a.jpg", "text": "a red square", "keywords": ["square"]},
                    {"file_name": "sub/b.png", "text": "a tall blue bar"}]
    assert report.written == 2 and not report.left_out
    # A photo outside the folder cannot be named by a relative file_name: it is reported.
    inner = tmp_path / "set" / "sub" / "metadata.jsonl"
    report = write_dataset("hf", records_for(photos), inner)
    assert report.written == 1 and "a.jpg" in report.left_out[0]


def test_coco_captions_have_images_with_their_shown_size_and_annotations(photos, tmp_path):
    out = tmp_path / "set" / "captions.json"
    assert write_coco(records_for(photos), out).written == 2
    data = json.loads(out.read_text(encoding="utf-8"))
    assert [(i["file_name"], i["width"], i["height"]) for i in data["images"]] == [("a.jpg", 30, 40),
                                                                                    ("sub/b.png", 20, 50)]
    assert [(a["image_id"], a["caption"]) for a in data["annotations"]] == [(1, "a red square"),
                                                                             (2, "a tall blue bar")]
    assert {a["id"] for a in data["annotations"]} == {1, 2}


def test_kohya_caption_files_with_the_caption_extension(photos):
    path = write_sidecar(photos[0], "a red square", suffix=".caption")
    assert path.name == "a.caption" and read_sidecar(photos[0], ".caption") == "a red square"
    assert existing_caption(photos[0]) == ("a red square", "a.caption")
    with pytest.raises(ValueError, match=".caption"):
        sidecar_path(photos[0], ".md")


def test_cli_writes_a_dataset_and_xmp_sidecars(photos, tmp_path, capsys, seed_assets, seed_cache_home, monkeypatch):
    from imgcap_desktop import cli

    monkeypatch.setenv("XDG_CACHE_HOME", str(seed_cache_home))
    out = tmp_path / "hf" / "metadata.jsonl"
    code = cli.main(["caption", str(photos[0]), str(photos[1]), "--format", "jsonl", "--no-progress",
                     "--model", str(seed_assets["folder"]), "--encoder-weights", str(seed_assets["densenet"]),
                     "--write", "xmp", "--xmp-name", "base", "--dataset", "coco",
                     "--dataset-out", str(tmp_path / "set" / "captions.json")])
    assert code == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [w["path"] for r in records for w in r["written"]] == [str(photos[0].with_suffix(".xmp")),
                                                                  str(photos[1].with_suffix(".xmp"))]
    data = json.loads((tmp_path / "set" / "captions.json").read_text())
    assert [a["caption"] for a in data["annotations"]] == [r["caption"] for r in records]
    assert not out.exists()


def test_cli_keeps_a_metadata_jsonl_that_is_there(photos, tmp_path, capsys, seed_assets, seed_cache_home, monkeypatch):
    from imgcap_desktop import cli

    monkeypatch.setenv("XDG_CACHE_HOME", str(seed_cache_home))
    mine = tmp_path / "set" / "metadata.jsonl"
    mine.write_text('{"file_name": "a.jpg", "text": "written by hand"}\n')
    args = ["caption", str(photos[0]), "--model", str(seed_assets["folder"]), "--encoder-weights",
            str(seed_assets["densenet"]), "--no-progress", "--dataset", "hf"]
    assert cli.main(args) == 1
    assert "already exists and was kept" in capsys.readouterr().err
    assert "written by hand" in mine.read_text()
    assert cli.main(args + ["--overwrite", "always"]) == 0
    assert "written by hand" not in mine.read_text()
