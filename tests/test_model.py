"""VLoRA end to end on tiny random configs: batching, zero visual tokens, zero init, loss, gradients."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from conftest import randomize_w_s

from vlora.errors import InputError
from vlora.model import Sampling, build_model
from vlora.prompting import (
    IGNORE_INDEX,
    VICUNA_V1,
    image_question,
    tokenize_for_training,
    tokenize_with_placeholder,
)


def _valid_logits(model, prompts, images, **kw):
    batch = model.prepare(prompts, images)
    with torch.no_grad():
        logits = model(batch, **kw).logits
    return [logits[i][batch.attention_mask[i].bool()] for i in range(len(prompts))]


def test_batched_equals_per_sample(tiny_model, images):
    prompts = [tiny_model.prompt("What is the colour of the big shape?"), tiny_model.prompt("How many?"),
               tiny_model.prompt("Just text, no picture.", with_image=False)]
    images = [images[0], images[1], None]
    batched = _valid_logits(tiny_model, prompts, images)
    for i in range(3):
        single = _valid_logits(tiny_model, prompts[i:i + 1], images[i:i + 1])[0]
        torch.testing.assert_close(batched[i], single, rtol=1e-5, atol=1e-5)


def test_batched_generation_equals_single(tiny_model, images):
    prompts = [tiny_model.prompt("What is the colour?"), tiny_model.prompt("Where is the square in the picture?")]
    together = tiny_model.generate(prompts, images[:2], max_new_tokens=10)
    alone = [tiny_model.generate([p], [im], max_new_tokens=10)[0] for p, im in zip(prompts, images[:2], strict=True)]
    assert together == alone


def test_different_images_give_different_outputs(tiny_model, images):
    prompt = [tiny_model.prompt("What is it?")]
    first = _valid_logits(tiny_model, prompt, images[:1])[0]
    second = _valid_logits(tiny_model, prompt, images[1:2])[0]
    assert (first - second).abs().max() > 1e-3


def test_zero_initialised_w_s_leaves_the_llm_unchanged(tiny_config, images):
    model = build_model(tiny_config, seed=3).eval()
    assert all(p.abs().max() == 0 for p in model.connector.w_s.values())
    batch = model.prepare([model.prompt("What is it?"), model.prompt("And this?")], images[:2])
    weights = model.perceptual_weights(batch)
    assert any(a.abs().max() > 0 for a in weights.a.values())  # A is not zero: B is
    with torch.no_grad():
        ours = model(batch).logits
        plain = model.llm(input_ids=batch.input_ids, attention_mask=batch.attention_mask,
                          position_ids=batch.position_ids).logits
    assert torch.equal(ours, plain)


def test_text_only_prompt_gets_zero_a(tiny_model, images):
    prompts = [tiny_model.prompt("What is it?"), tiny_model.prompt("No placeholder.", with_image=False)]
    batch = tiny_model.prepare(prompts, images[:2])  # an image is given to both, only one places it
    assert batch.has_image.tolist() == [True, False]
    weights = tiny_model.perceptual_weights(batch)
    assert all(a[1].abs().max() == 0 and a[0].abs().max() > 0 for a in weights.a.values())
    with torch.no_grad():
        plain = tiny_model.llm(input_ids=batch.input_ids[1:], attention_mask=batch.attention_mask[1:],
                               position_ids=batch.position_ids[1:]).logits
    torch.testing.assert_close(_valid_logits(tiny_model, prompts[1:], [None])[0],
                               plain[0][batch.attention_mask[1].bool()], rtol=0, atol=0)


def test_zero_visual_tokens(tiny_model, images):
    """The placeholder is one masked slot: the LLM input is as long as the text."""
    prompt = tiny_model.prompt("What is it?")
    ids = tokenize_with_placeholder(prompt, tiny_model.tokenizer)
    text_tokens = sum(i >= 0 for i in ids)
    with_image = tiny_model.prepare([prompt], images[:1])
    assert with_image.input_ids.shape[1] == text_tokens + 1
    assert tiny_model.prepare([prompt], images[1:2]).input_ids.shape == with_image.input_ids.shape
    assert with_image.image_positions.sum() == 1
    assert with_image.attention_mask[with_image.image_positions].sum() == 0


def test_placeholder_without_image_is_an_error(tiny_model):
    with pytest.raises(InputError, match="sample 0: the prompt has an <image> placeholder but no image"):
        tiny_model.prepare([tiny_model.prompt("What?")], [None])


def test_loss_is_the_mean_cross_entropy_of_the_answer(tiny_model, images):
    pieces = VICUNA_V1.dialogue([(image_question("What colour?"), "Red"), ("And the shape?", "A circle")])
    ids, labels = tokenize_for_training(pieces, tiny_model.tokenizer)
    learned = [i for i, lab in zip(ids, labels, strict=True) if lab != IGNORE_INDEX]
    assert tiny_model.tokenizer.decode(learned) == "Red</s> A circle</s>"  # "▁A": the space is the word prefix
    batch = tiny_model.collate([ids], images[:1], labels=[labels])
    with torch.no_grad():
        out = tiny_model(batch)
    target = batch.labels[0, 1:]
    manual = F.cross_entropy(out.logits[0, :-1], target, ignore_index=IGNORE_INDEX)
    torch.testing.assert_close(out.loss, manual)


def _grads_after_backward(model, images):
    pieces = VICUNA_V1.dialogue([(image_question("What colour?"), "Red")])
    ids, labels = tokenize_for_training(pieces, model.tokenizer)
    model.train()
    model(model.collate([ids], images[:1], labels=[labels])).loss.backward()
    return {name: p.grad for name, p in model.named_parameters()}


def test_pretraining_gradients_reach_the_generator_only(tiny_model, images):
    tiny_model.set_trainable(["connector"])
    grads = _grads_after_backward(tiny_model, images)
    connector = {n: g for n, g in grads.items() if n.startswith("connector.")}
    assert all(g is not None for g in connector.values())
    assert grads["connector.w_s.q"].abs().sum() > 0
    assert grads["connector.type_decoders.0.weights_head.weight"].abs().sum() > 0
    assert grads["connector.visual_proj.weight"].abs().sum() > 0
    assert all(g is None for n, g in grads.items() if not n.startswith("connector."))


def test_zero_w_s_still_receives_gradient(tiny_config, images):
    """With W_s = 0 the generator gets no gradient yet, but W_s does: training can start."""
    model = build_model(tiny_config, seed=1)
    model.set_trainable(["connector"])
    grads = _grads_after_backward(model, images)
    assert all(grads[f"connector.w_s.{t}"].abs().sum() > 0 for t in tiny_config.connector.types)


def test_finetuning_trains_the_llm_but_not_clip(tiny_model, images):
    tiny_model.set_trainable(["connector", "llm"])
    grads = _grads_after_backward(tiny_model, images)
    assert grads["llm.model.layers.0.self_attn.q_proj.weight"] is not None
    assert all(g is None for n, g in grads.items() if n.startswith("vision."))


def test_sampling_is_reproducible_with_a_seed(tiny_model, images):
    prompt = [tiny_model.prompt("Tell me.")]
    a = tiny_model.generate(prompt, images[:1], max_new_tokens=8, sampling=Sampling(temperature=0.7, seed=5))
    b = tiny_model.generate(prompt, images[:1], max_new_tokens=8, sampling=Sampling(temperature=0.7, seed=5))
    assert a == b


def test_generation_stops_at_eos_and_max_tokens(tiny_config, images):
    model = randomize_w_s(build_model(tiny_config, seed=0)).eval()
    eos = model.tokenizer.eos_token_id
    with torch.no_grad():
        model.llm.lm_head.weight.zero_()
        model.llm.lm_head.weight[eos, 0] = 1.0  # make EOS the argmax whenever hidden[0] > 0
    batch = model.prepare([model.prompt("Hi.")], images[:1])
    tokens = model.decode(batch, 5)[0]
    assert len(tokens) <= 5 and eos not in tokens
