"""What the foundations learn from: the world's training scenes (never a benchmark scene) as text for the tiny
LLM and as image-caption pairs, with hard negatives, for the tiny CLIP.

Text samples, by kind (each a (ids, labels) pair; only the answer is learned):
    caption    a scene's caption as plain text (the pretrain stage's format)           "Two shapes: ...\\n"
    question   a benchmark question with the scene written out in the user turn, answered in the style
               "USER: <caption> Sizes: ...\\n<question prompt> ASSISTANT: red</s>"
    verdict    a question without its scene and the answer's text given: only the verdict and </s> are
               learned ("... ASSISTANT: red. No</s>" learns "No</s>"): the curriculum's first lesson, the
               comparison of what is seen with the claim, learned fast when it is trained on its own
    match      "Which option is red?": option matching alone
A share of the dialogues carries the Vicuna system prompt, the rest only "USER: ... ASSISTANT:" (shorter).
Every step's samples come from their own seeded stream, so any step is re-drawn alone.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from evalsuite.mini.items import AnswerStyle, any_item, matching_item
from evalsuite.mini.training import caption
from evalsuite.mini.world import Scene
from vlora.prompting import IGNORE_INDEX, VICUNA_V1, ConversationTemplate, tokenize_for_training

SHORT = ConversationTemplate(system="")  # "USER: ... ASSISTANT: ..." without the system prompt
KINDS = ("caption", "question", "verdict", "match")
VERDICT_FORMS = {"yn": {"yn": 1.0}, "all": {"mcq": 0.45, "yn": 0.4, "mcq_zh": 0.15}}


def scene_text(scene: Scene, rng: random.Random) -> str:
    """The scene written out: its caption, plus the shapes' sizes when there are several (size questions
    need them)."""
    text = caption(scene, rng)
    if len(scene.shapes) >= 2:
        text += " Sizes: " + ", ".join(f"{shape.name} {shape.size}" for shape in scene.shapes) + "."
    return text


@dataclass(frozen=True)
class TextCorpus:
    """The language stage's samples from `scenes`, answered in `style`."""

    scenes: Sequence[Scene]
    tokenizer: object
    style: AnswerStyle
    system_prompt_share: float
    verdict_forms: str = "yn"

    def dialogue(self, user: str, answer: str, rng: random.Random) -> tuple[list[int], list[int]]:
        if rng.random() < self.system_prompt_share:
            return tokenize_for_training(VICUNA_V1.dialogue([(user, answer)]), self.tokenizer)
        ((instruction, reply),) = SHORT.dialogue([(user, answer)])
        return tokenize_for_training([(instruction.lstrip(), reply)], self.tokenizer)

    def sample(self, kind: str, rng: random.Random) -> tuple[tuple[list[int], list[int]], str]:
        """One sample of `kind` and its form (what held-out scores are grouped by)."""
        scene = self.scenes[rng.randrange(len(self.scenes))]
        if kind == "caption":
            ids = self.tokenizer(caption(scene, rng) + "\n").input_ids  # BOS, caption, newline
            return (ids, [IGNORE_INDEX] + ids[1:]), "caption"
        if kind == "match":
            item = matching_item(rng)
            return self.dialogue(item["prompt"], self.style.answer(item), rng), "match"
        if kind == "verdict":
            item = any_item(scene, rng, weights=VERDICT_FORMS[self.verdict_forms])
            ids, labels = self.dialogue(item["prompt"], self.style.answer(item), rng)
            learned = [i for i, label in enumerate(labels) if label != IGNORE_INDEX]
            for i in learned[:-2]:  # the verdict's token and </s> stay learned
                labels[i] = IGNORE_INDEX
            return (ids, labels), f"verdict_{item['form']}"
        if kind == "question":
            item = any_item(scene, rng)
            user = f"{scene_text(scene, rng)}\n{item['prompt']}"
            return self.dialogue(user, self.style.answer(item), rng), item["form"]
        raise ValueError(f"unknown sample kind {kind!r} (known: {', '.join(KINDS)})")

    def batches(self, phases: Sequence[tuple[int, Mapping[str, float]]], batch_size: int, seed: int
                ) -> Callable[[int], list[tuple[list[int], list[int]]]]:
        """batches(step): the step's samples, all of one kind (little padding) drawn by its phase's mix."""
        def draw(step: int):
            rng = random.Random(f"foundations/language/{seed}/{step}")
            mix = phase_mix(phases, step)
            kind = rng.choices(list(mix), weights=list(mix.values()))[0]
            return [self.sample(kind, rng)[0] for _ in range(batch_size)]
        return draw

    def held_out(self, kinds: Mapping[str, int], seed: int) -> list[tuple[tuple[list[int], list[int]], str]]:
        rng = random.Random(f"foundations/held-out/{seed}")
        return [self.sample(kind, rng) for kind, count in kinds.items() for _ in range(count)]


def phase_mix(phases: Sequence[tuple[int, Mapping[str, float]]], step: int) -> Mapping[str, float]:
    """The mix of the phase that step `step` (1-based) falls in."""
    done = 0
    for steps, mix in phases:
        if step <= done + steps:
            return mix
        done += steps
    return phases[-1][1]


def tokenizer_texts(scenes: Sequence[Scene], seed: int, items: int = 20000) -> list[str]:
    """What the tokenizer is learned from: the template's words (repeated, so each becomes one token), and the
    captions, written-out scenes, prompts and answers in every style."""
    rng = random.Random(f"foundations/tokenizer/{seed}")
    texts = [VICUNA_V1.system, "USER: ASSISTANT:"] * 300
    styles = [AnswerStyle(mcq, yes_no) for mcq in ("letter", "text_letter") for yes_no in ("plain", "desc")]
    for i in range(items):
        scene = scenes[i % len(scenes)]
        item = any_item(scene, rng)
        texts += [caption(scene, rng), scene_text(scene, rng), item["prompt"], matching_item(rng)["prompt"]]
        texts += [style.answer(item) for style in styles]
    return texts


# --- the contrastive stage's pairs ------------------------------------------------------------------------------
def write_pairs(scenes: Sequence[Scene], folder: Path, edits: int, seed: int, image_size: int) -> Path:
    """images/ and contrastive.json under `folder`: each scene and `edits` edited copies of it (one group: drawn
    into the same batch, hard negatives), each with its caption (the pretrain stage's record format)."""
    import json

    from evalsuite.mini.edits import edited
    from evalsuite.mini.world import png_bytes, render

    rng = random.Random(f"foundations/pairs/{seed}")
    (folder / "images").mkdir(parents=True, exist_ok=True)
    records = []
    for number, scene in enumerate(scenes):
        group = [scene]
        for _ in range(10 * edits):  # a few scenes have fewer possible edits
            candidate = edited(scene, rng)
            if candidate is not None and candidate not in group:
                group.append(candidate)
            if len(group) > edits:
                break
        for copy, member in enumerate(group):
            name = f"images/s{number:05d}_{copy}.png"
            (folder / name).write_bytes(png_bytes(render(member, image_size), optimize=False))
            records.append({"id": f"s{number:05d}_{copy}", "image": name, "group": f"s{number:05d}",
                            "conversations": [{"from": "human", "value": "<image>\n"},
                                              {"from": "gpt", "value": caption(member, rng)}]})
    path = folder / "contrastive.json"
    path.write_text(json.dumps(records, ensure_ascii=False), encoding="utf-8")
    return path
