"""LLaVA-1.5 preprocessing and CLIP features; the Vicuna-v1 template and placeholder tokenisation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import make_image
from PIL import Image

from vlora.config import VisionConfig
from vlora.prompting import IMAGE_TOKEN_INDEX, VICUNA_V1, image_question, tokenize_with_placeholder
from vlora.tokenizer import build_tiny_tokenizer
from vlora.vision import VisionTower, expand_to_square, preprocess_images

VISION = VisionConfig(image_size=56, patch_size=14, hidden_size=32, intermediate_size=64, num_layers=2, num_heads=4)


def test_expand_to_square_centres_on_the_mean_colour():
    image = Image.new("RGB", (40, 20), (255, 0, 0))
    square = np.asarray(expand_to_square(image, (122, 116, 104)))
    assert square.shape == (40, 40, 3)
    assert (square[:10] == (122, 116, 104)).all() and (square[30:] == (122, 116, 104)).all()
    assert (square[10:30] == (255, 0, 0)).all()


@pytest.mark.parametrize("size", [(60, 44), (40, 70), (56, 56), (200, 90)])
def test_preprocessing_matches_transformers_clip_processor(size):
    from transformers import CLIPImageProcessorPil

    image = make_image(7, size)
    processor = CLIPImageProcessorPil(size={"shortest_edge": 56}, crop_size={"height": 56, "width": 56})
    # without padding: our resize / crop / normalise equal CLIP's
    theirs = torch.as_tensor(np.asarray(processor(image, return_tensors="np")["pixel_values"]))
    ours = preprocess_images([image], VISION, pad_to_square=False)
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)
    # LLaVA-1.5: pad to square with the CLIP mean colour first
    padded = torch.as_tensor(np.asarray(processor(expand_to_square(image, (122, 116, 104)),
                                                  return_tensors="np")["pixel_values"]))
    torch.testing.assert_close(preprocess_images([image], VISION), padded, rtol=1e-5, atol=1e-5)


def test_features_are_the_second_to_last_layer_without_cls():
    tower = VisionTower(VISION).eval()
    pixels = preprocess_images([make_image(1), make_image(2)], VISION)
    features = tower(pixels)
    assert features.shape == (2, VISION.num_patches, VISION.hidden_size)
    with torch.no_grad():
        hidden = tower.clip(pixels, output_hidden_states=True).hidden_states
    assert len(hidden) == VISION.num_layers + 1
    torch.testing.assert_close(features, hidden[-2][:, 1:])


def test_vision_tower_loads_from_a_folder(tmp_path):
    from conftest import write_clip_folder

    folder = write_clip_folder(tmp_path / "clip", hidden=32)
    tower = VisionTower.from_pretrained(folder)
    assert tower.config.hidden_size == 32 and tower.config.num_patches == 16
    assert not any(p.requires_grad for p in tower.parameters())


def test_vicuna_v1_prompt_is_the_official_string():
    prompt = VICUNA_V1.prompt(image_question("What is shown?"))
    assert prompt == ("A chat between a curious user and an artificial intelligence assistant. The assistant gives "
                      "helpful, detailed, and polite answers to the user's questions. USER: <image>\nWhat is shown? "
                      "ASSISTANT:")


def test_placeholder_tokenisation_keeps_one_bos():
    tokenizer = build_tiny_tokenizer()
    ids = tokenize_with_placeholder("Look: <image>\nWhat? <image> end", tokenizer)
    assert ids[0] == tokenizer.bos_token_id and ids.count(tokenizer.bos_token_id) == 1
    assert ids.count(IMAGE_TOKEN_INDEX) == 2
    chunks = ["Look: ", "\nWhat? ", " end"]
    expected = tokenizer(chunks[0]).input_ids + [IMAGE_TOKEN_INDEX] + tokenizer(chunks[1]).input_ids[1:] \
        + [IMAGE_TOKEN_INDEX] + tokenizer(chunks[2]).input_ids[1:]
    assert ids == expected
    assert tokenize_with_placeholder("no image", tokenizer) == tokenizer("no image").input_ids


def test_tiny_tokenizer_is_llama_shaped_and_deterministic():
    a, b = build_tiny_tokenizer(), build_tiny_tokenizer()
    assert (a.unk_token_id, a.bos_token_id, a.eos_token_id, a.pad_token_id) == (0, 1, 2, 0)
    assert a.get_vocab() == b.get_vocab()
    assert a.convert_ids_to_tokens(a("\n").input_ids)[-1] == "<0x0A>"  # byte fallback, as Llama
    text = "A red circle 中文"
    assert a.decode(a(text).input_ids, skip_special_tokens=True) == text
