"""Yes/no questions as claims about a scene (MME, HallusionBench, yes/no training turns).

A `Claim` is a type and arguments: `ask(claim)` is its text and `truth(claim, scene)` its answer on any
scene, so the same question can be asked of an original and an edited figure. `claims(ctype, scene)`
lists the well-defined claims of a type; `yes_no_pair` picks one true and one false.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from evalsuite.mini.questions import _numbers
from evalsuite.mini.world import (
    ANIMALS,
    COLORS,
    FRENCH,
    KINDS,
    TEXT_COLORS,
    WORDS,
    Scene,
    largest_shape,
    tallest,
    text_value,
)

YES_NO_SUFFIX = " Please answer yes or no."



@dataclass(frozen=True)
class Claim:
    type: str
    args: tuple


SCENE_CLAIMS = {"shapes": "Does this image show geometric shapes only?",
                "text": "Does this image show a line of text?", "chart": "Is this image a bar chart?",
                "table": "Is this image a table?"}
ANIMAL_CLAIMS = {"fly": "Can the animal named in the image fly?",
                 "water": "Does the animal named in the image live in water?",
                 "legs": "Does the animal named in the image have four legs?"}

CLAIM_TEMPLATES = {  # claim type -> its question, formatted with the claim's arguments
    "count": "Are there exactly {} shapes in the image?",  # ONE_SHAPE when the count is 1
    "exists": "Is there a {} {} in the image?", "kind_color": "Is the {} in the image {}?",
    "left_of": "Is the {} to the left of the {}?", "above": "Is the {} above the {}?",
    "single": "Is the shape in the image a {} {}?", "only_kind": "Is this artwork made only of {}s?",
    "largest_kind": "Is the largest shape in the image a {}?",
    "word": 'Does the image show the word "{}"?', "poster": 'Is the title of this poster "{}"?',
    "text_color": "Is the text in the image written in {}?",
    "code_out": "Is the output of the code in the image {}?",
    "calc": "Is the answer to the calculation in the image {}?",
    "translate": 'Is the word in the image translated as "{}" in French?',
    "tallest": "Is the {} bar the tallest bar in the chart?",
    "taller": "Is the {} bar taller than the {} bar?",
    "bar_value": "Does the {} bar have a value of {}?",
    "table_greater": "According to the table, is the value of {} greater than the value of {}?",
    "table_value": "According to the table, is the value of {} equal to {}?",
}


ONE_SHAPE = "Is there exactly one shape in the image?"


def ask(claim: Claim) -> str:
    a = claim.args
    t = claim.type
    if t == "count" and a[0] == 1:
        return ONE_SHAPE
    if t == "scene_is":
        return SCENE_CLAIMS[a[0]]
    if t == "animal":
        return ANIMAL_CLAIMS[a[0]]
    return CLAIM_TEMPLATES[t].format(*a)


def _value(scene: Scene, label: str) -> int | None:
    return next((b.value for b in scene.bars if b.label == label), None)


def truth(claim: Claim, scene: Scene) -> bool:
    a, t, shapes = claim.args, claim.type, scene.shapes
    if t == "exists":
        return any(s.color == a[0] and s.kind == a[1] for s in shapes)
    if t == "kind_color":
        return any(s.kind == a[0] and s.color == a[1] for s in shapes)
    if t == "count":
        return len(shapes) == a[0]
    if t in ("left_of", "above"):
        x, y = scene.shape_named(a[0]), scene.shape_named(a[1])
        return x is not None and y is not None and (x.col < y.col if t == "left_of" else x.row < y.row)
    if t == "single":
        return len(shapes) == 1 and shapes[0].color == a[0] and shapes[0].kind == a[1]
    if t == "only_kind":
        return bool(shapes) and all(s.kind == a[0] for s in shapes)
    if t == "largest_kind":
        big = largest_shape(scene)
        return big is not None and big.kind == a[0]
    if t == "scene_is":
        return scene.kind == a[0]
    if t in ("word", "poster"):
        return scene.kind == "text" and scene.text == a[0]
    if t == "text_color":
        return scene.kind == "text" and scene.text_color == a[0]
    if t in ("code_out", "calc"):
        return text_value(scene) == a[0]
    if t == "animal":
        return a[0] in ANIMALS.get(scene.text, set())
    if t == "translate":
        return FRENCH.get(scene.text) == a[0]
    if t == "tallest":
        top = tallest(scene)
        return top is not None and top.label == a[0]
    if t in ("taller", "table_greater"):
        x, y = _value(scene, a[0]), _value(scene, a[1])
        return x is not None and y is not None and x > y
    if t in ("bar_value", "table_value"):
        return _value(scene, a[0]) == a[1]
    raise ValueError(f"unknown claim type {t!r}")


def claims(ctype: str, scene: Scene) -> list[Claim]:
    """The well-defined claims of type `ctype` about `scene` (true and false ones), [] if none."""
    if ctype not in CLAIM_TYPES:
        raise ValueError(f"unknown claim type {ctype!r}")
    n, kinds = len(scene.shapes), [s.kind for s in scene.shapes]
    tk, kind, bars = scene.text_kind, scene.kind, scene.bars
    args: list[tuple] = []
    if ctype == "exists" and kind in ("shapes", "text"):
        args = [(c, k) for c in COLORS for k in KINDS]
    elif ctype == "kind_color":
        args = [(k, c) for k in KINDS if kinds.count(k) == 1 for c in COLORS]
    elif ctype == "count" and kind == "shapes":
        args = [(m,) for m in range(max(1, n - 2), n + 3)]
    elif ctype in ("left_of", "above"):
        attr = "col" if ctype == "left_of" else "row"
        args = [(x.name, y.name) for x in scene.shapes for y in scene.shapes
                if getattr(x, attr) != getattr(y, attr)]
    elif ctype == "single" and kind == "shapes" and n == 1:
        args = [(c, k) for c in COLORS for k in KINDS]
    elif ctype == "only_kind" and kind == "shapes" and n >= 2:
        args = [(k,) for k in KINDS]
    elif ctype == "largest_kind" and n >= 2 and largest_shape(scene):
        args = [(k,) for k in KINDS]
    elif ctype == "scene_is":
        args = [(k,) for k in SCENE_CLAIMS]
    elif (ctype == "word" and tk == "word") or (ctype == "poster" and tk == "word" and n > 0):
        args = [(w,) for w in WORDS]
    elif ctype == "text_color" and kind == "text":
        args = [(c,) for c in TEXT_COLORS]
    elif (ctype, tk) in (("code_out", "code"), ("calc", "math")):
        args = [(int(v),) for v in _numbers(text_value(scene))]
    elif ctype == "animal" and tk == "word" and scene.text in ANIMALS:
        args = [(p,) for p in ANIMAL_CLAIMS]
    elif ctype == "translate" and tk == "word" and scene.text in FRENCH:
        args = [(f,) for f in FRENCH.values()]
    elif ctype == "tallest" and kind == "chart" and tallest(scene):
        args = [(b.label,) for b in bars]
    elif (ctype, kind) in (("taller", "chart"), ("table_greater", "table")):
        args = [(x.label, y.label) for x in bars for y in bars if x.value != y.value]
    elif (ctype, kind) in (("bar_value", "chart"), ("table_value", "table")):
        args = [(b.label, v) for b in bars for v in range(1, 10)]
    return [Claim(ctype, a) for a in args]


CLAIM_TYPES = ("exists", "kind_color", "count", "left_of", "above", "single", "only_kind", "largest_kind",
               "scene_is", "word", "poster", "text_color", "code_out", "calc", "animal", "translate",
               "tallest",
               "taller", "bar_value", "table_greater", "table_value")


def yes_no_pair(ctype: str, scene: Scene, rng: random.Random) -> tuple[Claim, Claim] | None:
    """One true and one false claim of type `ctype` about `scene`, or None."""
    found = claims(ctype, scene)
    true = [c for c in found if truth(c, scene)]
    false = [c for c in found if not truth(c, scene)]
    if not true or not false:
        return None
    return rng.choice(true), rng.choice(false)
