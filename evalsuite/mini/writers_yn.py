"""Writers of the yes/no benchmarks (MME, HallusionBench) in VLMEvalKit's TSV layout."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from evalsuite.mini.claims import YES_NO_SUFFIX, Claim, ask, claims, truth, yes_no_pair
from evalsuite.mini.world import (
    ANIMALS,
    COLORS,
    FRENCH,
    KINDS,
    SCENE_KINDS,
    WORDS,
    Scene,
    random_scene,
    tallest,
    with_bar_value,
    with_shape_color,
)
from evalsuite.mini.writers import ImageBank, write_tsv

MME_COLUMNS = ["index", "image", "question", "answer", "category", "image_path"]
HALLUSION_COLUMNS = ["index", "image", "question", "answer", "category", "l2-category"]


def _shapes(lo: int, hi: int, **kw) -> Callable[[random.Random], Scene]:
    return lambda rng: random_scene(rng, "shapes", n=rng.randint(lo, hi), **kw)


def _text(text_kind: str, words: tuple[str, ...] = WORDS, shapes: tuple[int, int] = (0, 0)):
    return lambda rng: random_scene(rng, "text", text_kind=text_kind, words=words,
                                    n_shapes_with_text=rng.randint(*shapes))


# subtask -> (claim types asked, scene maker); perception first, then cognition (VLMEvalKit's "reasoning")
MME_SUBTASKS: dict[str, tuple[tuple[str, ...], Callable[[random.Random], Scene]]] = {
    "OCR": (("word",), _text("word")),
    "artwork": (("only_kind",), lambda rng: random_scene(rng, "shapes", n=rng.randint(2, 4),
                                                         kinds=(rng.choice(KINDS),))),
    "celebrity": (("single",), _shapes(1, 1)),
    "color": (("kind_color",), _shapes(1, 4)),
    "count": (("count",), _shapes(1, 5)),
    "existence": (("exists",), _shapes(1, 4)),
    "landmark": (("largest_kind",), _shapes(2, 4)),
    "position": (("left_of", "above"), _shapes(2, 4)),
    "posters": (("poster",), _text("word", shapes=(1, 2))),
    "scene": (("scene_is",), lambda rng: random_scene(rng, rng.choice(SCENE_KINDS))),
    "code_reasoning": (("code_out",), _text("code")),
    "commonsense_reasoning": (("animal",), _text("word", tuple(ANIMALS))),
    "numerical_calculation": (("calc",), _text("math")),
    "text_translation": (("translate",), _text("word", tuple(FRENCH))),
}


def write_mme(path: Path, rng: random.Random, bank: ImageBank, scale: int) -> Path:
    """Per subtask 3*scale images, each asked one Yes and one No question; the second row of a pair refers
    to the first row's image; both share `image_path`."""
    rows: list[dict] = []
    for category, (ctypes, make_scene) in MME_SUBTASKS.items():
        for number in range(3 * scale):
            for _ in range(200):
                scene = make_scene(rng)
                pair = yes_no_pair(rng.choice(ctypes), scene, rng)
                if pair is not None:
                    break
            else:  # pragma: no cover
                raise RuntimeError(f"no scene supports MME {category}")
            first = len(rows)
            ordered = [(pair[0], "Yes"), (pair[1], "No")]
            if rng.random() < 0.5:
                ordered.reverse()
            for j, (claim, answer) in enumerate(ordered):
                rows.append({"index": first + j, "image": bank.b64(scene) if j == 0 else str(first),
                             "question": ask(claim) + YES_NO_SUFFIX, "answer": answer, "category": category,
                             "image_path": f"{category}/{number:04d}.png"})
    return write_tsv(rows, MME_COLUMNS, path)


# --- HallusionBench: original figure (figure_id 0) and edited figure (figure_id 1) per set ---------------

def _edit_chart(rng: random.Random) -> tuple[Scene, Scene, Claim, list[Claim]]:
    while True:
        scene = random_scene(rng, "chart")
        top = tallest(scene)
        if top is not None and top.value <= 8:
            break
    other = rng.choice([b for b in scene.bars if b != top])
    edited = with_bar_value(scene, other.label, rng.randint(top.value + 1, 9))
    flip = Claim("tallest", (rng.choice((top.label, other.label)),))
    return scene, edited, flip, claims("taller", scene) + claims("bar_value", scene)


def _edit_table(rng: random.Random) -> tuple[Scene, Scene, Claim, list[Claim]]:
    while True:
        scene = random_scene(rng, "table")
        pairs = [(x, y) for x in scene.bars for y in scene.bars if y.value < x.value <= 8]
        if pairs:
            break
    x, y = rng.choice(pairs)
    edited = with_bar_value(scene, y.label, rng.randint(x.value + 1, 9))
    flip = Claim("table_greater", (x.label, y.label) if rng.random() < 0.5 else (y.label, x.label))
    return scene, edited, flip, claims("table_value", scene) + claims("table_greater", scene)


def _edit_figure(rng: random.Random) -> tuple[Scene, Scene, Claim, list[Claim]]:
    scene = random_scene(rng, "shapes", n=rng.randint(2, 4))
    shape = rng.choice(scene.shapes)
    color = rng.choice([c for c in COLORS if scene.shape_named(f"{c} {shape.kind}") is None])
    edited = with_shape_color(scene, shape, color)
    flip = Claim("exists", (shape.color, shape.kind) if rng.random() < 0.5 else (color, shape.kind))
    return scene, edited, flip, claims("count", scene) + claims("left_of", scene) + claims("above", scene)


def _edit_ocr(rng: random.Random) -> tuple[Scene, Scene, Claim, list[Claim]]:
    scene = random_scene(rng, "text", text_kind="word", n_shapes_with_text=rng.randint(0, 1))
    edited = replace(scene, text=rng.choice([w for w in WORDS if w != scene.text]))
    flip = Claim("word", (rng.choice((scene.text, edited.text)),))
    return scene, edited, flip, claims("text_color", scene)


HALLUSION_SETS = {"VD_figure": _edit_figure, "VD_ocr": _edit_ocr, "VS_chart": _edit_chart,
                  "VS_table": _edit_table}
NO_VISUAL = [("Is a triangle a shape with three sides?", "Yes"), ("Does a square have five corners?", "No"),
             ('Is "chat" the French word for cat?', "Yes"), ("Is 7 greater than 9?", "No"),
             ("Is a circle round?", "Yes"), ("Is the sum of 2 and 2 equal to 5?", "No")]


def write_hallusionbench(path: Path, rng: random.Random, bank: ImageBank, scale: int) -> Path:
    """8*scale sets of 2 figures x 2 questions (the same texts on both figures, one answer at least flips),
    then 3*scale questions without a figure (visual_input 0, empty image: VLMEvalKit drops them)."""
    rows: list[dict] = []
    l2s = list(HALLUSION_SETS)
    for set_id in range(8 * scale):
        l2 = l2s[set_id % len(l2s)]
        original, edited, flip, pool = HALLUSION_SETS[l2](rng)
        second = rng.choice([c for c in pool if c != flip])
        questions = [flip, second] if rng.random() < 0.5 else [second, flip]
        for figure_id, scene in enumerate((original, edited)):
            first_index = None
            for question_id, claim in enumerate(questions):
                index = f"{l2}_1_{set_id}_{figure_id}_{question_id}"
                image = bank.b64(scene) if first_index is None else first_index
                first_index = first_index or index
                rows.append({"index": index, "image": image, "question": ask(claim),
                             "answer": "Yes" if truth(claim, scene) else "No", "category": l2.split("_")[0],
                             "l2-category": l2})
    for j in range(3 * scale):
        l2 = l2s[j % len(l2s)]
        question, answer = NO_VISUAL[rng.randrange(len(NO_VISUAL))]
        rows.append({"index": f"{l2}_0_{8 * scale + j}_0_0", "image": None, "question": question,
                     "answer": answer, "category": l2.split("_")[0], "l2-category": l2})
    return write_tsv(rows, HALLUSION_COLUMNS, path)
