"""A camera RAW file in the window: queued, thumbnailed, previewed and captioned like any photo."""

import pytest

pytest.importorskip("rawpy")
pytest.importorskip("tifffile")

from tests.support.raw import write_dng  # noqa: E402


def test_a_dng_is_previewed_and_captioned(make_window, tmp_path, qtbot, idle):
    photo = write_dng(tmp_path / "raw" / "IMG_0042.dng", preview=(1024, 683))
    window = make_window()
    window.show()
    [number] = window.add_paths([tmp_path / "raw"])
    idle(window)
    window.select_row(number)
    qtbot.waitUntil(lambda: window.preview.has_image(), timeout=10_000)
    rect = window.preview.photo_rect()
    assert abs(rect.width() / rect.height() - 1024 / 683) < 0.02
    image = window.preview.grab().toImage()
    left = image.pixelColor(rect.left() + rect.width() // 5, rect.center().y())
    right = image.pixelColor(rect.right() - rect.width() // 5, rect.center().y())
    assert left.red() > 150 and right.blue() > 150
    assert window.queue.row(number).text and window.queue.row(number).path == photo
