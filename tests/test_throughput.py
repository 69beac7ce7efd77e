"""Throughput (issue 14): the vision cache, likelihood after one shared prefill, EOS-dropping decoding,
grouped batches and the execution-mode dispatch; every speed-up gives the same answers."""

from __future__ import annotations

import base64
import json

import pandas as pd
import pytest
import torch
import yaml
from conftest import make_image, randomize_w_s
from tsv_fixtures import b64_image, write_tsv

from evalsuite.adapter import Request
from evalsuite.benchmarks import benchmark
from evalsuite.data import load_benchmark_data
from evalsuite.mini import write_mini_suite
from evalsuite.multimodal import MultimodalAdapter
from evalsuite.predictions import read_folder
from evalsuite.requests import row_prompt
from evalsuite.runner import RunOptions, batch_order, run_benchmark
from flops.analytic import merge_crossover
from vlora.batch import MultimodalBatch
from vlora.config import ExecutionMode
from vlora.decoding import decode
from vlora.dispatch import Crossover, Measurement, choose_mode, crossover_for, flops_crossover, read_table
from vlora.errors import ConfigError, InputError
from vlora.image_sources import bytes_key, image_source
from vlora.model import build_model
from vlora.presets import preset
from vlora.prompting import tokenize_with_placeholder
from vlora.vision_cache import VisionCache

TINY = ["vlora-tiny", "llava-tiny", "llava-qformer-tiny"]


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def mini(tmp_path_factory):
    paths = write_mini_suite(tmp_path_factory.mktemp("mini"), seed=0, scale=1)
    return {name: load_benchmark_data(benchmark(name), paths[name], embedded=True)
            for name in ("MMBench_DEV_EN", "MME")}


def _model(name: str):
    model = build_model(preset(name), seed=0).eval()
    return randomize_w_s(model) if model.config.kind == "vlora" else model


def _run(adapter, data, tmp_path, answer_mode="generate", limit=None, batch_size=8):
    options = RunOptions(batch_size=batch_size, limit=limit, max_new_tokens=6, answer_mode=answer_mode,
                         results_root=tmp_path, progress=False)
    result = run_benchmark(adapter, data, options)
    records, _ = read_folder(result.folder)
    manifest = json.loads((result.folder / "manifest.json").read_text())
    return records, manifest


def _distinct(data, rows) -> int:
    return len({s.key for p in rows for s in data.image_sources(p)})


# --- the vision cache ---------------------------------------------------------------------------------
@pytest.mark.parametrize("answer_mode", ["generate", "likelihood"])
@pytest.mark.parametrize("name", TINY)
def test_cached_and_uncached_runs_give_identical_predictions(name, answer_mode, mini, tmp_path):
    data, model = mini["MMBench_DEV_EN"], _model(name)
    runs = {cached: _run(MultimodalAdapter(model, name, vision_cache=cached), data, tmp_path / str(cached),
                         answer_mode, limit=40)
            for cached in (True, False)}
    (cached, with_cache), (uncached, without) = runs[True], runs[False]
    assert cached.keys() == uncached.keys() and len(cached) == 40
    assert [cached[k]["prediction"] for k in cached] == [uncached[k]["prediction"] for k in cached]
    if answer_mode == "likelihood":
        for k in cached:
            assert cached[k]["loglikelihoods"] == pytest.approx(uncached[k]["loglikelihoods"], abs=1e-4)
    assert with_cache["execution"]["counts"]["vision_clip"] == _distinct(data, range(40)) < 40
    assert without["execution"]["counts"]["vision_clip"] == 40 and without["execution"]["vision_cache"] is None


def test_clip_passes_equal_distinct_images_on_the_mini_mmbench(mini, tmp_path):
    """Counted twice: by the cache, and by hooks on the CLIP tower and the connector themselves."""
    data, model = mini["MMBench_DEV_EN"], _model("vlora-tiny")
    seen = {"vision": 0, "connector": 0}

    def counter(part):
        def hook(module, args, output):
            seen[part] += args[0].shape[0]
        return hook

    handles = [model.vision.register_forward_hook(counter("vision")),
               model.connector.register_forward_hook(counter("connector"))]
    try:
        records, manifest = _run(MultimodalAdapter(model, "vlora-tiny"), data, tmp_path)
    finally:
        for handle in handles:
            handle.remove()
    distinct = _distinct(data, range(len(data.table)))
    counts = manifest["execution"]["counts"]
    assert len(records) == len(data.table) == 96 and distinct == 30
    assert seen == {"vision": distinct, "connector": distinct}
    assert counts["vision_clip"] == counts["vision_connector"] == counts["vision_decodes"] == distinct
    assert counts["vision_reused"] == len(data.table) - distinct


def test_the_cache_is_keyed_by_content(tmp_path):
    red, blue = b64_image((200, 10, 10)), b64_image((10, 10, 200))
    rows = [{"index": i, "image": cell, "question": f"Is it {i}? Please answer yes or no.", "answer": "Yes",
             "category": "color", "image_path": path}
            for i, (cell, path) in enumerate([(red, "a.png"), (red, "b.png"), (blue, "c.png"), (red, "d.jpg")])]
    data = load_benchmark_data(benchmark("MME"), write_tsv(pd.DataFrame(rows), tmp_path / "MME.tsv"))
    keys = [data.image_sources(p)[0].key for p in range(4)]
    assert keys[0] == keys[1]  # two cells holding the same bytes: one entry
    assert keys[2] != keys[0]  # other bytes
    assert keys[3] != keys[0] and keys[3].endswith("+jpeg")  # VLMEvalKit re-encodes .jpg: other pixels
    (tmp_path / "same.png").write_bytes(base64.b64decode(red))
    assert image_source(str(tmp_path / "same.png")).key == keys[0] == bytes_key(base64.b64decode(red))
    adapter = MultimodalAdapter(_model("llava-tiny"), "llava-tiny")
    requests = [Request(str(p), "What colour?", tuple(data.image_sources(p)), max_new_tokens=3) for p in range(4)]
    requests.append(Request("path", "What colour?", (str(tmp_path / "same.png"),), max_new_tokens=3))
    adapter.generate(requests)
    assert len(adapter.cache) == 3 and adapter.passes.clip == 3 and adapter.passes.reused == 2


def test_the_cache_is_bounded_and_least_recently_used_goes_first():
    def encode(images):
        return torch.stack([torch.full((4,), float(sum(im.getpixel((0, 0)))), dtype=torch.float32) for im in images])

    sources = [image_source(make_image(seed)) for seed in range(3)]
    cache = VisionCache(max_bytes=2 * 16)  # room for two entries of 4 float32
    cache.outputs(sources[:2], encode)
    cache.outputs(sources[:1], encode)  # source 0 is now the most recently used
    out = cache.outputs([sources[2], sources[0], sources[2]], encode)  # source 2 comes in, source 1 goes
    assert out.shape == (3, 4) and torch.equal(out[0], out[2]) and len(cache) == 2 and cache.nbytes <= cache.max_bytes
    assert sources[0].key in cache and sources[2].key in cache and sources[1].key not in cache
    assert (cache.passes.clip, cache.passes.reused, cache.passes.evicted) == (3, 3, 1)
    nothing = VisionCache(max_bytes=0)  # keeps nothing across calls, still encodes a repeat once per call
    assert nothing.outputs([sources[0], sources[0]], encode).shape == (2, 4) and len(nothing) == 0
    assert nothing.passes.clip == 1 and nothing.passes.reused == 1
    with pytest.raises(ConfigError, match="at least 0 bytes"):
        VisionCache(max_bytes=-1)


def test_a_batch_collated_without_pixels_needs_a_cache(images):
    model = _model("llava-tiny")
    batch = model.collate([[1, -200, 5]], [image_source(images[0])], pixels=False)
    with pytest.raises(InputError, match="give a vision cache"):
        model(batch)
    assert model(batch, cache=VisionCache()).logits.shape[:2] == (1, 2 + model.config.visual_tokens)


# --- batching that pays ----------------------------------------------------------------------------------
def _stop_token(free: list[list[int]]) -> int:
    for token in sorted({t for row in free for t in row}):
        firsts = [row.index(token) if token in row else len(row) for row in free]
        if len(set(firsts)) > 1 and min(firsts) < len(free[0]) - 1:
            return token
    raise AssertionError(f"no token stops the rows at different steps: {free}")


@pytest.mark.parametrize("name,modes", [("vlora-tiny", ("factorized", "delta")), ("llava-tiny", ("factorized",)),
                                        ("llava-qformer-tiny", ("factorized",))])
def test_dropping_finished_rows_gives_identical_tokens(name, modes, images):
    model = _model(name)
    prompts = [model.prompt(q) for q in ("What is it?", "How many shapes are there?", "Describe the colours.")]
    batch = model.prepare(prompts, [[im] for im in images])
    free = model.decode(batch, 12, stop_at_eos=False)
    eos = _stop_token(free)  # a token the rows reach at different steps: taken as EOS, rows stop apart
    sizes = []
    hook = model.llm.model.register_forward_pre_hook(lambda module, args, kwargs: sizes.append(
        kwargs["input_ids"].shape[0] if kwargs.get("input_ids") is not None else kwargs["inputs_embeds"].shape[0]),
        with_kwargs=True)
    try:
        for mode in modes:
            runs = {}
            for drop in (True, False):
                sizes.clear()
                with torch.inference_mode(), model.conditioned(batch, mode) as inputs:
                    runs[drop] = decode(model.llm, inputs.prefill, batch.attention_mask, batch.position_ids, eos, 12,
                                        keep_rows=inputs.keep_rows, drop_finished=drop)
                if drop:
                    assert min(sizes) < 3  # finished rows left the loop
            assert runs[True] == runs[False]
            assert len({len(row) for row in runs[True]}) > 1 and min(len(row) for row in runs[True]) < 11
    finally:
        hook.remove()


@pytest.mark.parametrize("name", TINY)
def test_likelihood_prefills_each_prompt_once(name, images):
    """Single-token choices cost one LLM forward per batch; longer ones one more per choice index. The
    sums equal an independent full forward over prompt + choice."""
    adapter = MultimodalAdapter(_model(name), name, batch_size=8)
    candidates = ("A", "B", "C", "D", "Yes", "No", "a", "the", "and")
    probe = Request("a", "Which?", (images[0],), candidates)
    context = tokenize_with_placeholder(adapter.model.prompt(probe.text), adapter.model.tokenizer)
    _, choices = adapter._choices(probe, context)
    single = tuple(c for c, choice in zip(candidates, choices, strict=True) if len(choice.tokens) == 1)
    assert len(single) >= 2  # (the tiny tokenizer splits some letters: "B" -> "▁", "B")
    letters = Request("a", "Which?", (images[0],), single)
    words = Request("b", "What colour is it?", (images[1],), ("red", "light green", "blue violet indigo"))
    calls = []
    hook = adapter.model.llm.register_forward_pre_hook(lambda *a: calls.append(1))
    try:
        adapter.loglikelihood([letters])
        assert len(calls) == 1
        calls.clear()
        scores = adapter.loglikelihood([letters, words])
    finally:
        hook.remove()
    model = adapter.model
    assert 1 < len(calls) <= 1 + max(len(single), len(words.choices))  # multi-token choices: one forward per choice index
    for request, per_choice in zip([letters, words], scores, strict=True):
        context = tokenize_with_placeholder(model.prompt(request.text), model.tokenizer)
        for choice, score in zip(request.choices, per_choice, strict=True):
            full = tokenize_with_placeholder(model.prompt(request.text) + " " + choice, model.tokenizer)
            batch = model.collate([full], [list(request.images)])
            with torch.no_grad():
                logprobs = torch.log_softmax(model(batch).logits[0].float(), dim=-1)
            n = len(full) - next(i for i, (a, b) in enumerate(zip(full, context + [None], strict=False)) if a != b)
            expected = logprobs[-n - 1:-1].gather(-1, batch.input_ids[0, -n:, None]).sum()
            assert score == pytest.approx(float(expected), abs=1e-4)


def test_rows_that_share_an_image_meet_and_lengths_stay_close(mini):
    data = mini["MME"]
    card = MultimodalAdapter(_model("llava-tiny"), "llava-tiny").card
    lines = data.table.to_dict("records")
    rows = list(range(len(lines)))
    length = {p: row_prompt(data.spec, lines[p], 1, card, "generate").text_length for p in rows}
    order = batch_order(rows, length.__getitem__, data.image_group)
    groups = [data.image_group(p) for p in order]
    assert all(g not in groups[:i] or groups[i - 1] == g for i, g in enumerate(groups))  # each group contiguous
    assert sorted(order) == rows

    def padding(order, size=8):
        batches = [[length[p] for p in order[i:i + size]] for i in range(0, len(order), size)]
        return sum(max(b) * len(b) - sum(b) for b in batches) / sum(length.values())

    assert padding(order) <= padding(sorted(rows, key=lambda p: -length[p])) + 0.05


# --- execution-mode dispatch ----------------------------------------------------------------------------
def _batch(model, n_rows: int, with_image: bool, text_tokens: int) -> MultimodalBatch:
    ids = [1, -200, *range(3, 3 + text_tokens)] if with_image else [1, *range(3, 3 + text_tokens)]
    return model.collate([ids] * n_rows, [[make_image(1)] if with_image else None] * n_rows)


def test_dispatch_picks_the_mode_the_crossover_says():
    model, crossover = _model("vlora-tiny"), Crossover(tokens=40.0, source="test")
    resolve = model.resolve_mode
    assert resolve("auto", _batch(model, 1, True, 30), 16, crossover) is ExecutionMode.MERGED  # 32 + 16 > 40
    assert resolve("auto", _batch(model, 1, True, 30), 0, crossover) is ExecutionMode.FACTORIZED  # 32 <= 40
    assert resolve("auto", _batch(model, 2, True, 60), 0, crossover) is ExecutionMode.FACTORIZED  # merged folds one image
    assert resolve("auto", _batch(model, 1, False, 60), 0, crossover) is ExecutionMode.FACTORIZED  # no image
    for fixed in ("factorized", "merged", "delta"):
        assert resolve(fixed, _batch(model, 1, True, 5), 0, crossover) is ExecutionMode(fixed)
    assert choose_mode("auto", Crossover(float("inf"), "never"), 1, True, 10**6) is ExecutionMode.FACTORIZED
    llava = _model("llava-tiny")
    assert llava.resolve_mode("auto", _batch(llava, 1, True, 60), 0, crossover) is ExecutionMode.FACTORIZED
    with pytest.raises(InputError, match="must be resolved"):
        with model.conditioned(_batch(model, 1, True, 3), "auto"):
            pass


def test_auto_gives_the_same_answers_as_the_fixed_modes(images):
    model = _model("vlora-tiny")
    requests = [Request("a", "What colour is the shape?", (images[0],), ("A", "B", "red"), 6),
                Request("b", "How many shapes are there in the picture?", (images[1],), ("Yes", "No"), 9)]
    factorized = MultimodalAdapter(model, "vlora-tiny", batch_size=2)
    merging = MultimodalAdapter(model, "vlora-tiny", batch_size=1, mode="auto", crossover=Crossover(0.0, "always"))
    assert merging.generate(requests) == factorized.generate(requests)
    for a, b in zip(merging.loglikelihood(requests), factorized.loglikelihood(requests), strict=True):
        assert a == pytest.approx(b, abs=1e-4)
    counts = merging.run_stats()["counts"]
    assert counts["llm_calls_merged"] == 4 and "llm_calls_factorized" not in counts  # 2 generate + 2 likelihood calls
    never = MultimodalAdapter(model, "vlora-tiny", batch_size=1, mode="auto", crossover=Crossover(1e9, "never"))
    assert never.generate(requests) == factorized.generate(requests)
    assert never.run_stats()["counts"]["llm_calls_factorized"] == 2


def test_the_manifest_says_which_mode_ran(mini, tmp_path):
    adapter = MultimodalAdapter(_model("vlora-tiny"), "vlora-tiny", batch_size=1, mode="auto",
                                crossover=Crossover(60.0, "test table"))
    _, manifest = _run(adapter, mini["MME"], tmp_path, limit=6, batch_size=1)
    execution = manifest["execution"]
    assert execution["mode"] == "auto" and execution["crossover"] == {"tokens": 60.0, "source": "test table"}
    assert sum(v for k, v in execution["counts"].items() if k.startswith("llm_calls_")) == 6
    assert manifest["model"]["extras"]["mode"] == "auto"


def test_crossover_lookup_measured_scaled_or_formula(tmp_path):
    rows = [Measurement(device="cpu", dtype="float32", hidden=512, rank=16, tokens=900.0),
            Measurement(device="cpu", dtype="float32", hidden=4096, rank=64, tokens=5000.0)]
    exact = crossover_for(512, 16, "cpu", torch.float32, rows)
    assert exact.tokens == 900.0 and exact.source.startswith("measured on cpu, float32 at h=512, r=16")
    scaled = crossover_for(1024, 16, "cpu", torch.float32, rows)
    assert scaled.tokens == pytest.approx(900.0 * flops_crossover(1024, 16) / flops_crossover(512, 16))
    assert "scaled" in scaled.source
    formula = crossover_for(4096, 64, "cpu", torch.bfloat16, rows)
    assert formula.tokens == pytest.approx(2064.0, abs=1) and "FLOPs formula" in formula.source
    for h, r in [(4096, 64), (512, 16), (64, 4)]:
        assert flops_crossover(h, r) == merge_crossover(h, r)
    assert isinstance(read_table(), list)  # the shipped table reads
    bad = tmp_path / "bad.yaml"
    for content, fragment in [("measurements: 3", "bad.yaml: measurements: expects a list"),
                              ("measurements: [{device: cpu}]", r"bad.yaml: measurements\[0\].dtype: is missing"),
                              ("measurements: [{device: cpu, dtype: float32, hidden: 8, rank: 2, tokens: 9, colour: 1}]",
                               r"measurements\[0\].colour: not a setting here"),
                              ("a: [", "not valid YAML")]:
        bad.write_text(content)
        with pytest.raises(ConfigError, match=fragment):
            read_table(bad)
    with pytest.raises(ConfigError, match="not found"):
        read_table(tmp_path / "missing.yaml")
    assert yaml.safe_load(yaml.safe_dump({"t": float("inf")}))["t"] == float("inf")  # a never-merging entry reads
