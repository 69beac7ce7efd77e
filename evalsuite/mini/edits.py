"""One small edit of a scene: the hard negative a contrastive batch holds beside the scene, so that a CLIP must
tell apart captions that differ in one colour, shape, position, word or value.

    shapes   one shape recoloured, reshaped, moved, removed or a new one added (no two shapes alike)
    text     another word, line of code or sum (so a CLIP must read letters, digits and operators), another
             text colour or another band (or a shape edit, when there are shapes)
    charts   one bar's (or table row's) value changed
"""

from __future__ import annotations

import dataclasses
import random

from evalsuite.mini.world import COLORS, KINDS, TEXT_COLORS, WORDS, Scene, random_text


def edited(scene: Scene, rng: random.Random) -> Scene | None:
    """A copy of `scene` with one thing changed, or None when the drawn edit is impossible."""
    if scene.kind in ("chart", "table"):
        return _edit_bars(scene, rng)
    if scene.kind == "text" and (not scene.shapes or rng.random() < 0.6):
        return _edit_text(scene, rng)
    return _edit_shapes(scene, rng) if scene.shapes else None


def _edit_bars(scene: Scene, rng: random.Random) -> Scene:
    bars = list(scene.bars)
    i = rng.randrange(len(bars))
    bars[i] = dataclasses.replace(bars[i], value=rng.choice([v for v in range(1, 10) if v != bars[i].value]))
    return dataclasses.replace(scene, bars=tuple(bars))


def _edit_text(scene: Scene, rng: random.Random) -> Scene:
    draw = rng.random()
    if draw < 0.5:
        return dataclasses.replace(scene, text=_other_text(scene, rng))
    if draw < 0.8:
        return dataclasses.replace(scene, text_color=rng.choice([c for c in TEXT_COLORS if c != scene.text_color]))
    return dataclasses.replace(scene, text_row=rng.choice([r for r in range(3) if r != scene.text_row]))


def _other_text(scene: Scene, rng: random.Random) -> str:
    if scene.text_kind == "word":
        return rng.choice([w for w in WORDS if w != scene.text])
    while (text := random_text(rng, scene.text_kind)) == scene.text:  # 81+ texts of each kind: ends at once
        pass
    return text


def _edit_shapes(scene: Scene, rng: random.Random) -> Scene | None:
    shapes = list(scene.shapes)
    names = {(s.color, s.kind) for s in shapes}
    i = rng.randrange(len(shapes))
    shape = shapes[i]
    operation = rng.choice(["color", "kind", "move", "remove" if len(shapes) > 1 else "move", "add"])
    if operation in ("color", "kind"):
        options = ([(c, shape.kind) for c in COLORS] if operation == "color" else [(shape.color, k) for k in KINDS])
        options = [o for o in options if o not in names]
        if not options:
            return None
        color, kind = rng.choice(options)
        shapes[i] = dataclasses.replace(shape, color=color, kind=kind)
    elif operation == "remove":
        shapes.pop(i)
    else:
        rows = range(3) if scene.kind == "shapes" else [r for r in range(3) if r != scene.text_row]
        free = [(c, r) for r in rows for c in range(3) if all((s.col, s.row) != (c, r) for s in shapes)]
        if not free:
            return None
        col, row = rng.choice(free)
        if operation == "move":
            shapes[i] = dataclasses.replace(shape, col=col, row=row)
        else:
            color, kind = rng.choice([(c, k) for c in COLORS for k in KINDS if (c, k) not in names])
            shapes.append(dataclasses.replace(shape, color=color, kind=kind, col=col, row=row, size=rng.randint(6, 12)))
    return dataclasses.replace(scene, shapes=tuple(sorted(shapes, key=lambda s: (s.row, s.col))))
