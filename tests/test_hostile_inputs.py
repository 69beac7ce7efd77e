"""Hostile and malformed inputs: nothing the tool did not write is lost, every bad input gets one line.

Each case asserts the exit code, one error line that names the file / row / key, no traceback, and
that every file which existed before the command is byte-identical after it.
"""

from __future__ import annotations

import base64
import io
import json
import os
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image
from tsv_fixtures import b64_image, circular_table, write_tsv, yes_no_table
from typer.testing import CliRunner

from vlora_eval.cli import app

runner = CliRunner()
TINY = ["--model", "llava-tiny", "--max-new-tokens", "2"]


# --- helpers ------------------------------------------------------------------------------------------
def snapshot(*roots: Path) -> dict[Path, bytes]:
    files = {}
    for root in roots:
        paths = [root] if root.is_file() else (p for p in root.rglob("*") if p.is_file())
        files.update({p: p.read_bytes() for p in paths})
    return files


def assert_unchanged(before: dict[Path, bytes]) -> None:
    for path, content in before.items():
        assert path.is_file(), f"{path} was deleted"
        assert path.read_bytes() == content, f"{path} was changed"


def invoke(*args: str, env: dict | None = None):
    return runner.invoke(app, [str(a) for a in args], env=env)


def assert_error(result, *fragments: str, code: int = 2) -> str:
    """Exit code `code`, exactly one error line holding every fragment, no traceback."""
    assert result.exit_code == code, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.lower().startswith("error:")]
    assert len(lines) == 1, result.output
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


def warnings_of(result) -> list[str]:
    """Warnings, except that the test tables are not known releases."""
    return [line for line in result.output.splitlines()
            if line.startswith("warning:") and "is not a known release" not in line]


def b64_bytes(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


@pytest.fixture
def mme(tmp_path) -> Path:
    return write_tsv(yes_no_table(2), tmp_path / "data" / "MME.tsv")


@pytest.fixture
def mmbench(tmp_path) -> Path:
    return write_tsv(circular_table(3), tmp_path / "data" / "MMBench_DEV_EN.tsv")


def run_args(data: Path, results: Path, bench: str = "MME", *extra: str) -> list[str]:
    return ["run", *TINY, "--bench", bench, "--data", str(data), "--results", str(results), "--json", *extra]


# --- 1. results-root containment and --fresh ------------------------------------------------------------
@pytest.mark.parametrize("name", ["..", ".", "/", "../outside", "/tmp/abs", "a/../..", "", ".hidden", "a b", "x" * 200])
def test_run_names_stay_inside_the_results_root(tmp_path, mme, name):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "precious.txt").write_text("the user's")
    (tmp_path / "results").mkdir()
    before = snapshot(tmp_path)
    result = invoke(*run_args(mme, tmp_path / "results"), "--run-name", name, "--fresh")
    assert_error(result, "run name")
    assert_unchanged(before)


def test_symlinked_run_folder_is_refused(tmp_path, mme):
    outside = tmp_path / "outside"
    (outside / "MME").mkdir(parents=True)
    (outside / "MME" / "predictions.jsonl").write_text('{"index": 0, "prediction": "mine"}\n')
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "link").symlink_to(outside)
    before = snapshot(outside)
    assert_error(invoke(*run_args(mme, tmp_path / "results"), "--run-name", "link", "--fresh"), "symbolic link")
    assert_unchanged(before)


def test_fresh_deletes_only_the_tools_own_files(tmp_path, mme):
    results = tmp_path / "results"
    assert invoke(*run_args(mme, results)).exit_code == 0
    folder = results / "llava-tiny" / "MME"
    (folder / "my_notes.txt").write_text("mine")
    (folder / "sub").mkdir()
    (folder / "sub" / "keep.bin").write_bytes(b"\x00\x01")
    before = snapshot(folder / "my_notes.txt", folder / "sub")
    result = invoke(*run_args(mme, results), "--fresh")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)[0]["predicted_now"] == 4  # everything predicted again
    assert_unchanged(before)


# --- 2. damaged prediction lines ------------------------------------------------------------------------
@pytest.mark.parametrize("damage", ["{not json", "null", '{"prediction": "no index"}', "[1, 2]", '"text"',
                                    '{"index": 1, "prediction": 5}', "\udcff"])
def test_a_damaged_middle_line_is_kept_aside_and_no_valid_record_is_lost(tmp_path, mme, damage):
    results = tmp_path / "results"
    first = invoke(*run_args(mme, results))
    assert first.exit_code == 0
    folder = results / "llava-tiny" / "MME"
    predictions = folder / "predictions.jsonl"
    lines = predictions.read_text().splitlines()
    mine = [json.dumps({"index": json.loads(line)["index"], "prediction": f"kept {i}", "images_dropped": 0})
            for i, line in enumerate(lines)]
    text = "\n".join([mine[0], damage, *mine[1:]]) + "\n"
    predictions.write_bytes(text.encode("utf-8", "surrogateescape"))
    result = invoke(*run_args(mme, results))
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)[0]["predicted_now"] == 0  # every valid record was kept
    (note,) = [w for w in warnings_of(result) if "damaged" in w]
    assert "line 2" in note and "predictions.jsonl.corrupt" in note
    assert Path(f"{predictions}.corrupt").read_bytes() == damage.encode("utf-8", "surrogateescape") + b"\n"
    assert predictions.read_text().splitlines() == mine
    tsv = pd.read_csv(folder / "llava-tiny_MME.tsv", sep="\t")
    assert sorted(tsv["prediction"]) == sorted(f"kept {i}" for i in range(4))


def test_only_a_cut_last_line_is_dropped(tmp_path, mme):
    results = tmp_path / "results"
    invoke(*run_args(mme, results, "MME", "--limit", "2"))
    predictions = results / "llava-tiny" / "MME" / "predictions.jsonl"
    with open(predictions, "a") as f:
        f.write('{"index": 2, "predic')
    result = invoke(*run_args(mme, results, "MME", "--limit", "2"))
    assert result.exit_code == 0 and not warnings_of(result)
    assert len(predictions.read_text().splitlines()) == 2 and predictions.read_text().endswith("\n")


# --- 3. data mini never replaces the user's files --------------------------------------------------------
def test_data_mini_refuses_to_overwrite_foreign_files(tmp_path):
    lmu = tmp_path / "LMUData"
    real = write_tsv(circular_table(2), lmu / "MMBench_DEV_EN.tsv")
    (lmu / "README.md").write_text("my notes")
    before = snapshot(lmu)
    assert_error(invoke("data", "mini", "--out", lmu), "MMBench_DEV_EN.tsv", "not written by vlora-eval", "--force")
    assert_unchanged(before)
    assert sorted(p.name for p in lmu.iterdir()) == ["MMBench_DEV_EN.tsv", "README.md"]  # no staging left
    assert invoke("data", "mini", "--out", lmu, "--force").exit_code == 0
    assert real.read_bytes() != before[real]


def test_data_mini_rewrites_its_own_files(tmp_path):
    out = tmp_path / "mini"
    assert invoke("data", "mini", "--out", out).exit_code == 0
    (out / "notes.txt").write_text("mine")
    first = snapshot(out)
    again = invoke("data", "mini", "--out", out)
    assert again.exit_code == 0, again.output
    assert snapshot(out) == first  # deterministic, replaced in place, the user's file untouched
    (out / "MME.tsv").write_text("edited by the user")
    assert_error(invoke("data", "mini", "--out", out), "MME.tsv")
    assert (out / "MME.tsv").read_text() == "edited by the user"


def test_data_mini_out_is_a_file(tmp_path):
    target = tmp_path / "file.tsv"
    target.write_text("x")
    assert_error(invoke("data", "mini", "--out", target), "is a file")
    assert target.read_text() == "x"


# --- 4. merge checks the data against the run ------------------------------------------------------------
def test_merge_refuses_another_table(tmp_path, mme):
    results = tmp_path / "results"
    assert invoke(*run_args(mme, results)).exit_code == 0
    other = write_tsv(yes_no_table(3), tmp_path / "other" / "MME.tsv")
    folder = results / "llava-tiny" / "MME"
    before = snapshot(folder)
    result = invoke("merge", "--bench", "MME", "--run-name", "llava-tiny", "--results", results, "--data", other, "--force")
    assert_error(result, str(folder), "md5")
    assert_unchanged(before)


# --- 5. one writer per predictions file -----------------------------------------------------------------
def test_a_second_writer_is_refused_and_told_who_holds_the_folder(tmp_path, mme):
    import subprocess
    import sys

    from evalsuite.predictions import WriterLock

    folder = tmp_path / "results" / "llava-tiny" / "MME"
    folder.mkdir(parents=True)
    target = folder / "predictions.jsonl"
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from pathlib import Path; from evalsuite.predictions import WriterLock\n"
        f"with WriterLock(Path({str(target)!r})):\n    print('held', flush=True); time.sleep(60)")],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        assert_error(invoke(*run_args(mme, tmp_path / "results")), str(target), f"pid {holder.pid}")
        assert not target.exists()
    finally:
        holder.kill()
        holder.wait()
    with WriterLock(target):  # a killed holder's lock is free again (the OS released it)
        pass


# --- tables with no usable rows, or of another benchmark -------------------------------------------------
@pytest.mark.parametrize("bench,table,fragment", [
    ("MME", yes_no_table(1).iloc[:0], "no rows"),
    ("MME", yes_no_table(2).assign(image=None), "none of its 4 row(s) has an image"),
    ("MMBench_DEV_EN", circular_table(2).assign(split="val"), "no row of split 'dev'"),
    ("MMMU_DEV_VAL", circular_table(2), "no row of split 'validation'"),
    ("MMBench_DEV_EN", circular_table(2).assign(index=[f"q{i}" for i in range(5)]), "is not an integer"),
    ("MME", circular_table(2), "missing column(s)"),
    ("MMBench_DEV_EN", yes_no_table(2).assign(split="dev"), "is not among the options"),
    ("MME", yes_no_table(2).assign(index=[0, 1, None, 3]), "no index"),
])
def test_tables_without_usable_rows_or_of_another_benchmark(tmp_path, bench, table, fragment):
    data = write_tsv(table, tmp_path / f"{bench}.tsv")
    before = snapshot(tmp_path)
    assert_error(invoke(*run_args(data, tmp_path / "results", bench)), fragment, str(data))
    assert_unchanged(before)


# --- images that cannot or must not be decoded ----------------------------------------------------------
def _png(width: int, height: int, mode: str = "L") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, (width, height)).save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


BOMB = _png(20_000, 20_000)  # 400 M pixels in a few hundred kB


@pytest.mark.parametrize("raw,fragment", [(BOMB, "too large to decode safely"), (b"not an image" * 10, "cannot be decoded"),
                                          (_png(40, 40, "RGB")[:60], "cannot be decoded")])
def test_images_that_cannot_be_decoded_in_run_and_generate(tmp_path, raw, fragment):
    table = yes_no_table(2)
    table.loc[0, "image"] = b64_bytes(raw)
    data = write_tsv(table, tmp_path / "MME.tsv")
    assert_error(invoke(*run_args(data, tmp_path / "results")), "line 2 (index 0), column image", fragment)
    picture = tmp_path / "picture.png"
    picture.write_bytes(raw)
    assert_error(invoke("generate", "--model", "llava-tiny", "--question", "What?", "--image", picture),
                 str(picture), fragment)


# --- prompt and new tokens bounded by the model's positions ---------------------------------------------
def test_a_prompt_longer_than_the_positions_is_refused(tmp_path):
    long = "word " * 20_000
    assert_error(invoke("generate", "--model", "vlora-tiny", "--question", long), "1024 positions")
    table = yes_no_table(2)
    table.loc[1, "question"] = long
    data = write_tsv(table, tmp_path / "MME.tsv")
    result = invoke(*run_args(data, tmp_path / "results"))
    assert result.exit_code == 0, result.output  # the other rows are kept; the row is a failure, said once
    (note,) = [w for w in warnings_of(result) if "failed" in w]
    assert "1 row(s) failed" in note and "index 1" in note and "1024" in note


@pytest.mark.parametrize("command", ["run", "generate"])
def test_max_new_tokens_beyond_the_positions(tmp_path, mme, command):
    args = (run_args(mme, tmp_path / "results") if command == "run"
            else ["generate", "--model", "vlora-tiny", "--question", "Q?"])
    assert_error(invoke(*args, "--max-new-tokens", "100000"), "--max-new-tokens 100000", "1024 positions")


# --- paths of the wrong kind ----------------------------------------------------------------------------
def test_output_options_that_name_a_file(tmp_path, mme):
    a_file = tmp_path / "a_file"
    a_file.write_text("keep me")
    assert_error(invoke(*run_args(mme, a_file)), "--results", "is a file")
    assert_error(invoke("flops", "--plot", a_file), "--plot", "is a file")
    assert_error(invoke("demo", "--out", a_file), "--out", "is a file")
    assert a_file.read_text() == "keep me"
    assert_error(invoke(*run_args(tmp_path / "data", tmp_path / "r")), "--data", "is a folder")


def test_data_and_data_dir_say_which_is_used(tmp_path, mme, monkeypatch):
    result = invoke(*run_args(mme, tmp_path / "results"), "--data-dir", tmp_path / "nowhere")
    assert result.exit_code == 0
    assert any("--data-dir" in w and "nowhere" in w and f"reading --data {mme}" in w for w in warnings_of(result))
    assert_error(invoke("run", *TINY, "--bench", "MME", "--data-dir", tmp_path / "nowhere"), "nowhere", "does not exist")
    result = invoke("run", *TINY, "--bench", "MME", "--results", tmp_path / "r", env={"LMUData": str(tmp_path / "gone")})
    assert_error(result, "$LMUData", "gone", "not a folder")


# --- damaged or wrongly shaped JSON ---------------------------------------------------------------------
@pytest.mark.parametrize("content", ["{broken", "[1, 2]", "null", ""])
def test_a_damaged_run_json(tmp_path, mme, content):
    results = tmp_path / "results"
    invoke(*run_args(mme, results))
    run_json = results / "llava-tiny" / "MME" / "run.json"
    run_json.write_text(content)
    before = snapshot(results)
    assert_error(invoke(*run_args(mme, results)), str(run_json), "--fresh")
    assert_error(invoke("merge", "--bench", "MME", "--run-name", "llava-tiny", "--results", results, "--data", mme),
                 str(run_json))
    assert_unchanged(before)
    assert invoke(*run_args(mme, results), "--fresh").exit_code == 0


@pytest.mark.parametrize("name,content,fragment", [
    ("p.xlsx", b"PK\x03\x04 not a zip", "p.xlsx"), ("p.xlsx", b"plain text", "p.xlsx"),
    ("p.jsonl", b"null\n", "line 1 holds a JSON NoneType"), ("p.jsonl", b'{"index": 0}\n{oops\n', "line 2 is not JSON"),
    ("p.jsonl", b"[1]\n", "line 1 holds a JSON list"), ("p.csv", b"", "cannot read predictions"),
    ("p.tsv", b"index\tanswer\n0\tYes\n", "missing column(s) ['prediction']"),
    ("p.tsv", b"index\tprediction\n99\tYes\n", "index 99 is not a row of MME"),
])
def test_bad_predictions_files_for_score(tmp_path, mme, name, content, fragment):
    path = tmp_path / name
    path.write_bytes(content)
    assert_error(invoke("score", "--bench", "MME", "--predictions", path, "--data", mme), fragment)


def test_score_with_repeated_indices(tmp_path, mme):
    disagree = tmp_path / "p.tsv"
    disagree.write_text("index\tprediction\n0\tYes\n1\tNo\n0\tNo\n")
    assert_error(invoke("score", "--bench", "MME", "--predictions", disagree, "--data", mme), "index 0", "2 different")
    agree = tmp_path / "q.tsv"
    agree.write_text("index\tprediction\n0\tYes\n1\tNo\n0\tYes\n")
    result = invoke("score", "--bench", "MME", "--predictions", agree, "--data", mme, "--json")
    assert result.exit_code == 0 and json.loads(result.stdout)["scored_rows"] == 2


def test_json_lists_where_objects_are_expected(tmp_path, tiny_model):
    from vlora.checkpoints import save_model

    listed = tmp_path / "listed.json"
    listed.write_text("[1, 2]")
    assert_error(invoke("flops", "--llm-config", listed), "listed.json", "found a list")
    folder = tmp_path / "config_list"
    folder.mkdir()
    (folder / "config.json").write_text("[]")
    assert_error(invoke("generate", "--checkpoint", folder, "--question", "Q"), "config.json", "found a list")
    own = save_model(tiny_model, tmp_path / "own")
    (own / "vlora_eval.json").write_text("[]")
    assert_error(invoke("generate", "--checkpoint", own, "--question", "Q"), "vlora_eval.json", "found a list")
    sharded = save_model(tiny_model, tmp_path / "sharded", max_shard_size=200_000)
    (sharded / "vlora_eval.json").write_text(json.dumps({"format": "vlora-eval", "version": 1,
                                                        "config": tiny_model.config.to_dict()}))
    (sharded / "model.safetensors.index.json").write_text('{"weight_map": [1, 2]}')
    assert_error(invoke("generate", "--checkpoint", sharded, "--question", "Q"), "model.safetensors.index.json")


# --- unknown choices and bad values are refused before any work -----------------------------------------
@pytest.mark.parametrize("option,value", [("--mode", "fused"), ("--rules", "2023-01"), ("--answer-mode", "vote"),
                                          ("--dtype", "int8")])
def test_unknown_choices_are_refused_before_any_work(tmp_path, mme, option, value):
    result = invoke(*run_args(mme, tmp_path / "results"), option, value)
    assert_error(result, option, value)
    assert not (tmp_path / "results").exists()


def test_flops_rejects_zero_slots_and_rank():
    assert_error(invoke("flops", "--slots", "0"), "--slots")
    assert_error(invoke("flops", "--rank", "0"), "--rank")


def test_a_vision_tower_that_is_not_clip(tmp_path, official_checkpoint):
    folder, _ = official_checkpoint
    assert_error(invoke("generate", "--checkpoint", folder, "--vision-tower", folder, "--question", "Q"),
                 "not a CLIP folder", "llava_vlora")
    assert_error(invoke("generate", "--checkpoint", folder, "--vision-tower", tmp_path, "--question", "Q"),
                 "not a CLIP folder", "no config.json")


# --- accepted when it should not be ---------------------------------------------------------------------
def test_inspect_exit_codes(tmp_path, tiny_model):
    from vlora.checkpoints import save_model

    own = save_model(tiny_model, tmp_path / "own")
    assert invoke("inspect", own).exit_code == 0
    (own / "vlora_eval.json").write_text("[]")
    assert invoke("inspect", own).exit_code == 1
    (tmp_path / "garbage").mkdir()
    (tmp_path / "garbage" / "config.json").write_text("{oops")
    result = invoke("inspect", tmp_path / "garbage")
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert invoke("inspect", tmp_path / "nothing").exit_code == 1
    assert "Exit codes" in invoke("--help").output


def test_empty_predictions_and_unknown_image_numbers_are_said_once(tmp_path, mme):
    empty = tmp_path / "empty.tsv"
    pd.DataFrame({"index": range(4), "prediction": [""] * 4}).to_csv(empty, sep="\t", index=False)
    result = invoke("score", "--bench", "MME", "--predictions", empty, "--data", mme)
    assert [w for w in warnings_of(result) if "empty" in w] == ["warning: 4 of 4 predictions are empty (all of them)"]
    table = circular_table(2).assign(split="validation")
    table.loc[0, "question"] = "Which is <image 1> and which <image 3>?"
    data = write_tsv(table, tmp_path / "MMMU_DEV_VAL.tsv")
    result = invoke(*run_args(data, tmp_path / "results", "MMMU_DEV_VAL"))
    assert result.exit_code == 0, result.output
    notes = [w for w in warnings_of(result) if "<image N>" in w]
    assert len(notes) == 1 and "1 row(s)" in notes[0] and "index 0" in notes[0]


def test_interrupt_is_one_line_and_exit_130(tmp_path, mme, monkeypatch):
    import evalsuite.runner

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(evalsuite.runner, "_predict", interrupted)
    result = invoke(*run_args(mme, tmp_path / "results"))
    assert result.exit_code == 130 and "Traceback" not in result.output and "resume" in result.output
    assert not any(p.name.endswith(".owner") for p in (tmp_path / "results").rglob("*"))


def test_user_files_in_the_results_root_survive_every_command(tmp_path, mme):
    results = tmp_path / "results"
    (results / "mine").mkdir(parents=True)
    (results / "mine" / "paper.pdf").write_bytes(os.urandom(64))
    before = snapshot(results)
    for extra in ([], ["--fresh"], ["--run-name", "mine"], ["--run-name", "mine", "--fresh"]):
        assert invoke(*run_args(mme, results), *extra).exit_code == 0
    assert_unchanged(before)
    assert b64_image((1, 2, 3))  # the fixtures' images stay decodable
