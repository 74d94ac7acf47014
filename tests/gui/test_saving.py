"""Sidecars (with the overwrite question), exports and writing into the photo."""

import csv
import json

import pytest

from imgcap_desktop.core import metadata
from imgcap_desktop.gui import dialogs

from .conftest import write_photo


@pytest.fixture
def captioned(make_window, tmp_path, idle):
    """A window whose queue holds three captioned photos."""
    window = make_window()
    paths = [write_photo(tmp_path / "set" / f"{name}.jpg") for name in ("one", "two", "three")]
    window.add_paths(paths)
    idle(window)
    window.select_row(0)
    assert all(r.text for r in window.queue.rows)
    return window, paths


def ask_recorder(monkeypatch, answers):
    asked = []

    def ask(parent, path, many=False, photo=None):
        asked.append((path.name, many))
        assert photo is not None and photo.suffix == ".jpg"  # the question names the photo too
        return answers.pop(0)

    monkeypatch.setattr(dialogs, "ask_overwrite", ask)
    return asked


def test_save_sidecar_writes_the_edited_caption(captioned):
    window, paths = captioned
    window.caption_edit.setPlainText("a hand-written\ncaption")
    window.save_sidecar()
    assert (paths[0].with_suffix(".txt")).read_text(encoding="utf-8") == "a hand-written caption\n"
    assert "Saved 1 caption file" in window.statusBar().currentMessage()


@pytest.mark.parametrize("answer, expected", [("no", "old text\n"), ("yes", None)])
def test_existing_sidecar_asks_before_overwriting(captioned, monkeypatch, answer, expected):
    window, paths = captioned
    sidecar = paths[0].with_suffix(".txt")
    sidecar.write_text("old text\n")
    asked = ask_recorder(monkeypatch, [answer])
    window.save_sidecar()
    assert asked == [("one.txt", False)]
    content = sidecar.read_text()
    assert content == (expected or window.queue.rows[0].text + "\n")


@pytest.mark.parametrize("answer", ["yes_all", "no_all"])
def test_save_all_asks_once_with_yes_to_all_or_no_to_all(captioned, monkeypatch, answer):
    window, paths = captioned
    for path in paths:
        path.with_suffix(".txt").write_text("old\n")
    asked = ask_recorder(monkeypatch, [answer])
    window.save_all_sidecars()
    assert asked == [("one.txt", True)]
    contents = [p.with_suffix(".txt").read_text() for p in paths]
    if answer == "yes_all":
        assert contents == [r.text + "\n" for r in window.queue.rows]
    else:
        assert contents == ["old\n"] * 3
        assert "kept 3 existing" in window.statusBar().currentMessage()


@pytest.mark.parametrize("policy", ["skip", "overwrite"])
def test_overwrite_policy_from_settings_never_asks(captioned, settings, policy):
    window, paths = captioned
    settings.set("sidecar_overwrite", policy)
    for path in paths[:2]:
        path.with_suffix(".txt").write_text("old\n")
    window.save_all_sidecars()  # the autouse fixture fails the test if it asks
    contents = [p.with_suffix(".txt").read_text() for p in paths]
    rows = window.queue.rows
    if policy == "skip":
        assert contents == ["old\n", "old\n", rows[2].text + "\n"]
    else:
        assert contents == [r.text + "\n" for r in rows]


def test_unwritable_sidecar_shows_error_and_app_continues(captioned, settings, shown_errors):
    window, paths = captioned
    settings.set("sidecar_overwrite", "overwrite")
    paths[1].with_suffix(".txt").mkdir()  # a folder where the caption file should go
    report = window._write_sidecars(window.queue.rows)
    assert report.saved == 2 and len(report.errors) == 1
    assert shown_errors and shown_errors[0][0] == "Some captions were not saved"
    assert "two.txt" in shown_errors[0][1]
    assert paths[2].with_suffix(".txt").exists()


def test_export_csv_and_jsonl_in_the_one_record_schema(captioned, tmp_path, monkeypatch, photos, idle):
    from imgcap_desktop.core.records import CSV_COLUMNS, RECORD_KEYS

    window, paths = captioned
    window.add_paths([photos["broken"]])
    idle(window)
    window.select_row(1)
    window.caption_edit.setPlainText("edited two")

    monkeypatch.setattr(dialogs, "ask_export_path", lambda parent, start="": tmp_path / "out.csv")
    window.export()
    with open(tmp_path / "out.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == list(CSV_COLUMNS)
    # Failed photos are in the CSV too, with their reason.
    assert [Path_name(r["image"]) for r in rows] == ["one.jpg", "two.jpg", "three.jpg", "broken.jpg"]
    assert rows[1]["caption"] == "edited two" and rows[1]["edited"] == "true"
    assert rows[3]["status"] == "failed" and "broken.jpg" in rows[3]["error"] and rows[3]["caption"] == ""

    assert window.export_to(tmp_path / "out.jsonl")
    records = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert all(list(r) == list(RECORD_KEYS) for r in records)  # the same keys, failed or not
    assert [Path_name(r["image"]) for r in records] == ["one.jpg", "two.jpg", "three.jpg", "broken.jpg"]
    assert records[1]["edited"] is True and records[1]["caption"] == "edited two"
    assert len(records[0]["alternatives"]) == 3 and records[0]["score"] == records[0]["alternatives"][0]["score"]
    assert set(records[0]["alternatives"][0]) == {"caption", "score", "log_prob"}
    assert records[3]["status"] == "failed" and "broken.jpg" in records[3]["error"]
    assert records[3]["caption"] is None and records[3]["alternatives"] == [] and records[3]["score"] is None


def test_export_cancelled_dialog_writes_nothing(captioned, tmp_path, monkeypatch):
    window, _ = captioned
    monkeypatch.setattr(dialogs, "ask_export_path", lambda parent, start="": None)
    window.export()
    assert not list(tmp_path.glob("*.csv"))


def test_export_error_is_shown(captioned, tmp_path, shown_errors):
    window, _ = captioned
    assert not window.export_to(tmp_path / "no" / "such" / "folder" / "out.csv")
    assert shown_errors and shown_errors[0][0] == "Export failed"


def test_write_into_photo(captioned):
    window, paths = captioned
    window.write_into_photo()
    stored = metadata.read_description(paths[0])
    found = set(stored.values()) if isinstance(stored, dict) else {stored}
    assert found == {window.queue.rows[0].text}
    assert "written into one.jpg" in window.statusBar().currentMessage()


def test_write_into_photo_error_changes_nothing(captioned, shown_errors):
    window, paths = captioned
    paths[0].unlink()  # gone since it was queued
    window.write_into_photo()
    assert shown_errors and shown_errors[0][0] == "Caption not written into the photo"
    assert window.act_caption_all.isEnabled()


def _descriptions(paths):
    from imgcap_desktop.core.metadata import read_description

    found = []
    for path in paths:
        stored = read_description(path)
        found.append(set(v for v in stored.values() if v) if isinstance(stored, dict) else {stored})
    return found


def test_write_all_into_photos_asks_first_and_writes_every_caption(captioned, monkeypatch):
    window, paths = captioned
    asked = []
    monkeypatch.setattr(dialogs, "confirm_write_all", lambda parent, count: asked.append(count) or False)
    window.act_write_all.trigger()
    assert asked == [3] and _descriptions(paths) == [set(), set(), set()]
    monkeypatch.setattr(dialogs, "confirm_write_all", lambda parent, count: True)
    window.queue.rows[1].text = "an edited   caption"
    window.act_write_all.trigger()
    assert _descriptions(paths) == [{window.queue.rows[0].text}, {"an edited caption"}, {window.queue.rows[2].text}]
    assert "written into 3 photos" in window.statusBar().currentMessage()


def test_write_all_into_photos_goes_on_past_a_failure(captioned, monkeypatch, shown_errors):
    window, paths = captioned
    monkeypatch.setattr(dialogs, "confirm_write_all", lambda parent, count: True)
    paths[1].unlink()
    window.write_all_into_photos()
    assert shown_errors and shown_errors[0][0] == "Some captions were not written into their photos"
    assert "two.jpg" in shown_errors[0][1]
    assert _descriptions([paths[0], paths[2]]) == [{window.queue.rows[0].text}, {window.queue.rows[2].text}]
    assert "2 photos, 1 failed" in window.statusBar().currentMessage()
    assert window.act_write_all.isEnabled() and window.act_caption_all.isEnabled()


def test_saving_buttons_follow_the_caption(make_window, photos):
    window = make_window(load=False)
    window.add_paths([photos["red"]])
    assert not window.act_save.isEnabled() and not window.act_copy.isEnabled()
    window.caption_edit.setPlainText("typed by hand")
    assert window.act_save.isEnabled() and window.act_copy.isEnabled()


def Path_name(text):
    from pathlib import Path

    return Path(text).name


def test_write_all_into_photos_can_be_cancelled_part_way(captioned, monkeypatch):
    window, paths = captioned
    monkeypatch.setattr(dialogs, "confirm_write_all", lambda parent, count: True)
    real_progress = dialogs.write_progress

    def cancelled_after_one(parent, total):
        # The real dialog, with its Cancel pressed once the first photo is written.
        dialog = real_progress(parent, total)
        original = dialog.setValue
        dialog.setValue = lambda value: (original(value), dialog.cancel() if value == 1 else None)
        return dialog

    monkeypatch.setattr(dialogs, "write_progress", cancelled_after_one)
    window.write_all_into_photos()
    assert _descriptions(paths) == [{window.queue.rows[0].text}, set(), set()]
    assert "into 1 photo; cancelled, 2 left as they were" in window.statusBar().currentMessage()


def test_save_all_gives_two_photos_with_one_stem_their_own_files(make_window, tmp_path, idle):
    window = make_window()
    jpg = write_photo(tmp_path / "pair" / "x.jpg", colour=(200, 0, 0))
    png = write_photo(tmp_path / "pair" / "x.png", (30, 20), colour=(0, 0, 200))
    window.add_paths([jpg, png])
    idle(window)
    window.save_all_sidecars()  # no question: neither file exists, and they are not the same file
    assert (tmp_path / "pair" / "x.jpg.txt").read_text() == window.queue.rows[0].text + "\n"
    assert (tmp_path / "pair" / "x.png.txt").read_text() == window.queue.rows[1].text + "\n"
    assert not (tmp_path / "pair" / "x.txt").exists()


def test_quitting_with_unsaved_captions_asks_and_cancel_keeps_the_window(captioned, monkeypatch):
    window, paths = captioned
    window.show()
    asked = []
    monkeypatch.setattr(dialogs, "ask_unsaved", lambda parent, count: asked.append(count) or dialogs.CANCEL)
    assert not window.close()
    assert asked == [3] and window.isVisible()

    window.save_sidecar()  # one of the three is saved: two are left to ask about
    window.caption_edit.setPlainText("an edit after the save")
    window.select_row(1)
    window.save_sidecar()
    monkeypatch.setattr(dialogs, "ask_unsaved", lambda parent, count: asked.append(count) or dialogs.SAVE_ALL)
    replace = ask_recorder(monkeypatch, ["yes"])  # one.txt exists (saved before the edit): asked as ever
    assert window.close()
    assert replace == [("one.txt", True)]
    assert asked == [3, 2]
    assert paths[0].with_suffix(".txt").read_text() == "an edit after the save\n"
    assert paths[2].with_suffix(".txt").read_text() == window.queue.rows[2].text + "\n"


def test_quitting_with_nothing_unsaved_or_after_discard_asks_no_more(captioned, monkeypatch):
    window, paths = captioned
    window.show()
    asked = []
    monkeypatch.setattr(dialogs, "ask_unsaved", lambda parent, count: asked.append(count) or dialogs.DISCARD)
    assert window.close()
    assert asked == [3] and not any(p.with_suffix(".txt").exists() for p in paths)


def test_save_sidecar_writes_what_settings_choose_xmp_and_caption_files(captioned, monkeypatch):
    from imgcap_desktop.core import xmp_sidecar

    window, paths = captioned
    window.settings.set("sidecar_kind", "txt+xmp")
    window.settings.set("caption_extension", ".caption")
    window.settings.set("xmp_naming", "base")
    window.session.set_keywords(0, ("square", "orange"))
    window.save_all_sidecars()
    for row, path in zip(window.queue.rows, paths):
        assert path.with_suffix(".caption").read_text(encoding="utf-8") == row.text + "\n"
        text, words, sidecar = xmp_sidecar.read_sidecar(path)
        assert sidecar == path.with_suffix(".xmp") and text == row.text
        assert words == row.current_keywords
    assert xmp_sidecar.read_sidecar(paths[0])[1] == ("square", "orange")
    assert not window.queue.unsaved()
    # An XMP sidecar that already holds another caption is asked about like a caption file.
    asked = ask_recorder(monkeypatch, ["no"])
    window.settings.set("sidecar_kind", "xmp")
    window.session.edit(1, "a new caption")
    window.select_row(1)
    window.save_sidecar()
    assert asked == [("two.xmp", False)]
    assert xmp_sidecar.read_sidecar(paths[1])[0] != "a new caption"


def test_export_dataset_imagefolder_and_coco(captioned, tmp_path, monkeypatch):
    window, paths = captioned
    report = window.export_dataset_to("hf", tmp_path / "set" / "metadata.jsonl")
    rows = [json.loads(line) for line in (tmp_path / "set" / "metadata.jsonl").read_text().splitlines()]
    assert report.written == 3 and [r["file_name"] for r in rows] == ["one.jpg", "two.jpg", "three.jpg"]
    assert [r["text"] for r in rows] == [r.text for r in window.queue.rows]
    window.export_dataset_to("coco", tmp_path / "set" / "captions.json")
    data = json.loads((tmp_path / "set" / "captions.json").read_text())
    assert len(data["images"]) == len(data["annotations"]) == 3
    # metadata.jsonl in a folder the photos are not in cannot name them: said, not hidden.
    errors = []
    monkeypatch.setattr(dialogs, "show_errors", lambda parent, title, items: errors.append(items))
    (tmp_path / "elsewhere").mkdir()
    report = window.export_dataset_to("hf", tmp_path / "elsewhere" / "metadata.jsonl")
    assert report.written == 0 and len(errors[0]) == 3 and "one.jpg" in errors[0][0]


def test_captions_and_keywords_already_written_are_shown_and_kept(make_window, tmp_path, idle):
    from imgcap_desktop.core import xmp_sidecar
    from imgcap_desktop.gui.queue_model import DONE, FOUND

    folder = tmp_path / "shoot"
    raw_like = write_photo(folder / "IMG_0001.jpg")
    xmp_sidecar.write_sidecar(raw_like, "Our dog on the beach", ("dog", "beach"))
    tagged = write_photo(folder / "IMG_0002.jpg")
    metadata.write_description(tagged, "", ("holiday",))
    window = make_window()
    window.settings.set("caption_on_open", True)
    window.add_paths([raw_like, tagged])
    idle(window)
    first, second = window.queue.rows
    assert first.status == FOUND and first.source == "IMG_0001.jpg.xmp" and first.text == "Our dog on the beach"
    assert first.current_keywords == ("dog", "beach")
    # No caption in the second: the model captions it, and the photo's own keywords stay.
    assert second.status == DONE and second.current_keywords == ("holiday",)
    window.select_row(0)
    assert window.insight.keywords.text() == "dog, beach"


def test_keywords_a_person_changed_are_unsaved_until_written_where_keywords_go(captioned):
    window, paths = captioned
    window.settings.set("sidecar_overwrite", "overwrite")
    window.save_all_sidecars()  # NAME.txt: captions only
    assert not window.queue.unsaved()
    window.session.set_keywords(0, ("beach",))
    assert [r.name for r in window.queue.unsaved()] == ["one.jpg"]
    window.save_all_sidecars()
    assert window.queue.unsaved()  # a caption file does not keep keywords
    window.settings.set("sidecar_kind", "xmp")
    window.save_all_sidecars()
    assert not window.queue.unsaved()
