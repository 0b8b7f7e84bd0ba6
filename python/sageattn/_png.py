"""A small raster canvas that writes PNG files with numpy, zlib and struct only.

It draws what the benchmark report needs when matplotlib is not installed (a GPU machine without
network may lack it): filled rectangles, anti-aliased polylines (solid or dashed), filled
discs and text in a built-in 5x7 bitmap font, scaled by an integer factor. Colors are RGB tuples of
0-255; coordinates are pixels, x to the right and y down, (0, 0) the top-left corner.

The PNG is 8-bit RGB, not interlaced, every row with filter type 1 ("Sub": each byte minus the one
of the pixel to its left), which turns the flat areas of a plot into runs of zeros for zlib.
"""

from __future__ import annotations

import struct
import zlib
from typing import List, Optional, Sequence, Tuple

import numpy as np

Color = Tuple[int, int, int]

# ---- the font ----

# A 5-pixel-wide glyph per character; capitals and digits use rows 0-6, descenders rows 7-8.
# Each character of a code is one row in base 32 (0-9, A-V), its 5 bits the pixels from left to
# right (16 = the leftmost); missing trailing rows are blank. 'A' = "EHHVHHH" is
# .###. / #...# / #...# / ##### / #...# / #...# / #...#. Unknown characters draw as '?'.
_FONT = {
    '0': 'EHJLPHE', '1': '4C4444E', '2': 'EH1248V', '3': 'V2421HE', '4': '26AIV22', '5': 'VGU11HE',
    '6': '68GUHHE', '7': 'V124888', '8': 'EHHEHHE', '9': 'EHHF12C', 'A': 'EHHVHHH', 'B': 'UHHUHHU',
    'C': 'EHGGGHE', 'D': 'SIHHHIS', 'E': 'VGGUGGV', 'F': 'VGGUGGG', 'G': 'EHGNHHF', 'H': 'HHHVHHH',
    'I': 'E44444E', 'J': '72222IC', 'K': 'HIKOKIH', 'L': 'GGGGGGV', 'M': 'HRLLHHH', 'N': 'HHPLJHH',
    'O': 'EHHHHHE', 'P': 'UHHUGGG', 'Q': 'EHHHLID', 'R': 'UHHUKIH', 'S': 'FGGE11U', 'T': 'V444444',
    'U': 'HHHHHHE', 'V': 'HHHHHA4', 'W': 'HHHLLLA', 'X': 'HHA4AHH', 'Y': 'HHA4444', 'Z': 'V1248GV',
    'a': '00E1FHF', 'b': 'GGUHHHU', 'c': '00EGGHE', 'd': '11FHHHF', 'e': '00EHVGE', 'f': '698S888',
    'g': '00FHHHF1E', 'h': 'GGMPHHH', 'i': '40C444E', 'j': '2062222IC', 'k': 'GGIKOKI',
    'l': 'C44444E', 'm': '00QLLLL', 'n': '00MPHHH', 'o': '00EHHHE', 'p': '00UHHHUGG',
    'q': '00FHHHF11', 'r': '00MPGGG', 's': '00FGE1U', 't': '88S8896', 'u': '00HHHJD',
    'v': '00HHHA4', 'w': '00HHLLA', 'x': '00HA4AH', 'y': '00HHHHF1E', 'z': '00V248V',
    '.': '00000CC', ',': '00000CC48', ':': '0CC0CC', '-': '000V', '_': '0000000V', '+': '044V44',
    '=': '00V0V', '(': '2488842', ')': '8422248', '[': 'E88888E', ']': 'E22222E', '/': '11248GG',
    '%': 'OP248J3', '*': '04LEL4', '<': '248G842', '>': '8421248', "'": '448', '|': '4444444',
    '!': '4444404', '?': 'EH12404', '^': '4AH', ' ': '',
}
GLYPH_WIDTH, GLYPH_ROWS = 5, 9
ADVANCE = GLYPH_WIDTH + 1   # pixels from one character to the next, at scale 1
CAP_HEIGHT = 7              # rows 0-6: capitals and digits


def _glyph(ch: str) -> np.ndarray:
    code = _FONT.get(ch, _FONT['?'])
    rows = [int(c, 32) for c in code] + [0] * (GLYPH_ROWS - len(code))
    return np.array([[(r >> (GLYPH_WIDTH - 1 - i)) & 1 for i in range(GLYPH_WIDTH)] for r in rows], bool)


def text_size(text: str, scale: int = 1) -> Tuple[int, int]:
    """(width, cap height) in pixels of ``text`` drawn at ``scale``."""
    return max(0, len(text) * ADVANCE - 1) * scale, CAP_HEIGHT * scale


def text_mask(text: str, scale: int = 1) -> np.ndarray:
    """The pixels of ``text`` (rows: the whole glyph cell, descenders included) as a bool array."""
    mask = np.zeros((GLYPH_ROWS, max(1, len(text) * ADVANCE)), bool)
    for i, ch in enumerate(text):
        mask[:, i * ADVANCE:i * ADVANCE + GLYPH_WIDTH] = _glyph(ch)
    return np.kron(mask, np.ones((scale, scale), bool)) if scale > 1 else mask


# ---- PNG ----

def encode_png(rgb: np.ndarray) -> bytes:
    """PNG bytes of an ``[height, width, 3]`` uint8 image."""
    height, width, channels = rgb.shape
    assert channels == 3 and rgb.dtype == np.uint8
    rows = rgb.reshape(height, width * 3)
    sub = rows.copy()
    sub[:, 3:] -= rows[:, :-3]  # filter "Sub" (uint8 arithmetic wraps modulo 256, as PNG defines it)
    raw = np.concatenate([np.full((height, 1), 1, np.uint8), sub], axis=1)

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8 bits, RGB, deflate, filters, no interlace
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw.tobytes(), 9))
            + chunk(b"IEND", b""))


# ---- the canvas ----

class Canvas:
    """An RGB image to draw on; :meth:`save` writes it as PNG."""

    def __init__(self, width: int, height: int, background: Color = (255, 255, 255)):
        self.width, self.height = int(width), int(height)
        self.pixels = np.empty((self.height, self.width, 3), np.float32)
        self.pixels[:] = background

    def _blend(self, x0: int, y0: int, alpha: np.ndarray, color: Color) -> None:
        """Mixes ``color`` into the pixels at (x0, y0) + alpha's shape with coverage ``alpha`` in [0, 1]."""
        h, w = alpha.shape
        xa, ya = max(x0, 0), max(y0, 0)
        xb, yb = min(x0 + w, self.width), min(y0 + h, self.height)
        if xa >= xb or ya >= yb:
            return
        a = alpha[ya - y0:yb - y0, xa - x0:xb - x0, None].astype(np.float32)
        region = self.pixels[ya:yb, xa:xb]
        region += a * (np.asarray(color, np.float32) - region)

    def rect(self, x0: float, y0: float, x1: float, y1: float, color: Color) -> None:
        """Fills the rectangle [x0, x1) x [y0, y1) (rounded to whole pixels)."""
        xa, xb = sorted((int(round(x0)), int(round(x1))))
        ya, yb = sorted((int(round(y0)), int(round(y1))))
        self._blend(xa, ya, np.ones((max(yb - ya, 1), max(xb - xa, 1)), np.float32), color)

    def polyline(self, points: Sequence[Tuple[float, float]], color: Color, width: float = 2.0,
                 dash: Optional[Tuple[float, float]] = None) -> None:
        """An anti-aliased line through ``points``; ``dash`` = (on, off) lengths in pixels."""
        pieces = _dashes(points, dash) if dash else [list(points)]
        segments = [(a, b) for piece in pieces for a, b in zip(piece, piece[1:])]
        if not segments:
            return
        half = width / 2.0
        xs = [p[0] for s in segments for p in s]
        ys = [p[1] for s in segments for p in s]
        x0, y0 = int(np.floor(min(xs) - half - 1)), int(np.floor(min(ys) - half - 1))
        x1, y1 = int(np.ceil(max(xs) + half + 1)), int(np.ceil(max(ys) + half + 1))
        px = np.arange(x0, x1, dtype=np.float32)[None, :] + 0.5
        py = np.arange(y0, y1, dtype=np.float32)[:, None] + 0.5
        coverage = np.zeros((y1 - y0, x1 - x0), np.float32)
        for (ax, ay), (bx, by) in segments:
            dx, dy = bx - ax, by - ay
            length2 = dx * dx + dy * dy
            t = np.zeros_like(coverage) if length2 == 0 else np.clip(((px - ax) * dx + (py - ay) * dy) / length2, 0, 1)
            dist = np.hypot(px - (ax + t * dx), py - (ay + t * dy))
            np.maximum(coverage, np.clip(half + 0.5 - dist, 0, 1), out=coverage)
        self._blend(x0, y0, coverage, color)

    def disc(self, x: float, y: float, radius: float, color: Color) -> None:
        """A filled, anti-aliased circle."""
        x0, y0 = int(np.floor(x - radius - 1)), int(np.floor(y - radius - 1))
        size = int(np.ceil(2 * radius + 3))
        px = np.arange(x0, x0 + size, dtype=np.float32)[None, :] + 0.5
        py = np.arange(y0, y0 + size, dtype=np.float32)[:, None] + 0.5
        self._blend(x0, y0, np.clip(radius + 0.5 - np.hypot(px - x, py - y), 0, 1), color)

    def text(self, x: float, y: float, text: str, color: Color = (0, 0, 0), scale: int = 2,
             anchor: str = "lt", vertical: bool = False) -> None:
        """Draws ``text`` with its anchor point at (x, y).

        ``anchor``: horizontal l / c / r (left, center, right) then vertical t / m / b (top of the
        capitals, their middle, the baseline). ``vertical`` turns the text 90 degrees to read from
        bottom to top (a y-axis label); the anchor then applies to the turned text's box.
        """
        mask = text_mask(text, scale)
        w, h = text_size(text, scale)
        if vertical:
            mask = np.rot90(mask)  # the glyph cell's bottom (descenders) now faces right
            w, h = h, w
        dx = {"l": 0, "c": -w / 2, "r": -w}[anchor[0]]
        dy = {"t": 0, "m": -h / 2, "b": -h}[anchor[1]]
        self._blend(int(round(x + dx)), int(round(y + dy)), mask, color)

    def rgb(self) -> np.ndarray:
        """The image as ``[height, width, 3]`` uint8."""
        return np.clip(np.rint(self.pixels), 0, 255).astype(np.uint8)

    def save(self, path) -> None:
        with open(path, "wb") as f:
            f.write(encode_png(self.rgb()))


def _dashes(points: Sequence[Tuple[float, float]], dash: Tuple[float, float]) -> List[List[Tuple[float, float]]]:
    """The "on" pieces of a dashed polyline, each a list of points."""
    on, off = dash
    pieces: List[List[Tuple[float, float]]] = []
    current: List[Tuple[float, float]] = [tuple(points[0])] if points else []
    drawing, left = True, on  # state of the dash pattern and the length left in it
    for (ax, ay), (bx, by) in zip(points, points[1:]):
        length = float(np.hypot(bx - ax, by - ay))
        pos = 0.0
        while length - pos > left:
            pos += left
            p = (ax + (bx - ax) * pos / length, ay + (by - ay) * pos / length)
            if drawing:
                current.append(p)
                pieces.append(current)
            current = [p]
            drawing, left = not drawing, (off if drawing else on)
        left -= length - pos
        if drawing:
            current.append((bx, by))
        else:
            current = [(bx, by)]
    if drawing and len(current) > 1:
        pieces.append(current)
    return pieces
