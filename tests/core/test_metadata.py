"""Captions written into real image files (made with Pillow), checked byte-wise,
by Pillow, and by exiftool when it is installed."""

from __future__ import annotations

import json
import os
import shutil
import stat
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from imgcap_desktop.core.errors import MetadataFormatError, SaveError
from imgcap_desktop.core.metadata import read_description, read_keywords, read_metadata, write_description
from imgcap_desktop.core.xmp_packet import parse_packet

CAPTION = "Café — 猫 <a & b>"
XMP_HEADER = b"http://ns.adobe.com/xap/1.0/\x00"


# --- helpers -----------------------------------------------------------------------


def pixels(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB")).copy()


def random_image(w: int = 48, h: int = 32) -> Image.Image:
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))


def jpeg_segments(data: bytes) -> tuple[list[tuple[int, bytes]], bytes]:
    """Independent marker walk: (marker, payload) before SOS, and bytes from SOS to the end."""
    assert data[:2] == b"\xff\xd8"
    pos, segments = 2, []
    while True:
        assert data[pos] == 0xFF
        marker = data[pos + 1]
        if marker == 0xDA:
            return segments, data[pos:]
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        segments.append((marker, data[pos + 4 : pos + 2 + length]))
        pos += 2 + length


def app1(data: bytes, prefix: bytes) -> list[bytes]:
    return [p for m, p in jpeg_segments(data)[0] if m == 0xE1 and p.startswith(prefix)]


def pillow_exif_text(im: Image.Image) -> str:
    # Pillow decodes EXIF ASCII as Latin-1; the bytes we store are UTF-8.
    return im.getexif()[0x010E].encode("latin-1").decode("utf-8")


def with_segment(jpeg: bytes, marker: int, payload: bytes) -> bytes:
    segment = bytes([0xFF, marker]) + struct.pack(">H", len(payload) + 2) + payload
    return jpeg[:2] + segment + jpeg[2:]


def names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.fixture
def camera_jpeg(tmp_path) -> Path:
    exif = Image.Exif()
    exif[0x010F] = "Canon"  # Make
    exif[0x0110] = "EOS 5D"  # Model
    exif[0x0112] = 6  # Orientation: rotate 90 CW
    exif.get_ifd(0x8769)[0x9003] = "2021:06:01 12:00:00"  # DateTimeOriginal, Exif sub-IFD
    path = tmp_path / "camera.jpg"
    random_image().save(path, quality=90, exif=exif.tobytes())
    return path


# --- JPEG ----------------------------------------------------------------------------


def test_jpeg_round_trip_keeps_exif_and_pixels(camera_jpeg):
    before = camera_jpeg.read_bytes()
    before_pixels = pixels(camera_jpeg)

    write_description(camera_jpeg, CAPTION)

    after = camera_jpeg.read_bytes()
    assert jpeg_segments(after)[1] == jpeg_segments(before)[1]  # SOS..EOI byte-identical
    assert np.array_equal(pixels(camera_jpeg), before_pixels)
    assert read_description(camera_jpeg) == {"exif": CAPTION, "xmp": CAPTION, "iptc": CAPTION}
    with Image.open(camera_jpeg) as im:
        exif = im.getexif()
        assert exif[0x0112] == 6
        assert exif[0x010F] == "Canon" and exif[0x0110] == "EOS 5D"
        assert exif.get_ifd(0x8769)[0x9003] == "2021:06:01 12:00:00"
        assert pillow_exif_text(im) == CAPTION
        assert b"Iptc4xmpCore:AltTextAccessibility" in im.info["xmp"]
    # Segments other than Exif/XMP (APP1) and IPTC-IIM (APP13) are untouched (JFIF, quantisation, Huffman...).
    others = lambda data: [s for s in jpeg_segments(data)[0] if s[0] not in (0xE1, 0xED)]  # noqa: E731
    assert others(after) == others(before)


def test_jpeg_without_metadata(tmp_path):
    path = tmp_path / "plain.jpg"
    random_image().save(path)
    before = path.read_bytes()
    assert not app1(before, b"Exif") and read_description(path) == {"exif": None, "xmp": None, "iptc": None}

    write_description(path, CAPTION)

    after = path.read_bytes()
    assert jpeg_segments(after)[1] == jpeg_segments(before)[1]
    assert np.array_equal(pixels(path), pixels_of_bytes(before, tmp_path))
    assert read_description(path) == {"exif": CAPTION, "xmp": CAPTION, "iptc": CAPTION}
    markers = [m for m, _ in jpeg_segments(after)[0]]
    assert markers[:3] == [0xE0, 0xE1, 0xE1]  # JFIF stays first, then Exif, then XMP


def pixels_of_bytes(data: bytes, folder: Path) -> np.ndarray:
    copy = folder / "reference-copy.jpg"
    copy.write_bytes(data)
    try:
        return pixels(copy)
    finally:
        copy.unlink()


def test_jpeg_existing_xmp_properties_survive(tmp_path):
    packet = (
        '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>'
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        '<rdf:Description rdf:about="" xmlns:xmp="http://ns.adobe.com/xap/1.0/" '
        'xmlns:dc="http://purl.org/dc/elements/1.1/" xmp:Rating="4">'
        '<dc:title><rdf:Alt><rdf:li xml:lang="x-default">Holiday</rdf:li></rdf:Alt></dc:title>'
        '<dc:description><rdf:Alt><rdf:li xml:lang="x-default">old caption</rdf:li>'
        '<rdf:li xml:lang="de">alte</rdf:li></rdf:Alt></dc:description>'
        "</rdf:Description></rdf:RDF></x:xmpmeta>"
        '<?xpacket end="w"?>'
    ).encode("utf-8")
    path = tmp_path / "xmp.jpg"
    random_image().save(path)
    path.write_bytes(with_segment(path.read_bytes(), 0xE1, XMP_HEADER + packet))
    assert read_description(path)["xmp"] == "old caption"

    write_description(path, CAPTION)

    xmp = app1(path.read_bytes(), XMP_HEADER)
    assert len(xmp) == 1
    text = xmp[0].decode("utf-8")
    assert 'xmp:Rating="4"' in text and ">Holiday</rdf:li>" in text
    assert "old caption" not in text and "alte" not in text
    assert text.count("dc:description>") == 2  # one open + one close tag
    assert read_description(path) == {"exif": CAPTION, "xmp": CAPTION, "iptc": CAPTION}


def test_jpeg_unparseable_xmp_is_replaced_and_exif_kept(camera_jpeg):
    camera_jpeg.write_bytes(with_segment(camera_jpeg.read_bytes(), 0xE1, XMP_HEADER + b"<x:xmpmeta><oops"))
    write_description(camera_jpeg, CAPTION)
    data = camera_jpeg.read_bytes()
    assert len(app1(data, XMP_HEADER)) == 1 and b"oops" not in data
    assert read_description(camera_jpeg)["xmp"] == CAPTION
    with Image.open(camera_jpeg) as im:
        assert im.getexif()[0x0112] == 6


def test_jpeg_writing_twice_replaces_without_duplicates(camera_jpeg):
    write_description(camera_jpeg, "first caption")
    write_description(camera_jpeg, CAPTION)
    once = camera_jpeg.read_bytes()
    assert len(app1(once, b"Exif\x00")) == 1 and len(app1(once, XMP_HEADER)) == 1
    assert b"first caption" not in once
    assert read_description(camera_jpeg) == {"exif": CAPTION, "xmp": CAPTION, "iptc": CAPTION}
    # Rewriting reuses the space of the last write instead of growing the file.
    write_description(camera_jpeg, CAPTION)
    assert camera_jpeg.read_bytes() == once
    with Image.open(camera_jpeg) as im:
        assert im.getexif()[0x0112] == 6


def test_big_endian_exif_is_updated_in_place(tmp_path):
    # Many cameras (Nikon, older Canon) write Motorola byte order.
    entries = [(0x010F, 2, 6, 8 + 2 + 2 * 12 + 4), (0x0112, 3, 1, 6 << 16)]
    ifd = struct.pack(">H", 2) + b"".join(struct.pack(">HHII", *e) for e in entries) + b"\0\0\0\0"
    tiff = b"MM\x00\x2a" + struct.pack(">I", 8) + ifd + b"Nikon\x00"
    path = tmp_path / "nikon.jpg"
    random_image().save(path)
    path.write_bytes(with_segment(path.read_bytes(), 0xE1, b"Exif\x00\x00" + tiff))

    write_description(path, CAPTION)

    assert read_description(path)["exif"] == CAPTION
    with Image.open(path) as im:
        assert im.getexif()[0x010F] == "Nikon" and im.getexif()[0x0112] == 6


def test_control_characters_are_dropped_not_written(tmp_path):
    path = tmp_path / "p.jpg"
    random_image().save(path)
    write_description(path, "a\x00b\x07c\nd")
    assert read_description(path) == {"exif": "abc\nd", "xmp": "abc\nd", "iptc": "abc\nd"}


def test_permission_bits_kept_and_symlink_followed(camera_jpeg, tmp_path):
    camera_jpeg.chmod(0o640)
    link = tmp_path / "link.jpg"
    link.symlink_to(camera_jpeg)
    write_description(link, CAPTION)
    assert link.is_symlink()
    assert read_description(camera_jpeg)["xmp"] == CAPTION
    assert stat.S_IMODE(camera_jpeg.stat().st_mode) == 0o640


# --- PNG ---------------------------------------------------------------------------


def png_chunk_types(data: bytes) -> list[bytes]:
    pos, types = 8, []
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        types.append(data[pos + 4 : pos + 8])
        pos += 12 + length
    return types


def test_png_round_trip(tmp_path):
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", "keep me")
    exif = Image.Exif()
    exif[0x0112] = 3
    path = tmp_path / "photo.png"
    img = random_image().convert("RGBA")
    img.save(path, pnginfo=info, exif=exif.tobytes())
    before_pixels = np.asarray(Image.open(path)).copy()

    write_description(path, CAPTION)
    write_description(path, CAPTION)  # second write replaces, no duplicates

    data = path.read_bytes()
    types = png_chunk_types(data)
    assert types.count(b"eXIf") == 1 and types.count(b"iTXt") == 1
    assert types.index(b"eXIf") < types.index(b"IDAT")
    with Image.open(path) as im:
        im.load()  # verifies every chunk CRC on the way
        assert np.array_equal(np.asarray(im), before_pixels)
        assert im.info["Comment"] == "keep me"
        assert "Iptc4xmpCore:AltTextAccessibility" in im.info["XML:com.adobe.xmp"]
        assert pillow_exif_text(im) == CAPTION
        assert im.getexif()[0x0112] == 3
    assert read_description(path) == {"exif": CAPTION, "xmp": CAPTION, "iptc": CAPTION}


def test_truncated_png_is_refused_unchanged(tmp_path):
    path = tmp_path / "cut.png"
    random_image().save(path)
    path.write_bytes(path.read_bytes()[:-30])
    before = path.read_bytes()
    with pytest.raises(SaveError, match="cut.png"):
        write_description(path, CAPTION)
    assert path.read_bytes() == before and names(tmp_path) == ["cut.png"]


# --- WebP --------------------------------------------------------------------------


@pytest.mark.parametrize("lossless", [False, True], ids=["vp8", "vp8l"])
def test_webp_round_trip(tmp_path, lossless):
    path = tmp_path / "photo.webp"
    img = random_image()
    if lossless:
        img.putalpha(Image.linear_gradient("L").resize(img.size))
    img.save(path, lossless=lossless)
    with Image.open(path) as im:
        before_pixels = np.asarray(im).copy()

    write_description(path, CAPTION)
    write_description(path, CAPTION)

    with Image.open(path) as im:
        im.load()
        assert b"AltTextAccessibility" in im.info["xmp"]
        assert pillow_exif_text(im) == CAPTION
        if lossless:
            assert im.mode == "RGBA"  # alpha flag carried into VP8X
    with Image.open(path) as im:
        assert np.array_equal(np.asarray(im), before_pixels)
    assert read_description(path) == {"exif": CAPTION, "xmp": CAPTION, "iptc": CAPTION}


# --- refusals ----------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".bmp", ".gif"])
def test_unsupported_format(tmp_path, suffix):
    path = tmp_path / f"photo{suffix}"
    random_image().save(path)
    before = path.read_bytes()
    with pytest.raises(MetadataFormatError) as info:
        write_description(path, CAPTION)
    assert isinstance(info.value, SaveError)
    assert suffix in str(info.value) and "sidecar" in str(info.value)
    assert path.read_bytes() == before
    assert read_description(path) == {"exif": None, "xmp": None, "iptc": None}


def test_read_only_file_is_refused(camera_jpeg, tmp_path):
    # chmod alone does not stop root, which the test suite runs as: the module
    # checks the mode bits as well, and this is what that is for.
    camera_jpeg.chmod(0o444)
    before = camera_jpeg.read_bytes()
    with pytest.raises(SaveError, match="read-only"):
        write_description(camera_jpeg, CAPTION)
    assert camera_jpeg.read_bytes() == before
    assert names(tmp_path) == ["camera.jpg"]


def test_read_only_folder_is_refused(camera_jpeg, tmp_path):
    before = camera_jpeg.read_bytes()
    tmp_path.chmod(0o555)
    try:
        with pytest.raises(SaveError, match="folder is read-only"):
            write_description(camera_jpeg, CAPTION)
    finally:
        tmp_path.chmod(0o755)
    assert camera_jpeg.read_bytes() == before
    assert names(tmp_path) == ["camera.jpg"]


def test_jpeg_truncated_before_sos_is_refused(camera_jpeg, tmp_path):
    data = camera_jpeg.read_bytes()
    sos = len(data) - len(jpeg_segments(data)[1])
    camera_jpeg.write_bytes(data[: sos - 40])
    before = camera_jpeg.read_bytes()
    with pytest.raises(SaveError, match="camera.jpg") as info:
        write_description(camera_jpeg, CAPTION)
    assert "exiv2 says" in str(info.value) and "the file was not changed" in str(info.value)
    assert camera_jpeg.read_bytes() == before
    assert names(tmp_path) == ["camera.jpg"]


# --- an independent reader ----------------------------------------------------------


def exiftool_tags(path: Path, *options: str) -> dict:
    """What exiftool reads in ``path``, tag names with their group (``XMP-dc:Subject``)."""
    out = subprocess.run(["exiftool", "-json", "-G1", "-a", *options, os.fspath(path)],
                         capture_output=True, text=True, encoding="utf-8", check=True)
    return json.loads(out.stdout)[0]


def photo_of_kind(camera_jpeg: Path, folder: Path, kind: str) -> Path:
    """The camera JPEG (with its EXIF), or a fresh PNG, WebP or TIFF."""
    if kind == "jpg":
        return camera_jpeg
    path = folder / f"photo.{kind}"
    random_image().save(path)
    return path


@pytest.mark.skipif(shutil.which("exiftool") is None, reason="exiftool not installed")
@pytest.mark.parametrize("kind", ["jpg", "png", "webp", "tif"])
def test_exiftool_reads_what_we_wrote(camera_jpeg, tmp_path, kind):
    path = photo_of_kind(camera_jpeg, tmp_path, kind)
    write_description(path, CAPTION)
    tags = exiftool_tags(path, "-n")
    assert tags["IFD0:ImageDescription"] == CAPTION
    assert tags["XMP-dc:Description"] == CAPTION
    assert tags["XMP-iptcCore:AltTextAccessibility"] == CAPTION
    assert not any(key.endswith(":Error") for key in tags), tags
    if kind == "jpg":
        assert tags["IFD0:Orientation"] == 6 and tags["IFD0:Make"] == "Canon"


KEYWORDS = ("cat", "Egyptian cat", "café & crème")


@pytest.mark.skipif(shutil.which("exiftool") is None, reason="exiftool not installed")
@pytest.mark.parametrize("kind", ["jpg", "png", "webp", "tif"])
def test_keywords_round_trip_and_exiftool_reads_them(camera_jpeg, tmp_path, kind):
    path = photo_of_kind(camera_jpeg, tmp_path, kind)
    before = pixels(path)
    write_description(path, CAPTION, KEYWORDS)
    assert read_keywords(path) == KEYWORDS
    assert read_description(path)["xmp"] == CAPTION
    tags = exiftool_tags(path, "-struct")
    assert tags["XMP-dc:Subject"] == list(KEYWORDS)
    assert tags["XMP-dc:Description"] == CAPTION
    assert not any(key.endswith(":Error") for key in tags), tags
    assert np.array_equal(pixels(path), before)


def test_keywords_are_replaced_kept_or_removed(tmp_path):
    path = tmp_path / "p.png"
    random_image().save(path)
    write_description(path, "first", ("dog", "ball"))
    write_description(path, "second")  # None: the keywords already there stay
    assert read_keywords(path) == ("dog", "ball") and read_description(path)["xmp"] == "second"
    write_description(path, "third", ("cat",))
    assert read_keywords(path) == ("cat",)
    write_description(path, "fourth", ())
    assert read_keywords(path) == ()
    assert read_description(path)["xmp"] == "fourth"


def test_other_tools_xmp_properties_survive_in_their_namespaces(tmp_path):
    # exiv2 re-serialises the packet: what must survive is each property in its namespace with its
    # value, nested structures included (darktable keeps its edit history like this).
    packet = (
        b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        b'<rdf:Description rdf:about="" xmlns:my="urn:my-tool/" xmlns:darktable="http://darktable.sf.net/"'
        b' my:foo="1" darktable:xmp_version="5"><darktable:history><rdf:Seq>'
        b'<rdf:li darktable:operation="exposure" darktable:enabled="1"/></rdf:Seq></darktable:history>'
        b"</rdf:Description></rdf:RDF></x:xmpmeta>"
    )
    path = tmp_path / "tools.jpg"
    random_image().save(path)
    path.write_bytes(with_segment(path.read_bytes(), 0xE1, XMP_HEADER + packet))
    write_description(path, CAPTION)
    doc = parse_packet(app1(path.read_bytes(), XMP_HEADER)[0][len(XMP_HEADER):])
    (d,) = doc.getElementsByTagNameNS("http://www.w3.org/1999/02/22-rdf-syntax-ns#", "Description")
    assert d.getAttributeNS("urn:my-tool/", "foo") == "1"
    assert d.getAttributeNS("http://darktable.sf.net/", "xmp_version") == "5"
    (li,) = d.getElementsByTagNameNS("http://darktable.sf.net/", "history")[0].getElementsByTagNameNS(
        "http://www.w3.org/1999/02/22-rdf-syntax-ns#", "li")
    assert li.getAttributeNS("http://darktable.sf.net/", "operation") == "exposure"
    assert read_description(path)["xmp"] == CAPTION


# --- what exiv2 adds: TIFF, IPTC-IIM for older tools, other formats read ----------------------------


@pytest.mark.skipif(shutil.which("exiftool") is None, reason="exiftool not installed")
@pytest.mark.parametrize("kind", ["jpg", "png", "tif"])
def test_iptc_iim_caption_and_keywords_for_older_tools(camera_jpeg, tmp_path, kind):
    path = photo_of_kind(camera_jpeg, tmp_path, kind)
    before = pixels(path)
    write_description(path, CAPTION, KEYWORDS)
    tags = exiftool_tags(path, "-struct")
    # The record says UTF-8 (1:90), so exiftool reads the bytes as they were written.
    assert tags["IPTC:Caption-Abstract"] == CAPTION
    assert tags["IPTC:Keywords"] == list(KEYWORDS)
    assert tags["IPTC:CodedCharacterSet"] == "UTF8"
    assert np.array_equal(pixels(path), before)
    write_description(path, "again", ("dog",))
    tags = exiftool_tags(path, "-struct")
    assert tags["IPTC:Caption-Abstract"] == "again" and tags["IPTC:Keywords"] in ("dog", ["dog"])


@pytest.mark.skipif(shutil.which("exiftool") is None, reason="exiftool not installed")
def test_keywords_only_in_iptc_iim_are_read(tmp_path):
    path = tmp_path / "old.jpg"
    random_image().save(path)
    subprocess.run(["exiftool", "-q", "-overwrite_original", "-IPTC:Keywords=beach", "-IPTC:Keywords=sunset",
                    "-IPTC:Caption-Abstract=old caption", os.fspath(path)], check=True)
    assert read_keywords(path) == ("beach", "sunset")


def test_heic_and_camera_raw_are_read_but_not_written(tmp_path):
    from tests.support.heic import save_heic
    from tests.support.raw import write_dng

    heic = tmp_path / "phone.heic"
    exif = Image.Exif()
    exif[0x010E] = "espresso on a saucer"
    packet = ('<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
              '<rdf:Description rdf:about="" xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:description><rdf:Alt>'
              '<rdf:li xml:lang="x-default">espresso on a saucer</rdf:li></rdf:Alt></dc:description><dc:subject>'
              '<rdf:Bag><rdf:li>coffee</rdf:li></rdf:Bag></dc:subject></rdf:Description></rdf:RDF></x:xmpmeta>')
    save_heic(random_image(), heic, exif=exif.tobytes(), xmp=packet.encode())  # as a phone (libheif) stores them
    raw = tmp_path / "IMG_0001.dng"
    write_dng(raw)
    assert read_metadata(heic) == ({"exif": "espresso on a saucer", "xmp": "espresso on a saucer", "iptc": None},
                                   ("coffee",))
    for path in (heic, raw):
        before = path.read_bytes()
        with pytest.raises(MetadataFormatError, match="XMP sidecar"):
            write_description(path, CAPTION)
        assert path.read_bytes() == before
    assert read_description(raw) == {"exif": None, "xmp": None, "iptc": None}
    assert names(tmp_path) == ["IMG_0001.dng", "phone.heic"]


@pytest.mark.skipif(shutil.which("exiftool") is None, reason="exiftool not installed")
def test_a_cameras_placeholder_description_is_not_a_caption(tmp_path):
    path = tmp_path / "P1010001.jpg"
    random_image().save(path)
    subprocess.run(["exiftool", "-q", "-overwrite_original", "-EXIF:ImageDescription=OLYMPUS DIGITAL CAMERA         ",
                    os.fspath(path)], check=True)
    assert read_description(path)["exif"] is None


@pytest.mark.skipif(shutil.which("exiftool") is None, reason="exiftool not installed")
def test_a_description_in_other_languages_and_latin1_text_read_as_text(tmp_path):
    path = tmp_path / "lang.jpg"
    random_image().save(path)
    subprocess.run(["exiftool", "-q", "-overwrite_original", "-XMP-dc:Description-en-US=English text",
                    "-XMP-dc:Description-de=Deutscher Text", "-IPTC:Keywords=caf\xe9", "-charset", "iptc=Latin",
                    os.fspath(path)], check=True)
    # No x-default: the first language's text, not every language with its tag.
    assert read_description(path)["xmp"] == "English text"
    assert read_keywords(path) == ("caf\xe9",)
    # A caption written later relabels the IPTC record UTF-8, with the kept keyword rewritten so.
    write_description(path, CAPTION)
    assert exiftool_tags(path)["IPTC:Keywords"] == "caf\xe9"
