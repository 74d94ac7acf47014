"""imgcap_desktop.core.images against real files written with Pillow."""

from __future__ import annotations

import io
import os
import random
import struct
import sys
import threading
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from imgcap_desktop.core.errors import (
    CorruptImageError,
    ImageLoadError,
    ImageTooLargeError,
    NotAnImageError,
    UnreadableFileError,
)
from imgcap_desktop.core.images import (
    DEFAULT_MAX_PIXELS,
    IMAGE_EXTENSIONS,
    CollectedFiles,
    collect_images,
    load_rgb,
    open_for_model,
    thumbnail,
)
from tests.support.heic import save_heic

WHITE = (255, 255, 255)
posix_only = pytest.mark.skipif(sys.platform == "win32", reason="POSIX file types")


def close_to(actual, expected, tol=6) -> bool:
    return all(abs(int(a) - int(e)) <= tol for a, e in zip(actual, expected))


def noise_rgb(w: int, h: int, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), "RGB")


def expect_error(cls: type[ImageLoadError], path: Path, **kwargs) -> ImageLoadError:
    with pytest.raises(cls) as info:
        load_rgb(path, **kwargs)
    message = str(info.value)
    assert path.name in message
    assert message.endswith(".") and "\n" not in message
    return info.value


def check_rgb(im: Image.Image, size: tuple[int, int]) -> None:
    assert im.mode == "RGB"
    assert im.size == size


# --- constants ----------------------------------------------------------------


def test_extensions_cover_common_formats_and_exclude_risky_ones():
    for ext in (".jpg", ".jpeg", ".png", ".gif", ".bmp", ".webp", ".tif", ".tiff", ".ppm", ".pgm", ".pbm"):
        assert ext in IMAGE_EXTENSIONS
    for ext in (".eps", ".ps", ".pdf", ".h5", ".txt", ".gz"):
        assert ext not in IMAGE_EXTENSIONS
    assert all(e == e.lower() and e.startswith(".") for e in IMAGE_EXTENSIONS)
    # Below Pillow's own hard limit, so our limit is the one users meet.
    assert 0 < DEFAULT_MAX_PIXELS < 2 * Image.MAX_IMAGE_PIXELS


# --- pixel modes ----------------------------------------------------------------


def test_plain_rgb_jpeg(tmp_path):
    p = tmp_path / "photo.jpg"
    Image.new("RGB", (30, 20), (200, 30, 40)).save(p, quality=95)
    im = load_rgb(p)
    check_rgb(im, (30, 20))
    assert close_to(im.getpixel((5, 5)), (200, 30, 40))


def test_cmyk_jpeg(tmp_path):
    p = tmp_path / "cmyk.jpg"
    Image.new("CMYK", (16, 16), (0, 255, 255, 0)).save(p, quality=95)
    assert Image.open(p).mode == "CMYK"
    im = load_rgb(p)
    check_rgb(im, (16, 16))
    assert close_to(im.getpixel((8, 8)), (255, 0, 0))


def test_16bit_grey_png_is_scaled_not_clipped(tmp_path):
    p = tmp_path / "grey16.png"
    arr = np.array([[0, 32768, 65535, 1000]], dtype=np.uint16)
    Image.fromarray(arr).save(p)
    assert Image.open(p).mode.startswith("I")
    im = load_rgb(p)
    check_rgb(im, (4, 1))
    assert im.getpixel((0, 0)) == (0, 0, 0)
    assert close_to(im.getpixel((1, 0)), (128, 128, 128), tol=1)
    assert im.getpixel((2, 0)) == WHITE
    assert close_to(im.getpixel((3, 0)), (4, 4, 4), tol=1)


def test_16bit_big_endian_tiff(tmp_path):
    p = tmp_path / "grey16be.tif"
    Image.fromarray(np.full((3, 3), 32768, dtype=">u2")).save(p)
    im = load_rgb(p)
    assert close_to(im.getpixel((1, 1)), (128, 128, 128), tol=1)


def test_32bit_integer_tiff_holding_16bit_values(tmp_path):
    p = tmp_path / "int32.tif"
    Image.fromarray(np.array([[0, 32768, 65535]], dtype=np.int32)).save(p)
    assert Image.open(p).mode == "I"
    im = load_rgb(p)
    assert [im.getpixel((x, 0))[0] for x in range(3)] == [0, 128, 255]


def test_float_tiff_normalised_range(tmp_path):
    p = tmp_path / "float.tif"
    Image.fromarray(np.array([[0.0, 0.5, 1.0]], dtype=np.float32)).save(p)
    assert Image.open(p).mode == "F"
    im = load_rgb(p)
    check_rgb(im, (3, 1))
    assert [im.getpixel((x, 0))[0] for x in range(3)] == [0, 128, 255]


def test_float_tiff_unknown_range_is_stretched_and_nan_safe(tmp_path):
    p = tmp_path / "depth.tif"
    Image.fromarray(np.array([[-10.0, 0.0, 10.0, np.nan]], dtype=np.float32)).save(p)
    im = load_rgb(p)
    assert [im.getpixel((x, 0))[0] for x in range(4)] == [0, 128, 255, 0]


def test_palette_png_with_transparency(tmp_path):
    p = tmp_path / "palette.png"
    im = Image.new("P", (4, 1), 0)
    im.putpalette([0, 0, 0, 255, 0, 0] + [0] * (254 * 3))
    im.putpixel((2, 0), 1)
    im.save(p, transparency=0)
    assert Image.open(p).mode == "P"
    out = load_rgb(p)
    assert out.getpixel((0, 0)) == WHITE  # transparent index, black in the palette
    assert out.getpixel((2, 0)) == (255, 0, 0)


def test_palette_png_without_transparency(tmp_path):
    p = tmp_path / "opaque_palette.png"
    Image.new("RGB", (8, 8), (10, 200, 30)).convert("P", palette=Image.Palette.ADAPTIVE).save(p)
    assert Image.open(p).mode == "P"
    assert load_rgb(p).getpixel((3, 3)) == (10, 200, 30)


def test_fully_transparent_rgba_becomes_white(tmp_path):
    p = tmp_path / "clear.png"
    Image.new("RGBA", (5, 5), (0, 0, 0, 0)).save(p)
    im = load_rgb(p)
    check_rgb(im, (5, 5))
    assert (np.asarray(im) == 255).all()


def test_half_transparent_rgba_is_blended_onto_white(tmp_path):
    p = tmp_path / "half.png"
    Image.new("RGBA", (2, 2), (0, 0, 0, 128)).save(p)
    assert close_to(load_rgb(p).getpixel((0, 0)), (127, 127, 127), tol=1)


def test_la_png(tmp_path):
    p = tmp_path / "la.png"
    im = Image.new("LA", (3, 1))
    im.putdata([(0, 0), (0, 255), (200, 255)])
    im.save(p)
    assert Image.open(p).mode == "LA"
    out = load_rgb(p)
    assert [out.getpixel((x, 0)) for x in range(3)] == [WHITE, (0, 0, 0), (200, 200, 200)]


def test_grey_and_rgb_with_transparent_colour_key(tmp_path):
    grey = tmp_path / "grey_key.png"
    Image.new("L", (2, 2), 100).save(grey, transparency=100)
    assert load_rgb(grey).getpixel((0, 0)) == WHITE
    rgb = tmp_path / "rgb_key.png"
    Image.new("RGB", (2, 2), (1, 2, 3)).save(rgb, transparency=(1, 2, 3))
    assert load_rgb(rgb).getpixel((0, 0)) == WHITE


def test_bilevel_png(tmp_path):
    p = tmp_path / "bits.png"
    im = Image.new("1", (2, 1), 0)
    im.putpixel((1, 0), 1)
    im.save(p)
    assert Image.open(p).mode == "1"
    out = load_rgb(p)
    assert [out.getpixel((x, 0)) for x in range(2)] == [(0, 0, 0), WHITE]


def test_animated_gif_gives_first_frame(tmp_path):
    p = tmp_path / "anim.gif"
    frames = [Image.new("RGB", (10, 10), c) for c in ((255, 0, 0), (0, 255, 0), (0, 0, 255))]
    frames[0].save(p, save_all=True, append_images=frames[1:], duration=50, loop=0)
    assert Image.open(p).n_frames == 3
    im = load_rgb(p)
    check_rgb(im, (10, 10))
    assert im.getpixel((5, 5)) == (255, 0, 0)
    # Fully decoded: still readable once the file is gone.
    p.unlink()
    assert im.copy().getpixel((0, 0)) == (255, 0, 0)


def test_exif_orientation_6_rotates_clockwise(tmp_path):
    # Stored 40 x 20 with a red marker top-left; orientation 6 means "rotate 90
    # degrees clockwise to display", so it shows 20 x 40 with the marker top-right.
    p = tmp_path / "phone.jpg"
    im = Image.new("RGB", (40, 20), WHITE)
    im.paste((255, 0, 0), (0, 0, 6, 6))
    exif = Image.Exif()
    exif[0x0112] = 6
    im.save(p, exif=exif.tobytes(), quality=95)
    out = load_rgb(p)
    check_rgb(out, (20, 40))
    assert close_to(out.getpixel((17, 2)), (255, 0, 0), tol=30)
    for corner in ((2, 2), (2, 37), (17, 37)):
        assert close_to(out.getpixel(corner), WHITE, tol=30)


# --- errors ---------------------------------------------------------------------


def test_truncated_jpeg_is_corrupt(tmp_path):
    p = tmp_path / "half.jpg"
    noise_rgb(128, 128).save(p, quality=90)
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    expect_error(CorruptImageError, p)


def test_random_bytes_named_jpg(tmp_path):
    p = tmp_path / "noise.jpg"
    p.write_bytes(bytes(random.Random(1234).getrandbits(8) for _ in range(4096)))
    expect_error(NotAnImageError, p)


def test_empty_file(tmp_path):
    p = tmp_path / "empty.png"
    p.write_bytes(b"")
    assert "empty" in str(expect_error(NotAnImageError, p))


def test_text_file(tmp_path):
    p = tmp_path / "notes.txt"
    p.write_text("hello, this is not a picture\n", encoding="utf-8")
    expect_error(NotAnImageError, p)


def test_directory(tmp_path):
    d = tmp_path / "folder.jpg"
    d.mkdir()
    err = expect_error(UnreadableFileError, d)
    assert "folder" in str(err)


def test_missing_file(tmp_path):
    expect_error(UnreadableFileError, tmp_path / "ghost.png")


@posix_only
def test_symlink_loop(tmp_path):
    a, b = tmp_path / "a.jpg", tmp_path / "b.jpg"
    os.symlink(b, a)
    os.symlink(a, b)
    err = expect_error(UnreadableFileError, a)
    assert "loop" in str(err)


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root reads anything")
def test_permission_denied(tmp_path):
    p = tmp_path / "secret.png"
    Image.new("RGB", (2, 2)).save(p)
    p.chmod(0)
    try:
        expect_error(UnreadableFileError, p)
    finally:
        p.chmod(0o600)


@posix_only
@pytest.mark.timeout(30)
def test_fifo_is_refused_without_blocking(tmp_path):
    p = tmp_path / "pipe.jpg"
    os.mkfifo(p)
    outcome: list[BaseException] = []

    def attempt():
        try:
            load_rgb(p)
        except BaseException as exc:  # recorded for the main thread
            outcome.append(exc)

    # A daemon thread, so a regression fails this test instead of hanging the run.
    worker = threading.Thread(target=attempt, daemon=True)
    worker.start()
    worker.join(timeout=5)
    assert not worker.is_alive(), "load_rgb blocked on a FIFO"
    assert len(outcome) == 1 and isinstance(outcome[0], UnreadableFileError)
    assert p.name in str(outcome[0])


def test_image_above_max_pixels(tmp_path):
    p = tmp_path / "big.png"
    Image.new("RGB", (100, 60)).save(p)
    err = expect_error(ImageTooLargeError, p, max_pixels=5_000)
    assert "100 x 60" in str(err)
    assert load_rgb(p, max_pixels=6_000).size == (100, 60)


def _png_claiming(width: int, height: int) -> bytes:
    out = io.BytesIO()
    Image.new("L", (1, 1)).save(out, "PNG")
    data = bytearray(out.getvalue())
    # Signature (8 bytes), IHDR length (4), chunk type (4), then width and height;
    # the CRC covers type + the 13 data bytes, so it must be recomputed.
    assert data[12:16] == b"IHDR"
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)


@pytest.mark.parametrize("max_pixels", [DEFAULT_MAX_PIXELS, None])
def test_png_header_claiming_huge_size_is_refused_from_the_header(tmp_path, max_pixels, monkeypatch):
    from PIL import ImageFile

    p = tmp_path / "bomb.png"
    p.write_bytes(_png_claiming(100_000, 100_000))

    def decode(self, *args, **kwargs):
        raise AssertionError("10^10 pixels were being decoded")

    # Refused before any pixel is decoded (that would take minutes and tens of gigabytes).
    monkeypatch.setattr(ImageFile.ImageFile, "load", decode)
    expect_error(ImageTooLargeError, p, max_pixels=max_pixels)


def test_damaged_png_header_is_corrupt_not_unknown(tmp_path):
    p = tmp_path / "damaged.png"
    good = io.BytesIO()
    Image.new("RGB", (4, 4)).save(good, "PNG")
    data = bytearray(good.getvalue())
    data[12:16] = b"\x00\x01\x02\x03"  # IHDR chunk type destroyed
    p.write_bytes(bytes(data))
    expect_error(CorruptImageError, p)


@pytest.mark.filterwarnings("ignore:Corrupt EXIF data:UserWarning")
def test_only_load_errors_escape_for_garbage_after_valid_headers(tmp_path):
    # Valid signatures followed by garbage: whatever the plugin chokes on, the
    # caller sees an ImageLoadError.
    headers = [b"\x89PNG\r\n\x1a\n", b"GIF89a", b"BM", b"\xff\xd8\xff", b"II*\x00", b"MM\x00*", b"RIFF\x00\x00\x00\x00WEBP"]
    rng = random.Random(7)
    for i, header in enumerate(headers):
        p = tmp_path / f"garbage{i}.img"
        p.write_bytes(header + bytes(rng.getrandbits(8) for _ in range(200)))
        with pytest.raises(ImageLoadError) as info:
            load_rgb(p)
        assert p.name in str(info.value)


# --- thumbnails -------------------------------------------------------------------


def test_thumbnail_bounds_size_and_applies_orientation(tmp_path):
    p = tmp_path / "big.jpg"
    im = Image.new("RGB", (800, 400), WHITE)
    im.paste((255, 0, 0), (0, 0, 100, 100))
    exif = Image.Exif()
    exif[0x0112] = 6
    im.save(p, exif=exif.tobytes(), quality=90)
    th = thumbnail(p, 100)
    check_rgb(th, (50, 100))
    assert close_to(th.getpixel((45, 5)), (255, 0, 0), tol=40)


def test_thumbnail_never_enlarges_and_flattens_alpha(tmp_path):
    p = tmp_path / "small.png"
    Image.new("RGBA", (20, 10), (0, 0, 0, 0)).save(p)
    th = thumbnail(p, 100)
    check_rgb(th, (20, 10))
    assert th.getpixel((0, 0)) == WHITE


def test_thumbnail_errors_match_load_rgb(tmp_path):
    p = tmp_path / "notes.png"
    p.write_text("nope", encoding="utf-8")
    with pytest.raises(NotAnImageError, match="notes.png"):
        thumbnail(p, 64)
    with pytest.raises(ValueError):
        thumbnail(p, 0)


# --- model input ------------------------------------------------------------------


def test_open_for_model_shape_and_dtype(tmp_path):
    p = tmp_path / "wide.png"
    Image.new("RGBA", (64, 32), (0, 0, 0, 0)).save(p)
    arr = open_for_model(p, 16, resample="bilinear")
    assert arr.shape == (16, 16, 3) and arr.dtype == np.float32
    assert float(arr.min()) == 255.0  # transparent -> white, values on the 0..255 scale


def test_open_for_model_rejects_unknown_filter(tmp_path):
    p = tmp_path / "x.png"
    Image.new("RGB", (4, 4)).save(p)
    with pytest.raises(ValueError, match="lanczos"):
        open_for_model(p, 8, resample="lanczos")


def test_open_for_model_matches_keras_load_img(tmp_path):
    keras_utils = pytest.importorskip("keras.utils")
    p = tmp_path / "photo.jpg"
    noise_rgb(300, 200, seed=3).save(p, quality=85)
    expected = keras_utils.img_to_array(keras_utils.load_img(p, target_size=(224, 224)))
    actual = open_for_model(p, 224)
    assert actual.dtype == np.float32 and actual.shape == (224, 224, 3)
    np.testing.assert_array_equal(actual, expected)


# --- collecting files ---------------------------------------------------------------


def touch_image(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (2, 2)).save(path, format="PNG")
    return path


def test_collect_images_walks_folders_in_natural_order(tmp_path):
    root = tmp_path / "photos"
    for name in ("img10.jpg", "img2.JPG", "img1.png", "B.webp", "a.tif"):
        touch_image(root / name)
    touch_image(root / "sub" / "z.gif")
    touch_image(root / "sub" / "deeper" / "y.bmp")
    touch_image(root / "another" / "x.png")
    (root / "notes.txt").write_text("x")
    (root / "sub" / "data.csv").write_text("x")
    touch_image(root / ".hidden.jpg")
    touch_image(root / ".cache" / "thumb.jpg")

    found = collect_images([root])
    assert isinstance(found, CollectedFiles)
    rel = [p.relative_to(root).as_posix() for p in found.images]
    assert rel == [
        "a.tif",
        "B.webp",
        "img1.png",
        "img2.JPG",
        "img10.jpg",
        "another/x.png",
        "sub/z.gif",
        "sub/deeper/y.bmp",
    ]
    assert sorted(p.relative_to(root).as_posix() for p in found.skipped) == ["notes.txt", "sub/data.csv"]
    # Stable: a second scan gives the same answer.
    assert collect_images([root]) == found


def test_collect_images_keeps_explicit_paths_and_drops_duplicates(tmp_path):
    root = tmp_path / "photos"
    a = touch_image(root / "a.png")
    notes = root / "notes.txt"
    notes.write_text("x")
    missing = tmp_path / "missing.jpg"
    hidden = touch_image(tmp_path / ".secret.png")

    found = collect_images([notes, root, str(a), missing, root / "." / "a.png", hidden, root])
    assert found.images == [notes, a, missing, hidden]
    assert found.skipped == []  # notes.txt was named explicitly, so it is an image request

    # Named after the folder that contains it: still kept, and no longer "skipped".
    found = collect_images([root, notes])
    assert found.images == [a, notes]
    assert found.skipped == []


@posix_only
@pytest.mark.timeout(60)
def test_collect_images_survives_symlink_loops(tmp_path):
    root = tmp_path / "photos"
    touch_image(root / "a.png")
    touch_image(root / "sub" / "b.png")
    os.symlink(root, root / "sub" / "back_to_root")  # directory cycle
    os.symlink(root / "x.jpg", root / "y.jpg")  # file link loop
    os.symlink(root / "y.jpg", root / "x.jpg")
    os.symlink(root / "a.png", root / "same_as_a.png")  # a second name of a.png

    found = collect_images([root, root / "x.jpg"])  # a loop followed would hang: the timeout marker fails it
    names = [p.relative_to(root).as_posix() for p in found.images]
    # Every path is an image to report on, the second name of a file too, marked as such.
    assert names == ["a.png", "same_as_a.png", "x.jpg", "y.jpg", "sub/b.png"]
    assert found.same_as == {root / "same_as_a.png": root / "a.png"}
    # The loop entries are handed on so loading them produces an error record.
    with pytest.raises(UnreadableFileError):
        load_rgb(found.images[2])


def test_collect_images_empty_input():
    assert collect_images([]) == CollectedFiles(images=[], skipped=[])


# --- panoramas: a reduced decode instead of a refusal ---------------------------------


def _jpeg_claiming(width: int, height: int) -> bytes:
    """A small real JPEG whose frame header (SOF0) claims another size."""
    buf = io.BytesIO()
    Image.new("RGB", (16, 16), (10, 120, 200)).save(buf, "JPEG", quality=80)
    data = bytearray(buf.getvalue())
    sof = data.index(b"\xff\xc0")
    data[sof + 5:sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


@pytest.mark.slow
def test_a_20000_by_15000_panorama_is_captioned_from_a_half_scale_decode(tmp_path):
    path = tmp_path / "panorama.jpg"
    Image.new("L", (20000, 15000), 140).save(path, "JPEG", quality=60)  # 300 MP, over the 120 MP limit
    im = load_rgb(path)
    assert im.size == (10000, 7500) and im.mode == "RGB"
    assert open_for_model(path, 224).shape == (224, 224, 3)
    assert thumbnail(path, 1600).size == (1600, 1200)


def test_a_jpeg_over_the_limit_is_decoded_at_the_first_scale_that_fits(tmp_path):
    path = tmp_path / "wide.jpg"
    Image.new("RGB", (2000, 1500), (200, 60, 60)).save(path, "JPEG")
    assert load_rgb(path, max_pixels=1_000_000).size == (1000, 750)   # 3 MP -> 1/2
    assert load_rgb(path, max_pixels=100_000).size == (250, 188)      # -> 1/8
    assert load_rgb(path).size == (2000, 1500)                        # within the limit: untouched


def test_other_formats_over_the_limit_are_still_refused(tmp_path):
    path = tmp_path / "wide.png"
    Image.new("RGB", (2000, 1500), (200, 60, 60)).save(path)
    err = expect_error(ImageTooLargeError, path, max_pixels=1_000_000)
    assert "2000 x 1500" in str(err)


@pytest.mark.parametrize("max_pixels", [10_000_000, None])
def test_a_jpeg_header_claiming_gigapixels_is_refused_before_decoding(tmp_path, monkeypatch, max_pixels):
    from PIL import ImageFile

    path = tmp_path / "bomb.jpg"
    path.write_bytes(_jpeg_claiming(65000, 65000))  # 4.2 GP: 66 MP even at 1/8

    def decode(self, *args, **kwargs):
        raise AssertionError("a gigapixel image was being decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", decode)
    err = expect_error(ImageTooLargeError, path, max_pixels=max_pixels)
    if max_pixels is not None:
        assert "even decoded at 1/8 scale" in str(err)


def test_under_the_default_limit_a_false_jpeg_header_costs_at_most_an_eighth(tmp_path, monkeypatch):
    """JPEG's largest frame (65535 x 65535) is 67 MP at 1/8, within the limit: the decode is
    done at that size, no more memory than a big photo (libjpeg pads the missing data grey)."""
    from PIL import ImageFile

    path = tmp_path / "claims.jpg"
    path.write_bytes(_jpeg_claiming(65000, 65000))
    sizes = []
    real_load = ImageFile.ImageFile.load
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda self: sizes.append(self.size) or real_load(self))
    assert load_rgb(path).size == (8125, 8125)
    assert set(sizes) == {(8125, 8125)}


# --- colour profiles -------------------------------------------------------------------


def _s15(value: float) -> bytes:
    return struct.pack(">i", round(value * 65536))


def _matrix_profile(red, green, blue) -> bytes:
    """A minimal ICC v2 RGB display profile (matrix + gamma 2.2), built here so the tests need no
    profile files. The colorants are the XYZ (D50) of the file's pure red, green and blue."""
    def xyz(values):
        return b"XYZ " + b"\0" * 4 + b"".join(_s15(v) for v in values)

    text = b"imgcap test profile\0"
    desc = b"desc" + b"\0" * 4 + struct.pack(">I", len(text)) + text + b"\0" * 8 + b"\0" * 3 + b"\0" * 67
    curve = b"curv" + b"\0" * 4 + struct.pack(">IH", 1, 0x0233) + b"\0\0"
    tags = [(b"desc", desc), (b"wtpt", xyz((0.9642, 1.0, 0.8249))), (b"rXYZ", xyz(red)), (b"gXYZ", xyz(green)),
            (b"bXYZ", xyz(blue)), (b"rTRC", curve), (b"gTRC", curve), (b"bTRC", curve)]
    offset = 128 + 4 + 12 * len(tags)
    table, body = b"", b""
    for sig, data in tags:
        data += b"\0" * (-len(data) % 4)
        table += sig + struct.pack(">II", offset + len(body), len(data))
        body += data
    size = offset + len(body)
    header = (struct.pack(">I", size) + b"lcms" + struct.pack(">I", 0x02100000) + b"mntr" + b"RGB " + b"XYZ "
              + struct.pack(">6H", 2020, 1, 1, 0, 0, 0) + b"acsp" + b"\0" * 24 + struct.pack(">I", 0)
              + _s15(0.9642) + _s15(1.0) + _s15(0.8249) + b"\0" * 48)
    assert len(header) == 128
    return header + struct.pack(">I", len(tags)) + table + body


SRGB_RED, SRGB_GREEN, SRGB_BLUE = (0.4361, 0.2225, 0.0139), (0.3851, 0.7169, 0.0971), (0.1431, 0.0606, 0.7141)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_an_embedded_profile_is_applied_in_the_model_input_and_the_preview(tmp_path, fmt):
    # A profile whose "red" channel is really sRGB's blue, and the other way round.
    swapped = _matrix_profile(SRGB_BLUE, SRGB_GREEN, SRGB_RED)
    path = tmp_path / f"swapped.{fmt.lower()}"
    Image.new("RGB", (64, 48), (230, 20, 20)).save(path, fmt, icc_profile=swapped, quality=95)
    r, g, b = np.asarray(load_rgb(path), dtype=float).reshape(-1, 3).mean(axis=0)
    assert b > 150 and r < 80, (r, g, b)  # shown and captioned blue, as the profile says
    assert open_for_model(path, 32)[..., 2].mean() > 150
    assert np.asarray(thumbnail(path, 16))[..., 2].mean() > 150


def test_an_srgb_profile_changes_almost_nothing_and_a_broken_one_is_ignored(tmp_path):
    path = tmp_path / "srgb.png"
    Image.new("RGB", (8, 8), (200, 120, 40)).save(path, icc_profile=_matrix_profile(SRGB_RED, SRGB_GREEN, SRGB_BLUE))
    assert np.abs(np.asarray(load_rgb(path), dtype=int) - (200, 120, 40)).max() <= 6  # gamma 2.2 vs sRGB's curve
    from PIL import ImageCms

    named = tmp_path / "named-srgb.jpg"
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    Image.new("RGB", (8, 8), (200, 120, 40)).save(named, icc_profile=srgb, quality=100)
    plain = tmp_path / "plain.jpg"
    Image.new("RGB", (8, 8), (200, 120, 40)).save(plain, quality=100)
    assert np.array_equal(np.asarray(load_rgb(named)), np.asarray(load_rgb(plain)))  # sRGB is left as it is
    broken = tmp_path / "broken-profile.png"
    Image.new("RGB", (8, 8), (200, 120, 40)).save(broken, icc_profile=b"not a profile at all")
    assert np.asarray(load_rgb(broken))[0, 0].tolist() == [200, 120, 40]


def test_a_cmyk_jpeg_goes_through_its_profile(tmp_path):
    profile = Path("/usr/share/color/icc/ghostscript/default_cmyk.icc")
    if not profile.is_file():
        pytest.skip("no CMYK profile on this machine (ghostscript's)")
    path = tmp_path / "cmyk.jpg"
    Image.new("CMYK", (16, 16), (0, 0, 0, 0)).save(path, icc_profile=profile.read_bytes())  # paper white
    assert np.asarray(load_rgb(path)).min() > 230


def test_a_dangling_symlink_says_where_it_points(tmp_path):
    link = tmp_path / "a.jpg"
    link.symlink_to(tmp_path / "gone" / "a.jpg")
    err = expect_error(UnreadableFileError, link)
    assert "it is a link to" in str(err) and "gone/a.jpg, which does not exist" in str(err)


@pytest.mark.parametrize("fmt", ["GIF", "WEBP", "PNG"])
def test_an_animation_with_a_canvas_far_beyond_any_real_one_is_refused_before_decoding(tmp_path, monkeypatch, fmt):
    from imgcap_desktop.core import images

    path = tmp_path / f"anim.{fmt.lower()}"
    frames = [Image.new("RGB", (200, 20), c) for c in ((255, 0, 0), (0, 0, 255))]
    frames[0].save(path, fmt, save_all=True, append_images=frames[1:], duration=100)
    assert load_rgb(path).size == (200, 20)
    monkeypatch.setattr(images, "MAX_ANIMATION_PIXELS", 1_000)  # 4,000 pixels is now "huge"
    err = expect_error(ImageTooLargeError, path)
    assert "an animation of 200 x 20 pixels" in str(err)
    still = tmp_path / f"still.{fmt.lower()}"
    frames[0].save(still, fmt)
    assert load_rgb(still).size == (200, 20)  # a still image of that size is no animation


# --- found by the fuzz suite (tests/support/fuzz.py) -------------------------------------


def test_a_png_chunk_claiming_gigabytes_allocates_nothing_for_it(tmp_path):
    import resource
    import subprocess

    path = tmp_path / "claims.png"
    good = io.BytesIO()
    Image.new("RGB", (48, 32), (1, 2, 3)).save(good, "PNG")
    data = bytearray(good.getvalue())
    idat = data.index(b"IDAT") - 4
    data[idat:idat + 4] = struct.pack(">I", 0xFF00003E)  # 4.28 GB of image data, in a 119-byte file
    path.write_bytes(bytes(data[:idat + 8]) + b"\0" * 30)
    script = ("import resource, sys\n"
              "resource.setrlimit(resource.RLIMIT_AS, (1024 * 2**20,) * 2)\n"
              "from imgcap_desktop.core.images import load_rgb\n"
              "from imgcap_desktop.core.errors import ImageLoadError\n"
              f"try:\n    load_rgb({str(path)!r})\nexcept ImageLoadError as exc:\n    print(exc)\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "memory" not in done.stdout and "claims.png" in done.stdout
    assert resource  # the cap is what makes a 4 GB request fail here


def test_a_gif_that_ends_before_its_second_frame_is_corrupt_not_a_crash(tmp_path):
    frames = [Image.new("RGB", (32, 32), c) for c in ((255, 0, 0), (0, 255, 0))]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:])
    path = tmp_path / "cut.gif"
    path.write_bytes(buf.getvalue()[: len(buf.getvalue()) - 40])
    try:
        load_rgb(path)
    except ImageLoadError:
        pass


# --- phone and modern formats ----------------------------------------------------------


@pytest.mark.parametrize("suffix", [".heic", ".avif"])
def test_phone_formats_open_with_their_rotation_for_the_model_and_the_preview(tmp_path, suffix):
    path = tmp_path / f"phone{suffix}"
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90": the photo is shown 20 wide, 60 high
    photo = Image.new("RGB", (60, 20), (200, 30, 30))
    if suffix == ".heic":
        save_heic(photo, path, exif=exif.tobytes(), quality=90)
    else:
        photo.save(path, exif=exif.tobytes(), quality=90)
    assert suffix in IMAGE_EXTENSIONS
    assert load_rgb(path).size == (20, 60)
    assert thumbnail(path, 30).size == (10, 30)
    r, g, b = open_for_model(path, 16).reshape(-1, 3).mean(axis=0)
    assert r > 150 and g < 80
    assert collect_images([tmp_path]).images == [path]


def test_a_damaged_heic_is_corrupt_in_one_sentence(tmp_path):
    path = tmp_path / "cut.heic"
    save_heic(Image.new("RGB", (64, 64), (10, 200, 10)), path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    err = expect_error(CorruptImageError, path)
    assert "cut.heic" in str(err) and "\n" not in str(err)
