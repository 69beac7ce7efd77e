"""Writers of the multiple-choice benchmarks (MMBench_DEV_EN, CCBench, ScienceQA_VAL, MMMU_DEV_VAL) in
VLMEvalKit's TSV layout, plus what every writer shares: the image bank and the TSV writer.

Each writer takes its own `random.Random` and an `ImageBank`; the bank encodes every benchmark image and
remembers its canonical key, so the training data can avoid every scene a benchmark shows.
"""

from __future__ import annotations

import base64
import random
from collections import deque
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from evalsuite.mini.questions import LETTERS, MCQ, MCQ_EN, MCQ_ZH, make_mcq
from evalsuite.mini.world import ANIMALS, IMAGE_SIZE, WORDS, Scene, pixel_key, png_bytes, random_scene, render

MMBENCH_COLUMNS = ["index", "question", "hint", "A", "B", "C", "D", "answer", "category", "l2-category",
                   "split", "image"]
CCBENCH_COLUMNS = ["index", "question", "A", "B", "C", "D", "answer", "category", "image"]
SCIENCEQA_COLUMNS = ["index", "question", "hint", "A", "B", "C", "D", "E", "answer", "category", "split",
                     "image"]
MMMU_COLUMNS = ["index", "question", *LETTERS, "answer", "split", "id", "category", "l2-category", "image"]


class ImageBank:
    """Renders and base64-encodes benchmark scenes; `keys` holds the canonical key of each."""

    def __init__(self, size: int = IMAGE_SIZE):
        self.size = size
        self.keys: set[str] = set()
        self.count = 0

    def b64(self, scene: Scene) -> str:
        image = render(scene, self.size)
        self.keys.add(pixel_key(image))
        self.count += 1
        return base64.b64encode(png_bytes(image)).decode()


def write_tsv(rows: list[dict], columns: list[str], path: Path) -> Path:
    frame = pd.DataFrame(rows, columns=columns)
    frame.to_csv(path, sep="\t", index=False)
    return path


def scene_for(qtype: str, rng: random.Random) -> Scene:
    """A scene on which a question of `qtype` can usually be asked."""
    if qtype in ("ocr", "text_color", "ocr_word"):
        return random_scene(rng, "text", text_kind="word")
    if qtype == "math":
        return random_scene(rng, "text", text_kind=rng.choice(("code", "math")))
    if qtype in ("chart_max", "chart_value"):
        return random_scene(rng, rng.choice(("chart", "table")))
    if qtype == "scene":
        return random_scene(rng, rng.choice(("shapes", "shapes", "text", "chart", "table")))
    if qtype in ("count", "数量"):
        return random_scene(rng, "shapes", n=rng.randint(1, 5))
    return random_scene(rng, "shapes", n=rng.randint(2, 5))


def ask_until(rng: random.Random, qtype: str, generator: Callable, k: int) -> tuple[Scene, MCQ]:
    """Draw scenes until `generator` can ask its question about one."""
    for _ in range(200):
        scene = scene_for(qtype, rng)
        question = generator(scene, rng, k)
        if question is not None:
            return scene, question
    raise RuntimeError(f"no scene supports a {qtype} question")  # pragma: no cover


def circular_rows(g: int, mcq: MCQ, image_b64: str, fields: dict) -> list[dict]:
    """The k circular copies of a k-option question: copy j has index g + j*1e6 and options relabelled by
    `deque(labels).rotate(j)` (old option i gets the new letter rot[i]); copies j >= 1 refer to copy 0's
    image."""
    labels = list(LETTERS[:len(mcq.options)])
    rows = []
    for j in range(len(labels)):
        rot = deque(labels)
        rot.rotate(j)
        row = {"index": g + j * 1_000_000, "question": mcq.question, **fields}
        for i, text in enumerate(mcq.options):
            row[rot[i]] = text
        row["answer"] = rot[mcq.answer]
        row["image"] = image_b64 if j == 0 else str(g)
        rows.append(row)
    return rows


K_PATTERN = (4, 3, 4, 2, 4, 3)
MMBENCH_TYPES = {  # question type -> (category, l2-category)
    "scene": ("image_scene", "coarse_perception"),
    "count": ("object_counting", "coarse_perception"),
    "color": ("attribute_recognition", "finegrained_perception (instance-level)"),
    "location": ("object_localization", "finegrained_perception (instance-level)"),
    "ocr": ("ocr", "finegrained_perception (instance-level)"),
    "shape": ("attribute_recognition", "finegrained_perception (instance-level)"),
    "extreme": ("spatial_relationship", "finegrained_perception (cross-instance)"),
    "size": ("attribute_comparison", "finegrained_perception (cross-instance)"),
    "relation": ("physical_relation", "relation_reasoning"),
    "sides": ("physical_property_reasoning", "attribute_reasoning"),
    "chart_max": ("structuralized_imagetext_understanding", "logic_reasoning"),
    "math": ("numerical_reasoning", "logic_reasoning"),
    "text_color": ("attribute_recognition", "finegrained_perception (instance-level)"),
}
HINTS = {"shapes": "The image shows simple geometric shapes on a plain background.",
         "text": "The image shows a short piece of text.",
         "chart": "The chart shows how many animals were counted.",
         "table": "The table lists how many animals were counted."}


def write_mmbench(path: Path, rng: random.Random, bank: ImageBank, scale: int) -> Path:
    rows, types = [], list(MMBENCH_TYPES)
    for g in range(30 * scale):
        qtype = types[g % len(types)]
        scene, mcq = ask_until(rng, qtype, MCQ_EN[qtype], K_PATTERN[g % len(K_PATTERN)])
        category, l2 = MMBENCH_TYPES[qtype]
        hint = HINTS[scene.kind] if g % 4 == 2 else None
        fields = {"hint": hint, "category": category, "l2-category": l2, "split": "dev"}
        rows += circular_rows(g, mcq, bank.b64(scene), fields)
    return write_tsv(rows, MMBENCH_COLUMNS, path)


def write_ccbench(path: Path, rng: random.Random, bank: ImageBank, scale: int) -> Path:
    rows, categories = [], list(MCQ_ZH)
    for g in range(20 * scale):
        category = categories[g % len(categories)]
        scene, mcq = ask_until(rng, category, MCQ_ZH[category], K_PATTERN[(g + 1) % len(K_PATTERN)])
        rows += circular_rows(g, mcq, bank.b64(scene), {"category": category})
    return write_tsv(rows, CCBENCH_COLUMNS, path)


SCIENCEQA_TYPES = [("size", "natural science"), ("chart_max", "social science"), ("ocr", "language science"),
                   ("sides", "natural science"), ("chart_value", "social science"),
                   ("color", "natural science"),
                   ("count", "natural science")]


def _text_only_question(rng: random.Random, k: int) -> tuple[MCQ, str]:
    """A ScienceQA question without an image (VLMEvalKit drops these rows)."""
    if rng.random() < 0.5:
        flyers = [a for a, facts in ANIMALS.items() if "fly" in facts]
        others = [a for a, facts in ANIMALS.items() if "fly" not in facts]
        mcq = make_mcq(rng, "Which animal can fly?", rng.choice(flyers), others, k, "no_image")
        return mcq, "natural science"
    words = rng.sample(WORDS, min(k, len(WORDS)))
    mcq = make_mcq(rng, "Which word would you find first in a dictionary?", min(words), words, k, "no_image")
    return mcq, "language science"


def write_scienceqa(path: Path, rng: random.Random, bank: ImageBank, scale: int) -> Path:
    rows = []
    for i in range(30 * scale):
        k = (2, 3, 4, 5, 3, 4)[i % 6]
        row = {"index": i, "split": "val", "hint": None, "image": None}
        if i % 6 == 5:  # ~1 in 6 rows has no image
            mcq, row["category"] = _text_only_question(rng, k)
        else:
            qtype, row["category"] = SCIENCEQA_TYPES[i % len(SCIENCEQA_TYPES)]
            scene, mcq = ask_until(rng, qtype, MCQ_EN[qtype], k)
            row["image"] = bank.b64(scene)
            if i % 3 == 1:
                row["hint"] = "Context: " + HINTS[scene.kind]
        row["question"] = mcq.question
        row.update({LETTERS[j]: text for j, text in enumerate(mcq.options)})
        row["answer"] = mcq.letter
        rows.append(row)
    return write_tsv(rows, SCIENCEQA_COLUMNS, path)


MMMU_SUBJECTS = {  # subject -> (discipline, question types asked about one image)
    "Art": ("Art & Design", ("color", "text_color")),
    "Math": ("Science", ("count",)),
    "Physics": ("Science", ("size", "extreme")),
    "Geography": ("Science", ("location", "relation")),
    "Computer_Science": ("Tech & Engineering", ("math",)),
    "Economics": ("Business", ("chart_max", "chart_value")),
    "Literature": ("Humanities & Social Science", ("ocr",)),
    "Public_Health": ("Health & Medicine", ("chart_value", "chart_max")),
}
MMMU_K = (4, 5, 4, 6, 3, 8, 4, 2)


MMMURow = tuple[str, tuple[str, ...], str, list]  # question, options (none: open), answer, scenes


def _mmmu_single(rng: random.Random, subject: str, k: int, open_: bool) -> MMMURow:
    qtype = rng.choice(MMMU_SUBJECTS[subject][1])
    scene, mcq = ask_until(rng, qtype, MCQ_EN[qtype], k)
    question = f"Look at <image 1>. {mcq.question}"
    if open_:
        return question, (), mcq.answer_text, [scene]
    return question, mcq.options, mcq.letter, [scene]


def _mmmu_pair(rng: random.Random, variant: int, open_: bool) -> MMMURow:
    """Two-image questions: 0 = the images are the options, 1 = which has more, 2 = total count."""
    if variant == 0:
        for _ in range(200):
            first, second = (random_scene(rng, "shapes", n=rng.randint(1, 4)) for _ in range(2))
            only = {s.name for s in first.shapes} ^ {s.name for s in second.shapes}
            if only:
                name = rng.choice(sorted(only))
                answer = "A" if first.shape_named(name) else "B"
                return f"Which image contains a {name}?", ("<image 1>", "<image 2>"), answer, [first, second]
    n1, n2 = rng.sample(range(1, 6), 2)
    first, second = random_scene(rng, "shapes", n=n1), random_scene(rng, "shapes", n=n2)
    if variant == 1:
        return ("Which image shows more shapes, <image 1> or <image 2>?", ("<image 1>", "<image 2>"),
                "A" if n1 > n2 else "B", [first, second])
    question = "How many shapes are there in <image 1> and <image 2> together?"
    if open_:
        return question, (), str(n1 + n2), [first, second]
    mcq = make_mcq(rng, question, str(n1 + n2), [str(v) for v in range(2, 11)], 4, "count")
    return question, mcq.options, mcq.letter, [first, second]


def write_mmmu(path: Path, rng: random.Random, bank: ImageBank, scale: int) -> Path:
    rows, counters = [], {}
    subjects = list(MMMU_SUBJECTS)
    plan = ["dev"] * (6 * scale) + ["validation"] * (20 * scale)
    pairs = 0
    for index, split in enumerate(plan):
        open_ = index % 5 == 2  # ~20% open questions
        if index % 7 == 3:
            subject = ("Geography", "Math", "Math")[pairs % 3]
            question, options, answer, scenes = _mmmu_pair(rng, pairs % 3, open_)
            pairs += 1
        else:
            subject = subjects[index % len(subjects)]
            question, options, answer, scenes = _mmmu_single(rng, subject, MMMU_K[index % len(MMMU_K)], open_)
        counters[(split, subject)] = counters.get((split, subject), 0) + 1
        images = [bank.b64(s) for s in scenes]
        row = {"index": index, "question": question, "answer": answer, "split": split,
               "id": f"{split}_{subject}_{counters[(split, subject)]}", "category": MMMU_SUBJECTS[subject][0],
               "l2-category": subject, "image": images[0] if len(images) == 1 else str(images)}
        row.update({LETTERS[j]: text for j, text in enumerate(options)})
        rows.append(row)
    return write_tsv(rows, MMMU_COLUMNS, path)
