"""Sidecars and exports, written to real files in tmp_path."""

from __future__ import annotations

import csv
import json
import os
import stat
from pathlib import Path

import pytest

from imgcap_desktop.core.records import CSV_COLUMNS, make_record
from imgcap_desktop.core.errors import ImgcapError, SaveError, SidecarExistsError
from imgcap_desktop.core.export import (
    export_csv,
    export_jsonl,
    read_sidecar,
    sidecar_path,
    write_sidecar,
)

CAPTION = "Café — 猫"


def names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.fixture
def read_only_folder(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    (folder / "photo.jpg").write_bytes(b"\xff\xd8\xff\xd9")
    folder.chmod(0o555)
    yield folder
    folder.chmod(0o755)  # so pytest can clean up


# --- sidecars ------------------------------------------------------------------


def test_sidecar_path_same_folder_same_stem(tmp_path):
    assert sidecar_path(tmp_path / "photo.jpg") == tmp_path / "photo.txt"
    assert sidecar_path(tmp_path / "my.holiday.PNG") == tmp_path / "my.holiday.txt"


def test_two_photos_with_one_stem_never_share_a_caption_file(tmp_path):
    for name in ("x.jpg", "x.PNG", "y.jpg", "x.txt"):
        (tmp_path / name).write_bytes(b"")
    assert sidecar_path(tmp_path / "x.jpg") == tmp_path / "x.jpg.txt"
    assert sidecar_path(tmp_path / "x.PNG") == tmp_path / "x.PNG.txt"
    assert sidecar_path(tmp_path / "y.jpg") == tmp_path / "y.txt"  # alone with its stem: the usual name
    write_sidecar(tmp_path / "x.jpg", "a red photo")
    write_sidecar(tmp_path / "x.PNG", "a blue photo")
    assert read_sidecar(tmp_path / "x.jpg") == "a red photo" and read_sidecar(tmp_path / "x.PNG") == "a blue photo"
    assert (tmp_path / "x.txt").read_bytes() == b""  # an existing x.txt is nobody's and is left alone


def test_write_and_read_utf8_sidecar(tmp_path):
    image = tmp_path / "photo.jpg"
    out = write_sidecar(image, CAPTION)
    assert out == tmp_path / "photo.txt"
    assert out.read_bytes() == (CAPTION + "\n").encode("utf-8")
    assert read_sidecar(image) == CAPTION
    assert names(tmp_path) == ["photo.txt"]


def test_read_missing_sidecar_is_none(tmp_path):
    assert read_sidecar(tmp_path / "photo.jpg") is None


def test_read_sidecar_tolerates_bom_and_crlf(tmp_path):
    (tmp_path / "photo.txt").write_bytes("\ufeffa dog runs\r\n".encode("utf-8"))
    assert read_sidecar(tmp_path / "photo.jpg") == "a dog runs"


def test_caption_with_line_breaks_stays_one_line(tmp_path):
    write_sidecar(tmp_path / "p.jpg", "a dog\nruns  \r\n\non grass\n")
    assert (tmp_path / "p.txt").read_text("utf-8") == "a dog runs on grass\n"


def test_refuses_to_overwrite_existing_sidecar(tmp_path):
    image = tmp_path / "photo.jpg"
    (tmp_path / "photo.txt").write_text("hand-written caption\n", encoding="utf-8")
    with pytest.raises(SidecarExistsError) as info:
        write_sidecar(image, CAPTION)
    assert isinstance(info.value, SaveError) and isinstance(info.value, ImgcapError)
    assert info.value.path == tmp_path / "photo.txt"
    assert "photo.txt" in str(info.value)
    assert read_sidecar(image) == "hand-written caption"
    assert names(tmp_path) == ["photo.txt"]


def test_overwrite_true_replaces_and_keeps_mode(tmp_path):
    image = tmp_path / "photo.jpg"
    old = tmp_path / "photo.txt"
    old.write_text("old\n", encoding="utf-8")
    old.chmod(0o640)
    write_sidecar(image, CAPTION, overwrite=True)
    assert read_sidecar(image) == CAPTION
    assert stat.S_IMODE(old.stat().st_mode) == 0o640
    assert names(tmp_path) == ["photo.txt"]


def test_read_only_folder_raises_save_error_and_leaves_nothing(read_only_folder):
    with pytest.raises(SaveError) as info:
        write_sidecar(read_only_folder / "photo.jpg", CAPTION)
    assert "photo.txt" in str(info.value) and "read-only" in str(info.value)
    assert names(read_only_folder) == ["photo.jpg"]


def test_read_only_sidecar_is_not_overwritten(tmp_path):
    side = tmp_path / "photo.txt"
    side.write_text("keep me\n", encoding="utf-8")
    side.chmod(0o444)
    with pytest.raises(SaveError, match="read-only"):
        write_sidecar(tmp_path / "photo.jpg", CAPTION, overwrite=True)
    assert side.read_text("utf-8") == "keep me\n"
    assert names(tmp_path) == ["photo.txt"]


# --- CSV ---------------------------------------------------------------------------

TRICKY = [
    (Path("imgs/a.jpg"), 'a dog, "happy", runs'),
    ("b c.jpg", "line one\nline two"),
    ("ü.jpg", CAPTION),
    ("d.jpg", ""),
]


def test_csv_round_trips_with_csv_module(tmp_path):
    out = tmp_path / "captions.csv"
    # Raw records, not through make_record: the writer must keep line breaks and quotes intact.
    records = [{**make_record(p), "caption": c, "status": "done"} for p, c in TRICKY]
    export_csv(records, out)
    with out.open(encoding="utf-8", newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == list(CSV_COLUMNS)
    assert [(r[0], r[2]) for r in rows[1:]] == [(os.fspath(p), c) for p, c in TRICKY]
    with out.open(encoding="utf-8", newline="") as fh:
        assert [r["caption"] for r in csv.DictReader(fh)] == [c for _, c in TRICKY]


def test_csv_export_is_atomic_when_rows_fail(tmp_path):
    out = tmp_path / "captions.csv"
    out.write_text("previous export\n", encoding="utf-8")

    def rows():
        yield make_record("a.jpg", text="fine")
        raise RuntimeError("captioning crashed")

    with pytest.raises(RuntimeError):
        export_csv(rows(), out)
    assert out.read_text("utf-8") == "previous export\n"
    assert names(tmp_path) == ["captions.csv"]


def test_csv_into_read_only_folder(read_only_folder):
    with pytest.raises(SaveError, match="captions.csv"):
        export_csv([make_record(p, text=c) for p, c in TRICKY], read_only_folder / "captions.csv")
    assert names(read_only_folder) == ["photo.jpg"]


# --- JSON lines ---------------------------------------------------------------------


def test_jsonl_round_trips(tmp_path):
    records = [
        {"image": Path("a.jpg"), "caption": CAPTION, "score": -1.5},
        {"image": "b.jpg", "caption": 'quote " and\nnewline', "tokens": ["a", "b"]},
    ]
    out = tmp_path / "captions.jsonl"
    export_jsonl(records, out)
    text = out.read_text("utf-8")
    assert "猫" in text  # ensure_ascii=False keeps it readable
    lines = text.splitlines()
    assert len(lines) == 2
    back = [json.loads(line) for line in lines]
    assert back[0] == {"image": "a.jpg", "caption": CAPTION, "score": -1.5}
    assert back[1] == records[1]


def test_jsonl_unserialisable_record_leaves_nothing(tmp_path):
    out = tmp_path / "captions.jsonl"
    with pytest.raises(TypeError):
        export_jsonl([{"x": object()}], out)
    assert names(tmp_path) == []


# --- leftovers of a killed process ----------------------------------------------------

_SLOW_WRITER = """
import sys, time
from pathlib import Path
from imgcap_desktop.core.export import atomic_writer
with atomic_writer(Path(sys.argv[1])) as fh:
    fh.write(b"half of a photo")
    fh.flush()
    print("writing", flush=True)
    time.sleep(600)
"""


def test_a_temporary_file_left_by_a_killed_writer_is_removed_by_the_next_write(tmp_path):
    import signal
    import subprocess
    import sys

    photo = tmp_path / "photo.jpg"
    photo.write_bytes(b"the original")
    writer = subprocess.Popen([sys.executable, "-c", _SLOW_WRITER, str(photo)], stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout.readline().strip() == "writing"
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait(30)
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    assert len(leftovers) == 1 and ".imgcap-" in leftovers[0]
    assert photo.read_bytes() == b"the original"  # the kill changed no photo

    # Someone else's file that merely looks similar is never touched.
    (tmp_path / ".notes.tmp").write_text("not ours")
    write_sidecar(photo, "a caption")
    assert names(tmp_path) == sorted([".notes.tmp", "photo.jpg", "photo.txt"])
