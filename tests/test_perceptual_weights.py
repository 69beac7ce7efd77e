"""The three execution modes (factorized, merged, delta) and that nothing leaks between calls."""

from __future__ import annotations

import pytest
import torch

from vlora.errors import InputError
from vlora.perceptual_weights import MODULE_OF_TYPE, perceptual_weights_applied


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max())


def _llm_state(model) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.llm.state_dict().items()}


def test_three_modes_agree_with_m_included(tiny_model, images):
    assert "m" in tiny_model.config.connector.types
    batch = tiny_model.prepare([tiny_model.prompt("What is the shape?")], images[:1])
    with torch.no_grad():
        factorized = tiny_model(batch, mode="factorized").logits
        merged = tiny_model(batch, mode="merged").logits
        delta = tiny_model(batch, mode="delta").logits
        plain = tiny_model.llm(input_ids=batch.input_ids, attention_mask=batch.attention_mask,
                               position_ids=batch.position_ids).logits
    assert _rel(merged, factorized) <= 1e-5
    assert _rel(delta, factorized) <= 1e-5
    assert _rel(plain, factorized) > 1e-3  # the weights do act


def test_delta_mode_agrees_on_a_batch(tiny_model, images):
    prompts = [tiny_model.prompt("What is the shape?"), tiny_model.prompt("How many?")]
    batch = tiny_model.prepare(prompts, images[:2])
    with torch.no_grad():
        assert _rel(tiny_model(batch, mode="delta").logits, tiny_model(batch).logits) <= 1e-5


def test_m_branch_is_parallel_to_the_whole_mlp(tiny_model, images):
    """With types = m only, the branch adds x A B^T to the MLP output (x = MLP input)."""
    batch = tiny_model.prepare([tiny_model.prompt("Where?")], images[:1])
    weights = tiny_model.perceptual_weights(batch)
    layer = weights.keys()[-1][0]
    mlp = tiny_model.llm.model.layers[layer].mlp
    x = torch.randn(1, 5, tiny_model.config.llm.hidden_size)
    only_m = type(weights)(a={(layer, "m"): weights.a[layer, "m"]}, b={(layer, "m"): weights.b[layer, "m"]})
    with torch.no_grad():
        base = mlp(x)
        with perceptual_weights_applied(tiny_model.llm, only_m):
            branched = mlp(x)
    expected = base + x @ weights.a[layer, "m"] @ weights.b[layer, "m"].T
    torch.testing.assert_close(branched, expected, rtol=1e-5, atol=1e-6)


def test_merge_is_undone_exactly_and_hooks_are_removed(tiny_model, images):
    before = _llm_state(tiny_model)
    batch = tiny_model.prepare([tiny_model.prompt("What?")], images[:1])
    weights = tiny_model.perceptual_weights(batch)
    q_proj = tiny_model.llm.model.layers[weights.keys()[0][0]].self_attn.q_proj
    with torch.no_grad(), perceptual_weights_applied(tiny_model.llm, weights, "merged"):
        assert not torch.equal(q_proj.weight, before[f"model.layers.{weights.keys()[0][0]}.self_attn.q_proj.weight"])
    after = _llm_state(tiny_model)
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert all(not m._forward_hooks for m in tiny_model.llm.modules())


@pytest.mark.parametrize("mode", ["factorized", "merged", "delta"])
def test_exception_mid_call_leaves_the_model_clean(tiny_model, images, mode):
    before = _llm_state(tiny_model)
    batch = tiny_model.prepare([tiny_model.prompt("What?")], images[:1])
    weights = tiny_model.perceptual_weights(batch)
    with pytest.raises(RuntimeError, match="boom"), torch.no_grad():
        with perceptual_weights_applied(tiny_model.llm, weights, mode):
            raise RuntimeError("boom")
    assert all(torch.equal(before[k], v) for k, v in _llm_state(tiny_model).items())
    assert all(not m._forward_hooks for m in tiny_model.llm.modules())


def test_no_stale_weights_between_calls(tiny_model, images):
    """A call with image 2 after a call with image 1 equals a fresh call with image 2."""
    prompt = [tiny_model.prompt("What?")]
    with torch.no_grad():
        first = tiny_model(tiny_model.prepare(prompt, images[1:2])).logits
        tiny_model(tiny_model.prepare(prompt, images[:1]))
        tiny_model(tiny_model.prepare(prompt, images[:1]), mode="merged")
        again = tiny_model(tiny_model.prepare(prompt, images[1:2])).logits
    assert torch.equal(first, again)


def test_merged_mode_refuses_a_batch(tiny_model, images):
    batch = tiny_model.prepare([tiny_model.prompt("A?"), tiny_model.prompt("B?")], images[:2])
    with pytest.raises(InputError, match="batch of 2"):
        tiny_model(batch, mode="merged")


def test_batch_size_mismatch_is_reported(tiny_model, images):
    batch = tiny_model.prepare([tiny_model.prompt("A?"), tiny_model.prompt("B?")], images[:2])
    weights = tiny_model.perceptual_weights(batch)
    with pytest.raises(InputError, match="made for 2 samples"), perceptual_weights_applied(tiny_model.llm, weights):
        tiny_model.llm(input_ids=batch.input_ids[:1])


def test_every_type_targets_its_module(tiny_model):
    block = tiny_model.llm.model.layers[0]
    assert block.get_submodule(MODULE_OF_TYPE["q"]) is block.self_attn.q_proj
    assert block.get_submodule(MODULE_OF_TYPE["o"]) is block.self_attn.o_proj
    assert block.get_submodule(MODULE_OF_TYPE["m"]) is block.mlp
