"""The VLMEvalKit-contract class, driven as VLMEvalKit drives a model (without VLMEvalKit installed)."""

from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import make_image

from evalsuite.adapter import Request
from evalsuite.messages import message_to_request
from evalsuite.prompts import dataset_type, llava_mcq_prompt
from evalsuite.vlmevalkit import VLMEvalKitModel, normalise_message
from vlora.errors import InputError


@pytest.fixture
def picture(tmp_path):
    path = tmp_path / "pic.png"
    make_image(9).save(path)
    return str(path)


def test_importable_without_vlmevalkit():
    code = "import sys, evalsuite.vlmevalkit; assert 'vlmeval' not in sys.modules; print('ok')"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "ok"


def test_generate_with_a_message_list(picture):
    model = VLMEvalKitModel(model="llava-tiny", max_new_tokens=6)
    message = [{"type": "image", "value": picture}, {"type": "text", "value": "What is shown?"}]
    answer = model.generate(message, dataset="MMBench_DEV_EN")
    expected = model.adapter.generate([Request("0", "<image>\nWhat is shown?", (picture,), max_new_tokens=6)])[0]
    assert answer == expected and isinstance(answer, str)


def test_message_forms_are_normalised(picture):
    assert normalise_message("Hi") == [{"type": "text", "value": "Hi"}]
    assert normalise_message({"type": "text", "value": "Hi"}) == [{"type": "text", "value": "Hi"}]
    assert normalise_message([picture, "Hi"]) == [{"type": "image", "value": picture}, {"type": "text", "value": "Hi"}]
    with pytest.raises(InputError, match="is not"):
        normalise_message([{"type": "video", "value": "x.mp4"}])
    request = message_to_request([{"type": "text", "value": "Look: "}, {"type": "image", "value": picture},
                                  {"type": "text", "value": "what?"}])
    assert request.text == "Look: <image>\nwhat?" and request.images == (picture,)


def test_use_custom_prompt_follows_the_dataset_type():
    model = VLMEvalKitModel(model="vlora-tiny")
    assert dataset_type("MMBench_DEV_EN") == "MCQ" and dataset_type("HallusionBench") == "Y/N"
    assert model.use_custom_prompt("MMBench_DEV_EN") and model.use_custom_prompt("MMMU_DEV_VAL")
    assert model.use_custom_prompt("ScienceQA_VAL") and model.use_custom_prompt("CCBench")
    assert not model.use_custom_prompt("MME") and not model.use_custom_prompt("HallusionBench")


def test_build_prompt_is_llavas_multiple_choice_prompt(picture):
    model = VLMEvalKitModel(model="vlora-tiny")
    model.set_dump_image(lambda line: [picture])
    line = {"index": 3, "question": "Which colour?", "hint": "Look closely.", "A": "red", "B": "blue",
            "C": float("nan"), "answer": "A"}
    message = model.build_prompt(line, dataset="MMBench_DEV_EN")
    assert message == [{"type": "image", "value": picture},
                       {"type": "text", "value": "Look closely.\nWhich colour?\nA. red\nB. blue\n"
                                                 "Answer with the option's letter from the given choices directly."}]
    assert isinstance(model.generate(message, dataset="MMBench_DEV_EN"), str)


def test_llava_prompt_variants():
    assert llava_mcq_prompt("哪个?", {"A": "红", "B": "蓝"}) == "哪个?\nA. 红\nB. 蓝\n请直接回答选项字母。"
    assert llava_mcq_prompt("How many?", {}, hint=float("nan")) == "How many?\nAnswer the question directly."
    assert llava_mcq_prompt("几个?", {}) == "几个?\n请直接回答问题。"


def test_failures_surface_as_errors(tmp_path):
    model = VLMEvalKitModel(model="llava-tiny")
    with pytest.raises(InputError, match="does not exist"):
        model.generate([{"type": "image", "value": str(tmp_path / "gone.png")}, {"type": "text", "value": "Q"}])
    with pytest.raises(InputError, match="set_dump_image"):
        model.build_prompt({"question": "Q", "A": "x"}, "MMBench_DEV_EN")
