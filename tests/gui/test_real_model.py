"""The real engine (a small, randomly initialised bundle from tests/conftest.py) in
the real worker thread, with the GUI event loop kept responsive."""


import pytest
from PySide6.QtCore import QElapsedTimer, QTimer

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
def test_real_model_in_real_thread_keeps_event_loop_responsive(make_window, real_bundle, tmp_path, qtbot, shown_errors):
    photos = [write_photo(tmp_path / "real" / f"p{i}.jpg", (160 + 7 * i, 120), (40 * i % 255, 90, 160)) for i in range(6)]
    broken = tmp_path / "real" / "broken.jpg"
    broken.write_bytes(b"not a jpeg at all")
    window = make_window(default_loader, threaded=True, load=False)
    window.settings.set("model_path", str(real_bundle))
    window.auto_caption = False
    window.show()
    window.load_model()
    qtbot.waitUntil(lambda: not window._loading, timeout=300_000)
    assert window.model_ready, shown_errors

    window.add_paths(photos + [broken])
    # The first batch traces the TensorFlow graphs; tracing holds the GIL in long C++
    # stretches that no GUI code can avoid, so responsiveness is judged on the next one.
    window.caption_all()
    qtbot.waitUntil(lambda: not window.busy, timeout=300_000)
    first = [r.text for r in window.queue.rows]

    gaps = []
    clock = QElapsedTimer()
    clock.start()
    last = [clock.elapsed()]

    def tick():
        now = clock.elapsed()
        gaps.append(now - last[0])
        last[0] = now

    timer = QTimer()
    timer.setInterval(10)
    timer.timeout.connect(tick)
    timer.start()
    window.start_job(list(range(window.queue.rowCount())))
    qtbot.waitUntil(lambda: not window.busy, timeout=300_000)
    timer.stop()
    assert [r.text for r in window.queue.rows] == first  # deterministic engine

    statuses = {r.name: r.status for r in window.queue.rows}
    assert statuses.pop("broken.jpg") == FAILED
    assert set(statuses.values()) == {DONE}
    assert len(gaps) > 5
    assert max(gaps) < 100, f"the event loop stalled for {max(gaps)} ms"
