"""Sweeps as data: configs checked before any training, a micro sweep killed and resumed, the report."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from test_embedded import MICRO, fresh_machine  # noqa: F401  (the fixture)
from typer.testing import CliRunner

import vlora_eval.workflows.embedded as embedded
from vlora.errors import ConfigError
from vlora_eval.cli import app
from vlora_eval.workflows.sweeps import load_sweep

CONFIGS = Path(__file__).resolve().parent.parent / "vlora_eval" / "configs"


@pytest.mark.parametrize("name", ["main", "types", "rank", "blocks"])
def test_the_four_configs_load(name):
    sweep = load_sweep(CONFIGS / f"{name}.yaml")
    assert sweep.reference in sweep.variants and len(sweep.jobs) == sweep.file.seeds * len(sweep.variants) >= 2 * 3
    assert len(sweep.benchmarks) == 6


def test_rank_sweep_keeps_the_branch_scale():
    sweep = load_sweep(CONFIGS / "rank.yaml")
    ranks = {job.variant: job.plan.model.connector.rank for job in sweep.jobs}
    assert ranks == {"16": 1, "32": 2, "64": 4, "128": 8}
    assert {job.plan.model.connector.scale for job in sweep.jobs} == {1.0}


def test_types_and_seeds_reach_the_plans():
    sweep = load_sweep(CONFIGS / "types.yaml")
    job = next(j for j in sweep.jobs if j.variant == "qko" and j.seed == 1)
    assert job.plan.model.connector.types == "qko"
    assert job.plan.stages["pretrain"].seed == embedded.plan("vlora").stages["pretrain"].seed + 1


MICRO_BASE = {"model": "vlora", "set": {"pretrain.max_steps": 2, "finetune.max_steps": 2}}  # rank.yaml's: 250 each


def _write(tmp_path, **changes) -> Path:
    config = yaml.safe_load((CONFIGS / "rank.yaml").read_text())
    config.update(changes)
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.mark.parametrize("changes,message", [
    ({"variants": []}, "the list of variants is empty"),
    ({"variants": [{"name": "x", "set": {"connector.ranq": 2}}]}, "variants[0] (x)"),
    ({"variants": [{"name": "x", "set": {"connector.rank": 0, "connector.alpha": 1.0}}]}, "must be positive"),
    ({"variants": [{"name": "x", "set": {"connector.types": "qkz"}}]}, "subset of 'qkvom'"),
    ({"variants": [{"name": "x", "model": "gpt"}]}, "no embedded model for 'gpt'"),
    ({"variants": [{"name": "a", "set": {"connector.rank": 2}}, {"name": "b", "set": {"connector.rank": 4}}],
      "reference": "a"}, "change alpha / r"),
    ({"benchmarks": ["nope"]}, "unknown benchmark 'nope'"),
    ({"seeds": 0}, "positive number of seeds"),
    ({"colour": "red"}, "colour: not a setting here"),
    ({"eval": {"batch_size": 4, "max_new_token": 8}}, "eval.max_new_token: not a setting here (did you mean max_new_tokens?)"),
    ({"data": {"train": "t"}}, "data: expects"),
    ({"variants": [{"name": 16}]}, "variants[0].name: expects str, got 16"),
])
def test_bad_configs_fail_before_any_training(tmp_path, changes, message):
    with pytest.raises(ConfigError, match=re.escape(message)) as e:
        load_sweep(_write(tmp_path, **changes))
    assert str(_write(tmp_path, **changes)) in str(e.value)


def test_a_micro_sweep_killed_after_its_first_variant_resumes(fresh_machine, monkeypatch):  # noqa: F811
    tmp_path, stages = fresh_machine
    config = _write(tmp_path, seeds=1, benchmarks=["MME", "ScienceQA_VAL"], reference="16", base=MICRO_BASE,
                    variants=[{"name": "16", "set": {"connector.rank": 1, "connector.alpha": 1.0}},
                              {"name": "32", "set": {"connector.rank": 2, "connector.alpha": 2.0}}])
    import vlora_eval.workflows.sweeps as sweeps

    real = sweeps.run_job
    calls = []

    def killed_after_the_first(sweep, job, *args, **kwargs):
        if calls:
            raise KeyboardInterrupt
        calls.append(job.key)
        return real(sweep, job, *args, **kwargs)

    monkeypatch.setattr(sweeps, "run_job", killed_after_the_first)
    first = CliRunner().invoke(app, ["sweep", str(config), "--out", str(tmp_path / "sw")])
    assert first.exit_code == 130, first.output
    assert stages == ["pretrain", "finetune"] and calls == ["16/seed-0"]
    monkeypatch.setattr(sweeps, "run_job", real)
    again = CliRunner().invoke(app, ["sweep", str(config), "--out", str(tmp_path / "sw"), "--json"])
    assert again.exit_code == 0, again.output
    assert stages == ["pretrain", "finetune"] * 2  # the first variant was not trained again
    assert json.loads(again.stdout)["done"] == 2
    table = (tmp_path / "sw" / "table.csv").read_text()
    assert "16" in table and "32" in table and (tmp_path / "sw" / "MME.png").is_file()
    _check_chance(tmp_path / "sw")
    records = [json.loads(p.read_text()) for p in (tmp_path / "sw" / "runs").rglob("done.json")]
    for record in records:  # every score points at the manifest it came from
        for bench, score in record["scores"].items():
            manifest = json.loads(Path(score["manifest"]).read_text())
            assert manifest["scores"] == score["headline"] and manifest["benchmark"] == bench
            low, high = next(iter(score["interval"].values()))
            assert low <= next(iter(score["headline"].values())) <= high


def test_a_sweep_trains_and_evaluates_on_the_placement_it_is_given(fresh_machine, monkeypatch):  # noqa: F811
    """The placement resolved at the edge reaches training (its device) and evaluation (device and dtype), and
    every manifest records it: here the CPU in float64, which no default would pick."""
    import torch

    import evalsuite.registry
    import vlora.training
    import vlora_eval.workflows.sweeps as sweeps
    from vlora.placement import Placement, Process

    tmp_path, stages = fresh_machine
    config = _write(tmp_path, seeds=1, benchmarks=["MME"], reference="16", base=MICRO_BASE,
                    variants=[{"name": "16", "set": {"connector.rank": 1, "connector.alpha": 1.0}}])
    seen = {"train": [], "eval": []}
    real_train, real_create = vlora.training.train, evalsuite.registry.create_model

    def train(*args, **kwargs):
        seen["train"].append(kwargs["device"])
        return real_train(*args, **kwargs)

    def create(*args, **kwargs):
        adapter = real_create(*args, **kwargs)
        seen["eval"].append((adapter.model.device, adapter.model.dtype))
        return adapter

    monkeypatch.setattr(vlora.training, "train", train)
    monkeypatch.setattr(evalsuite.registry, "create_model", create)
    placement = Placement(Process(), torch.device("cpu"), torch.float64, 1)
    (record,) = sweeps.run_sweep(load_sweep(config), tmp_path / "sw", placement=placement, progress=False,
                                 say=lambda m: None)
    assert seen == {"train": [torch.device("cpu")] * 2, "eval": [(torch.device("cpu"), torch.float64)]}
    assert record["placement"]["dtype"] == "float64" and record["placement"]["device"] == "cpu"
    manifest = json.loads(Path(record["scores"]["MME"]["manifest"]).read_text())
    assert manifest["environment"]["dtype"] == "float64" and manifest["environment"]["device"] == "cpu"


def test_the_report_renders_and_links_every_score_to_its_manifest(tmp_path, monkeypatch):
    from tsv_fixtures import write_tsv, yes_no_table

    results = tmp_path / "results"
    data = write_tsv(yes_no_table(2), tmp_path / "MME.tsv")
    run = CliRunner().invoke(app, ["run", "--model", "llava-tiny", "--bench", "MME", "--data", str(data),
                                   "--results", str(results), "--max-new-tokens", "2"])
    assert run.exit_code == 0, run.output
    manifest = json.loads((results / "llava-tiny" / "MME" / "manifest.json").read_text())
    (results / "mini").mkdir()
    (results / "mini" / "scores.md").write_text("# scores\n")
    result = CliRunner().invoke(app, ["report", "--results", str(results)])
    assert result.exit_code == 0, result.output
    text = (results / "report.md").read_text()
    assert "| VLoRA | 0 | 619 | 619.0 |" in text  # the paper's row beside the formula
    value = next(iter(manifest["scores"].values()))
    row = next(line for line in text.splitlines() if line.startswith("| ours: llava-tiny"))
    assert f"[{value:.1f}](llava-tiny/MME/manifest.json)" in row  # ours, linked to its manifest
    assert f"Not run yet: `vlora-eval sweep rank --out {results}/sweeps/rank`" in text
    assert "[mini/scores.md](mini/scores.md)" in text  # the benchmark scripts' tables linked, not copied
    assert "not measured yet (`.venv/bin/python benchmarks/throughput.py" in text


def _check_chance(out: Path) -> None:
    """The table's chance level, derived independently: random answers to ScienceQA are right with
    probability 1 / (number of options) per question."""
    import pandas as pd

    from evalsuite.benchmarks import benchmark
    from evalsuite.data import load_benchmark_data
    from vlora_eval.workflows.embedded import mini_suite

    spec = benchmark("ScienceQA_VAL")  # the rows the benchmark scores (the loader's reading of the TSV)
    questions = load_benchmark_data(spec, mini_suite(say=lambda m: None) / "ScienceQA_VAL.tsv", embedded=True).table
    options = questions[[c for c in "ABCDE" if c in questions]].notna().sum(axis=1)
    expected = 100 * (1 / options).mean()
    table = pd.read_csv(out / "table.csv")
    assert table.loc[table["benchmark"] == "ScienceQA_VAL", "chance"].iloc[0] == pytest.approx(expected, abs=2.0)
    assert "| *chance* |" in (out / "table.md").read_text()


def test_a_job_done_on_other_foundations_or_data_is_not_taken_as_done(fresh_machine):  # noqa: F811
    """A done.json is this job's only for its plan on these foundations and this data: a rebuild of the foundations
    or a redrawn training set is not taken as done (refused, or with force redone)."""
    import vlora_eval.workflows.sweeps as sweeps
    from evalsuite.data import md5_of
    from vlora_eval.workflows.embedded import foundations, mini_suite

    tmp_path, _ = fresh_machine
    sweep = load_sweep(_write(tmp_path, seeds=1, benchmarks=["MME"], reference="16",
                              variants=[{"name": "16", "set": {"connector.rank": 1, "connector.alpha": 1.0}}]))
    (job,) = sweep.jobs
    suite = mini_suite(lambda message: None)
    data = sweeps.data_identity(sweep)  # an independent derivation: the md5 of each file the job reads
    assert data == {"train/pretrain.json": md5_of(suite / "train" / "pretrain.json"),
                    "train/finetune.json": md5_of(suite / "train" / "finetune.json"), "MME.tsv": md5_of(suite / "MME.tsv")}
    folder = tmp_path / "job"
    folder.mkdir()
    record = {"config": job.plan.model.to_dict(), "stages": [r.to_dict() for r in job.plan.recipes()],
              "foundations": {"fingerprint": foundations().fingerprint}, "data": data}
    (folder / "done.json").write_text(json.dumps(record))
    assert sweeps._done(job, folder, data, force=False)
    for change, where in ((lambda r: r["foundations"].update(fingerprint="0" * 16), "foundations"),  # rebuilt since
                          (lambda r: r["data"].update({"train/finetune.json": "0" * 32}), "data.train/finetune.json"),
                          (lambda r: r.pop("data"), "data: '\\(not recorded\\)'")):  # written before data was recorded
        changed = json.loads(json.dumps(record))
        change(changed)
        (folder / "done.json").write_text(json.dumps(changed))
        with pytest.raises(ConfigError, match=f"written for another plan, other foundations or other data .*{where}"):
            sweeps._done(job, folder, data, force=False)
    assert not sweeps._done(job, folder, data, force=True) and not (folder / "done.json").exists()
