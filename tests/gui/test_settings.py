"""QSettings round trips for every entry of core.options.OPTIONS."""

from PySide6.QtCore import QSettings

from imgcap_desktop.core.options import OPTIONS
from imgcap_desktop.gui.settings import Settings


def changed_value(option):
    if option.type is bool:
        return not option.default
    if option.type is int:
        return (option.minimum or 0) + 1 if option.default != (option.minimum or 0) + 1 else (option.minimum or 0) + 2
    if option.type is list:
        return ["/a/b", "/c d/é"]
    if option.type is bytes:
        return b"\x00\x01binary\xff"
    if option.type is float:
        return 0.5
    if option.choices:
        return next(c for c in reversed(option.choices) if c != option.default)
    return "/some/folder"


def ini(tmp_path):
    return QSettings(str(tmp_path / "rt.ini"), QSettings.Format.IniFormat)


def test_defaults_when_nothing_is_stored(tmp_path):
    settings = Settings(ini(tmp_path))
    assert settings.all() == {o.name: o.default for o in OPTIONS}


def test_every_option_round_trips_through_a_new_settings_object(tmp_path):
    first = Settings(ini(tmp_path))
    wanted = {option.name: changed_value(option) for option in OPTIONS}
    for name, value in wanted.items():
        first.set(name, value)
    first.sync()
    second = Settings(ini(tmp_path))
    assert second.all() == wanted


def test_single_and_empty_lists_round_trip(tmp_path):
    first = Settings(ini(tmp_path))
    first.set("recent_files", ["/only/one.jpg"])
    first.set("recent_models", [])
    first.sync()
    second = Settings(ini(tmp_path))
    assert second.get("recent_files") == ["/only/one.jpg"]
    assert second.get("recent_models") == []


def test_bad_stored_values_fall_back_to_defaults(tmp_path):
    store = ini(tmp_path)
    store.setValue("beam", "lots")
    store.setValue("batch_size", 100000)
    store.setValue("sidecar_overwrite", "shred")
    store.setValue("window_geometry", "not bytes")
    settings = Settings(store)
    for name in ("beam", "batch_size", "sidecar_overwrite", "window_geometry"):
        assert settings.get(name) == next(o.default for o in OPTIONS if o.name == name)


def test_recent_lists_keep_ten_most_recent_first(tmp_path):
    settings = Settings(ini(tmp_path))
    for number in range(12):
        settings.add_recent("recent_models", f"/models/{number}")
    settings.add_recent("recent_models", "/models/5")
    recent = settings.get("recent_models")
    assert len(recent) == 10 and recent[0] == "/models/5" and recent.count("/models/5") == 1
    assert recent[1] == "/models/11"


def test_window_geometry_and_splitter_are_restored(make_window, settings, qtbot):
    window = make_window(load=False)
    window.show()
    window.resize(700, 520)  # the offscreen screen is 800 wide
    window.splitter.setSizes([300, 600])
    sizes = window.splitter.sizes()
    window.close()
    assert settings.get("window_geometry") and settings.get("window_state")
    again = make_window(load=False)
    again.show()
    assert again.size().width() == 700 and again.size().height() == 520
    assert again.splitter.sizes() == sizes
