"""The mini-suite's training data (evalsuite/mini/training.py, items.py): LLaVA's formats, a caption per scene and
two questions per scene in the benchmarks' forms, answered in an AnswerStyle that VLMEvalKit's extraction reads
right; training scenes redrawn when a benchmark holds them."""

from __future__ import annotations

import io
import json
import random
import re
from pathlib import Path

import pytest
from PIL import Image

from evalsuite.extraction import can_infer, yes_no
from evalsuite.mini import write_mini_suite
from evalsuite.mini.items import AnswerStyle
from evalsuite.mini.training import instruction_record, training_scenes
from evalsuite.mini.world import pixel_key, render


@pytest.fixture(scope="module")
def suite(tmp_path_factory) -> dict[str, Path]:
    return write_mini_suite(tmp_path_factory.mktemp("mini") / "out", seed=0, scale=1)


def test_training_records(suite):
    """A caption per scene, two questions per scene in the benchmarks' forms, answered in the default style
    (the option's text; what is seen, then Yes/No), each answer what VLMEvalKit's extraction reads right."""
    root = suite["pretrain"].parent
    pretrain = json.loads(suite["pretrain"].read_text(encoding="utf-8"))
    finetune = json.loads(suite["finetune"].read_text(encoding="utf-8"))
    assert len(pretrain) == 1000 and len(finetune) == 2000
    assert len({r["id"] for r in pretrain + finetune}) == 3000
    for record in pretrain:
        assert set(record) == {"id", "image", "conversations"}
        human, gpt = record["conversations"]
        assert human == {"from": "human", "value": "<image>\n"} and gpt["from"] == "gpt" and gpt["value"]
    styles = {"mcq": 0, "zh": 0, "yes_no": 0, "open": 0}
    for record in finetune:
        assert set(record) == {"id", "image", "qtype", "conversations"}
        human, gpt = record["conversations"]
        assert human["value"].startswith("<image>\n") and gpt["from"] == "gpt"
        prompt, answer = human["value"], gpt["value"]
        options = dict(re.findall(r"^([A-I])\. (.*)$", prompt, flags=re.M))
        if prompt.endswith(("Answer with the option's letter from the given choices directly.", "请直接回答选项字母。")):
            styles["zh" if prompt.endswith("。") else "mcq"] += 1
            assert answer in options.values()  # the option's text: exact matching maps it to its letter
            assert can_infer(answer, options) in options
        elif prompt.endswith(("Answer the question using a single word or phrase.", "Answer the question directly.")):
            styles["open"] += 1
            assert answer and answer not in ("Yes", "No")
        else:
            styles["yes_no"] += 1
            seen, verdict = answer.rsplit(". ", 1)
            assert verdict in ("Yes", "No") and seen and prompt.endswith(("?", "? Please answer yes or no."))
            assert yes_no(answer) == verdict  # VLMEvalKit's reader finds exactly the verdict
    assert min(styles.values()) >= 50
    turns = [t["value"] for r in finetune for t in r["conversations"]]
    suffixed = [t for t in turns if t.endswith(" Please answer yes or no.")]
    assert len(suffixed) >= 200
    for record in pretrain + finetune:
        assert re.fullmatch(r"images/[\w.-]+\.png", record["image"]) and (root / record["image"]).is_file()


def test_training_scenes_skip_forbidden_keys():
    drawn = training_scenes(random.Random(3), 20, set())
    keys = [pixel_key(Image.open(io.BytesIO(png))) for _, png in drawn]
    assert keys == [pixel_key(render(scene)) for scene, _ in drawn]
    again = training_scenes(random.Random(3), 20, set(keys[:5]))
    again_keys = {pixel_key(Image.open(io.BytesIO(png))) for _, png in again}
    assert not again_keys & set(keys[:5]) and len(again_keys) == 20


@pytest.mark.parametrize("style", [AnswerStyle("letter", "plain"), AnswerStyle("text_letter", "desc")])
def test_every_answer_style_is_read_right_by_vlmevalkits_extraction(style):
    """The same questions in another style: the letter (as the prompt asks) / Yes-No, or text then letter."""
    rng = random.Random(3)
    scenes = training_scenes(rng, 80, set())
    for i in range(300):
        record = instruction_record(f"r{i}", "x.png", scenes[i % 80][0], rng, style)
        prompt, answer = (turn["value"] for turn in record["conversations"])
        options = dict(re.findall(r"^([A-I])\. (.*)$", prompt, flags=re.M))
        form = record["qtype"].split("/")[0]
        if form in ("mcq", "mcq_zh"):
            letter = answer if style.mcq == "letter" else answer.rsplit(". ", 1)[1]
            assert letter in options and can_infer(answer, options) == letter
        elif form == "yn":
            assert yes_no(answer) == answer.rsplit(". ", 1)[-1] in ("Yes", "No")
