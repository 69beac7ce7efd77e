"""Every benchmark question form of the mini-suite as a training item, and the answer styles a model may be
taught to give. Built only from the world, the question generators, the claims and LLaVA's MCQ prompt, so
the forms are exactly the benchmarks'. Used by the mini-suite's training data (with an image) and by the
foundations' text corpus (with the scene written out instead).

An item is a dict: form ("mcq" | "mcq_zh" | "yn" | "open" | "match"), qtype, prompt, and what answers it
(letter and text for a choice, yn and seen for a yes/no claim, text for an open question).

Answer styles (AnswerStyle; VLMEvalKit's own extraction reads each, see README "Answer style"):
    MCQ     letter        "B"          as the prompt asks, and as the paper's models answer
            text          "red"        the option's text; exact matching maps it to its option, the same
                                       in every circular copy
            text_letter   "red. B"     the option's text, then the letter
    yes/no  plain         "Yes"
            desc          "red. No"    first what is seen about the claim, then the verdict
    open    the answer's text, always
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from evalsuite.mini.claims import CLAIM_TYPES, YES_NO_SUFFIX, ask, yes_no_pair
from evalsuite.mini.questions import CELL_NAMES, MCQ_EN, MCQ_ZH, OPEN_INSTRUCTION, make_mcq
from evalsuite.mini.world import ANIMALS, COLORS, FRENCH, KINDS, Scene, largest_shape, tallest, text_value
from evalsuite.mini.writers import HINTS
from evalsuite.prompts import llava_mcq_prompt

MMMU_OPEN = "Answer the question directly."
MCQ_STYLES = ("letter", "text", "text_letter")
YES_NO_STYLES = ("plain", "desc")
FORM_WEIGHTS = {"mcq": 0.40, "yn": 0.32, "open": 0.13, "mcq_zh": 0.15}  # shares of the forms in a corpus


@dataclass(frozen=True)
class AnswerStyle:
    """How a trained model answers: a multiple-choice question (`mcq`) and a yes/no claim (`yes_no`)."""

    mcq: str = "text"
    yes_no: str = "desc"

    def __post_init__(self):
        if self.mcq not in MCQ_STYLES:
            raise ValueError(f"answer style: mcq must be one of {', '.join(MCQ_STYLES)}, not {self.mcq!r}")
        if self.yes_no not in YES_NO_STYLES:
            raise ValueError(f"answer style: yes_no must be one of {', '.join(YES_NO_STYLES)}, not {self.yes_no!r}")

    def describe(self) -> str:
        mcq = {"letter": "the option's letter", "text": "the option's text",
               "text_letter": "the option's text, then its letter"}[self.mcq]
        yes_no = {"plain": "Yes or No", "desc": "what is seen, then Yes or No"}[self.yes_no]
        return f"multiple choice: {mcq}; yes/no: {yes_no}"

    def answer(self, item: dict) -> str:
        """The item's answer in this style."""
        if item["form"] in ("mcq", "mcq_zh", "match"):
            return {"letter": item["letter"], "text": item["text"],
                    "text_letter": f"{item['text']}. {item['letter']}"}[self.mcq]
        if item["form"] == "yn":
            return item["yn"] if self.yes_no == "plain" else f"{item['seen']}. {item['yn']}"
        return item["text"]


# --- what is seen about a yes/no claim (the "desc" style) -------------------------------------------------
def _relation(a, b, attr: str, low: str, high: str) -> str:
    if a is None or b is None:
        return "missing"
    return low if getattr(a, attr) < getattr(b, attr) else high if getattr(a, attr) > getattr(b, attr) else "same"


def seen(claim, scene: Scene) -> str:
    """The part of the scene a claim is about, in words (what a model says before its verdict)."""
    kind, args, shapes = claim.type, claim.args, scene.shapes
    bars = {b.label: b.value for b in scene.bars}
    if kind == "exists":
        found = [s.color for s in shapes if s.kind == args[1]]
        return f"{' and '.join(found)} {args[1]}" if found else f"none {args[1]}"
    if kind == "kind_color":
        return next(s.color for s in shapes if s.kind == args[0])
    if kind == "count":
        return str(len(shapes))
    if kind == "left_of":
        return _relation(scene.shape_named(args[0]), scene.shape_named(args[1]), "col", "left", "right")
    if kind == "above":
        return _relation(scene.shape_named(args[0]), scene.shape_named(args[1]), "row", "above", "below")
    if kind == "single":
        return shapes[0].name
    if kind == "only_kind":
        return " and ".join(sorted({s.kind for s in shapes}))
    if kind == "largest_kind":
        return largest_shape(scene).kind
    if kind == "scene_is":
        return scene.kind
    if kind in ("word", "poster", "animal", "translate"):
        return scene.text
    if kind == "text_color":
        return scene.text_color
    if kind in ("code_out", "calc"):
        return str(text_value(scene))
    if kind == "tallest":
        return tallest(scene).label
    if kind in ("taller", "table_greater"):
        return f"{args[0]} {bars[args[0]]}, {args[1]} {bars[args[1]]}"
    if kind in ("bar_value", "table_value"):
        return str(bars[args[0]])
    raise ValueError(f"no description for claims of type {kind!r}")


# --- items ---------------------------------------------------------------------------------------------
def mcq_item(scene: Scene, rng: random.Random, chinese: bool = False) -> dict | None:
    """A multiple-choice question in LLaVA's prompt (MMBench / CCBench / ScienceQA / MMMU forms)."""
    generators = MCQ_ZH if chinese else MCQ_EN
    names = list(generators)
    rng.shuffle(names)
    for name in names:
        mcq = generators[name](scene, rng, rng.choice((2, 3, 4, 4, 5)))
        if mcq is None:
            continue
        hint = None
        if not chinese and rng.random() < 0.2:
            hint = HINTS[scene.kind] if rng.random() < 0.6 else "Context: " + HINTS[scene.kind]
        question = f"Look at <image 1>. {mcq.question}" if not chinese and rng.random() < 0.15 else mcq.question
        return {"form": "mcq_zh" if chinese else "mcq", "qtype": mcq.qtype,
                "prompt": llava_mcq_prompt(question, mcq.lettered, hint), "letter": mcq.letter, "text": mcq.answer_text}
    return None


def yes_no_item(scene: Scene, rng: random.Random) -> dict | None:
    """A yes/no claim (MME / HallusionBench forms), true or false with equal odds."""
    types = list(CLAIM_TYPES)
    rng.shuffle(types)
    for claim_type in types:
        pair = yes_no_pair(claim_type, scene, rng)
        if pair is None:
            continue
        claim, verdict = (pair[0], "Yes") if rng.random() < 0.5 else (pair[1], "No")
        # mostly MME's phrasing; some without the suffix, as HallusionBench asks
        return {"form": "yn", "qtype": claim_type, "prompt": ask(claim) + (YES_NO_SUFFIX if rng.random() < 0.75 else ""),
                "yn": verdict, "seen": seen(claim, scene)}
    return None


def open_item(scene: Scene, rng: random.Random) -> dict | None:
    """A question answered in a word or phrase (LLaVA's short-answer and MMMU's open forms)."""
    names = list(MCQ_EN)
    rng.shuffle(names)
    for name in names:
        mcq = MCQ_EN[name](scene, rng, 2)
        if mcq is None:
            continue
        question, instruction = ((f"Look at <image 1>. {mcq.question}", MMMU_OPEN) if rng.random() < 0.3
                                 else (mcq.question, OPEN_INSTRUCTION))
        return {"form": "open", "qtype": mcq.qtype, "prompt": f"{question}\n{instruction}", "text": mcq.answer_text}
    return None


MAKERS = {"mcq": mcq_item, "yn": yes_no_item, "open": open_item,
          "mcq_zh": lambda scene, rng: mcq_item(scene, rng, chinese=True)}


def any_item(scene: Scene, rng: random.Random, weights: dict[str, float] = FORM_WEIGHTS) -> dict:
    """An item of a form drawn by `weights` (falling back to MCQ, then yes/no, when a scene has none)."""
    forms = list(weights)
    form = rng.choices(forms, weights=[weights[f] for f in forms])[0]
    for name in (form, "mcq", "yn"):
        item = MAKERS[name](scene, rng)
        if item is not None:
            return item
    raise RuntimeError(f"no question about {scene}")  # pragma: no cover


def matching_item(rng: random.Random) -> dict:
    """'Which option is red?': the answer's text is in the question; only picking the option is learned
    (the curriculum's first lesson on option matching)."""
    pools = [list(COLORS), list(KINDS), [str(i) for i in range(1, 10)], list(CELL_NAMES.values()),
             sorted(set(FRENCH) | set(ANIMALS))]
    pool = rng.choice(pools)
    correct = rng.choice(pool)
    mcq = make_mcq(rng, f"Which option is {correct}?", correct, pool, rng.choice((2, 3, 4, 5)), "match")
    return {"form": "match", "qtype": "match", "prompt": llava_mcq_prompt(mcq.question, mcq.lettered),
            "letter": mcq.letter, "text": mcq.answer_text}
