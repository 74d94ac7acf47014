"""Shared fixtures for the GUI tests: headless Qt, throwaway settings, real photo files,
and a small pure-Python captioner with the engine's interface."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import threading
import time
from pathlib import Path

import pytest
from PIL import Image

from imgcap_desktop.core.errors import BundleError, ImgcapError
from imgcap_desktop.core.results import Alternative, Caption, CaptionResult


class FakeCaptioner:
    """Deterministic stand-in for core.captioner.Captioner (no TensorFlow).

    It really opens each photo (so broken files fail the way they would in the
    engine), can be slowed down, and can be told to raise after some photos.
    """

    def __init__(self, source=None, *, delay=0.0, raise_after=None, name="Fake model"):
        self.source = source
        self.name = name
        self.description = "a pure-Python test captioner"
        self.delay = delay
        self.raise_after = raise_after
        self.calls: list[dict] = []
        self.threads: set[int] = set()

    def caption_paths(self, paths, *, beam=3, max_length=0, batch_size=8, length_penalty=None,
                      keyword_guide=None, cancelled=None):
        from imgcap_desktop.core.images import load_rgb

        self.calls.append({"paths": list(paths), "beam": beam, "max_length": max_length, "batch_size": batch_size,
                           "length_penalty": length_penalty})
        for number, path in enumerate(paths):
            if cancelled is not None and cancelled():
                return
            if self.raise_after is not None and number >= self.raise_after:
                raise RuntimeError("the fake engine broke")
            self.threads.add(threading.get_ident())
            if self.delay:
                time.sleep(self.delay)
            try:
                image = load_rgb(path)
            except ImgcapError as exc:
                yield CaptionResult(Path(path), error=str(exc))
                continue
            yield CaptionResult(Path(path), caption=make_caption(Path(path), image.size, beam))


def make_caption(path: Path, size, beam: int) -> Caption:
    beam = beam or 3  # 0 asks for the model's recommended width
    words = f"a photo named {path.stem} of {size[0]} by {size[1]} pixels"
    count = len(words.split()) + 1
    alternatives = tuple(
        Alternative(words if k == 0 else f"{words} variant {k}", -1.5 - k, (-1.5 - k) / (count + (k > 0)))
        for k in range(max(beam, 1))
    )
    return Caption(text=words, score=alternatives[0].score, alternatives=alternatives)


class FakeLoader:
    """Injectable loader: records what it was asked to load and in which thread."""

    def __init__(self, fail: str | None = None, load_delay: float = 0.0, **captioner_kwargs):
        self.fail = fail
        self.load_delay = load_delay
        self.captioner_kwargs = captioner_kwargs
        self.sources: list = []
        self.threads: set[int] = set()
        self.captioner: FakeCaptioner | None = None

    def __call__(self, source):
        self.sources.append(source)
        self.threads.add(threading.get_ident())
        if self.load_delay:
            time.sleep(self.load_delay)
        if self.fail:
            raise BundleError(self.fail)
        self.captioner = FakeCaptioner(source, **self.captioner_kwargs)
        return self.captioner


def write_photo(path: Path, size=(64, 48), colour=(200, 80, 40), exif_orientation: int | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.new("RGB", size, colour)
    kwargs = {}
    if exif_orientation is not None:
        exif = Image.Exif()
        exif[0x0112] = exif_orientation
        kwargs["exif"] = exif.tobytes()
    image.save(path, **kwargs)
    return path


@pytest.fixture
def photos(tmp_path) -> dict:
    """A folder with three real photos, a broken one and two non-image files."""
    folder = tmp_path / "photos"
    files = {
        "red": write_photo(folder / "red.jpg", (80, 60), (220, 30, 30)),
        "green": write_photo(folder / "green.png", (60, 80), (30, 200, 30)),
        "blue": write_photo(folder / "sub" / "blue.jpg", (50, 50), (30, 30, 220)),
    }
    broken = folder / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 this is not really a jpeg")
    files["broken"] = broken
    (folder / "notes.txt").write_text("not a photo")
    (folder / "data.csv").write_text("a,b\n")
    files["folder"] = folder
    return files


@pytest.fixture
def settings(tmp_path):
    from PySide6.QtCore import QSettings

    from imgcap_desktop.gui.settings import Settings

    return Settings(QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat))


@pytest.fixture(autouse=True)
def shown_errors(monkeypatch) -> list:
    """Records error messages instead of opening boxes; the tests assert on them."""
    from imgcap_desktop.gui import dialogs

    errors: list[tuple[str, str]] = []
    monkeypatch.setattr(dialogs, "show_error", lambda parent, title, message: errors.append((title, message)))
    return errors


@pytest.fixture(autouse=True)
def no_unexpected_questions(monkeypatch):
    from imgcap_desktop.gui import dialogs

    def unexpected(*args, **kwargs):
        raise AssertionError("a modal question was asked that the test did not expect")

    monkeypatch.setattr(dialogs, "ask_overwrite", unexpected)
    monkeypatch.setattr(dialogs, "ask_unsaved", unexpected)
    monkeypatch.setattr(dialogs, "ask_restore", unexpected)
    monkeypatch.setattr(dialogs, "ask_rewrite", unexpected)


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    from imgcap_desktop.gui import main_window

    def cache_dir(*parts):
        folder = tmp_path.joinpath("cache", *parts)
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    monkeypatch.setattr(main_window, "cache_dir", cache_dir)


@pytest.fixture
def session_folder(tmp_path):
    """Where the windows of one test keep their session file (a real SQLite file)."""
    return tmp_path / "session"


@pytest.fixture
def make_window(qtbot, settings, session_folder):
    """Builds MainWindow instances, with the real worker thread, that are always shut down at the end.

    With ``load`` the model is loaded and waited for.
    """
    from imgcap_desktop.gui.main_window import MainWindow

    windows = []

    def make(loader=None, *, load=True, **kwargs):
        loader = loader if loader is not None else FakeLoader(**kwargs)
        window = MainWindow(settings, loader, load_on_start=False, session_folder=session_folder)
        # pytest-qt closes its widgets when the test ends: shut down first, so that close asks nothing.
        qtbot.addWidget(window, before_close_func=lambda w: w.shutdown())
        window.loader = loader  # convenient handle for the tests
        windows.append(window)
        if load:
            window.load_model()
            qtbot.waitUntil(lambda: not window.loading, timeout=10_000)
        return window

    yield make
    for window in windows:
        window.shutdown()


@pytest.fixture
def idle(qtbot):
    """Waits until a window's (or session's) job has finished."""

    def wait(target, timeout=10_000):
        session = getattr(target, "session", target)
        qtbot.waitUntil(lambda: session.idle and not session.checking, timeout=timeout)

    return wait
