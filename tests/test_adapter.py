"""The adapter contract over all three models: generate, log-likelihood, card, registry, bad input."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import make_image, randomize_w_s

from evalsuite.adapter import Failure, ModelCard, Request
from evalsuite.multimodal import MultimodalAdapter
from evalsuite.registry import create_model, model_specs
from vlora.checkpoints import save_model
from vlora.config import Space
from vlora.errors import ConfigError, InputError
from vlora.model import build_model
from vlora.presets import preset

TINY = ["vlora-tiny", "llava-tiny", "llava-qformer-tiny"]


def _adapter(name: str, batch_size: int = 8) -> MultimodalAdapter:
    adapter = create_model(name, batch_size=batch_size)
    if adapter.card.kind == "vlora":
        randomize_w_s(adapter.model)  # zero W_s would make the image irrelevant
    return adapter


def _requests(images):
    return [Request("a", "What colour is the shape?", (images[0],), ("A", "B", "red"), 6),
            Request("b", "How many shapes are there in the picture?", (images[1],), ("Yes", "No"), 9),
            Request("c", "A question without a picture.", (), ("A", "B"), 4)]


@pytest.mark.parametrize("name", TINY)
def test_generate_batched_equals_single(name, images):
    adapter = _adapter(name)
    requests = _requests(images)
    together = adapter.generate(requests)
    alone = [adapter.generate([r])[0] for r in requests]
    assert together == alone and all(isinstance(t, str) for t in together)


@pytest.mark.parametrize("name", TINY)
def test_generate_is_the_models_greedy_answer(name, images):
    adapter = _adapter(name)
    request = _requests(images)[0]
    expected = adapter.model.generate([adapter.model.prompt(request.text)], [images[0]], request.max_new_tokens)
    assert adapter.generate([request]) == expected


@pytest.mark.parametrize("name", TINY)
def test_loglikelihood_matches_an_independent_sum(name, images):
    adapter = _adapter(name, batch_size=3)
    requests = _requests(images)
    scores = adapter.loglikelihood(requests)
    model, tokenizer = adapter.model, adapter.model.tokenizer
    for request, per_choice in zip(requests, scores, strict=True):
        assert len(per_choice) == len(request.choices)
        prompt = model.prompt(request.text, with_image=bool(request.images))
        for choice, score in zip(request.choices, per_choice, strict=True):
            # one sample alone: score the choice's tokens, found by tokenising prompt and prompt + choice
            from vlora.prompting import tokenize_with_placeholder

            context = tokenize_with_placeholder(prompt, tokenizer)
            full = tokenize_with_placeholder(prompt + " " + choice, tokenizer)
            assert full[:len(context)] == context
            batch = model.collate([full], [list(request.images)])
            with torch.no_grad():
                logprobs = torch.log_softmax(model(batch).logits[0].float(), dim=-1)
            n = len(full) - len(context)
            targets = batch.input_ids[0, -n:]
            expected = logprobs[-n - 1:-1].gather(-1, targets[:, None]).sum()
            assert score == pytest.approx(float(expected), abs=1e-4)


def test_loglikelihood_prefers_the_forced_answer(images):
    """A model whose LM head favours the tokens of one choice scores that choice highest."""
    adapter = _adapter("llava-tiny")
    tokens = adapter.model.tokenizer(" B", add_special_tokens=False).input_ids  # "▁", "B" or "▁B"

    def favour_b(module, args, logits):
        logits[..., tokens] += 30.0
        return logits

    handle = adapter.model.llm.lm_head.register_forward_hook(favour_b)
    request = Request("x", "Which?", (images[0],), ("A", "B", "C"))
    try:
        scores = adapter.loglikelihood([request])[0]
    finally:
        handle.remove()
    assert max(range(3), key=scores.__getitem__) == 1

@pytest.mark.parametrize("name", TINY)
def test_greedy_flag_says_whether_greedy_decoding_gives_the_choice(name, images):
    """`greedy=True` pairs each sum with lm-eval's is_greedy: the greedily decoded tokens are greedy, the
    same tokens with the last one changed are not; the sums are those of `greedy=False`."""
    from vlora.likelihood import Choice
    from vlora.prompting import tokenize_with_placeholder

    model = _adapter(name).model
    context = tokenize_with_placeholder(model.prompt("What colour is the shape?"), model.tokenizer)
    batch = model.collate([context], [[images[0]]])
    (decoded,) = model.decode(batch, 3, stop_at_eos=False)
    changed = [*decoded[:-1], (decoded[-1] + 1) % len(model.tokenizer)]
    rows = [[Choice(tuple(decoded), 3), Choice(tuple(changed), 3), Choice(tuple(decoded[:1]), 1)]]
    paired = model.score_choices(batch, rows, greedy=True)[0]
    assert [g for _, g in paired] == [True, False, True]
    assert [s for s, _ in paired] == pytest.approx(model.score_choices(batch, rows)[0], abs=1e-5)



@pytest.mark.parametrize("name", TINY)
def test_one_bad_request_does_not_lose_the_others(name, images, tmp_path):
    adapter = _adapter(name, batch_size=4)
    (tmp_path / "broken.png").write_bytes(b"not a png")
    good = _requests(images)[:2]
    bad = [Request("missing", "What?", (str(tmp_path / "nope.png"),), ("A",)),
           Request("broken", "What?", (str(tmp_path / "broken.png"),), ("A",)),
           Request("mismatch", "<image> and <image>", (images[0],), ("A",))]
    mixed = [good[0], bad[0], bad[1], good[1], bad[2]]
    answers = adapter.generate(mixed)
    assert answers[0] == adapter.generate([good[0]])[0] and answers[3] == adapter.generate([good[1]])[0]
    assert isinstance(answers[1], Failure) and "does not exist" in answers[1].message
    assert isinstance(answers[2], Failure) and "cannot be decoded" in answers[2].message
    if adapter.card.space is Space.INPUT:
        assert isinstance(answers[4], Failure) and answers[4].message.startswith("request mismatch:")
    scores = adapter.loglikelihood(mixed)
    assert scores[0] == pytest.approx(adapter.loglikelihood([good[0]])[0], abs=1e-4)  # other padding, same numbers
    assert isinstance(scores[1], Failure) and isinstance(scores[2], Failure)


def test_vlora_refuses_two_images_per_request(images):
    adapter = _adapter("vlora-tiny")
    (result,) = adapter.generate([Request("two", "Compare.", (images[0], images[1]))])
    assert isinstance(result, Failure) and "one image per sample" in result.message


@pytest.mark.parametrize("name,space,tokens", [("vlora-tiny", Space.PARAMETER, 0), ("llava-tiny", Space.INPUT, 16),
                                                ("llava-qformer-tiny", Space.INPUT, 8)])
def test_card_describes_the_model(name, space, tokens):
    adapter = create_model(name)
    card = adapter.card
    assert (card.name, card.space, card.visual_tokens) == (name, space, tokens)
    assert card.parameters == adapter.model.parameter_counts()
    assert card.config == adapter.model.config and card.kind == model_specs()[name].kind
    assert card.config.llm.hidden_size == 64
    assert card.prompt_style("MCQ") == "llava_mcq" and card.prompt_style("Y/N") == "dataset"
    assert ModelCard.from_dict(json.loads(json.dumps(card.to_dict()))) == card  # what run.json stores reads back


def test_create_model_takes_dotted_overrides():
    assert create_model("vlora-tiny", overrides=["connector.rank=2"]).model.connector.rank == 2
    with pytest.raises(ConfigError, match="'ranq' is not a setting of a vlora model; did you mean connector.rank"):
        create_model("vlora-tiny", overrides=["ranq=2"])


def test_registry_errors(tmp_path):
    with pytest.raises(ConfigError, match="unknown model 'gpt'"):
        create_model("gpt")
    with pytest.raises(ConfigError, match="'vlora' needs a local checkpoint"):
        create_model("vlora")
    save_model(build_model(preset("llava-tiny"), seed=0), tmp_path / "llava")
    with pytest.raises(InputError, match="holds a LLaVA-v1.5 model, not VLoRA .*use --model llava-v1.5$"):
        create_model("vlora", tmp_path / "llava")
    assert create_model("llava-v1.5", tmp_path / "llava").card.kind == "llava"
    with pytest.raises(ConfigError, match="a checkpoint's configuration is fixed"):
        create_model("llava-v1.5", tmp_path / "llava", overrides=["connector.rank=3"])


def test_merged_mode_runs_one_request_at_a_time(images):
    factorized = _adapter("vlora-tiny")
    merged = MultimodalAdapter(factorized.model, "vlora-tiny", batch_size=8, mode="merged")
    assert merged.batch_size == 1
    requests = _requests(images)[:2]
    assert merged.generate(requests) == factorized.generate(requests)
    ours = merged.loglikelihood(requests)
    reference = factorized.loglikelihood(requests)
    for a, b in zip(ours, reference, strict=True):
        assert a == pytest.approx(b, abs=1e-4)


def test_image_paths_are_opened(tmp_path):
    adapter = _adapter("llava-tiny")
    make_image(5).save(tmp_path / "x.png")
    by_path = adapter.generate([Request("p", "What?", (str(tmp_path / "x.png"),), max_new_tokens=5)])
    by_image = adapter.generate([Request("p", "What?", (make_image(5),), max_new_tokens=5)])
    assert by_path == by_image
