"""The real engine (a small, randomly initialised bundle from tests/conftest.py) in
the real worker thread, with the GUI event loop kept responsive."""


import pytest
from PySide6.QtCore import QTimer

from imgcap_desktop.gui.queue_model import DONE, FAILED
from imgcap_desktop.gui.worker import default_loader

from .conftest import write_photo


@pytest.fixture
def real_bundle(request):
    # tiny_bundle is the small model made for these tests; seed_bundle (the legacy
    # topology) is the fallback while it is not there.
    for name in ("tiny_bundle", "seed_bundle"):
        try:
            return request.getfixturevalue(name)
        except pytest.FixtureLookupError:
            continue
    pytest.skip("no model bundle fixture in tests/conftest.py")


@pytest.mark.slow
def test_real_model_in_real_thread_keeps_the_event_loop_running(make_window, real_bundle, tmp_path, qtbot,
                                                                 shown_errors, idle):
    photos = [write_photo(tmp_path / "real" / f"p{i}.jpg", (160 + 7 * i, 120), (40 * i % 255, 90, 160)) for i in range(6)]
    broken = tmp_path / "real" / "broken.jpg"
    broken.write_bytes(b"not a jpeg at all")
    window = make_window(default_loader, load=False)
    window.settings.set("model_path", str(real_bundle))
    window.settings.set("caption_on_open", False)
    window.settings.set("batch_size", 1)  # one result per photo, so the loop can be seen between them
    window.show()
    window.load_model()
    qtbot.waitUntil(lambda: not window.loading, timeout=300_000)
    assert window.model_ready, shown_errors

    window.add_paths(photos + [broken])
    qtbot.waitUntil(lambda: not window.session.checking)
    window.caption_all()
    idle(window, 300_000)
    first = [r.text for r in window.queue.rows]

    # The GUI thread's timer and the worker's results, in the order the GUI thread saw them.
    events = []
    timer = QTimer()
    timer.setInterval(5)
    timer.timeout.connect(lambda: events.append("tick"))
    window.session.worker.result.connect(lambda *_: events.append("result"))
    timer.start()
    window.start_job(list(range(window.queue.rowCount())))
    idle(window, 300_000)
    timer.stop()
    assert [r.text for r in window.queue.rows] == first  # deterministic engine

    statuses = {r.name: r.status for r in window.queue.rows}
    assert statuses.pop("broken.jpg") == FAILED
    assert set(statuses.values()) == {DONE}
    results = [i for i, e in enumerate(events) if e == "result"]
    assert len(results) == 6
    # The window went on handling its own events while the worker captioned: timer ticks
    # arrived between the worker's results, not only before and after the job.
    assert "tick" in events[results[0]:results[-1]]
