"""Renders imgcap.svg to the PNG the desktop entry and Windows/macOS packagers use.

Run from anywhere: python resources/icons/make_icons.py  (needs PySide6 with QtSvg).
"""

from __future__ import annotations

import sys
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication, QImage, QPainter
from PySide6.QtSvg import QSvgRenderer

HERE = Path(__file__).resolve().parent
SIZES = (256,)


def render(svg: Path, size: int) -> QImage:
    renderer = QSvgRenderer(str(svg))
    if not renderer.isValid():
        raise SystemExit(f"{svg} is not a valid SVG file")
    image = QImage(size, size, QImage.Format.Format_ARGB32_Premultiplied)
    image.fill(Qt.GlobalColor.transparent)
    painter = QPainter(image)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    renderer.render(painter)
    painter.end()
    return image


def main() -> int:
    app = QGuiApplication.instance() or QGuiApplication(sys.argv[:1] + ["-platform", "offscreen"])
    svg = HERE / "imgcap.svg"
    for size in SIZES:
        out = HERE / f"imgcap-{size}.png"
        if not render(svg, size).save(str(out)):
            raise SystemExit(f"could not write {out}")
        print(out)
    del app
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
