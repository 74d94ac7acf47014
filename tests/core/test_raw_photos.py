"""Camera RAW through rawpy: real DNG files (tests/support/raw.py), both ways LibRaw gives pixels."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("rawpy")
pytest.importorskip("tifffile")

from imgcap_desktop.core.errors import ImageLoadError  # noqa: E402
from imgcap_desktop.core.images import IMAGE_EXTENSIONS, collect_images, load_rgb, thumbnail  # noqa: E402
from tests.support.raw import write_dng  # noqa: E402


def halves(image):
    a = np.asarray(image, dtype=np.float64)
    w = a.shape[1]
    return a[:, : w // 3].mean(axis=(0, 1)), a[:, -w // 3:].mean(axis=(0, 1))


def test_raw_suffixes_are_images():
    assert {".cr2", ".cr3", ".nef", ".arw", ".dng", ".raf", ".orf", ".rw2"} <= IMAGE_EXTENSIONS


def test_without_a_preview_the_sensor_data_is_developed_at_half_size(tmp_path):
    image = load_rgb(write_dng(tmp_path / "plain.dng"))
    assert image.mode == "RGB" and image.size == (192, 128)
    left, right = halves(image)
    assert left[0] > right[0] + 100 and right[2] > left[2] + 100  # red-orange left, blue right


def test_a_large_preview_is_used_and_the_orientation_applied(tmp_path):
    image = load_rgb(write_dng(tmp_path / "preview.dng", preview=(1024, 683)))
    assert image.size == (1024, 683)
    left, right = halves(image)
    assert left[0] > 180 and right[2] > 200
    turned = load_rgb(write_dng(tmp_path / "turned.dng", preview=(1024, 683), orientation=6))
    assert turned.size == (683, 1024)
    top = np.asarray(turned, dtype=np.float64)[: 300].mean(axis=(0, 1))
    assert top[0] > 150  # turned right: the left (red) half is now at the top
    developed = load_rgb(write_dng(tmp_path / "turned-plain.dng", orientation=6))
    assert developed.size == (128, 192)


def test_a_small_preview_is_not_enough_and_thumbnails_work(tmp_path):
    path = write_dng(tmp_path / "small.dng", preview=(160, 107))
    assert load_rgb(path).size == (192, 128)  # developed instead
    assert max(thumbnail(path, 64).size) == 64


def test_broken_raw_files_fail_with_a_sentence(tmp_path):
    good = write_dng(tmp_path / "good.dng")
    cut = tmp_path / "cut.dng"
    cut.write_bytes(good.read_bytes()[:300])
    fake = tmp_path / "fake.nef"
    fake.write_bytes(b"this is not a camera file at all" * 10)
    for path in (cut, fake):
        with pytest.raises(ImageLoadError, match=path.name):
            load_rgb(path)


def test_cli_captions_a_raw_file(tmp_path, capsys):
    from imgcap_desktop.cli import main
    from tests.core.test_litert import LITE0_WEIGHTS, make_attend_bundle

    if not LITE0_WEIGHTS.is_file():
        pytest.skip("the shipped EfficientNet-Lite0 weights are missing")
    bundle = make_attend_bundle(tmp_path / "b")
    photo = write_dng(tmp_path / "photos" / "IMG_0001.dng")
    (tmp_path / "photos" / "broken.cr2").write_bytes(b"\x00" * 100)
    found = collect_images([tmp_path / "photos"])
    assert sorted(p.name for p in found.images) == ["IMG_0001.dng", "broken.cr2"]
    code = main(["caption", str(tmp_path / "photos"), "--model", str(bundle), "--format", "jsonl", "--no-progress"])
    records = {json.loads(line)["image"]: json.loads(line) for line in capsys.readouterr().out.splitlines()}
    assert code == 1  # one photo failed
    assert records[str(photo)]["status"] == "done" and records[str(photo)]["caption"]
    assert "broken.cr2" in records[str(tmp_path / "photos" / "broken.cr2")]["error"]


CRASH = Path(__file__).resolve().parents[1] / "support" / "libraw-crash.dng"


def test_a_file_that_crashes_libraw_fails_alone_and_the_next_one_reads(tmp_path):
    # Found by the fuzz suite: a mutated DNG on which LibRaw itself dies with SIGSEGV ...
    code = subprocess.run([sys.executable, "-c", "import sys; from pathlib import Path; "
                           "from imgcap_desktop.core.raw_photos import _develop; "
                           "_develop(Path(sys.argv[1]), Path(sys.argv[1]).read_bytes(), None)", str(CRASH)],
                          capture_output=True).returncode
    assert code == -signal.SIGSEGV
    # ... which in the app is one photo's sentence, because LibRaw runs in a worker process.
    for _ in range(2):
        with pytest.raises(ImageLoadError, match="LibRaw crashed"):
            load_rgb(CRASH)
    assert load_rgb(write_dng(tmp_path / "after.dng")).size == (192, 128)


def test_decodes_from_several_threads_blame_only_the_crashing_file(tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    good = [write_dng(tmp_path / f"g{i}.dng") for i in range(4)]
    paths = [good[0], CRASH, good[1], good[2], CRASH, good[3]]

    def read(path):
        try:
            return load_rgb(path).size
        except ImageLoadError as exc:
            return str(exc)

    with ThreadPoolExecutor(3) as pool:
        results = list(pool.map(read, paths))
    assert [r for p, r in zip(paths, results) if p != CRASH] == [(192, 128)] * 4
    assert all("LibRaw crashed" in r for p, r in zip(paths, results) if p == CRASH)
