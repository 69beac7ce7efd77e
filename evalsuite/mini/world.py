"""The synthetic visual world of the mini-suite: scenes, their rendering, and their canonical keys.

A scene is pure data (frozen dataclasses), so every question can be derived from its truth:
- "shapes": 1-5 shapes on a 3x3 grid (one shape per cell; no two shapes share colour AND kind);
- "text":   a word, a line of code (`print(2+3)`) or a sum (`7+5=?`) in one horizontal band, optionally
            with shapes in the other bands (a "poster");
- "chart":  a bar chart with 3-4 labelled bars, values 1-9 written above the bars;
- "table":  the same data drawn as a two-column table.
Coordinates are in hundredths of the canvas, so a scene renders at any size. Randomness comes only from
the `random.Random` passed in. Text is drawn with PIL's default font (`ImageFont.load_default`).
"""

from __future__ import annotations

import functools
import hashlib
import io
import random
from dataclasses import dataclass, replace

from PIL import Image, ImageDraw, ImageFont

IMAGE_SIZE = 96

COLORS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40), "green": (40, 160, 60), "blue": (40, 80, 220),
    "yellow": (235, 200, 30), "purple": (140, 60, 180), "orange": (240, 130, 30),
}
COLOR_ZH = {"red": "红色", "green": "绿色", "blue": "蓝色", "yellow": "黄色", "purple": "紫色",
            "orange": "橙色"}
KINDS = ("circle", "square", "triangle")
KIND_ZH = {"circle": "圆形", "square": "正方形", "triangle": "三角形"}
SIDES = {"square": 4, "triangle": 3}
BACKGROUNDS: dict[str, tuple[int, int, int]] = {"white": (255, 255, 255), "gray": (228, 228, 228),
                                                 "cream": (250, 244, 225)}
TEXT_COLORS: dict[str, tuple[int, int, int]] = {"black": (0, 0, 0), **{c: COLORS[c] for c in
                                                                       ("red", "blue", "green", "purple")}}
# English words drawn in images, with their French translation (MME text_translation).
FRENCH = {"cat": "chat", "dog": "chien", "sun": "soleil", "tree": "arbre", "book": "livre", "fish": "poisson",
          "bird": "oiseau", "house": "maison", "apple": "pomme", "moon": "lune", "water": "eau",
          "milk": "lait", "bread": "pain", "horse": "cheval", "car": "voiture", "rain": "pluie"}
# Animals and three facts about them (MME commonsense_reasoning).
ANIMALS = {"bird": {"fly"}, "fish": {"water"}, "dog": {"legs"}, "cat": {"legs"}, "horse": {"legs"},
           "cow": {"legs"}, "duck": {"fly", "water"}, "bee": {"fly"}, "whale": {"water"}, "shark": {"water"}}
WORDS = tuple(sorted(set(FRENCH) | set(ANIMALS)))
BAR_LABELS = ("ant", "bee", "owl", "fox", "yak", "elk", "pig", "cod")
CELL_NAMES = {(0, 0): "top left", (1, 0): "top middle", (2, 0): "top right", (0, 1): "middle left",
              (1, 1): "center", (2, 1): "middle right", (0, 2): "bottom left", (1, 2): "bottom middle",
              (2, 2): "bottom right"}
SCENE_KINDS = ("shapes", "text", "chart", "table")
TEXT_KINDS = ("word", "code", "math")


@dataclass(frozen=True)
class Shape:
    color: str
    kind: str
    col: int  # grid column 0..2, left to right
    row: int  # grid row 0..2, top to bottom
    size: int  # half-extent, hundredths of the canvas (6..12)
    dx: int = 0  # jitter of the centre inside its cell, hundredths (-3..3)
    dy: int = 0

    @property
    def name(self) -> str:
        return f"{self.color} {self.kind}"


@dataclass(frozen=True)
class Bar:
    label: str
    value: int  # 1..9


@dataclass(frozen=True)
class Scene:
    kind: str  # one of SCENE_KINDS
    shapes: tuple[Shape, ...] = ()
    text: str = ""
    text_kind: str = ""  # "word" | "code" | "math" for text scenes
    text_color: str = "black"
    text_row: int = 1  # the band (0 top, 1 middle, 2 bottom) holding the text
    bars: tuple[Bar, ...] = ()
    bar_color: str = "blue"
    background: str = "white"

    def shape_named(self, name: str) -> Shape | None:
        return next((s for s in self.shapes if s.name == name), None)


def _shapes(rng: random.Random, n: int, rows: tuple[int, ...], kinds: tuple[str, ...]) -> tuple[Shape, ...]:
    cells = rng.sample([(c, r) for r in rows for c in range(3)], n)
    pairs = rng.sample([(c, k) for c in COLORS for k in kinds], n)
    shapes = [Shape(color, kind, col, row, rng.randint(6, 12), rng.randint(-3, 3), rng.randint(-3, 3))
              for (col, row), (color, kind) in zip(cells, pairs, strict=True)]
    return tuple(sorted(shapes, key=lambda s: (s.row, s.col)))


def random_text(rng: random.Random, text_kind: str, words: tuple[str, ...] = WORDS) -> str:
    a, b = rng.randint(1, 9), rng.randint(1, 9)
    if text_kind == "code":
        return f"print({a}{rng.choice('+-*')}{b})"
    if text_kind == "math":
        op = rng.choice("+-")
        a, b = (max(a, b), min(a, b)) if op == "-" else (a, b)
        return f"{a}{op}{b}=?"
    return rng.choice(words)


def random_scene(rng: random.Random, kind: str = "shapes", *, n: int | None = None,
                 kinds: tuple[str, ...] = KINDS, text_kind: str = "word", words: tuple[str, ...] = WORDS,
                 n_shapes_with_text: int | None = None, n_bars: int | None = None) -> Scene:
    """A random scene of `kind`; the keyword arguments narrow it (number of shapes, allowed kinds, ...)."""
    background = rng.choice(list(BACKGROUNDS))
    if kind == "shapes":
        n = n if n is not None else rng.randint(1, 5)
        return Scene("shapes", shapes=_shapes(rng, n, (0, 1, 2), kinds), background=background)
    if kind == "text":
        text_row = rng.randint(0, 2)
        m = n_shapes_with_text if n_shapes_with_text is not None else rng.choice((0, 0, 1, 2))
        rows = tuple(r for r in range(3) if r != text_row)
        return Scene("text", shapes=_shapes(rng, m, rows, kinds), text=random_text(rng, text_kind, words),
                     text_kind=text_kind, text_color=rng.choice(list(TEXT_COLORS)), text_row=text_row,
                     background=background)
    if kind in ("chart", "table"):
        k = n_bars if n_bars is not None else rng.randint(3, 4)
        bars = tuple(Bar(label, rng.randint(1, 9)) for label in rng.sample(BAR_LABELS, k))
        return Scene(kind, bars=bars, bar_color=rng.choice(list(COLORS)), background=background)
    raise ValueError(f"unknown scene kind {kind!r}")


def with_bar_value(scene: Scene, label: str, value: int) -> Scene:
    return replace(scene, bars=tuple(Bar(b.label, value) if b.label == label else b for b in scene.bars))


def with_shape_color(scene: Scene, shape: Shape, color: str) -> Scene:
    return replace(scene, shapes=tuple(replace(s, color=color) if s == shape else s for s in scene.shapes))


@functools.lru_cache(maxsize=8)
def font(px: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=px)
    except (TypeError, ImportError, OSError):  # Pillow < 10.1 or without FreeType: the bitmap font
        return ImageFont.load_default()


def render(scene: Scene, size: int = IMAGE_SIZE) -> Image.Image:
    """The scene as an RGB image of size x size pixels."""
    image = Image.new("RGB", (size, size), BACKGROUNDS[scene.background])
    draw = ImageDraw.Draw(image)
    u = size / 100.0
    for s in scene.shapes:
        cx, cy = ((s.col + 0.5) / 3 * 100 + s.dx) * u, ((s.row + 0.5) / 3 * 100 + s.dy) * u
        h, fill = s.size * u, COLORS[s.color]
        if s.kind == "circle":
            draw.ellipse((cx - h, cy - h, cx + h, cy + h), fill=fill)
        elif s.kind == "square":
            draw.rectangle((cx - h, cy - h, cx + h, cy + h), fill=fill)
        else:
            draw.polygon([(cx, cy - h), (cx - h, cy + h), (cx + h, cy + h)], fill=fill)
    if scene.kind == "text":
        centre = (size / 2, (scene.text_row + 0.5) / 3 * size)
        fill = TEXT_COLORS[scene.text_color]
        draw.text(centre, scene.text, fill=fill, font=font(round(14 * u)), anchor="mm")
    elif scene.kind == "chart":
        _draw_chart(draw, scene, size, u)
    elif scene.kind == "table":
        _draw_table(draw, scene, size, u)
    return image


def _draw_chart(draw: ImageDraw.ImageDraw, scene: Scene, size: int, u: float) -> None:
    left, right, top, base = 5 * u, size - 2 * u, 16 * u, size - 16 * u
    draw.line((left, top - 4 * u, left, base), fill=(0, 0, 0))
    draw.line((left, base, right, base), fill=(0, 0, 0))
    slot = (right - left) / len(scene.bars)
    small = font(round(10 * u))
    for i, bar in enumerate(scene.bars):
        x0 = left + i * slot + slot * 0.2
        x1 = left + (i + 1) * slot - slot * 0.2
        y0 = base - (base - top) * bar.value / 9
        draw.rectangle((x0, y0, x1, base - 1), fill=COLORS[scene.bar_color])
        draw.text(((x0 + x1) / 2, y0 - 1), str(bar.value), fill=(0, 0, 0), font=small, anchor="mb")
        draw.text(((x0 + x1) / 2, base + 2 * u), bar.label, fill=(0, 0, 0), font=small, anchor="mt")


def _draw_table(draw: ImageDraw.ImageDraw, scene: Scene, size: int, u: float) -> None:
    n = len(scene.bars) + 1
    left, right, top, bottom = 8 * u, size - 8 * u, 6 * u, size - 6 * u
    step, mid = (bottom - top) / n, size * 0.52
    small = font(round(12 * u))
    rows = [("item", "value")] + [(b.label, str(b.value)) for b in scene.bars]
    for i, (a, b) in enumerate(rows):
        y = top + (i + 0.5) * step
        draw.text(((left + mid) / 2, y), a, fill=(0, 0, 0), font=small, anchor="mm")
        draw.text(((mid + right) / 2, y), b, fill=(0, 0, 0), font=small, anchor="mm")
    for i in range(n + 1):
        draw.line((left, top + i * step, right, top + i * step), fill=(0, 0, 0))
    for x in (left, mid, right):
        draw.line((x, top, x, bottom), fill=(0, 0, 0))


def png_bytes(image: Image.Image, optimize: bool = True) -> bytes:
    """The image as PNG. `optimize` finds the smallest encoding (for the benchmark TSVs, whose bytes results
    record); without it encoding is 4x faster and ~10% larger, the pixels the same (for training images, which
    are read back as pixels)."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=optimize)
    return buffer.getvalue()


def pixel_key(image: Image.Image) -> str:
    """The canonical key of a rendered scene: a hash of its RGB pixels (equal pictures, equal keys)."""
    rgb = image.convert("RGB")
    return hashlib.sha256(repr(rgb.size).encode() + rgb.tobytes()).hexdigest()


# --- truth helpers shared by the question generators and the captions -----------------------------------

def tallest(scene: Scene) -> Bar | None:
    """The bar with the strictly largest value, or None on a tie."""
    top = max(b.value for b in scene.bars)
    best = [b for b in scene.bars if b.value == top]
    return best[0] if len(best) == 1 else None


def text_value(scene: Scene) -> int | None:
    """What a code line prints / what a sum equals."""
    if scene.text_kind == "code":
        a, op, b = int(scene.text[6]), scene.text[7], int(scene.text[8])
    elif scene.text_kind == "math":
        a, op, b = int(scene.text[0]), scene.text[1], int(scene.text[2])
    else:
        return None
    return a + b if op == "+" else a - b if op == "-" else a * b


def largest_shape(scene: Scene, margin: int = 3) -> Shape | None:
    """The shape larger than every other by at least `margin`, if there is one."""
    if not scene.shapes:
        return None
    ordered = sorted(scene.shapes, key=lambda s: -s.size)
    if len(ordered) == 1 or ordered[0].size - ordered[1].size >= margin:
        return ordered[0]
    return None


def size_word(shape: Shape) -> str:
    return "large " if shape.size >= 11 else "small " if shape.size <= 7 else ""
