"""The ``imgcap`` command, run in-process (``cli.main``) on real files with the real seed model."""

from __future__ import annotations

import csv
import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from imgcap_desktop import __version__
from imgcap_desktop.cli import main
from imgcap_desktop.core.records import CSV_COLUMNS, RECORD_KEYS


@pytest.fixture
def mixed_folder(seed_assets, tmp_path) -> tuple[Path, list[Path], list[Path]]:
    """Good photos (one in a nested folder), a truncated JPEG and a text file named .jpg."""
    folder = tmp_path / "photos"
    nested = folder / "nested"
    nested.mkdir(parents=True)
    photos = seed_assets["photos"]
    good = [folder / "a.jpg", folder / "b.jpg", nested / "c.jpg"]
    for src, dst in zip(photos, good):
        shutil.copy(src, dst)
    corrupt = folder / "broken.jpg"
    data = photos[0].read_bytes()
    corrupt.write_bytes(data[: len(data) // 3])
    text = folder / "notes.jpg"
    text.write_text("this is not a photo\n")
    return folder, good, [corrupt, text]


def _reference(seed_assets, seed_reference, good):
    by_name = {p.name: c for p, (c, _) in zip(seed_assets["photos"], seed_reference["for_photos"])}
    order = ["photo_0.jpg", "photo_1.jpg", "photo_2.jpg"]  # a, b, c were copied from these
    return {path: by_name[src] for path, src in zip(good, order)}


def test_version_in_a_subprocess():
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, "-m", "imgcap_desktop", "--version"], capture_output=True, text=True,
                          cwd=root, timeout=60)
    assert done.returncode == 0
    assert done.stdout.strip() == f"imgcap {__version__}"


def test_jsonl_one_record_per_image_and_exit_1_when_one_fails(seed_bundle, seed_assets, seed_reference,
                                                              mixed_folder, capsys):
    folder, good, bad = mixed_folder
    code = main(["caption", str(folder), "--model", str(seed_bundle), "--format", "jsonl", "--beam", "1"])
    out, err = capsys.readouterr()
    assert code == 1
    records = [json.loads(line) for line in out.splitlines()]
    assert sorted(r["image"] for r in records) == sorted(str(p) for p in good + bad)
    expected = _reference(seed_assets, seed_reference, good)
    for r in records:
        assert list(r) == list(RECORD_KEYS)  # the same keys whether the photo failed or not
        path = Path(r["image"])
        if path in expected:
            assert r["error"] is None and r["status"] == "done" and r["edited"] is False
            assert r["caption"] == expected[path]  # --beam 1 is the seed's own procedure
            assert r["score"] == r["alternatives"][0]["score"] and len(r["alternatives"]) == 1
        else:
            assert r["caption"] is None and r["score"] is None and r["alternatives"] == []
            assert r["status"] == "failed"
            assert isinstance(r["error"], str) and r["error"] and "\n" not in r["error"]
            assert path.name in r["error"]
    assert "2 of 5" in err


def test_csv_all_good_exits_0_with_the_seed_captions(seed_bundle, seed_assets, seed_reference, tmp_path, capsys):
    photos = seed_assets["photos"]
    code = main(["caption", *map(str, photos), "--model", str(seed_bundle), "--format", "csv", "--beam", "1"])
    out, _ = capsys.readouterr()
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    assert list(rows[0]) == list(CSV_COLUMNS)  # the app's CSV export has these columns too
    assert [r["image"] for r in rows] == [str(p) for p in photos]
    assert [r["caption"] for r in rows] == [c for c, _ in seed_reference["for_photos"]]
    assert all(r["error"] == "" and r["status"] == "done" for r in rows)


def test_import_seed_then_caption_with_model_in_text_format(seed_assets, seed_reference, mixed_folder, tmp_path,
                                                             capsys):
    out_dir = tmp_path / "imported"
    code = main(["import-seed", str(seed_assets["folder"]), "--out", str(out_dir),
                 "--encoder-weights", str(seed_assets["densenet"])])
    assert code == 0
    assert (out_dir / "manifest.json").is_file()
    capsys.readouterr()

    folder, good, bad = mixed_folder
    code = main(["caption", str(folder), "--model", str(out_dir), "--format", "text"])
    out, _ = capsys.readouterr()
    assert code == 1
    lines = dict(line.split("\t", 1) for line in out.splitlines())
    assert set(lines) == {str(p) for p in good + bad}
    expected = _reference(seed_assets, seed_reference, good)
    for path, caption in expected.items():
        assert lines[str(path)] == caption  # the seed bundle decodes greedily by default
    for path in bad:
        assert lines[str(path)].startswith("ERROR: ") and path.name in lines[str(path)]


def test_info_prints_the_manifest(seed_bundle, capsys):
    code = main(["info", str(seed_bundle)])
    out, _ = capsys.readouterr()
    assert code == 0
    manifest = json.loads((seed_bundle / "manifest.json").read_text())
    assert f"name:          {manifest['name']}" in out
    assert "family:        seed" in out
    for name, entry in manifest["files"].items():
        assert name in out and entry["sha256"][:16] in out
    assert "checksums:     all files match" in out


def test_info_on_a_tampered_bundle_exits_2(seed_bundle, tmp_path, capsys):
    copy = tmp_path / "b"
    shutil.copytree(seed_bundle, copy, ignore=shutil.ignore_patterns("encoder*"))
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["files"] = {k: v for k, v in manifest["files"].items() if not k.startswith("encoder")}
    manifest["encoder"]["weights"] = None
    manifest["files"]["vocab.json"]["sha256"] = "0" * 64
    (copy / "manifest.json").write_text(json.dumps(manifest))
    assert main(["info", str(copy)]) == 2
    _, err = capsys.readouterr()
    assert err.startswith("imgcap: ") and "vocab.json" in err and "sha256" in err
    assert err.count("\n") == 1


def test_missing_default_model_exits_2_with_a_clear_message(seed_assets, tmp_path, monkeypatch, capsys):
    empty = tmp_path / "no_default_model"
    empty.mkdir()
    monkeypatch.setenv("IMGCAP_DEFAULT_MODEL", str(empty))
    code = main(["caption", str(seed_assets["photos"][0])])
    _, err = capsys.readouterr()
    assert code == 2
    assert "default model is missing" in err and str(empty) in err and "--model" in err
    assert err.count("\n") == 1


def test_nothing_to_caption_exits_2(tmp_path, capsys):
    (tmp_path / "readme.txt").write_text("no photos here")
    assert main(["caption", str(tmp_path)]) == 2
    _, err = capsys.readouterr()
    assert "no images" in err


def test_a_missing_path_is_reported_before_any_model_loads(tmp_path, capsys):
    # The model folder does not exist either: had it been loaded, that would be the error.
    code = main(["caption", str(tmp_path / "missing"), "--model", str(tmp_path / "no-model")])
    _, err = capsys.readouterr()
    assert code == 2
    assert f"imgcap: {tmp_path / 'missing'}: no such file or folder" in err
    assert "no images to caption" in err and "no-model" not in err and "failed" not in err


def test_a_symlinked_copy_gets_its_own_record_from_one_captioning(seed_bundle, seed_assets, tmp_path, capsys,
                                                                  monkeypatch):
    from imgcap_desktop.core.captioner import Captioner

    folder = tmp_path / "linked"
    folder.mkdir()
    shutil.copy(seed_assets["photos"][0], folder / "a.jpg")
    (folder / "b.jpg").symlink_to(folder / "a.jpg")
    asked = []
    real = Captioner.caption_paths
    monkeypatch.setattr(Captioner, "caption_paths", lambda self, paths, **kw: (asked.extend(paths), real(self, paths, **kw))[1])
    code = main(["caption", str(folder), "--model", str(seed_bundle), "--format", "jsonl", "--beam", "1"])
    out, _ = capsys.readouterr()
    assert code == 0
    records = {Path(r["image"]).name: r for r in map(json.loads, out.splitlines())}
    assert set(records) == {"a.jpg", "b.jpg"}
    assert records["b.jpg"]["caption"] == records["a.jpg"]["caption"] and records["b.jpg"]["status"] == "done"
    assert [p.name for p in asked] == ["a.jpg"]  # captioned once


def test_write_puts_captions_where_the_app_puts_them_and_each_record_says_so(seed_bundle, seed_assets, tmp_path,
                                                                              capsys):
    import numpy as np
    from PIL import Image

    from imgcap_desktop.core.export import read_sidecar
    from imgcap_desktop.core.metadata import read_description

    folder = tmp_path / "w"
    folder.mkdir()
    jpg, twin = folder / "x.jpg", folder / "x.png"
    shutil.copy(seed_assets["photos"][0], jpg)
    Image.open(seed_assets["photos"][1]).save(twin)
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff nothing")
    pixels = {p: np.asarray(Image.open(p)).copy() for p in (jpg, twin)}

    args = ["caption", str(folder), "--model", str(seed_bundle), "--format", "jsonl", "--beam", "1",
            "--write", "txt,metadata"]
    assert main(args) == 1  # the broken photo
    records = {Path(r["image"]).name: r for r in map(json.loads, capsys.readouterr().out.splitlines())}
    for photo in (jpg, twin):
        record = records[photo.name]
        assert [(w["target"], w["result"]) for w in record["written"]] == [("txt", "written"), ("metadata", "written")]
        sidecar = Path(record["written"][0]["path"])
        assert sidecar.name == f"{photo.name}.txt"  # x.jpg and x.png never share x.txt
        assert read_sidecar(photo) == record["caption"]
        assert set(read_description(photo).values()) == {record["caption"]}
        assert np.array_equal(np.asarray(Image.open(photo)), pixels[photo])  # pixels untouched
    assert records["broken.jpg"]["written"] == []

    # never (the default) keeps what is there; always replaces it.
    (folder / "x.jpg.txt").write_text("my own words\n")
    assert main(args) == 1
    records = {Path(r["image"]).name: r for r in map(json.loads, capsys.readouterr().out.splitlines())}
    assert [w["result"] for w in records["x.jpg"]["written"]] == ["kept", "kept"]
    assert read_sidecar(jpg) == "my own words"
    assert main(args + ["--overwrite", "always"]) == 1
    assert read_sidecar(jpg) == records["x.jpg"]["caption"]
    assert "imgcap: 4 written" in capsys.readouterr().err  # two photos, two targets each


def test_write_refuses_an_unknown_target(capsys, tmp_path):
    with pytest.raises(SystemExit):
        main(["caption", str(tmp_path), "--write", "txt,exif"])
    assert "unknown target exif" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["train", "evaluate", "ensemble", "export-litert"])
def test_a_build_without_tensorflow_says_which_commands_need_the_development_install(monkeypatch, capsys, command):
    # What the packaged command line sees: these modules are not in the build.
    import imgcap_desktop.core
    import imgcap_desktop.core.training

    for package, name in ((imgcap_desktop.core.training, "commands"), (imgcap_desktop.core, "export_litert")):
        monkeypatch.setitem(sys.modules, f"{package.__name__}.{name}", None)
        monkeypatch.delattr(package, name, raising=False)
    assert main([command, "--data", "x", "--out", "y"]) == 2
    err = capsys.readouterr().err
    assert f"imgcap {command} needs the development install" in err and "\n" == err[-1]
