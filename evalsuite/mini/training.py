"""Training data of the mini-suite in LLaVA's formats: captions (pretrain) and instructions (finetune).

The finetune questions are of the types and answer styles the benchmarks ask: LLaVA-style multiple choice
(answer = the letter), Chinese multiple choice, yes/no (answer Yes/No) and short open answers.
No training scene equals a benchmark scene: scenes whose canonical key is in `forbidden` are redrawn.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from evalsuite.mini.claims import CLAIM_TYPES, YES_NO_SUFFIX, ask, yes_no_pair
from evalsuite.mini.questions import MCQ_EN, MCQ_ZH, OPEN_INSTRUCTION
from evalsuite.mini.world import (
    CELL_NAMES,
    SCENE_KINDS,
    TEXT_KINDS,
    Scene,
    Shape,
    pixel_key,
    png_bytes,
    random_scene,
    render,
    size_word,
    tallest,
    text_value,
)
from evalsuite.mini.writers import HINTS
from evalsuite.prompts import llava_mcq_prompt

PRETRAIN_PER_SCALE = 600
FINETUNE_PER_SCALE = 1500
SCENES_PER_SCALE = 750  # each training scene: one caption (the first 600) and two instruction records
NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


def training_scenes(rng: random.Random, n: int, forbidden: set[str]) -> list[tuple[Scene, bytes]]:
    """n distinct scenes with their PNG bytes, none whose key is in `forbidden` (benchmark scenes)."""
    out, seen = [], set()
    while len(out) < n:
        kind = rng.choices(SCENE_KINDS, weights=(55, 25, 10, 10))[0]
        text_kind = rng.choices(TEXT_KINDS, weights=(6, 2, 2))[0]
        scene = random_scene(rng, kind, text_kind=text_kind)
        image = render(scene)
        key = pixel_key(image)
        if key in forbidden or key in seen:
            continue
        seen.add(key)
        out.append((scene, png_bytes(image)))
    return out


def _join(parts: list[str]) -> str:
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def _where(shape: Shape) -> str:
    cell = CELL_NAMES[(shape.col, shape.row)]
    return "in the center" if cell == "center" else f"at the {cell}"


def caption(scene: Scene, rng: random.Random) -> str:
    """A description of everything in the scene: colours, shapes, count, positions, text, values."""
    listing = _join([f"a {size_word(s)}{s.name} {_where(s)}" for s in scene.shapes]) if scene.shapes else ""
    n = len(scene.shapes)
    if scene.kind == "shapes":
        count = f"{NUMBER_WORDS[n]} shape{'s' if n > 1 else ''}"
        return rng.choice([f"The image shows {count} on a {scene.background} background: {listing}.",
                           f"{count.capitalize()}: {listing}, on a {scene.background} background.",
                           f"A {scene.background} picture with {count}: {listing}."])
    if scene.kind == "text":
        what = {"word": "the word", "code": "a line of code", "math": "a calculation"}[scene.text_kind]
        band = ("top", "middle", "bottom")[scene.text_row]
        text = f'The image shows {what} "{scene.text}" written in {scene.text_color} at the {band}.'
        if scene.text_kind == "code":
            text += f" It prints {text_value(scene)}."
        elif scene.text_kind == "math":
            text += f" The answer is {text_value(scene)}."
        if scene.shapes:
            text += f" There is also {listing}."
        return text
    values = ", ".join(f"{b.label} {b.value}" for b in scene.bars)
    top = tallest(scene)
    if scene.kind == "chart":
        text = f"A bar chart with {NUMBER_WORDS[len(scene.bars)]} {scene.bar_color} bars: {values}."
        return text + (f" The tallest bar is {top.label}." if top else "")
    text = f"A table with {NUMBER_WORDS[len(scene.bars)]} rows of items and values: {values}."
    return text + (f" The largest value is {top.value}, for {top.label}." if top else "")


def _mcq_turn(scene: Scene, rng: random.Random, chinese: bool = False) -> tuple[str, str] | None:
    generators = MCQ_ZH if chinese else MCQ_EN
    names = list(generators)
    rng.shuffle(names)
    for name in names:
        mcq = generators[name](scene, rng, rng.choice((2, 3, 4, 4, 5)))
        if mcq is None:
            continue
        hint = HINTS[scene.kind] if not chinese and rng.random() < 0.15 else None
        question = mcq.question
        if not chinese and rng.random() < 0.05:  # MMMU-style mention of the image
            question = f"Look at <image 1>. {question}"
        return llava_mcq_prompt(question, mcq.lettered, hint), mcq.letter
    return None


def _yes_no_turn(scene: Scene, rng: random.Random) -> tuple[str, str] | None:
    types = list(CLAIM_TYPES)
    rng.shuffle(types)
    for ctype in types:
        pair = yes_no_pair(ctype, scene, rng)
        if pair is not None:
            claim, answer = (pair[0], "Yes") if rng.random() < 0.5 else (pair[1], "No")
            # mostly MME's phrasing; some without the suffix, as HallusionBench asks
            return ask(claim) + (YES_NO_SUFFIX if rng.random() < 0.8 else ""), answer
    return None


def _open_turn(scene: Scene, rng: random.Random) -> tuple[str, str] | None:
    names = list(MCQ_EN)
    rng.shuffle(names)
    for name in names:
        mcq = MCQ_EN[name](scene, rng, 2)
        if mcq is not None:
            return f"{mcq.question}\n{OPEN_INSTRUCTION}", mcq.answer_text
    return None


def _turn(scene: Scene, rng: random.Random) -> tuple[str, str]:
    r = rng.random()
    order = ([_mcq_turn] if r < 0.40 else [_yes_no_turn] if r < 0.70 else [_open_turn] if r < 0.88
             else [lambda s, g: _mcq_turn(s, g, chinese=True)])
    for make in order + [_mcq_turn, _yes_no_turn]:
        turn = make(scene, rng)
        if turn is not None:
            return turn
    raise RuntimeError(f"no question about {scene}")  # pragma: no cover


def instruction_record(record_id: str, image: str, scene: Scene, rng: random.Random) -> dict:
    prompt, answer = _turn(scene, rng)
    conversations = [{"from": "human", "value": "<image>\n" + prompt}, {"from": "gpt", "value": answer}]
    if rng.random() < 0.3:  # a follow-up turn about the same image
        prompt, answer = _turn(scene, rng)
        conversations += [{"from": "human", "value": prompt}, {"from": "gpt", "value": answer}]
    return {"id": record_id, "image": image, "conversations": conversations}


def write_training(train_dir: Path, rng: random.Random, scale: int, forbidden: set[str]) -> dict[str, Path]:
    """images/mini_NNNNN.png, pretrain.json and finetune.json under `train_dir`."""
    images_dir = train_dir / "images"
    images_dir.mkdir(parents=True, exist_ok=True)
    scenes = training_scenes(rng, SCENES_PER_SCALE * scale, forbidden)
    names = []
    for i, (_scene, png) in enumerate(scenes):
        names.append(f"images/mini_{i:05d}.png")
        (train_dir / names[-1]).write_bytes(png)
    pretrain = [{"id": f"mini_pretrain_{i:06d}", "image": names[i],
                 "conversations": [{"from": "human", "value": "<image>\n"},
                                   {"from": "gpt", "value": caption(scenes[i][0], rng)}]}
                for i in range(PRETRAIN_PER_SCALE * scale)]
    finetune = []
    for i in range(FINETUNE_PER_SCALE * scale):
        j = i % len(scenes)
        finetune.append(instruction_record(f"mini_finetune_{i:06d}", names[j], scenes[j][0], rng))
    paths = {"pretrain": train_dir / "pretrain.json", "finetune": train_dir / "finetune.json"}
    for name, records in (("pretrain", pretrain), ("finetune", finetune)):
        paths[name].write_text(json.dumps(records, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    return paths
