"""`imgcap caption --engine ray` on a real local Ray: the same records as the local CLI, a worker
killed mid-run, broken photos, resuming, other sources, and a clear word without Ray."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import threading
import time
from pathlib import Path

import pytest

from imgcap_desktop.core.records import RECORD_KEYS

pytest.importorskip("ray.data")

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = sorted((ROOT / "resources" / "samples").glob("*.jpg"))


@pytest.fixture(scope="module")
def small_model(tmp_path_factory) -> Path:
    """A real attend bundle (random decoder) with its LiteRT export, made here: a fresh clone has
    no export of the default model before `make package`."""
    from imgcap_desktop.core.export_litert import export_bundle
    from tests.core.test_litert import make_attend_bundle

    bundle = make_attend_bundle(tmp_path_factory.mktemp("ray-model") / "attend")
    export_bundle(bundle)
    return bundle


@pytest.fixture
def litert(monkeypatch, small_model):
    # The workers run the LiteRT export: no TensorFlow import in each of them.
    monkeypatch.setenv("IMGCAP_RUNTIME", "litert")
    return small_model


@pytest.fixture
def photos(tmp_path) -> Path:
    folder = tmp_path / "photos"
    folder.mkdir()
    for sample in SAMPLES:
        shutil.copy(sample, folder / sample.name)
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    return folder


def run_cli(*args, model=None) -> int:
    from imgcap_desktop.cli import main

    extra = ["--model", str(model)] if model else []
    return main(["caption", *map(str, args), "--engine", "ray", "--no-progress", *extra])


def records_in(out: Path) -> dict[str, dict]:
    from imgcap_desktop.core.distributed import read_records

    records = read_records(out)
    by_image = {Path(r["image"]).name: r for r in records}
    assert len(by_image) == len(records), "a photo has more than one record"
    return by_image


@pytest.mark.slow
def test_ray_gives_the_local_clis_records_and_a_record_for_the_broken_photo(photos, tmp_path, litert, capsys):
    from imgcap_desktop.core.captioner import Captioner
    from imgcap_desktop.core.records import make_record

    out = tmp_path / "out"
    assert run_cli(photos, "--out", out, "--workers", "2", "--batch-size", "2", model=litert) == 1  # one failed
    got = records_in(out)
    local = Captioner.load(litert, runtime="litert")
    for result in local.caption_paths(sorted(photos.iterdir()), batch_size=2):
        expected = make_record(result.path, caption=result.caption, error=result.error)
        record = got[result.path.name]
        assert list(record) == list(RECORD_KEYS)
        assert record["caption"] == expected["caption"] and record["status"] == expected["status"]
        assert record["error"] == expected["error"]
        assert [a["caption"] for a in record["alternatives"]] == [a["caption"] for a in expected["alternatives"]]
    assert got["broken.jpg"]["status"] == "failed" and "broken.jpg" in got["broken.jpg"]["error"]
    assert "4 record(s) written" in capsys.readouterr().err

    # A second run with the same --out skips everything and says so.
    assert run_cli(photos, "--out", out, model=litert) == 0
    assert "skipped 4 photo(s) already captioned" in capsys.readouterr().err
    assert len(records_in(out)) == 4


@pytest.mark.slow
def test_a_worker_killed_mid_run_is_retried_and_every_photo_has_exactly_one_record(tmp_path, litert, monkeypatch):
    folder = tmp_path / "many"
    folder.mkdir()
    for i in range(300):  # enough work that the kill lands while both actors are busy
        os.link(SAMPLES[i % len(SAMPLES)], folder / f"p{i:03d}.jpg")
    pids = tmp_path / "pids"
    pids.mkdir()
    monkeypatch.setenv("IMGCAP_RAY_PID_FOLDER", str(pids))
    killed = []

    def kill_one():
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and len(list(pids.iterdir())) < 2:
            time.sleep(0.1)
        time.sleep(0.5)  # both actors are captioning by now
        victim = int(sorted(pids.iterdir())[0].read_text())
        os.kill(victim, signal.SIGKILL)
        killed.append(victim)

    killer = threading.Thread(target=kill_one, daemon=True)
    killer.start()
    out = tmp_path / "out"
    assert run_cli(folder, "--out", out, "--workers", "2", "--batch-size", "1", "--format", "parquet",
                   model=litert) == 0
    killer.join(5)
    assert killed, "no worker was killed"
    got = records_in(out)
    assert sorted(got) == sorted(p.name for p in folder.iterdir())
    assert {r["status"] for r in got.values()} == {"done"}
    assert len(list(pids.iterdir())) >= 3  # the killed actor was replaced


@pytest.mark.slow
def test_sources_can_be_a_text_file_of_paths_and_a_file_uri(photos, tmp_path, litert):
    listing = tmp_path / "list.txt"
    listing.write_text(f"# two photos\n{photos / 'coffee.jpg'}\n\n{photos / 'chelsea.jpg'}\n")
    out = tmp_path / "out"
    assert run_cli(listing, f"file://{photos / 'astronaut.jpg'}", "--out", out, "--workers", "1", model=litert) == 0
    got = records_in(out)
    assert sorted(got) == ["astronaut.jpg", "chelsea.jpg", "coffee.jpg"]
    assert got["astronaut.jpg"]["image"] == f"file://{photos / 'astronaut.jpg'}"
    assert all(r["status"] == "done" for r in got.values())


def test_without_ray_the_engine_says_how_to_install_it(monkeypatch, photos, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray now fails
    assert run_cli(photos, "--out", tmp_path / "out") == 2
    assert "pip install 'imgcap-desktop[distributed]'" in capsys.readouterr().err


def test_ray_options_without_the_ray_engine_are_refused(photos, tmp_path, capsys):
    from imgcap_desktop.cli import main

    assert main(["caption", str(photos), "--out", str(tmp_path / "x")]) == 2
    assert "go with --engine ray" in capsys.readouterr().err


def test_what_a_run_already_wrote_is_read_back_even_if_its_last_line_was_cut(tmp_path):
    from imgcap_desktop.core.distributed import already_done

    out = tmp_path / "out"
    out.mkdir()
    (out / "a.json").write_text(json.dumps({"image": "/p/1.jpg"}) + "\n" + '{"image": "/p/2.j')
    assert already_done(out) == {"/p/1.jpg"}
