"""`vlora-eval run`, `score` and `merge` on small TSVs written by the test."""

from __future__ import annotations

import json

import pandas as pd
from tsv_fixtures import circular_table, write_tsv, yes_no_table
from typer.testing import CliRunner

from vlora_eval.cli import app

runner = CliRunner()


def _flat(text: str) -> str:
    return " ".join(text.split())


def test_run_then_score_the_same_predictions(tmp_path):
    write_tsv(circular_table(4), tmp_path / "data" / "MMBench_DEV_EN.tsv")
    args = ["run", "--model", "llava-tiny", "--bench", "mmbench", "--data-dir", str(tmp_path / "data"),
            "--results", str(tmp_path / "results"), "--max-new-tokens", "3", "--batch-size", "5", "--json"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    (out,) = json.loads(result.stdout)
    assert out["complete"] and out["rows"] == 2 + 3 + 4 + 2 and out["predicted_now"] == out["rows"]
    tsv = tmp_path / "results" / "llava-tiny" / "MMBench_DEV_EN" / "llava-tiny_MMBench_DEV_EN.tsv"
    scored = runner.invoke(app, ["score", "--bench", "MMBench_DEV_EN", "--predictions", str(tsv),
                                 "--data-dir", str(tmp_path / "data"), "--json"])
    assert scored.exit_code == 0, scored.output
    assert json.loads(scored.stdout)["headline"] == out["scores"]["headline"]
    again = json.loads(runner.invoke(app, args).stdout)  # resume: nothing left to predict
    assert again[0]["predicted_now"] == 0 and again[0]["scores"]["headline"] == out["scores"]["headline"]


def test_score_a_bare_predictions_file(tmp_path):
    table = yes_no_table(3)
    write_tsv(table, tmp_path / "MME.tsv")
    bare = pd.DataFrame({"index": table["index"], "prediction": ["Yes", "No", "yes", "yes", "no", "No"]})
    bare.iloc[:5].to_csv(tmp_path / "preds.csv", index=False)  # one row missing, no benchmark columns
    result = runner.invoke(app, ["score", "--bench", "mme", "--predictions", str(tmp_path / "preds.csv"),
                                 "--data", str(tmp_path / "MME.tsv"), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["missing_rows"] == 1 and report["scored_rows"] == 5
    assert report["headline"]["perception"] == 200 + 50 + 0  # color perfect; count acc 1/2, no pair; OCR 0 of 1
    human = runner.invoke(app, ["score", "--bench", "mme", "--predictions", str(tmp_path / "preds.csv"),
                                "--data", str(tmp_path / "MME.tsv")])
    assert "1 of 6 rows have no prediction" in _flat(human.output)


def test_sharded_runs_and_merge(tmp_path):
    write_tsv(yes_no_table(2), tmp_path / "MME.tsv")
    common = ["run", "--model", "vlora-tiny", "--bench", "MME", "--data", str(tmp_path / "MME.tsv"),
              "--results", str(tmp_path / "r"), "--max-new-tokens", "2", "--json"]
    first = json.loads(runner.invoke(app, [*common, "--shard", "0/2"]).stdout)[0]
    assert not first["complete"] and first["scores"] is None
    merged = runner.invoke(app, ["merge", "--bench", "MME", "--run-name", "vlora-tiny", "--results", str(tmp_path / "r"),
                                 "--data", str(tmp_path / "MME.tsv")])
    assert merged.exit_code == 2 and "pass --force" in _flat(merged.output)
    forced = runner.invoke(app, ["merge", "--bench", "MME", "--run-name", "vlora-tiny", "--results", str(tmp_path / "r"),
                                 "--data", str(tmp_path / "MME.tsv"), "--force", "--json"])
    assert forced.exit_code == 0 and json.loads(forced.stdout)["missing_rows"] == 2
    second = json.loads(runner.invoke(app, [*common, "--shard", "1/2"]).stdout)[0]
    assert second["complete"] and second["scores"]["missing_rows"] == 0


def test_user_errors_are_one_line(tmp_path):
    result = runner.invoke(app, ["run", "--model", "llava-tiny", "--bench", "mmbench", "--data-dir", str(tmp_path)])
    assert result.exit_code == 2 and "MMBench_DEV_EN.tsv not found" in _flat(result.output)
    result = runner.invoke(app, ["run", "--model", "llava-tiny", "--bench", "nope", "--data-dir", str(tmp_path)])
    assert result.exit_code == 2 and "unknown benchmark 'nope'" in _flat(result.output)
    write_tsv(circular_table(1).drop(columns=["question"]), tmp_path / "MMBench_DEV_EN.tsv")
    result = runner.invoke(app, ["score", "--bench", "mmbench", "--predictions", str(tmp_path / "p.tsv"),
                                 "--data-dir", str(tmp_path)])
    assert result.exit_code == 2 and "missing column(s) ['question']" in _flat(result.output)
    assert "Traceback" not in result.output


def test_data_mini_writes_the_suite(tmp_path):
    result = runner.invoke(app, ["data", "mini", "--out", str(tmp_path / "mini")])
    assert result.exit_code == 0, result.output
    names = ["MMBench_DEV_EN", "CCBench", "MME", "HallusionBench", "ScienceQA_VAL", "MMMU_DEV_VAL"]
    assert all((tmp_path / "mini" / f"{n}.tsv").is_file() for n in names)
    assert (tmp_path / "mini" / "train" / "finetune.json").is_file()
    run = runner.invoke(app, ["run", "--model", "llava-tiny", "--bench", "CCBench", "--data-dir", str(tmp_path / "mini"),
                              "--results", str(tmp_path / "r"), "--limit", "5", "--max-new-tokens", "2", "--json"])
    assert run.exit_code == 0, run.output
    assert json.loads(run.stdout)[0]["scores"]["scored_rows"] == 5


def test_merged_mode_says_it_runs_batches_of_one(tmp_path):
    write_tsv(yes_no_table(2), tmp_path / "MME.tsv")
    result = CliRunner().invoke(app, ["run", "--model", "vlora-tiny", "--bench", "MME", "--data",
                                                      str(tmp_path / "MME.tsv"), "--results", str(tmp_path / "r"),
                                                      "--mode", "merged", "--batch-size", "4", "--max-new-tokens", "2",
                                                      "--json"])
    assert result.exit_code == 0, result.output
    assert "--mode merged folds one image into the weights at a time: batches of 1, not 4" in _flat(result.stderr)
    manifest = json.loads((tmp_path / "r" / "vlora-tiny" / "MME" / "manifest.json").read_text())
    assert manifest["model"]["extras"]["batch_size"] == 1 and manifest["model"]["extras"]["mode"] == "merged"
