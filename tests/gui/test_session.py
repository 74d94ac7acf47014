"""The caption session without any widget: the real worker thread, a real (small) model,
a real SQLite file, and real second processes that are killed or run beside it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from imgcap_desktop.core.session_store import SessionStore
from imgcap_desktop.gui.queue_model import DONE, FAILED, WAITING
from imgcap_desktop.gui.session import CaptionSession
from imgcap_desktop.gui.worker import default_loader

from .conftest import FakeLoader, write_photo

CHILD = Path(__file__).resolve().parents[1] / "support" / "session_child.py"


@pytest.fixture
def sessions(qtbot):
    made = []

    def make(folder, loader=None):
        session = CaptionSession(loader or FakeLoader(), store_folder=folder)
        made.append(session)
        return session

    yield make
    for session in made:
        session.shutdown()


def wait_idle(qtbot, session, timeout=10_000):
    qtbot.waitUntil(lambda: session.idle, timeout=timeout)


def stored(folder: Path, name: str = "session.sqlite3") -> dict:
    store = SessionStore(folder / name)
    try:
        return {Path(p.path).name: p for p in store.photos()}
    finally:
        store.close()


def child(folder, mode, photos, **kwargs):
    return subprocess.Popen([sys.executable, str(CHILD), str(folder), mode, *map(str, photos)],
                            stdout=subprocess.PIPE, stdin=subprocess.PIPE, text=True,
                            cwd=Path(__file__).resolve().parents[2], **kwargs)


@pytest.mark.slow
def test_a_real_model_in_the_real_thread_captions_and_every_step_is_on_disk(sessions, seed_bundle, photos, qtbot,
                                                                           tmp_path):
    folder = tmp_path / "state"
    session = sessions(folder, default_loader)
    session.load_model(str(seed_bundle))
    qtbot.waitUntil(lambda: not session.loading, timeout=300_000)
    assert session.model_is_ready

    numbers = session.add_paths([photos["red"], photos["broken"], photos["green"]])
    qtbot.waitUntil(lambda: not session.checking)  # no caption was written for them before
    assert [p.status for p in stored(folder).values()] == [WAITING] * 3  # on disk before any caption
    finished = []
    session.job_finished.connect(lambda message, ok: finished.append(message))
    assert session.start_job(numbers)
    assert not session.idle
    wait_idle(qtbot, session, 300_000)
    assert finished == ["Captioned 2 photos, 1 failed in " + finished[0].split(" in ")[1]]

    red, broken, green = session.queue.rows
    assert red.status == DONE and red.text and red.caption.alternatives[0].text == red.text
    assert broken.status == FAILED and "broken.jpg" in broken.error
    on_disk = stored(folder)
    assert on_disk["red.jpg"].text == red.text and on_disk["red.jpg"].caption == red.caption
    assert on_disk["broken.jpg"].status == FAILED and on_disk["broken.jpg"].error == broken.error

    session.edit(0, "a red square")
    assert stored(folder)["red.jpg"].text == "a red square" and stored(folder)["red.jpg"].unsaved


def test_edits_undo_and_redo_and_typing_merges_into_one_step(sessions, photos, qtbot, tmp_path):
    folder = tmp_path / "state"
    session = sessions(folder)
    session.load_model(None)
    qtbot.waitUntil(lambda: session.model_is_ready)
    session.start_job(session.add_paths([photos["red"], photos["green"]]))
    wait_idle(qtbot, session)
    model_text = session.queue.rows[0].text
    for typed in ("a", "a r", "a red"):  # keystrokes
        session.edit(0, typed, typing=True)
    session.edit(1, "green")
    stack = session.undo_stack
    assert stack.count() == 2
    stack.undo()
    assert session.queue.rows[1].text != "green" and stored(folder)["green.png"].text == session.queue.rows[1].text
    stack.undo()
    assert session.queue.rows[0].text == model_text and not session.queue.rows[0].edited
    assert stored(folder)["red.jpg"].text == model_text
    stack.redo()
    assert session.queue.rows[0].text == "a red" and session.queue.rows[0].edited

    # Captioning again over an edit replaces it, and undo brings the edit back.
    session.start_job([0])
    wait_idle(qtbot, session)
    assert session.queue.rows[0].text == model_text
    stack.undo()
    assert session.queue.rows[0].text == "a red" and stored(folder)["red.jpg"].text == "a red"


def test_the_next_session_restores_the_queue_and_what_is_unsaved(sessions, photos, qtbot, tmp_path):
    folder = tmp_path / "state"
    first = sessions(folder)
    first.load_model(None)
    qtbot.waitUntil(lambda: first.model_is_ready)
    first.start_job(first.add_paths([photos["red"], photos["broken"], photos["green"]]))
    wait_idle(qtbot, first)
    first.edit(0, "an edit never saved")
    first.save_sidecars([first.queue.rows[2]], policy="overwrite", ask=None)
    first.shutdown()

    second = sessions(folder)
    assert len(second.restorable) == 3 and second.queue.rowCount() == 0  # the view decides
    assert second.restore() == 3
    red, broken, green = second.queue.rows
    assert red.text == "an edit never saved" and red.edited and red.unsaved
    assert broken.status == FAILED and "broken.jpg" in broken.error
    assert green.status == DONE and not green.unsaved and green.caption.alternatives
    assert [r.unsaved for r in second.queue.unsaved()] == [True]


def test_a_kill_at_any_moment_keeps_every_finished_edit(tmp_path):
    """SIGKILL while the other process edits as fast as it can: the file opens, is intact,
    and holds at least every edit that process reported as done."""
    folder = tmp_path / "state"
    photos = [write_photo(tmp_path / "p" / f"{n}.jpg") for n in ("a", "b", "c")]
    process = child(folder, "edit", photos)
    last = -1
    try:
        for line in process.stdout:
            last = int(line)
            if last >= 300:
                break
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.wait(30)
    assert process.returncode == -signal.SIGKILL and last >= 300

    store = SessionStore(folder / "session.sqlite3")
    try:
        assert store.integrity_ok()
        texts = {Path(p.path).name: p.text for p in store.photos()}
    finally:
        store.close()
    assert set(texts) == {"a.jpg", "b.jpg", "c.jpg"}
    newest = int(texts[photos[last % 3].name].split()[1])
    assert newest >= last  # that edit, or a later one that finished after the print
    assert all(text.startswith("edit ") for text in texts.values())


def test_two_instances_use_two_files_and_the_next_launch_gathers_both(sessions, tmp_path, qtbot):
    folder = tmp_path / "state"
    mine = write_photo(tmp_path / "p" / "mine.jpg")
    theirs = write_photo(tmp_path / "p" / "theirs.jpg")
    other = child(folder, "hold", [theirs])
    try:
        assert other.stdout.readline().strip() == "ready"
        session = sessions(folder)
        assert session.store is not None and session.store.path.name == "session-2.sqlite3"
        assert session.restorable == []  # the other instance's queue stays its own while it runs
        session.add_paths([mine])
        session.edit(0, "typed here")
        other.stdin.write("quit\n")
        other.stdin.flush()
        assert other.wait(60) == 0
    finally:
        if other.poll() is None:
            other.kill()
    assert stored(folder, "session.sqlite3")["theirs.jpg"].text == "typed in the other instance"
    session.shutdown()

    # One launch later: both queues come back, and the second file is folded into the first.
    after = sessions(folder)
    assert after.store.path.name == "session.sqlite3"
    assert {Path(p.path).name: p.text for p in after.restorable} == {
        "theirs.jpg": "typed in the other instance", "mine.jpg": "typed here"}
    assert not (folder / "session-2.sqlite3").exists()


def test_a_session_file_that_cannot_be_written_is_reported_and_work_goes_on(sessions, photos, tmp_path):
    folder = tmp_path / "state"
    folder.mkdir()
    (folder / "session.sqlite3").write_bytes(b"this is not a database, it is a text file" * 100)
    session = sessions(folder)
    messages = []
    session.store_failed.connect(messages.append)
    # The broken file was reported while opening, before anyone could listen: it is kept.
    assert session.store is None and "session.sqlite3" in session.store_error
    assert session.add_paths([photos["red"]]) == [0]  # the queue works without the file
    session.edit(0, "still editable")
    assert session.queue.rows[0].text == "still editable"
    assert (folder / "session.sqlite3").read_bytes().startswith(b"this is not a database")


def test_a_store_that_fails_midway_says_so_once(sessions, photos, tmp_path):
    session = sessions(tmp_path / "state")
    messages = []
    session.store_failed.connect(messages.append)
    session.store._db.close()  # every later write fails, as on a disk that went away
    session.add_paths([photos["red"]])
    session.edit(0, "typed")
    assert len(messages) == 1 and "cannot be written" in messages[0]
    assert session.queue.rows[0].text == "typed"


def test_a_version_1_session_file_is_migrated_and_keeps_every_photo(tmp_path):
    import sqlite3

    import numpy as np

    from imgcap_desktop.core.results import Alternative, Caption
    from imgcap_desktop.core.session_store import StoredPhoto

    path = tmp_path / "old.sqlite"
    db = sqlite3.connect(path)
    db.executescript("""
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        CREATE TABLE photos (path TEXT PRIMARY KEY, position INTEGER NOT NULL, status TEXT NOT NULL,
            text TEXT NOT NULL DEFAULT '', saved_text TEXT NOT NULL DEFAULT '', edited INTEGER NOT NULL DEFAULT 0,
            error TEXT NOT NULL DEFAULT '', caption TEXT, source TEXT NOT NULL DEFAULT '', updated REAL NOT NULL);
        INSERT INTO meta VALUES ('schema', '1');
        INSERT INTO photos VALUES ('/p/a.jpg', 0, 'done', 'a dog', '', 0, '',
            '{"text": "a dog", "score": -0.5, "alternatives": [["a dog", -1.0, -0.5]]}', '', 0);
    """)
    db.commit()
    db.close()
    store = SessionStore(path)
    [photo] = store.photos()
    assert photo.text == "a dog" and photo.keywords is None and photo.caption.confidence is None
    store.update("/p/a.jpg", keywords=("dog", "grass"))
    caption = Caption("a cat", -0.4, (Alternative("a cat", -0.8, -0.4),), attention=np.full((3, 50), 0.02),
                      confidence=0.61, keywords=("cat",))
    store.add([StoredPhoto("/p/b.jpg", "done", "a cat", caption=caption)])
    store.close()
    again = SessionStore(path)
    a, b = again.photos()
    assert a.keywords == ("dog", "grass") and b.keywords is None
    assert b.caption.confidence == 0.61 and b.caption.keywords == ("cat",)
    assert b.caption.attention.shape == (3, 50)
    assert sqlite3.connect(path).execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()[0] == "2"
