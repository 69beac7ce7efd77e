"""The benchmarks from their Hugging Face copies (repo folder, save_to_disk, parquet): the same questions as a TSV
give the same table, requests, predictions and scores; bad copies get one line; lmms-eval's --log_samples files
are scored with VLMEvalKit's rules."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from hf_fixtures import lmms_rows, write_copy
from typer.testing import CliRunner

from evalsuite.benchmarks import benchmark
from evalsuite.data import load_benchmark_data
from evalsuite.errors import DataError
from evalsuite.mini import write_mini_suite
from vlora_eval.cli import app

pytestmark = pytest.mark.usefixtures("one_thread")
NAMES = ["MMBench_DEV_EN", "CCBench", "ScienceQA_VAL", "MMMU_DEV_VAL", "MME", "HallusionBench"]
FORMS = ["repo", "save_to_disk", "parquet"]


@pytest.fixture(scope="module")
def suite(tmp_path_factory):
    return write_mini_suite(tmp_path_factory.mktemp("mini"), seed=0, scale=1)["MME"].parent


@pytest.fixture(scope="module")
def copies(suite, tmp_path_factory):
    """Every benchmark in every form: {(name, form): path}."""
    root = tmp_path_factory.mktemp("hf")
    out = {}
    for name in NAMES:
        rows = lmms_rows(name, suite / f"{name}.tsv")
        for form in FORMS:
            if form == "parquet" and len(rows) > 1:  # a folder of per-split parquet files
                folder = root / name / form
                for split, split_rows in rows.items():
                    write_copy(name, {split: split_rows}, form, folder / split)
                    (folder / split / f"{split}.parquet").rename(folder / f"{split}-00000-of-00001.parquet")
                out[name, form] = folder
            else:
                out[name, form] = write_copy(name, rows, form, root / name / form)
    return out


def comparable(data) -> pd.DataFrame:
    """The table as a model and a scorer see it: every row's question, options, answer and image bytes."""
    table = data.table.dropna(axis=1, how="all")  # an option column no row uses (the TSV's I) is no difference
    keep = sorted(c for c in table.columns if c not in ("line", "image", "index", "hf_split", "hf_row", "image_path", "id"))
    frame = table[keep].copy().astype(object).where(table[keep].notna(), None)
    frame["images"] = [tuple(s.key for s in data.image_sources(p)) for p in range(len(table))]
    return frame.sort_values(["question", "images"], kind="stable").reset_index(drop=True)


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("name", NAMES)
def test_an_hf_copy_gives_the_tsvs_table(suite, copies, name, form):
    tsv = load_benchmark_data(benchmark(name), suite / f"{name}.tsv")
    hf = load_benchmark_data(benchmark(name), copies[name, form])
    pd.testing.assert_frame_equal(comparable(hf), comparable(tsv), check_dtype=False)
    assert hf.source["form"] == form and hf.source["rows"] >= len(hf.table)
    assert len(hf.source["content_sha256"]) == 64 and "not guaranteed" in hf.warnings[0]
    if name in ("MMBench_DEV_EN", "CCBench"):  # circular copies refer to their main row's image, as in the TSV
        assert sum(len(str(c)) <= 64 for c in hf.table["image"]) == sum(len(str(c)) <= 64 for c in tsv.table["image"])


@pytest.mark.parametrize("name", NAMES)
def test_runs_on_a_copy_and_on_the_tsv_predict_and_score_alike(suite, copies, name, tmp_path):
    form = FORMS[NAMES.index(name) % 3]
    out = {}
    for label, data in (("tsv", suite / f"{name}.tsv"), ("hf", copies[name, form])):
        result = CliRunner().invoke(app, ["run", "--model", "llava-tiny", "--bench", name, "--data", str(data),
                                          "--results", str(tmp_path / label), "--max-new-tokens", "3", "--json"])
        assert result.exit_code == 0, result.output
        (entry,) = json.loads(result.stdout)
        predictions = pd.read_csv(next((tmp_path / label).rglob("*_" + name + ".tsv")), sep="\t")
        out[label] = (entry["scores"]["headline"], sorted(zip(predictions["question"], predictions["prediction"].astype(str), strict=True)))
    assert out["hf"] == out["tsv"]
    manifest = json.loads(next((tmp_path / "hf").rglob("manifest.json")).read_text())
    assert manifest["data"]["hf_copy"]["form"] == form and manifest["data"]["hf_copy"]["repo"].startswith("lmms-lab")


def test_the_converter_writes_a_tsv_that_reads_as_the_copy(suite, copies, tmp_path):
    out = tmp_path / "MME.tsv"
    result = CliRunner().invoke(app, ["data", "convert", "--bench", "MME", "--hf", str(copies["MME", "repo"]),
                                      "--out", str(out)])
    assert result.exit_code == 0, result.output
    converted = load_benchmark_data(benchmark("MME"), out)
    pd.testing.assert_frame_equal(comparable(converted), comparable(load_benchmark_data(benchmark("MME"),
                                                                                          suite / "MME.tsv")))
    again = CliRunner().invoke(app, ["data", "convert", "--bench", "MME", "--hf", str(copies["MME", "repo"]),
                                     "--out", str(out)])
    assert again.exit_code == 2 and "exists; pass --force" in again.output


# --- bad copies: one line naming what and where ---------------------------------------------------------
def test_bad_copies_are_one_line(suite, copies, tmp_path):
    rows = lmms_rows("MME", suite / "MME.tsv")
    no_answer = {split: [{k: v for k, v in r.items() if k != "answer"} for r in rs] for split, rs in rows.items()}
    broken = {split: [{**r, "image": {"bytes": b"not an image", "path": None}} if i == 3 else r
                      for i, r in enumerate(rs)] for split, rs in rows.items()}
    cases = [
        (write_copy("MME", no_answer, "save_to_disk", tmp_path / "no-answer"), {}, "no column 'answer' for MME"),
        (write_copy("MME", broken, "repo", tmp_path / "broken"), {}, "row 3 (index 3), column image"),
        (copies["MMBench_DEV_EN", "repo"], {"hf_config": "cc"}, "BuilderConfig 'cc' not found"),
        (copies["MMBench_DEV_EN", "repo"], {"hf_split": "test"}, 'Unknown split "test"'),
        (copies["MMMU_DEV_VAL", "save_to_disk"], {"hf_split": "train"}, "no split 'train' (has dev, validation)"),
        (copies["MME", "repo"] / "README.md", {}, "README.md"),
    ]
    for path, options, fragment in cases:
        with pytest.raises(DataError) as error:
            load_benchmark_data(benchmark("MMBench_DEV_EN" if "MMBench" in str(path) else
                                          "MMMU_DEV_VAL" if "MMMU" in str(path) else "MME"), path, **options)
        assert fragment in str(error.value) and "\n" not in str(error.value), str(error.value)


# --- lmms-eval's --log_samples, scored as VLMEvalKit scores --------------------------------------------
def samples_file(folder, task: str, rows: list[dict]) -> str:
    path = folder / f"20261206_000000_samples_{task}.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def test_lmms_samples_score_as_the_same_predictions_in_vlmevalkits_layout(suite, copies, tmp_path):
    data = load_benchmark_data(benchmark("MME"), copies["MME", "repo"])
    answers = ["Yes" if i % 3 else "No, it is not." for i in range(len(data.table))]
    # the layout lmms-eval 0.7.3 writes (seen in a real run of its CLI): filtered_resps a string, no resps
    samples = [{"doc_id": int(row), "target": a, "filtered_resps": ans, "token_counts": [None], "doc_hash": "x",
                "mme_perception_score": {"question_id": qid, "category": c, "score": 0}, "input": "Q?"}
               for row, a, ans, qid, c in zip(data.table["hf_row"], data.table["answer"], answers,
                                              data.table["image_path"], data.table["category"], strict=True)]
    path = samples_file(tmp_path, "mme", samples[::-1])  # any order
    scored = CliRunner().invoke(app, ["score", "--bench", "MME", "--predictions", path, "--data",
                                      str(copies["MME", "repo"]), "--json"])
    assert scored.exit_code == 0, scored.output
    layout = tmp_path / "p.tsv"
    pd.DataFrame({"index": data.table["index"], "prediction": answers}).to_csv(layout, sep="\t", index=False)
    direct = CliRunner().invoke(app, ["score", "--bench", "MME", "--predictions", str(layout), "--data",
                                      str(copies["MME", "repo"]), "--json"])
    assert json.loads(scored.stdout)["headline"] == json.loads(direct.stdout)["headline"]
    assert "scored from the model's own responses" in " ".join(scored.output.split())


def test_lmms_samples_of_mmmu_val_map_to_its_validation_rows(suite, copies, tmp_path):
    data = load_benchmark_data(benchmark("MMMU_DEV_VAL"), copies["MMMU_DEV_VAL", "save_to_disk"])
    validation = data.table[data.table["hf_split"] == "validation"]
    samples = [{"doc_id": int(r), "resps": [["A"]], "filtered_resps": ["A"]} for r in validation["hf_row"]]
    scored = CliRunner().invoke(app, ["score", "--bench", "MMMU_DEV_VAL", "--predictions",
                                      samples_file(tmp_path, "mmmu_val", samples), "--data",
                                      str(copies["MMMU_DEV_VAL", "save_to_disk"]), "--json"])
    assert scored.exit_code == 0, scored.output
    report = json.loads(scored.stdout)
    assert report["scored_rows"] == len(validation) and report["missing_rows"] == len(data.table) - len(validation)


def test_lmms_samples_with_the_benchmarks_index_score_against_a_tsv(suite, tmp_path):
    data = load_benchmark_data(benchmark("MMBench_DEV_EN"), suite / "MMBench_DEV_EN.tsv")
    samples = [{"doc_id": i, "resps": [[a]], "filtered_resps": [a], "gpt_eval_score": {"index": int(x), "answer": a}}
               for i, (x, a) in enumerate(zip(data.table["index"], data.table["answer"], strict=True))]
    scored = CliRunner().invoke(app, ["score", "--bench", "MMBench_DEV_EN", "--predictions",
                                      samples_file(tmp_path, "mmbench_en_dev", samples), "--data",
                                      str(suite / "MMBench_DEV_EN.tsv"), "--json"])
    assert scored.exit_code == 0, scored.output
    assert json.loads(scored.stdout)["headline"]["Overall"] == pytest.approx(100)
    wrong_task = CliRunner().invoke(app, ["score", "--bench", "MME", "--predictions",
                                          samples_file(tmp_path, "mmbench_en_dev", samples), "--data",
                                          str(suite / "MME.tsv")])
    assert wrong_task.exit_code == 2 and "a sample file of MMBench_DEV_EN, not of MME" in " ".join(wrong_task.output.split())
