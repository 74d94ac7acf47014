"""Where the model looked for each word: attention weights drawn over the photo.

The attend family gives, for every word, a weight per cell of the encoder's grid (7x7 for
EfficientNet-Lite0), plus one for the "semantic" slot (the ImageNet classes) when the model has
it. The encoder sees the whole photo resized to a square, upright, so cell (r, c) covers the
same fraction of the photo as shown, whatever its aspect: a map is stretched over the displayed
photo, never cropped.

Soft attention over 49 cells is diffuse (normalised entropies of 0.9 and more are usual), so
each map is stretched from its own lowest to highest cell; the legend says how much weight the
grid held in all, against the semantic slot.

Used by ``imgcap caption --attention-out`` and by the app's overlay (NumPy and Pillow only).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

# A dark-to-bright ramp (black, purple, red, orange, pale yellow) read the same way in grey:
# brighter is where the model looked more.
_RAMP = np.array([(0, 0, 4), (87, 16, 110), (188, 55, 84), (249, 142, 9), (252, 255, 164)], dtype=np.float64)


@dataclass(frozen=True)
class WordMap:
    word: str
    grid: np.ndarray        # (rows, cols) weights of the grid cells, as the model gave them
    semantic: float         # the weight on the semantic slot (0 without one)

    @property
    def grid_share(self) -> float:
        return float(self.grid.sum())

    def peak(self) -> tuple[int, int]:
        """(row, column) of the cell the word looked at most."""
        r, c = np.unravel_index(int(np.argmax(self.grid)), self.grid.shape)
        return int(r), int(c)


def grid_of(attention: np.ndarray) -> tuple[int, int] | None:
    """The square grid an attention row covers: 49 or 50 (a semantic slot) weights -> (7, 7)."""
    width = int(np.asarray(attention).shape[1])
    for cells in (width, width - 1):
        side = int(round(cells ** 0.5))
        if cells > 1 and side * side == cells:
            return side, side
    return None


def word_maps(words: Sequence[str], attention: np.ndarray, grid: tuple[int, int]) -> list[WordMap]:
    """One map per word; ``attention`` is (steps, cells[+1]), the last step being the end token."""
    rows, cols = grid
    cells = rows * cols
    attention = np.asarray(attention, dtype=np.float64)
    if attention.ndim != 2 or attention.shape[1] < cells:
        raise ValueError(f"attention of shape {attention.shape} does not cover a {rows}x{cols} grid")
    return [WordMap(word, attention[i, :cells].reshape(rows, cols), float(attention[i, cells:].sum()))
            for i, word in enumerate(words[:len(attention)])]


def smooth(grid: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The grid stretched from its lowest (0) to highest (1) cell and resized smoothly to ``size``
    (width, height): bicubic between cell centres, so the peak stays where the cell was."""
    g = np.asarray(grid, dtype=np.float32)
    span = float(g.max() - g.min())
    g = (g - g.min()) / span if span > 1e-12 else np.zeros_like(g)
    up = Image.fromarray(g, mode="F").resize((max(1, size[0]), max(1, size[1])), Image.Resampling.BICUBIC)
    return np.clip(np.asarray(up), 0.0, 1.0)


def colour(values: np.ndarray) -> np.ndarray:
    """(h, w) values in [0, 1] -> (h, w, 3) uint8 colours of the ramp."""
    x = np.clip(values, 0, 1) * (len(_RAMP) - 1)
    low = np.floor(x).astype(int).clip(0, len(_RAMP) - 2)
    t = (x - low)[..., None]
    return (_RAMP[low] * (1 - t) + _RAMP[low + 1] * t).round().astype(np.uint8)


def overlay_rgba(grid: np.ndarray, size: tuple[int, int], opacity: float = 0.6) -> np.ndarray:
    """(h, w, 4) uint8: the word's heatmap, more opaque where the model looked more."""
    values = smooth(grid, size)
    alpha = (opacity * 255 * (0.25 + 0.75 * values)).round().astype(np.uint8)
    return np.dstack([colour(values), alpha])


def blend(photo: Image.Image, grid: np.ndarray, opacity: float = 0.6) -> Image.Image:
    heat = Image.fromarray(overlay_rgba(grid, photo.size, opacity), mode="RGBA")
    return Image.alpha_composite(photo.convert("RGBA"), heat).convert("RGB")


def legend(width: int, height: int = 10) -> np.ndarray:
    """A horizontal ramp from "looked least" to "looked most", for a legend."""
    return colour(np.tile(np.linspace(0, 1, width), (height, 1)))


def _font(size: int):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has one fixed-size bitmap font
        return ImageFont.load_default()


def strip(photo: Image.Image, maps: Sequence[WordMap], *, tile: int = 160, per_row: int = 6) -> Image.Image:
    """Every word's map over a small copy of the photo, in caption order, with the word below it
    and the legend at the bottom."""
    photo = photo.convert("RGB")
    scale = tile / max(photo.size)
    small = photo.resize((max(1, round(photo.width * scale)), max(1, round(photo.height * scale))),
                         Image.Resampling.LANCZOS)
    label_h, pad = 34, 6
    rows = max(1, -(-len(maps) // per_row))
    cols = min(per_row, max(1, len(maps)))
    cell_w, cell_h = small.width + pad, small.height + label_h
    sheet = Image.new("RGB", (cols * cell_w + pad, rows * cell_h + pad + 40), "white")
    draw = ImageDraw.Draw(sheet)
    font, small_font = _font(14), _font(11)
    for i, m in enumerate(maps):
        x, y = pad + (i % per_row) * cell_w, pad + (i // per_row) * cell_h
        sheet.paste(blend(small, m.grid), (x, y))
        draw.text((x, y + small.height + 2), m.word, fill="black", font=font)
        if m.semantic > 0 and tile >= 150:  # the line does not fit under a smaller tile
            draw.text((x, y + small.height + 18), f"grid {100 * m.grid_share:.0f}% · classes {100 * m.semantic:.0f}%",
                      fill=(90, 90, 90), font=small_font)
    bar_w = min(240, sheet.width - 2 * pad)
    y = sheet.height - 30
    sheet.paste(Image.fromarray(legend(bar_w)), (pad, y))
    draw.text((pad, y + 12), "looked least", fill=(60, 60, 60), font=small_font)
    draw.text((pad + bar_w - 70, y + 12), "looked most", fill=(60, 60, 60), font=small_font)
    return sheet


def write_strip(photo: Image.Image, words: Sequence[str], attention: np.ndarray, grid: tuple[int, int],
                out: Path) -> Path:
    from imgcap_desktop.core.export import atomic_writer

    image = strip(photo, word_maps(words, attention, grid))
    with atomic_writer(out) as fh:
        image.save(fh, format="PNG")
    return out
