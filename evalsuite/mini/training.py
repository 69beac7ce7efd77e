"""Training data of the mini-suite in LLaVA's formats: captions (pretrain) and instructions (finetune).

The finetune questions are of the forms the benchmarks ask (evalsuite/mini/items.py): LLaVA-style multiple
choice, Chinese multiple choice, yes/no and short open answers, answered in an AnswerStyle (the option's letter
or text; Yes/No, or what is seen and then Yes/No).
No training scene equals a benchmark scene: scenes whose canonical key is in `forbidden` are redrawn.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from evalsuite.mini.items import AnswerStyle, any_item
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

SCENES_PER_SCALE = 1000  # each training scene: one caption and QUESTIONS_PER_SCENE instruction records
QUESTIONS_PER_SCENE = 2
DEFAULT_STYLE = AnswerStyle()  # what the embedded models are taught (README: Answer style)
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
        out.append((scene, png_bytes(image, optimize=False)))  # read back as pixels
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


def instruction_record(record_id: str, image: str, scene: Scene, rng: random.Random,
                       style: AnswerStyle = DEFAULT_STYLE) -> dict:
    """One question about the scene (any benchmark form, evalsuite/mini/items.py), answered in `style`."""
    item = any_item(scene, rng)
    return {"id": record_id, "image": image, "qtype": f"{item['form']}/{item['qtype']}",
            "conversations": [{"from": "human", "value": "<image>\n" + item["prompt"]},
                              {"from": "gpt", "value": style.answer(item)}]}


def write_training(train_dir: Path, rng: random.Random, scale: int, forbidden: set[str],
                   style: AnswerStyle = DEFAULT_STYLE) -> dict[str, Path]:
    """images/mini_NNNNN.png, pretrain.json (a caption of every scene) and finetune.json (two questions per
    scene, answered in `style`) under `train_dir`."""
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
                for i in range(len(scenes))]
    finetune = [instruction_record(f"mini_finetune_{i:06d}", names[i % len(scenes)], scenes[i % len(scenes)][0], rng,
                                   style) for i in range(QUESTIONS_PER_SCENE * len(scenes))]
    paths = {"pretrain": train_dir / "pretrain.json", "finetune": train_dir / "finetune.json"}
    for name, records in (("pretrain", pretrain), ("finetune", finetune)):
        paths[name].write_text(json.dumps(records, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    return paths
