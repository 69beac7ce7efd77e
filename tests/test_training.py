"""Training (vlora/training/): recipe, data, loss mask, the loop, exact resume, accumulation, export.

Tiny random models and a few records written here; every run is a few optimizer steps on a CPU.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from conftest import make_image, randomize_w_s

from vlora.checkpoints import load_model
from vlora.errors import ConfigError, InputError
from vlora.images import decode_image
from vlora.model import build_model
from vlora.overrides import apply_overrides
from vlora.presets import preset
from vlora.prompting import IGNORE_INDEX, IMAGE_TOKEN_INDEX, VICUNA_V1, tokenize_with_placeholder
from vlora.tokenizer import build_tiny_tokenizer
from vlora.training import (
    STAGES,
    TrainingRecipe,
    export_official_vlora,
    load_training_data,
    official_recipe,
    read_log,
    read_records,
    train,
)
from vlora.training.data import tokenize_sample

KINDS = {"vlora": "vlora-tiny", "llava": "llava-tiny", "llava-qformer": "llava-qformer-tiny"}
ANSWERS = ["red", "a blue square at the top left", "three", "green circle", "no", "yes it is",
           "white triangle below", "two shapes"]


pytestmark = pytest.mark.usefixtures("one_thread")


def write_data(folder: Path, stage: str, n: int = 8, text_only: int = 0) -> Path:
    """n records (the last `text_only` without an image) and their images under `folder`."""
    (folder / "images").mkdir(parents=True, exist_ok=True)
    records = []
    for i in range(n):
        record = {"id": f"s{i}", "image": f"images/{i}.png"}
        make_image(i, (40 + 3 * i, 50)).save(folder / record["image"])
        question = "Describe the picture." if stage == "finetune" else ""
        turns = [{"from": "human", "value": f"<image>\n{question}"}, {"from": "gpt", "value": ANSWERS[i % len(ANSWERS)]}]
        if stage == "finetune" and i % 2:
            turns += [{"from": "human", "value": "What color is it?"}, {"from": "gpt", "value": ANSWERS[(i + 3) % 8]}]
        if i >= n - text_only:
            del record["image"]
            turns[0]["value"] = turns[0]["value"].replace("<image>\n", "") or "Say something."
        record["conversations"] = turns
        records.append(record)
    path = folder / f"{stage}.json"
    path.write_text(json.dumps(records))
    return path


def tiny_recipe(stage: str, **changes) -> TrainingRecipe:
    base = dict(learning_rate=2e-3, batch_size=4, gradient_accumulation_steps=1, max_steps=6, warmup_ratio=0.0,
                dtype="float32", gradient_checkpointing=False, save_every=0, max_length=256)
    return official_recipe(stage, **{**base, **changes})


def parameters(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.named_parameters()}


# --- the recipe -----------------------------------------------------------------------------------
def test_official_recipes_are_the_release_numbers():
    pre, fine = official_recipe("pretrain"), official_recipe("finetune")
    assert (pre.learning_rate, fine.learning_rate) == (5e-5, 2e-5)
    assert (pre.batch_size * 8, fine.batch_size * 8) == (768, 128)  # 8 GPUs in the release
    for r in (pre, fine):
        assert (r.warmup_ratio, r.weight_decay, r.lr_schedule, r.epochs, r.max_length) == (0.03, 0.0, "cosine", 1, 2048)
        assert r.dtype == "bfloat16" and r.gradient_checkpointing
    for stage in STAGES.values():
        assert set(stage.defaults) <= {f for f in TrainingRecipe.__dataclass_fields__}
    assert (pre.trains, fine.trains) == (("connector",), ("connector", "llm"))  # tune_mm_mlp_adapter; the full LLM
    changed = apply_overrides(pre, ["learning_rate=1e-4", "gradient_checkpointing=false", "max_steps=null"])
    assert (changed.learning_rate, changed.gradient_checkpointing, changed.max_steps) == (1e-4, False, None)
    assert TrainingRecipe.from_dict(fine.to_dict()) == fine


@pytest.mark.parametrize("changes, words", [
    ({"learning_rate": 0}, "learning_rate"), ({"batch_size": 0}, "batch_size"), ({"stage": "sft"}, "stage"),
    ({"warmup_ratio": 1.5}, "warmup_ratio"), ({"dtype": "float16"}, "dtype"), ({"lr_schedule": "linear"}, "lr_schedule"),
    ({"max_steps": 0}, "max_steps"), ({"batch_size": 2.5}, "batch_size"), ({"gradient_checkpointing": 1}, "gradient_checkpointing"),
    ({"learning_rate": "fast"}, "learning_rate"), ({"lr": 1e-4}, "is not a setting of a TrainingRecipe"),
])
def test_recipe_errors_are_one_line(changes, words):
    with pytest.raises(ConfigError) as e:
        apply_overrides(official_recipe("finetune"), changes)
    assert words in str(e.value) and "\n" not in str(e.value)


# --- data: templates and the loss mask ------------------------------------------------------------
def test_finetune_labels_cover_only_the_answers(tmp_path):
    model = build_model(preset("vlora-tiny"), seed=0)
    tok = model.tokenizer
    record = {"id": "x", "image": "images/0.png", "conversations": [
        {"from": "human", "value": "What is shown? <image>"}, {"from": "gpt", "value": "a red circle"},
        {"from": "human", "value": "How many?"}, {"from": "gpt", "value": "one"}]}
    (tmp_path / "images").mkdir()
    make_image(0).save(tmp_path / "images/0.png")
    (tmp_path / "d.json").write_text(json.dumps([record]))
    columns = read_records(tmp_path / "d.json", tmp_path, "finetune")
    assert columns["turns"][0][0][0] == "<image>\nWhat is shown?"  # moved to the front, as LLaVA does
    ids, labels = tokenize_sample(columns["turns"][0], True, "dialogue", tok, VICUNA_V1)

    text = (f"{VICUNA_V1.system} USER: <image>\nWhat is shown? ASSISTANT: a red circle</s>"
            "USER: How many? ASSISTANT: one</s>")
    assert ids == tokenize_with_placeholder(text, tok)
    assert ids[0] == tok.bos_token_id and ids.count(IMAGE_TOKEN_INDEX) == 1
    learned = [i for i, label in enumerate(labels) if label != IGNORE_INDEX]
    assert all(labels[i] == ids[i] for i in learned)
    runs, run = [], [learned[0]]
    for i in learned[1:]:
        if i == run[-1] + 1:
            run.append(i)
        else:
            runs.append(run)
            run = [i]
    runs.append(run)
    assert [tok.decode([ids[i] for i in r]).strip() for r in runs] == ["a red circle</s>", "one</s>"]
    instruction = tok.decode([t for t, label in zip(ids, labels, strict=True) if label == IGNORE_INDEX and t >= 0])
    assert "ASSISTANT:" in instruction and "How many?" in instruction and "circle" not in instruction


def test_pretrain_is_the_plain_template(tmp_path):
    model = build_model(preset("vlora-tiny"), seed=0)
    tok = model.tokenizer
    ids, labels = tokenize_sample([["<image>\nignored question", "a red circle"]], True, "plain", tok)
    caption = tok("a red circle\n").input_ids[1:]  # the caption chunk without its BOS
    assert ids == [tok.bos_token_id, IMAGE_TOKEN_INDEX, *caption]
    assert labels == [IGNORE_INDEX, IGNORE_INDEX, *caption]  # BOS and the placeholder ignored
    ids, labels = tokenize_sample([["", "a red circle"]], False, "plain", tok)  # text-only
    assert ids == [tok.bos_token_id, *caption] and labels == [IGNORE_INDEX, *caption]


def test_truncation_counts_visual_tokens(tmp_path):
    data_file = write_data(tmp_path, "finetune", n=4)
    model = build_model(preset("llava-tiny"), seed=0)
    per_image = model.config.positions_per_image  # 16 visual tokens
    data = load_training_data(data_file, tmp_path, model.tokenizer, "finetune", max_length=60,
                              positions_per_image=per_image, cache_dir=tmp_path / "cache")
    for ids in data.dataset["input_ids"]:
        assert len(ids) - 1 + per_image <= 60
    with pytest.raises(InputError, match=r"record id 's0'.*cuts the image"):
        load_training_data(data_file, tmp_path, model.tokenizer, "finetune", max_length=20,
                           positions_per_image=per_image, cache_dir=tmp_path / "cache")


def test_tokenised_data_is_cached_by_content(tmp_path):
    data_file = write_data(tmp_path, "finetune", n=4)

    def load(vocab=1024):
        return load_training_data(data_file, tmp_path, build_tiny_tokenizer(vocab), "finetune", max_length=256,
                                  cache_dir=tmp_path / "cache")

    first, second = load(), load()
    assert not first.from_cache and second.from_cache and first.cache_file == second.cache_file
    assert first.dataset["input_ids"] == second.dataset["input_ids"]
    records = json.loads(data_file.read_text())
    records[0]["conversations"][1]["value"] = "changed answer"
    data_file.write_text(json.dumps(records))
    changed = load()
    assert not changed.from_cache and changed.fingerprint != first.fingerprint
    assert changed.dataset["input_ids"][0] != first.dataset["input_ids"][0]
    assert load().from_cache
    assert not load(vocab=512).from_cache  # another tokenizer, another key


# --- data: malformed input ------------------------------------------------------------------------
GOOD = {"id": "a", "image": "images/0.png", "conversations": [{"from": "human", "value": "<image>\nQ"},
                                                               {"from": "gpt", "value": "A"}]}


@pytest.mark.parametrize("content, words", [
    ("[{", "not valid JSON"),
    ({"data": []}, "expected a JSON list"),
    ([], "holds no records"),
    ([GOOD, {"id": "b"}], "record 1 (id 'b'): has no 'conversations'"),
    ([GOOD, "text"], "record 1 (id 1): expected an object"),
    ([{**GOOD, "conversations": [GOOD["conversations"][0], GOOD["conversations"][0]]}], "turn 1 is from 'human'"),
    ([{**GOOD, "conversations": GOOD["conversations"][:1]}], "ends with a human turn"),
    ([{**GOOD, "conversations": [{"from": "human", "value": 3}, GOOD["conversations"][1]]}], "text 'value'"),
    ([GOOD, {**GOOD, "image": "images/missing.png"}, {**GOOD, "image": "images/gone.png"}],
     "2 of 3 records name image files that do not exist (first: record 1 (id 'a'): images/missing.png)"),
    ([GOOD, {**GOOD, "id": "x", "image": "../../etc/passwd"}, {**GOOD, "image": "/etc/hostname"}],
     "2 of 3 records name images outside --images"),
    ([{**GOOD, "image": "images/../images/0.png"}, {**GOOD, "image": "images/../../bad.json"}],
     "1 of 2 records name images outside --images"),
    ([{**GOOD, "image": ["images/0.png"]}], "one image per sample"),
    ([{**GOOD, "conversations": [{"from": "human", "value": "Q"}, GOOD["conversations"][1]]}], "placeholder"),
    ([{k: v for k, v in GOOD.items() if k != "image"}], "has no image"),
    ([{**GOOD, "conversations": [{"from": "human", "value": "<image> <image>"}, GOOD["conversations"][1]]}], "2 <image>"),
    ([{**GOOD, "conversations": GOOD["conversations"] * 2}], "one human / gpt pair"),
])
def test_malformed_records_are_one_line_errors(tmp_path, content, words):
    (tmp_path / "images").mkdir()
    make_image(0).save(tmp_path / "images/0.png")
    path = tmp_path / "bad.json"
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    with pytest.raises(InputError) as e:
        read_records(path, tmp_path, "pretrain")
    message = str(e.value)
    assert words in message and "bad.json" in message and "\n" not in message


def test_broken_image_names_record_and_file(tmp_path):
    data_file = write_data(tmp_path, "pretrain", n=4)
    (tmp_path / "images/2.png").write_bytes(b"not a png")
    with pytest.raises(InputError) as e:
        train(build_model(preset("vlora-tiny"), seed=0), tiny_recipe("pretrain", max_steps=1), data_file, tmp_path,
              tmp_path / "out", progress=False)
    assert "record id 's2'" in str(e.value) and "images/2.png" in str(e.value) and "\n" not in str(e.value)


def test_too_little_data_for_one_step(tmp_path):
    data_file = write_data(tmp_path, "pretrain", n=3)
    with pytest.raises(ConfigError, match="3 records, fewer than one optimizer step"):
        train(build_model(preset("vlora-tiny"), seed=0), tiny_recipe("pretrain"), data_file, tmp_path, tmp_path / "o",
              progress=False)


# --- the loop -------------------------------------------------------------------------------------
@pytest.mark.parametrize("stage", ["pretrain", "finetune"])
@pytest.mark.parametrize("kind", list(KINDS))
def test_a_few_steps_lower_the_loss_and_frozen_parts_stay(tmp_path, kind, stage):
    data_file = write_data(tmp_path, stage, n=8, text_only=1)
    model = build_model(preset(KINDS[kind]), seed=0)
    before = {part: parameters(getattr(model, part)) for part in ("vision", "llm", "connector")}
    rng = torch.get_rng_state()
    result = train(model, tiny_recipe(stage, batch_size=8), data_file, tmp_path, tmp_path / "out", progress=False)

    losses = [line["loss"] for line in read_log(result.log_file)]
    assert len(losses) == result.steps == 6 and losses[-1] < losses[0] - 0.05, losses
    assert torch.equal(rng, torch.get_rng_state())  # the caller's RNG is untouched
    assert not model.training
    frozen = ("vision", "llm") if stage == "pretrain" else ("vision",)
    for part, params in before.items():
        same = [torch.equal(v, dict(getattr(model, part).named_parameters())[k]) for k, v in params.items()]
        assert all(same) if part in frozen else not all(same), part
    assert (result.model_dir / "vlora_eval.json").is_file() and result.tokens_per_second > 0


@pytest.mark.parametrize("kind", ["vlora", "llava-qformer"])  # the Q-Former has dropout: RNG states matter
def test_resume_continues_exactly(tmp_path, kind, monkeypatch):
    import vlora.training.loop as loop

    data_file = write_data(tmp_path, "finetune", n=12, text_only=1)
    recipe = tiny_recipe("finetune", batch_size=2, gradient_accumulation_steps=2, max_steps=7, save_every=2,
                         warmup_ratio=0.2)  # 3 steps per epoch: the checkpoint at step 4 is mid-epoch

    def model():
        return randomize_w_s(build_model(preset(KINDS[kind]), seed=0)) if kind == "vlora" else build_model(preset(KINDS[kind]), seed=0)

    whole = model()
    train(whole, recipe, data_file, tmp_path, tmp_path / "whole", progress=False)

    original = loop._log_record

    def killed_at_step_6(step, *args):
        if step == 6:
            raise KeyboardInterrupt
        return original(step, *args)

    monkeypatch.setattr(loop, "_log_record", killed_at_step_6)
    with pytest.raises(KeyboardInterrupt):
        train(model(), recipe, data_file, tmp_path, tmp_path / "cut", progress=False)
    assert [line["step"] for line in read_log(tmp_path / "cut/train_log.jsonl")] == [1, 2, 3, 4, 5]
    monkeypatch.setattr(loop, "_log_record", original)

    resumed = model()
    result = train(resumed, recipe, data_file, tmp_path, tmp_path / "cut", progress=False)
    assert result.resumed_from == 4 and result.steps_this_run == 3
    drop = ("seconds",)
    strip = lambda log: [{k: v for k, v in line.items() if k not in drop} for line in log]  # noqa: E731
    assert strip(read_log(tmp_path / "cut/train_log.jsonl")) == strip(read_log(tmp_path / "whole/train_log.jsonl"))
    for (name, a), b in zip(whole.state_dict().items(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    assert [p.name for p in result.checkpoints] == ["step-00000004", "step-00000006"]


def test_a_finished_run_is_left_alone_and_another_job_is_refused(tmp_path):
    data_file = write_data(tmp_path, "pretrain", n=4)
    done = train(build_model(preset("vlora-tiny"), seed=0), tiny_recipe("pretrain", max_steps=2, save_every=1),
                 data_file, tmp_path, tmp_path / "out", progress=False)
    model_bytes = (tmp_path / "out" / "model" / "model.safetensors").read_bytes()
    again = train(build_model(preset("vlora-tiny"), seed=0), tiny_recipe("pretrain", max_steps=2, save_every=1),
                  data_file, tmp_path, tmp_path / "out", progress=False)  # a finished run: nothing left to do
    assert (again.already_trained, again.steps, again.steps_this_run, again.final_loss) == (True, 2, 0, done.final_loss)
    with pytest.raises(ConfigError, match=r"holds the output of another train job \(recipe.learning_rate: 0.002 -> "
                                          r"0.001\); use another folder"):
        train(build_model(preset("vlora-tiny"), seed=0), tiny_recipe("pretrain", max_steps=2, learning_rate=1e-3),
              data_file, tmp_path, tmp_path / "out", progress=False)
    with pytest.raises(ConfigError, match=r"another train job \(model.connector.rank: 4 -> 2\)"):
        train(build_model(apply_overrides(preset("vlora-tiny"), ["connector.rank=2"]), seed=0),
              tiny_recipe("pretrain", max_steps=2), data_file, tmp_path, tmp_path / "out", progress=False)
    assert (tmp_path / "out" / "model" / "model.safetensors").read_bytes() == model_bytes  # nothing replaced
    forced = train(build_model(preset("vlora-tiny"), seed=0), tiny_recipe("pretrain", max_steps=2, learning_rate=1e-3),
                   data_file, tmp_path, tmp_path / "out", progress=False, force=True)
    assert forced.steps_this_run == 2 and not forced.already_trained


def test_accumulating_2x4_equals_one_batch_of_8(tmp_path, monkeypatch):
    data_file = write_data(tmp_path, "finetune", n=8, text_only=1)  # answers of different lengths
    adamw_step = torch.optim.AdamW.step

    def run(batch_size, accumulation, out):
        model = randomize_w_s(build_model(preset("vlora-tiny"), seed=0))
        grads = {}

        def step(optimizer, *args, **kwargs):  # the gradient the update sees
            grads.update({id(p): p.grad.clone() for g in optimizer.param_groups for p in g["params"]})
            return adamw_step(optimizer, *args, **kwargs)

        monkeypatch.setattr(torch.optim.AdamW, "step", step)
        recipe = tiny_recipe("finetune", batch_size=batch_size, gradient_accumulation_steps=accumulation, max_steps=1,
                             max_grad_norm=0.0)
        train(model, recipe, data_file, tmp_path, tmp_path / out, progress=False)
        named = {name: grads[id(p)] for name, p in model.named_parameters() if id(p) in grads}
        return model, named, read_log(tmp_path / out / "train_log.jsonl")[0]

    one, grads_one, log_one = run(8, 1, "one")
    two, grads_two, log_two = run(4, 2, "two")

    # the objective is the mean over all learned tokens of the 8 samples: the model's own loss on one batch
    fresh = randomize_w_s(build_model(preset("vlora-tiny"), seed=0))
    data = load_training_data(data_file, tmp_path, fresh.tokenizer, "finetune", max_length=256,
                              cache_dir=tmp_path / "one/cache")
    rows = data.dataset[:]
    images = [None if p is None else decode_image(tmp_path / p) for p in rows["image"]]
    with torch.no_grad():
        expected = fresh(fresh.collate(rows["input_ids"], images, rows["labels"])).loss.item()
    assert log_one["loss"] == pytest.approx(expected, rel=1e-5)
    assert log_two["loss"] == pytest.approx(expected, rel=1e-5)
    assert log_one["loss_tokens"] == log_two["loss_tokens"] == sum(data.dataset["loss_tokens"])
    assert log_two["grad_norm"] == pytest.approx(log_one["grad_norm"], rel=1e-5)
    assert grads_one.keys() == grads_two.keys() and len(grads_one) > 100
    for name, g in grads_one.items():  # float32 sums in another order: equal to ~1e-5 of each tensor's scale
        torch.testing.assert_close(grads_two[name], g, rtol=0, atol=2e-4 * g.abs().max().item() + 1e-10, msg=name)

    # AdamW's first update is lr * g / (|g| + eps): where g is ~0 it only amplifies rounding, elsewhere it is exact
    params_one, params_two = dict(one.named_parameters()), dict(two.named_parameters())
    for name, g in grads_one.items():
        informative = g.abs() > 1e-3 * g.abs().max()
        torch.testing.assert_close(params_two[name][informative], params_one[name][informative], rtol=0, atol=1e-6,
                                   msg=name)
    assert not torch.equal(one.connector.w_s["q"], fresh.connector.w_s["q"])  # a step was taken


def test_activation_checkpointing_keeps_the_numbers(tmp_path):
    data_file = write_data(tmp_path, "finetune", n=4)
    logs = []
    for checkpointing in (False, True):
        model = randomize_w_s(build_model(preset("vlora-tiny"), seed=0))  # W_s != 0: the perceptual weights act
        train(model, tiny_recipe("finetune", max_steps=3, gradient_checkpointing=checkpointing), data_file, tmp_path,
              tmp_path / f"gc-{checkpointing}", progress=False)
        logs.append([line[key] for line in read_log(tmp_path / f"gc-{checkpointing}/train_log.jsonl")
                     for key in ("loss", "grad_norm")])
        assert not any(getattr(m, "gradient_checkpointing", False) for m in model.llm.modules())  # off again
    assert logs[0] == pytest.approx(logs[1], rel=1e-6)


def test_exported_vlora_reloads_with_identical_logits(tmp_path):
    data_file = write_data(tmp_path, "finetune", n=4)
    model = build_model(preset("vlora-tiny"), seed=0)
    result = train(model, tiny_recipe("finetune", max_steps=3), data_file, tmp_path, tmp_path / "out", progress=True)
    folder, _ = export_official_vlora(model, tmp_path / "official")
    prompts = [model.prompt("What is shown?"), model.prompt("Say hi.", with_image=False)]
    pictures = [make_image(5), None]
    with torch.no_grad():
        want = model(model.prepare(prompts, pictures)).logits
        for path in (folder, result.model_dir):
            loaded = load_model(path).eval()
            assert torch.equal(loaded(loaded.prepare(prompts, pictures)).logits, want), path
    with pytest.raises(ConfigError, match="only VLoRA"):
        export_official_vlora(build_model(preset("llava-tiny"), seed=0), tmp_path / "nope")


def test_bfloat16_runs_and_precision_is_per_process(tmp_path):
    from accelerate.state import AcceleratorState

    data_file = write_data(tmp_path, "pretrain", n=4)
    train(build_model(preset("llava-tiny"), seed=0), tiny_recipe("pretrain", max_steps=1), data_file, tmp_path,
          tmp_path / "fp32", progress=False)
    with pytest.raises(ConfigError, match="one setting per process"):
        train(build_model(preset("llava-tiny"), seed=0), tiny_recipe("pretrain", dtype="bfloat16"), data_file,
              tmp_path, tmp_path / "bf16", progress=False)
    AcceleratorState._reset_state()  # a new process, as far as accelerate can tell
    try:
        model = build_model(preset("llava-tiny"), seed=0)
        result = train(model, tiny_recipe("pretrain", dtype="bfloat16", max_steps=4, learning_rate=5e-3), data_file,
                       tmp_path, tmp_path / "bf16", progress=False)
        losses = [line["loss"] for line in read_log(result.log_file)]
        assert losses[-1] < losses[0] and next(model.parameters()).dtype == torch.float32
        assert getattr(model.forward, "__func__", None) is type(model).forward  # accelerate's autocast wrapper is gone
    finally:
        AcceleratorState._reset_state()
