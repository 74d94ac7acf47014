"""XMP sidecars beside real photos: written, updated without losing another tool's data, read back
by this module and by exiftool, the photo itself never touched."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from PIL import Image

from imgcap_desktop.core import xmp_sidecar
from imgcap_desktop.core.errors import SaveError
from imgcap_desktop.core.writers import existing_caption, write_targets

from .test_metadata import exiftool_tags

CAPTION = "Café — 猫 <a & b>"
KEYWORDS = ("cat", "Egyptian cat")

# What darktable leaves beside a raw file (abridged): its own namespace, attributes and history.
DARKTABLE = """<?xml version="1.0" encoding="UTF-8"?>
<x:xmpmeta xmlns:x="adobe:ns:meta/" x:xmptk="XMP Core 4.4.0-Exiv2">
 <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
  <rdf:Description rdf:about=""
    xmlns:xmp="http://ns.adobe.com/xap/1.0/"
    xmlns:darktable="http://darktable.sf.net/"
    xmp:Rating="3"
    darktable:xmp_version="5"
    darktable:history_end="2">
   <darktable:history>
    <rdf:Seq>
     <rdf:li darktable:operation="exposure" darktable:enabled="1"/>
     <rdf:li darktable:operation="colorin" darktable:enabled="1"/>
    </rdf:Seq>
   </darktable:history>
  </rdf:Description>
 </rdf:RDF>
</x:xmpmeta>
"""


@pytest.fixture
def photo(tmp_path) -> Path:
    path = tmp_path / "IMG_0042.jpg"
    Image.new("RGB", (40, 30), (10, 120, 200)).save(path, quality=90)
    return path


def exiftool(path: Path) -> dict:
    return exiftool_tags(path, "-struct")


def test_a_new_sidecar_has_the_caption_and_keywords_and_the_photo_is_untouched(photo):
    before = photo.read_bytes()
    path = xmp_sidecar.write_sidecar(photo, CAPTION, KEYWORDS)
    assert path.name == "IMG_0042.jpg.xmp" and photo.read_bytes() == before
    assert xmp_sidecar.read_sidecar(photo) == (CAPTION, KEYWORDS, path)
    assert existing_caption(photo) == (CAPTION, "IMG_0042.jpg.xmp")
    assert xmp_sidecar.write_sidecar(photo, "second", None, naming="full") == path
    assert xmp_sidecar.read_sidecar(photo)[:2] == ("second", KEYWORDS)  # None keeps the keywords


@pytest.mark.skipif(shutil.which("exiftool") is None, reason="exiftool not installed")
def test_exiftool_reads_the_sidecar_and_another_tools_data_survives(photo):
    existing = photo.with_name("IMG_0042.jpg.xmp")
    existing.write_text(DARKTABLE, encoding="utf-8")
    assert existing_caption(photo) is None  # darktable's file has no caption yet
    xmp_sidecar.write_sidecar(photo, CAPTION, KEYWORDS)
    tags = exiftool(existing)
    assert tags["XMP-dc:Description"] == CAPTION and tags["XMP-dc:Subject"] == list(KEYWORDS)
    assert tags["XMP-iptcCore:AltTextAccessibility"] == CAPTION
    assert tags["XMP-xmp:Rating"] == 3
    assert tags["XMP-darktable:Xmp_version"] == 5 and tags["XMP-darktable:History_end"] == 2
    assert [h["Operation"] for h in tags["XMP-darktable:History"]] == ["exposure", "colorin"]
    assert not any(key.endswith(":Error") for key in tags), tags


@pytest.mark.skipif(shutil.which("exiftool") is None, reason="exiftool not installed")
def test_lightroom_naming_and_the_other_name_is_updated_not_doubled(photo, tmp_path):
    path = xmp_sidecar.write_sidecar(photo, CAPTION, KEYWORDS, naming="base")
    assert path.name == "IMG_0042.xmp"
    assert exiftool(path)["XMP-dc:Description"] == CAPTION
    # Asked for the full name later, the Lightroom sidecar that is there is the one updated.
    assert xmp_sidecar.write_sidecar(photo, "again", naming="full") == path
    assert sorted(p.name for p in tmp_path.iterdir()) == ["IMG_0042.jpg", "IMG_0042.xmp"]
    # Two photos with one stem never share photo.xmp.
    twin = tmp_path / "IMG_0042.png"
    Image.new("RGB", (8, 8)).save(twin)
    assert xmp_sidecar.sidecar_for(twin, "base").name == "IMG_0042.png.xmp"


def test_a_sidecar_that_is_not_xmp_is_refused_and_left_alone(photo):
    junk = photo.with_name("IMG_0042.jpg.xmp")
    junk.write_bytes(b"not xml at all")
    with pytest.raises(SaveError, match="IMG_0042.jpg.xmp"):
        xmp_sidecar.write_sidecar(photo, CAPTION)
    assert junk.read_bytes() == b"not xml at all"
    assert xmp_sidecar.read_sidecar(photo)[:2] == (None, ())


def test_write_targets_xmp_keeps_or_replaces_and_says_where(photo):
    first = write_targets(photo, "one", ("xmp",), "never", keywords=("a",))
    assert first[0]["result"] == "written" and first[0]["path"].endswith("IMG_0042.jpg.xmp")
    kept = write_targets(photo, "two", ("xmp",), "never", keywords=("b",))
    assert kept[0]["result"] == "kept" and xmp_sidecar.read_sidecar(photo)[:2] == ("one", ("a",))
    replaced = write_targets(photo, "two", ("xmp",), "always", keywords=("b",))
    assert replaced[0]["result"] == "written" and xmp_sidecar.read_sidecar(photo)[:2] == ("two", ("b",))


def test_a_raw_files_lightroom_sidecar_is_not_taken_for_the_jpeg_beside_it(tmp_path):
    raw = tmp_path / "IMG_1.CR2"
    raw.write_bytes(b"raw bytes stand-in")
    jpeg = tmp_path / "IMG_1.JPG"
    Image.new("RGB", (8, 8)).save(jpeg, "JPEG")
    lightroom = tmp_path / "IMG_1.xmp"
    lightroom.write_text(DARKTABLE, encoding="utf-8")
    before = lightroom.read_bytes()
    assert xmp_sidecar.find_sidecar(jpeg) is None
    written = write_targets(jpeg, "the jpeg's caption", ("xmp",), "never", xmp_naming="base")
    assert written[0]["path"].endswith("IMG_1.JPG.xmp") and lightroom.read_bytes() == before
    assert existing_caption(jpeg) == ("the jpeg's caption", "IMG_1.JPG.xmp")


def test_no_keywords_to_write_keep_the_ones_there(photo):
    xmp_sidecar.write_sidecar(photo, "", ("Paris", "family"))
    assert write_targets(photo, "a caption", ("xmp",), "always", keywords=None)[0]["result"] == "written"
    assert xmp_sidecar.read_sidecar(photo)[:2] == ("a caption", ("Paris", "family"))


def test_the_cli_never_replaces_keywords_a_person_gave(photo, capsys, seed_assets, seed_cache_home, monkeypatch):
    from imgcap_desktop import cli

    monkeypatch.setenv("XDG_CACHE_HOME", str(seed_cache_home))
    xmp_sidecar.write_sidecar(photo, "", ("Paris",))
    assert cli.main(["caption", str(photo), "--model", str(seed_assets["folder"]), "--encoder-weights",
                     str(seed_assets["densenet"]), "--write", "xmp", "--no-progress", "--format", "jsonl"]) == 0
    text, words, _ = xmp_sidecar.read_sidecar(photo)
    assert text and words == ("Paris",)
