"""The mini-suite goes through the same loading, prompting, running and scoring as the real benchmarks."""

from __future__ import annotations

import pandas as pd
import pytest

from evalsuite.benchmarks import benchmark
from evalsuite.data import load_benchmark_data
from evalsuite.mini import BENCHMARKS, write_mini_suite
from evalsuite.registry import create_model
from evalsuite.runner import RunOptions, run_benchmark
from evalsuite.scoring import score_predictions


@pytest.fixture(scope="module")
def mini(tmp_path_factory):
    out = tmp_path_factory.mktemp("mini")
    write_mini_suite(out, seed=0, scale=1)
    return out


@pytest.fixture(scope="module")
def loaded(mini):
    return {name: load_benchmark_data(benchmark(name), mini / f"{name}.tsv") for name in BENCHMARKS}


def test_all_six_load_with_the_real_loader(loaded):
    assert loaded["HallusionBench"].dropped_without_image == 3  # no-visual questions, as VLMEvalKit drops them
    assert loaded["ScienceQA_VAL"].dropped_without_image == 5
    assert all(d.dropped_without_image == 0 for n, d in loaded.items() if n not in ("HallusionBench", "ScienceQA_VAL"))
    assert all(d.mini_suite and not d.warnings for d in loaded.values())  # the project's own data: no md5 warning
    mmmu = loaded["MMMU_DEV_VAL"]
    assert max(mmmu.image_count(p) for p in range(len(mmmu.table))) == 2


def test_the_answer_key_scores_full_marks(loaded):
    full = {}
    for name, data in loaded.items():
        key = pd.DataFrame({"index": data.table["index"], "prediction": data.table["answer"]})
        full[name] = score_predictions(data.spec, data.table, key, "2026-08").headline
    assert full["MME"] == {"perception": 2000, "cognition (reasoning)": 800, "total": 2800}
    assert full["HallusionBench"]["Avg"] == 100
    for name in ("MMBench_DEV_EN", "CCBench", "ScienceQA_VAL", "MMMU_DEV_VAL"):
        assert full[name] == {"Overall": 100}


@pytest.mark.parametrize("model", ["vlora-tiny", "llava-tiny"])
def test_tiny_models_run_on_every_benchmark(loaded, tmp_path, model):
    adapter = create_model(model)
    options = RunOptions(batch_size=4, limit=6, max_new_tokens=2, results_root=tmp_path, progress=False)
    for name, data in loaded.items():
        result = run_benchmark(adapter, data, options)
        assert result.complete and result.failures == 0, name
        assert result.report.scored_rows == 6 and not result.report.table.empty
        assert result.report.headline or "no headline" in result.report.notes[-1]  # MMMU's first rows are dev


def test_single_image_vlora_on_two_image_mmmu_rows(loaded, tmp_path):
    data = loaded["MMMU_DEV_VAL"]
    two = [p for p in range(len(data.table)) if data.image_count(p) == 2]
    options = RunOptions(batch_size=8, limit=max(two) + 1, max_new_tokens=1, results_root=tmp_path, progress=False,
                         answer_mode="likelihood")
    result = run_benchmark(create_model("vlora-tiny"), data, options)
    manifest = pd.read_json(result.paths["manifest"], typ="series")
    assert result.failures == 0 and manifest["counts"]["images_dropped"] == len(two)
