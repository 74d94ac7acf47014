"""The worker on its own: synchronously (its slots called directly) and in a real QThread."""

import threading

from PySide6.QtCore import QObject, Signal

from imgcap_desktop.core.options import DecodeOptions
from imgcap_desktop.gui.worker import Worker, WorkerThread, user_message

from .conftest import FakeLoader


class Recorder:
    def __init__(self, worker):
        self.events = []
        for name in ("model_loading", "model_ready", "model_failed", "started", "progress", "result", "failed", "finished"):
            getattr(worker, name).connect(lambda *args, n=name: self.events.append((n, *args)))

    def names(self):
        return [e[0] for e in self.events]

    def of(self, name):
        return [e[1:] for e in self.events if e[0] == name]


def test_load_then_caption_synchronously(qtbot, photos):
    loader = FakeLoader()
    worker = Worker(loader)
    rec = Recorder(worker)
    worker.load_model(None)
    assert rec.of("model_ready") == [("Fake model",)]
    assert loader.sources == [None]

    paths = [str(photos["red"]), str(photos["broken"]), str(photos["green"])]
    worker.caption(paths, DecodeOptions(beam=2, max_length=5, batch_size=4))
    assert rec.of("started") == [(3,)]
    assert [p for p, _ in rec.of("result")] == [paths[0], paths[2]]
    (failed_path, reason), = rec.of("failed")
    assert failed_path == paths[1] and "broken.jpg" in reason
    assert rec.of("progress") == [(1, 3), (2, 3), (3, 3)]
    assert rec.of("finished") == [(False,)]
    assert loader.captioner.calls[0]["beam"] == 2
    assert loader.captioner.calls[0]["max_length"] == 5
    assert loader.captioner.calls[0]["batch_size"] == 4


def test_caption_without_model_reports_and_finishes(qtbot, photos):
    worker = Worker(FakeLoader())
    rec = Recorder(worker)
    worker.caption([str(photos["red"])], DecodeOptions())
    assert rec.of("failed") == [("", "RuntimeError: No model is loaded yet.")]
    assert rec.of("finished") == [(False,)]


def test_loader_error_keeps_previous_model(qtbot):
    worker = Worker(FakeLoader())
    worker.load_model(None)
    rec = Recorder(worker)
    worker._loader = FakeLoader(fail="model.json is missing from the bundle.")
    worker.load_model("/nowhere")
    assert rec.of("model_failed") == [("model.json is missing from the bundle.",)]
    assert worker.has_model


def test_exception_inside_caption_becomes_failed_and_finished(qtbot, photos):
    worker = Worker(FakeLoader(raise_after=1))
    rec = Recorder(worker)
    worker.load_model(None)
    worker.caption([str(photos["red"]), str(photos["green"])], DecodeOptions())
    assert rec.of("result")[0][0] == str(photos["red"])
    assert rec.of("failed") == [("", "RuntimeError: the fake engine broke")]
    assert rec.names()[-1] == "finished" and rec.of("finished") == [(False,)]


def test_cancel_flag_stops_between_photos(qtbot, photos):
    worker = Worker(FakeLoader())
    worker.load_model(None)
    rec = Recorder(worker)
    worker.result.connect(lambda *_: worker.cancel())
    worker.caption([str(photos["red"]), str(photos["green"]), str(photos["blue"])], DecodeOptions())
    assert len(rec.of("result")) == 1
    assert rec.of("finished") == [(True,)]
    worker.clear_cancel()
    assert not worker.is_cancelled()


def test_cancel_after_the_last_photo_is_not_a_cancel(qtbot, photos):
    worker = Worker(FakeLoader())
    worker.load_model(None)
    rec = Recorder(worker)
    worker.progress.connect(lambda done, total: worker.cancel() if done == total else None)
    worker.caption([str(photos["red"])], DecodeOptions())
    assert rec.of("finished") == [(False,)]


def test_user_message_prefers_engine_sentences():
    from imgcap_desktop.core.errors import BundleError

    assert user_message(BundleError("manifest.json is not valid JSON.")) == "manifest.json is not valid JSON."
    assert user_message(ValueError("bad")) == "ValueError: bad"
    assert user_message(KeyError()) == "KeyError"


def test_default_loader_imports_the_engine_only_when_asked_and_reports_a_missing_model():
    """In a fresh interpreter: importing the worker loads no engine; a load does, and a
    folder that is no model gives the engine's own sentence."""
    import subprocess
    import sys

    script = (
        "import sys\n"
        "from imgcap_desktop.gui.worker import default_loader, user_message\n"
        "assert 'imgcap_desktop.core.captioner' not in sys.modules and 'tensorflow' not in sys.modules\n"
        "try:\n"
        "    default_loader('/no/such/model/folder')\n"
        "except Exception as exc:\n"
        "    print(user_message(exc))\n"
        "assert 'imgcap_desktop.core.captioner' in sys.modules\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "/no/such/model/folder" in done.stdout and "Error:" not in done.stdout


class _Collector(QObject):
    """Lives in the GUI thread, so cross-thread signals reach it queued, as in the app
    (a plain lambda would run in the emitting thread)."""

    def __init__(self):
        super().__init__()
        self.events = []

    def add(self, *args):
        self.events.append((*args, threading.get_ident()))


class _Requester(QObject):
    load = Signal(object)
    caption = Signal(list, object)


def _threaded(worker):
    """The worker in its own QThread, driven through queued signals as the window drives it."""
    runner = WorkerThread(worker)
    requester = _Requester()
    requester.load.connect(worker.load_model)
    requester.caption.connect(worker.caption)
    return runner, requester


def test_real_thread_runs_load_and_captions_off_the_gui_thread(qtbot, photos):
    loader = FakeLoader(delay=0.01)
    worker = Worker(loader)
    runner, requester = _threaded(worker)
    results, ready, finished = _Collector(), _Collector(), _Collector()
    worker.result.connect(results.add)
    worker.model_ready.connect(ready.add)
    worker.finished.connect(finished.add)
    try:
        requester.load.emit(None)
        qtbot.waitUntil(lambda: bool(ready.events), timeout=5000)
        requester.caption.emit([str(photos["red"]), str(photos["green"])], DecodeOptions(beam=1))
        qtbot.waitUntil(lambda: bool(finished.events), timeout=5000)
        assert finished.events[0][0] is False
    finally:
        assert runner.stop(5000)
    gui_thread = threading.get_ident()
    assert loader.threads and gui_thread not in loader.threads
    assert gui_thread not in loader.captioner.threads
    # Queued into the GUI thread: the receiving lambda ran here.
    assert [r[0] for r in results.events] == [str(photos["red"]), str(photos["green"])]
    assert {r[-1] for r in results.events} == {gui_thread}


def test_cancel_from_gui_thread_reaches_a_running_job(qtbot, photos, tmp_path):
    from .conftest import write_photo

    paths = [str(write_photo(tmp_path / "many" / f"p{i}.png", (16, 16))) for i in range(40)]
    worker = Worker(FakeLoader(delay=0.02))
    runner, requester = _threaded(worker)
    progress, ready, finished = _Collector(), _Collector(), _Collector()
    worker.progress.connect(progress.add)
    worker.model_ready.connect(ready.add)
    worker.finished.connect(finished.add)
    try:
        requester.load.emit(None)
        qtbot.waitUntil(lambda: bool(ready.events), timeout=5000)
        requester.caption.emit(paths, DecodeOptions())
        qtbot.waitUntil(lambda: len(progress.events) >= 3, timeout=5000)
        worker.cancel()
        qtbot.waitUntil(lambda: bool(finished.events), timeout=10000)
        assert finished.events[0][0] is True
        assert progress.events[-1][0] < len(paths)
    finally:
        assert runner.stop(5000)
