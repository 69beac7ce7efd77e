"""Multiple-choice questions derived from a scene's truth, in English and in Chinese (yes/no: claims.py).

`MCQ_EN[name](scene, rng, k)` / `MCQ_ZH[name](scene, rng, k)` return an `MCQ` with up to k options (the
correct one among them), or None when the scene does not support that question.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from evalsuite.mini.world import (
    BAR_LABELS,
    CELL_NAMES,
    COLOR_ZH,
    COLORS,
    KIND_ZH,
    KINDS,
    SIDES,
    TEXT_COLORS,
    WORDS,
    Scene,
    Shape,
    tallest,
    text_value,
)

LETTERS = "ABCDEFGHI"
OPEN_INSTRUCTION = "Answer the question using a single word or phrase."


@dataclass(frozen=True)
class MCQ:
    question: str
    options: tuple[str, ...]
    answer: int  # position of the correct option
    qtype: str

    @property
    def answer_text(self) -> str:
        return self.options[self.answer]

    @property
    def letter(self) -> str:
        return LETTERS[self.answer]

    @property
    def lettered(self) -> dict[str, str]:
        """The options under their letters, as a benchmark row holds them (columns A, B, ...)."""
        return {LETTERS[i]: option for i, option in enumerate(self.options)}


def make_mcq(rng: random.Random, question: str, correct: str, pool: list[str], k: int, qtype: str,
             prefer: list[str] | None = None) -> MCQ:
    """`correct` plus k-1 distractors (from `prefer` first, then `pool`), shuffled."""
    prefer = [p for p in dict.fromkeys(prefer or []) if p != correct]
    rest = [p for p in dict.fromkeys(pool) if p != correct and p not in prefer]
    need = max(1, k - 1)
    distractors = rng.sample(prefer, min(need, len(prefer)))
    distractors += rng.sample(rest, min(need - len(distractors), len(rest)))
    options = [correct, *distractors]
    rng.shuffle(options)
    return MCQ(question, tuple(options), options.index(correct), qtype)


def _unique(scene: Scene, attr: str) -> list[Shape]:
    """Shapes whose `attr` (kind or color) no other shape shares."""
    values = [getattr(s, attr) for s in scene.shapes]
    return [s for s in scene.shapes if values.count(getattr(s, attr)) == 1]


def _extreme(scene: Scene, direction: str) -> Shape | None:
    if len(scene.shapes) < 2:
        return None
    key = {"left": lambda s: s.col, "right": lambda s: -s.col,
           "top": lambda s: s.row, "bottom": lambda s: -s.row}
    best = min(key[direction](s) for s in scene.shapes)
    found = [s for s in scene.shapes if key[direction](s) == best]
    return found[0] if len(found) == 1 else None


def _numbers(value: int, lo: int = -20) -> list[str]:
    return [str(v) for v in range(value - 4, value + 5) if v >= lo]


# --- English multiple choice -----------------------------------------------------------------------------

def mcq_color(scene, rng, k):
    shapes = _unique(scene, "kind")
    if not shapes:
        return None
    s = rng.choice(shapes)
    return make_mcq(rng, f"What color is the {s.kind}?", s.color, list(COLORS), k, "color")


def mcq_shape(scene, rng, k):
    shapes = _unique(scene, "color")
    if not shapes:
        return None
    s = rng.choice(shapes)
    return make_mcq(rng, f"What shape is the {s.color} object?", s.kind, list(KINDS), k, "shape")


def mcq_count(scene, rng, k):
    if scene.kind != "shapes":
        return None
    return make_mcq(rng, "How many shapes are there in the image?", str(len(scene.shapes)),
                    [str(i) for i in range(1, 8)], k, "count")


def mcq_location(scene, rng, k):
    if not scene.shapes:
        return None
    s = rng.choice(scene.shapes)
    return make_mcq(rng, f"Where is the {s.name} in the image?", CELL_NAMES[(s.col, s.row)],
                    list(CELL_NAMES.values()), k, "location")


EXTREME_EN = {"left": "Which shape is furthest to the left?",
              "right": "Which shape is furthest to the right?",
              "top": "Which shape is highest in the image?", "bottom": "Which shape is lowest in the image?"}


def mcq_extreme(scene, rng, k):
    found = [(d, s) for d in EXTREME_EN if (s := _extreme(scene, d)) is not None]
    if not found:
        return None
    direction, s = rng.choice(found)
    others = [f"the {c} {kind}" for c in COLORS for kind in KINDS]
    return make_mcq(rng, EXTREME_EN[direction], f"the {s.name}", others, k, "extreme",
                    prefer=[f"the {t.name}" for t in scene.shapes])


def mcq_relation(scene, rng, k):
    pairs = [(a, b) for a in scene.shapes for b in scene.shapes
             if a != b and (a.row == b.row or a.col == b.col)]
    if not pairs:
        return None
    a, b = rng.choice(pairs)
    if a.row == b.row:
        side = "left" if a.col < b.col else "right"
    else:
        side = "above" if a.row < b.row else "below"
    return make_mcq(rng, f"On which side of the {b.name} is the {a.name}?", side,
                    ["left", "right", "above", "below"], k, "relation")


def mcq_size(scene, rng, k):
    pairs = [(a, b) for a in scene.shapes for b in scene.shapes if a.size - b.size >= 3]
    if not pairs:
        return None
    a, b = rng.choice(pairs)
    first, second = (a, b) if rng.random() < 0.5 else (b, a)
    return make_mcq(rng, f"Which is larger, the {first.name} or the {second.name}?", f"the {a.name}",
                    [f"the {b.name}"], 2, "size")


def mcq_sides(scene, rng, k):
    shapes = [s for s in _unique(scene, "color") if s.kind in SIDES]
    if not shapes:
        return None
    s = rng.choice(shapes)
    return make_mcq(rng, f"How many sides does the {s.color} shape have?", str(SIDES[s.kind]),
                    ["3", "4", "5", "6"], k, "sides")


def mcq_ocr(scene, rng, k):
    if scene.text_kind != "word":
        return None
    return make_mcq(rng, "What word is written in the image?", scene.text, list(WORDS), k, "ocr")


def mcq_text_color(scene, rng, k):
    if scene.kind != "text":
        return None
    return make_mcq(rng, "What color is the text in the image?", scene.text_color, list(TEXT_COLORS), k,
                    "text_color")


SCENE_NAMES = {"shapes": "geometric shapes", "text": "a line of text", "chart": "a bar chart",
               "table": "a table"}


def mcq_scene(scene, rng, k):
    return make_mcq(rng, "What does the image show?", SCENE_NAMES[scene.kind], list(SCENE_NAMES.values()), k,
                    "scene")


def mcq_chart_max(scene, rng, k):
    if scene.kind not in ("chart", "table") or tallest(scene) is None:
        return None
    question = ("Which bar is the tallest?" if scene.kind == "chart"
                else "Which item has the largest value in the table?")
    return make_mcq(rng, question, tallest(scene).label, list(BAR_LABELS), k, "chart_max",
                    prefer=[b.label for b in scene.bars])


def mcq_chart_value(scene, rng, k):
    if scene.kind not in ("chart", "table"):
        return None
    bar = rng.choice(scene.bars)
    return make_mcq(rng, f"What is the value of {bar.label}?", str(bar.value), [str(i) for i in range(1, 10)],
                    k, "chart_value")


def mcq_math(scene, rng, k):
    value = text_value(scene)
    if value is None:
        return None
    question = ("What does the code in the image print?" if scene.text_kind == "code"
                else "What is the result of the calculation in the image?")
    return make_mcq(rng, question, str(value), _numbers(value), k, "math")


MCQ_EN = {"color": mcq_color, "shape": mcq_shape, "count": mcq_count, "location": mcq_location,
          "extreme": mcq_extreme, "relation": mcq_relation, "size": mcq_size, "sides": mcq_sides,
          "ocr": mcq_ocr,
          "text_color": mcq_text_color, "scene": mcq_scene, "chart_max": mcq_chart_max,
          "chart_value": mcq_chart_value, "math": mcq_math}

# --- Chinese multiple choice (CCBench) -------------------------------------------------------------------

CELL_ZH = {(0, 0): "左上角", (1, 0): "正上方", (2, 0): "右上角",
           (0, 1): "左侧", (1, 1): "中间", (2, 1): "右侧",
           (0, 2): "左下角", (1, 2): "正下方", (2, 2): "右下角"}
EXTREME_ZH = {"left": "哪个图形在最左边？", "right": "哪个图形在最右边？", "top": "哪个图形在最上面？",
              "bottom": "哪个图形在最下面？"}


def _zh(s: Shape) -> str:
    return COLOR_ZH[s.color] + KIND_ZH[s.kind]


def zh_color(scene, rng, k):
    shapes = _unique(scene, "kind")
    if not shapes:
        return None
    s = rng.choice(shapes)
    question = f"图中的{KIND_ZH[s.kind]}是什么颜色？"
    return make_mcq(rng, question, COLOR_ZH[s.color], list(COLOR_ZH.values()), k, "color_zh")


def zh_shape(scene, rng, k):
    shapes = _unique(scene, "color")
    if not shapes:
        return None
    s = rng.choice(shapes)
    question = f"图中{COLOR_ZH[s.color]}的图形是什么形状？"
    return make_mcq(rng, question, KIND_ZH[s.kind], list(KIND_ZH.values()), k, "shape_zh")


def zh_count(scene, rng, k):
    if scene.kind != "shapes":
        return None
    return make_mcq(rng, "图中一共有几个图形？", f"{len(scene.shapes)}个", [f"{i}个" for i in range(1, 8)], k,
                    "count_zh")


def zh_location(scene, rng, k):
    found = [(d, s) for d in EXTREME_ZH if (s := _extreme(scene, d)) is not None]
    if found and rng.random() < 0.5:
        direction, s = rng.choice(found)
        others = [COLOR_ZH[c] + KIND_ZH[kind] for c in COLORS for kind in KINDS]
        return make_mcq(rng, EXTREME_ZH[direction], _zh(s), others, k, "extreme_zh",
                        prefer=[_zh(t) for t in scene.shapes])
    if not scene.shapes:
        return None
    s = rng.choice(scene.shapes)
    return make_mcq(rng, f"{_zh(s)}在图中的什么位置？", CELL_ZH[(s.col, s.row)], list(CELL_ZH.values()), k,
                    "location_zh")


MCQ_ZH = {"颜色": zh_color, "形状": zh_shape, "数量": zh_count, "位置": zh_location}
