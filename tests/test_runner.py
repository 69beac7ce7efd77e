"""The runner: outputs, resume after a kill, sharding + merge, settings checks, likelihood mode."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from tsv_fixtures import b64_image, circular_table, write_tsv, yes_no_table

from evalsuite.adapter import ModelCard, Request
from evalsuite.benchmarks import benchmark
from evalsuite.data import load_benchmark_data
from evalsuite.predictions import read_records
from evalsuite.runner import RunOptions, finish, parse_shard, run_benchmark
from vlora.errors import ConfigError, VLoRAEvalError
from vlora.placement import Process
from vlora.presets import preset


class OracleAdapter:
    """Answers from a key (right except for the ids in `wrong`); can be 'killed' after some calls."""

    def __init__(self, answers: dict[str, str], wrong=(), kill_after: int | None = None, max_images=None):
        self.answers, self.wrong, self.kill_after = answers, set(wrong), kill_after
        self.calls, self.seen = 0, []
        config = preset("vlora-tiny" if max_images == 1 else "llava-tiny")  # VLoRA takes one image per request
        self.card = ModelCard(name="oracle", config=config, parameters={"llm": 1})

    def _tick(self, requests):
        self.calls += 1
        if self.kill_after is not None and self.calls > self.kill_after:
            raise KeyboardInterrupt
        self.seen += list(requests)

    def generate(self, requests: list[Request]) -> list[str]:
        self._tick(requests)
        return [("Z" if r.id in self.wrong else f"The answer is {self.answers[r.id]}") for r in requests]

    def loglikelihood(self, requests):
        self._tick(requests)
        return [[0.0 if c == self.answers[r.id] else -5.0 for c in r.choices] for r in requests]


@pytest.fixture
def mmbench(tmp_path):
    table = circular_table(6)
    data = load_benchmark_data(benchmark("MMBench_DEV_EN"), write_tsv(table, tmp_path / "MMBench_DEV_EN.tsv"))
    return data, {str(i): a for i, a in zip(table["index"], table["answer"], strict=True)}


def _options(tmp_path, **kw):
    return RunOptions(batch_size=4, results_root=tmp_path / "results", progress=False, **kw)


def test_outputs_and_scores(tmp_path, mmbench):
    data, answers = mmbench
    wrong = {"1000003"}  # one copy of question 3 wrong -> question 3 fails
    result = run_benchmark(OracleAdapter(answers, wrong), data, _options(tmp_path))
    assert result.complete and result.predicted == len(data.table)
    assert result.report.headline["Overall"] == pytest.approx(100 * 5 / 6)
    folder = result.folder
    assert folder == tmp_path / "results" / "oracle" / "MMBench_DEV_EN"
    tsv = pd.read_csv(folder / "oracle_MMBench_DEV_EN.tsv", sep="\t")
    assert list(tsv.columns) == [c for c in data.table.columns if c not in ("image", "line")] + ["prediction"]
    assert (folder / "oracle_MMBench_DEV_EN_acc.csv").is_file() and (folder / "verdicts.tsv").is_file()
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["extraction_rules"] == "2024-05" and manifest["prompt_style"] == "llava_mcq"
    assert manifest["data"]["md5"] == data.md5 and manifest["config_hash"]
    assert {"torch", "transformers", "python"} <= set(manifest["libraries"])
    scores = json.loads((folder / "scores.json").read_text())
    assert scores["answer_mode"] == "generate" and scores["headline"]["Overall"] == pytest.approx(100 * 5 / 6)


def test_resume_after_a_kill(tmp_path, mmbench):
    data, answers = mmbench
    killed = OracleAdapter(answers, kill_after=2)
    with pytest.raises(KeyboardInterrupt):
        run_benchmark(killed, data, _options(tmp_path))
    file = tmp_path / "results" / "oracle" / "MMBench_DEV_EN" / "predictions.jsonl"
    assert len(read_records(file).records) == 8  # two batches of 4 were flushed before the kill
    with open(file, "a") as f:
        f.write('{"index": 5, "predic')  # a line cut short by the kill
    again = OracleAdapter(answers)
    result = run_benchmark(again, data, _options(tmp_path))
    assert result.predicted == len(data.table) - 8
    assert {r.id for r in again.seen}.isdisjoint({r.id for r in killed.seen})
    fresh = run_benchmark(OracleAdapter(answers), data, _options(tmp_path, run_name="fresh"))
    assert result.report.headline == fresh.report.headline
    assert len(read_records(file).records) == len(data.table)


def test_sharded_then_merged_equals_unsharded(tmp_path, mmbench):
    data, answers = mmbench
    wrong = {"2", "1000004"}
    whole = run_benchmark(OracleAdapter(answers, wrong), data, _options(tmp_path, run_name="whole"))
    first = run_benchmark(OracleAdapter(answers, wrong), data, _options(tmp_path, run_name="split", shard=(0, 2)))
    assert not first.complete and first.report is None and first.present == (len(data.table) + 1) // 2
    second = run_benchmark(OracleAdapter(answers, wrong), data, _options(tmp_path, run_name="split", shard=(1, 2)))
    assert second.complete
    assert second.report.headline == whole.report.headline
    pd.testing.assert_frame_equal(second.report.table, whole.report.table)
    a = pd.read_csv(whole.paths["predictions"], sep="\t")
    b = pd.read_csv(second.paths["predictions"], sep="\t")
    pd.testing.assert_frame_equal(a.sort_values("index").reset_index(drop=True), b.sort_values("index").reset_index(drop=True))


def test_partial_runs_merge_with_force(tmp_path, mmbench):
    data, answers = mmbench
    adapter = OracleAdapter(answers)
    options = _options(tmp_path, shard=(0, 3))
    result = run_benchmark(adapter, data, options)
    forced = finish(result.folder, adapter.card, data, options, force=True)
    assert forced.report.missing_rows == len(data.table) - result.present
    assert forced.report.notes[0].startswith(f"{forced.report.missing_rows} of {len(data.table)} rows")


def test_other_settings_are_not_mixed(tmp_path, mmbench):
    data, answers = mmbench
    run_benchmark(OracleAdapter(answers), data, _options(tmp_path, limit=4))
    with pytest.raises(VLoRAEvalError, match="other settings .*max_new_tokens"):
        run_benchmark(OracleAdapter(answers), data, _options(tmp_path, max_new_tokens=3))
    result = run_benchmark(OracleAdapter(answers), data, _options(tmp_path, max_new_tokens=3, fresh=True))
    assert result.complete


def test_likelihood_mode(tmp_path):
    table = yes_no_table(3)
    data = load_benchmark_data(benchmark("MME"), write_tsv(table, tmp_path / "MME.tsv"))
    adapter = OracleAdapter({str(i): a for i, a in zip(table["index"], table["answer"], strict=True)})
    result = run_benchmark(adapter, data, _options(tmp_path, answer_mode="likelihood"))
    assert all(r.choices == ("Yes", "No") for r in adapter.seen)
    assert result.report.answer_mode == "likelihood"
    assert result.report.headline["perception"] == pytest.approx(3 * 200)


def test_single_image_models_get_the_first_image(tmp_path):
    spec = benchmark("MMMU_DEV_VAL")
    table = pd.DataFrame([{"index": 1, "question": "Compare <image 1> and <image 2>.", "A": "left", "B": "right",
                           "answer": "A", "split": "validation", "image": str([b64_image((255, 0, 0)), b64_image((0, 0, 255))])}])
    data = load_benchmark_data(spec, write_tsv(table, tmp_path / "MMMU_DEV_VAL.tsv"))
    one = OracleAdapter({"1": "A"}, max_images=1)
    result = run_benchmark(one, data, _options(tmp_path, run_name="one"))
    assert len(one.seen[0].images) == 1 and one.seen[0].images[0].getpixel((0, 0)) == (255, 0, 0)
    assert json.loads(result.paths["manifest"].read_text())["counts"]["images_dropped"] == 1
    many = OracleAdapter({"1": "A"})
    run_benchmark(many, data, _options(tmp_path, run_name="many"))
    assert len(many.seen[0].images) == 2 and many.seen[0].text.startswith("<image>\n<image>\n")  # LLaVA: images first


def test_shard_parsing_and_environment(monkeypatch):
    assert parse_shard("1/4") == (1, 4)
    with pytest.raises(ConfigError, match="need 0 <= i < n"):
        parse_shard("4/4")
    with pytest.raises(ConfigError, match="is not i/n"):
        parse_shard("half")
    assert Process.from_environment({"WORLD_SIZE": "8", "RANK": "3", "LOCAL_RANK": "1"}).shard == (3, 8)
    assert Process.from_environment({}).shard == (0, 1)
    with pytest.raises(ConfigError, match="unknown answer mode"):
        RunOptions(answer_mode="vibes")


def test_test_split_without_answers_writes_a_submission(tmp_path):
    table = circular_table(2).drop(columns=["answer"])
    data = load_benchmark_data(benchmark("MMBench_TEST_EN"), write_tsv(table, tmp_path / "MMBench_TEST_EN.tsv"))
    answers = {str(i): "A" for i in table["index"]}
    result = run_benchmark(OracleAdapter(answers), data, _options(tmp_path))
    assert result.complete and result.report is None
    submission = pd.read_csv(result.paths["predictions"], sep="\t")
    assert len(submission) == len(table) and "prediction" in submission and "answer" not in submission
    assert not (result.folder / "scores.json").exists()
