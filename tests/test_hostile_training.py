"""Hostile inputs on the side that writes models, and a hostile disk: nothing the tool did not write is replaced,
a changed or damaged resume is named, disk errors and impossible sizes are one line, image paths stay inside
--images. Each case asserts the exit code, one error line naming the folder / file / key / path, no traceback,
and that every file which existed before the command is byte-identical after it."""

from __future__ import annotations

import errno
import json
from pathlib import Path

import pytest
from test_hostile_inputs import assert_error, assert_unchanged, invoke, snapshot
from test_training import write_data

import vlora.training.loop as loop

pytestmark = pytest.mark.usefixtures("one_thread")

QUICK = ["--set", "batch_size=4", "--set", "dtype=float32", "--set", "gradient_checkpointing=false",
         "--set", "log_every=1", "--set", "warmup_ratio=0.0"]


def train_args(data: Path, out: Path, *extra: str, steps: int = 4, save_every: int = 2, model: str = "vlora-tiny"):
    return ["train", "--model", model, "--stage", "pretrain", "--data", str(data), "--images", str(data.parent),
            "--out", str(out), *QUICK, "--set", f"max_steps={steps}", "--set", f"save_every={save_every}", *extra]


@pytest.fixture
def data(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return write_data(tmp_path / "data", "pretrain", n=8)


def interrupted_at(monkeypatch, step: int) -> None:
    """The next training run is interrupted (Ctrl-C) as it starts optimizer step `step` (1-based)."""
    real, calls = loop._optimizer_step, []

    def step_or_stop(*args, **kwargs):
        calls.append(1)
        if len(calls) == step:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(loop, "_optimizer_step", step_or_stop)


def losses(out: Path) -> list[float]:
    return [json.loads(line)["loss"] for line in (out / "train_log.jsonl").read_text().splitlines()]


# --- writers never replace what they did not write, nor a finished model -------------------------------
def test_train_into_a_folder_of_the_users_files_is_refused(data, tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "model.safetensors").write_bytes(b"a user's model")
    (out / "train_log.jsonl").write_text("my notes\n")
    before = snapshot(out)
    for extra in ((), ("--no-resume",)):
        assert_error(invoke(*train_args(data, out, *extra)), str(out), "holds files vlora-eval did not write",
                     "--force")
        assert_unchanged(before)
    forced = invoke(*train_args(data, out, "--force", "--json", steps=2))
    assert forced.exit_code == 0, forced.output
    assert (out / "model.safetensors").read_bytes() == b"a user's model"  # --force writes beside, deletes none
    assert (out / "model" / "model.safetensors").is_file()


def test_a_finished_training_is_left_alone_and_another_job_refused(data, tmp_path):
    out = tmp_path / "out"
    first = invoke(*train_args(data, out, "--json", steps=2))
    assert first.exit_code == 0, first.output
    before = snapshot(out)
    again = invoke(*train_args(data, out, "--json", steps=2))
    assert again.exit_code == 0 and json.loads(again.stdout)["already_trained"] is True
    assert_unchanged(before)
    for extra, difference in [(("--set", "learning_rate=0.001"), "recipe.learning_rate: 5e-05 -> 0.001"),
                              (("--set", "connector.rank=2"), "model.connector.rank: 4 -> 2"),
                              (("--no-resume", "--set", "seed=7"), "recipe.seed: 42 -> 7")]:
        assert_error(invoke(*train_args(data, out, *extra, steps=2)), str(out), "another train job", difference)
        assert_unchanged(before)
    other = write_data(tmp_path / "other", "pretrain", n=8)
    other.write_text(other.read_text().replace("red", "crimson"))
    assert_error(invoke(*train_args(other, out, steps=2)), "another train job", "data:")
    assert_unchanged(before)


def test_export_and_demo_never_write_over_what_they_did_not_write(data, tmp_path):
    assert invoke(*train_args(data, tmp_path / "t", steps=2)).exit_code == 0
    model = tmp_path / "t" / "model"
    users = tmp_path / "users"
    users.mkdir()
    (users / "model.safetensors").write_bytes(b"another checkpoint")
    (users / "config.json").write_text("{}")
    before = snapshot(users)
    assert_error(invoke("export", model, "--out", users), str(users), "holds files vlora-eval did not write")
    assert_error(invoke("demo", "--out", users), str(users), "holds files vlora-eval did not write")
    assert_unchanged(before)
    exported = invoke("export", model, "--out", tmp_path / "official")
    assert exported.exit_code == 0, exported.output
    again = invoke("export", model, "--out", tmp_path / "official")
    assert again.exit_code == 0 and "already holds this export" in " ".join(again.output.split())
    assert invoke(*train_args(data, tmp_path / "t2", "--set", "learning_rate=0.001", steps=2)).exit_code == 0
    before = snapshot(tmp_path / "official")
    assert_error(invoke("export", tmp_path / "t2" / "model", "--out", tmp_path / "official"), "another export job")
    assert_unchanged(before)


# --- resume: the whole job recorded, damaged checkpoints named ------------------------------------------
def test_a_resume_that_changes_the_job_names_the_first_difference(data, tmp_path, monkeypatch):
    out = tmp_path / "out"
    interrupted_at(monkeypatch, 3)
    assert invoke(*train_args(data, out)).exit_code == 130
    monkeypatch.undo()
    before = snapshot(out)
    for extra, difference in [(("--set", "connector.rank=8"), "model.connector.rank: 4 -> 8"),
                              (("--set", "learning_rate=1e-3"), "recipe.learning_rate"),
                              (("--set", "max_length=512"), "recipe.max_length: 1024 -> 512")]:
        assert_error(invoke(*train_args(data, out, *extra)), str(out), difference)
        assert_unchanged(before)


@pytest.mark.parametrize("damage", ["model.safetensors", "train_state.json", "optimizer.bin", "random_states_0.pkl",
                                    "scheduler.bin"])
def test_a_damaged_latest_checkpoint_resumes_from_the_one_before(data, tmp_path, monkeypatch, damage):
    whole = tmp_path / "whole"
    assert invoke(*train_args(data, whole, steps=6)).exit_code == 0
    out = tmp_path / "cut"
    interrupted_at(monkeypatch, 6)  # checkpoints at steps 2 and 4 are written, then a Ctrl-C
    assert invoke(*train_args(data, out, steps=6)).exit_code == 130
    monkeypatch.undo()
    latest = out / "checkpoints" / "step-00000004"
    path = latest / damage
    if damage == "optimizer.bin":  # a pickled payload in place of the optimizer state: never unpickled
        import pickle

        path.write_bytes(pickle.dumps({"state": "os.system('echo pwned')"}))
    else:
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    resumed = invoke(*train_args(data, out, "--json", steps=6))
    assert resumed.exit_code == 0, resumed.output
    said = " ".join(resumed.output.split())
    assert f"damaged checkpoint {latest}: {damage}" in said and "resuming from the intact step-00000002" in said
    assert json.loads(resumed.stdout)["resumed_from"] == 2
    assert losses(out) == losses(whole)  # resumed from step 2: the same numbers as an uninterrupted run


def test_no_intact_checkpoint_is_refused_naming_the_damage(data, tmp_path, monkeypatch):
    out = tmp_path / "out"
    interrupted_at(monkeypatch, 4)
    assert invoke(*train_args(data, out)).exit_code == 130
    monkeypatch.undo()
    state = out / "checkpoints" / "step-00000002" / "train_state.json"
    state.write_text(state.read_text()[:40])
    before = snapshot(out)
    assert_error(invoke(*train_args(data, out)), "no intact checkpoint", "train_state.json is missing or unreadable",
                 "--no-resume")
    assert_unchanged(before)
    started_over = invoke(*train_args(data, out, "--no-resume", "--json"))
    assert started_over.exit_code == 0, started_over.output


# --- bounds and containment -----------------------------------------------------------------------------
@pytest.mark.parametrize("setting,fragments", [
    ("connector.rank=1000000000000", ("connector.rank 1000000000000 exceeds the rank the LLM's weights allow (64",)),
    ("connector.rank=100000", ("connector.rank 100000 exceeds",)),
    ("llm.vocab_size=100000000000", ("the model's parameters take", "GiB, more than the", "free on cpu")),
])
def test_impossible_sizes_are_refused_before_allocation(data, tmp_path, setting, fragments):
    assert_error(invoke(*train_args(data, tmp_path / "o", "--set", setting)), *fragments)
    assert_error(invoke("generate", "--model", "vlora-tiny", "--question", "Q?", "--set", setting), *fragments)
    assert not (tmp_path / "o").exists()


def test_running_out_of_memory_anywhere_is_one_line(monkeypatch):
    import torch

    import evalsuite.multimodal as multimodal

    def exhausted(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    monkeypatch.setattr(multimodal.MultimodalAdapter, "generate", exhausted)
    assert_error(invoke("generate", "--model", "vlora-tiny", "--question", "Q?"), "out of memory", "--batch-size")


def test_image_paths_outside_images_are_refused_up_front_all_counted(data, tmp_path):
    records = json.loads(data.read_text())
    records[1]["image"] = "../../../etc/hostname"
    records[5]["image"] = str((data.parent / "images" / "0.png").resolve())  # absolute, even inside
    data.write_text(json.dumps(records))
    assert_error(invoke(*train_args(data, tmp_path / "o")), str(data), "2 of 8 records name images outside --images",
                 "record 1 (id 's1'): ../../../etc/hostname")
    assert not (tmp_path / "o" / "checkpoints").exists()


def test_the_default_recipe_fits_the_tiny_model(data, tmp_path):
    """No --set max_length: the stage's default (2048) is fitted to the tiny LLM's 1024 positions. (float32: one
    process keeps accelerate's first mixed-precision setting, and this one trained in float32 before.)"""
    args = ["train", "--model", "llava-tiny", "--stage", "pretrain", "--data", str(data), "--images", str(data.parent),
            "--out", str(tmp_path / "o"), "--set", "max_steps=1", "--set", "batch_size=4", "--set", "dtype=float32",
            "--json"]
    result = invoke(*args)
    assert result.exit_code == 0, result.output


# --- the disk: read-only, full, not permitted -----------------------------------------------------------
def refusing(monkeypatch, under: Path, code: int, after: int = 0):
    """Writes under `under` fail with OSError(code) (an injected disk error): after `after` successful opens.
    Python's open is replaced (builtins.open and io.open, which pathlib uses)."""
    import builtins
    import io

    real_open, opened = builtins.open, []

    def guarded(file, mode="r", *args, **kwargs):
        if any(m in mode for m in "wax+") and str(Path(file).resolve()).startswith(str(under.resolve())):
            opened.append(file)
            if len(opened) > after:
                raise OSError(code, __import__("os").strerror(code), str(file) if code != errno.ENOSPC else None)
        return real_open(file, mode, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", guarded)
    monkeypatch.setattr(io, "open", guarded)


@pytest.mark.parametrize("code,meaning", [(errno.EROFS, "Read-only file system"), (errno.ENOSPC, "No space left"),
                                          (errno.EACCES, "Permission denied")])
def test_disk_errors_in_train_are_one_line_and_resume(data, tmp_path, monkeypatch, code, meaning):
    out = tmp_path / "out"
    interrupted_at(monkeypatch, 3)
    assert invoke(*train_args(data, out)).exit_code == 130
    monkeypatch.undo()
    before = snapshot(out)
    refusing(monkeypatch, out, code)
    result = invoke(*train_args(data, out))
    line = assert_error(result, meaning, errno.errorcode[code], "run the same command again", code=3)
    assert str(out) in line
    monkeypatch.undo()
    assert_unchanged(before)
    assert invoke(*train_args(data, out)).exit_code == 0


@pytest.mark.parametrize("command", ["run", "data", "sweep", "report", "export"])
def test_disk_errors_elsewhere_are_one_line(tmp_path, monkeypatch, command, data):
    from tsv_fixtures import write_tsv, yes_no_table

    target = tmp_path / "target"
    target.mkdir()
    (target / "keep.txt").write_text("mine")
    before = snapshot(target)
    mme = write_tsv(yes_no_table(2), tmp_path / "MME.tsv")
    args = {"run": ["run", "--model", "llava-tiny", "--bench", "MME", "--data", mme, "--results", target,
                    "--max-new-tokens", "2"],
            "data": ["data", "mini", "--out", target / "mini"],
            "sweep": ["sweep", "rank", "--out", target / "sweep", "--set", "pretrain.max_steps=1",
                      "--set", "finetune.max_steps=1"],
            "report": ["report", "--results", target],
            "export": ["export", "missing-is-checked-first", "--out", target / "x"]}[command]
    if command == "sweep":  # on the micro recipe's mini-suite (the shipped recipe's training set takes a minute)
        from test_embedded import MICRO

        import vlora_eval.workflows.embedded as embedded

        monkeypatch.setattr(embedded, "recipe", lambda: MICRO)
    if command == "export":
        assert invoke(*train_args(data, tmp_path / "t", steps=1)).exit_code == 0
        args[1] = tmp_path / "t" / "model"
    refusing(monkeypatch, target, errno.ENOSPC)
    line = assert_error(invoke(*args), "No space left on device", "ENOSPC", code=3)
    assert str(target) in line
    monkeypatch.undo()
    assert_unchanged(before)


@pytest.fixture
def small_disk(tmp_path):
    """A real 2 MB tmpfs (the machine must allow mounting; skipped with the reason otherwise)."""
    import subprocess

    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip() or done.returncode}); the injected cases cover it")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def test_a_real_full_then_read_only_disk_resumes_byte_identical(small_disk, tmp_path):
    """`run` on a 2 MB tmpfs: filled up by a file of the user's, it stops with one line; once space is freed the
    same command finishes with the predictions of a run on a roomy disk; remounted read-only, one line."""
    import subprocess

    from tsv_fixtures import write_tsv, yes_no_table

    mme = write_tsv(yes_no_table(40), tmp_path / "MME.tsv")
    args = ["run", "--model", "llava-tiny", "--bench", "MME", "--data", mme, "--max-new-tokens", "2", "--batch-size", "4"]
    roomy = invoke(*args, "--results", tmp_path / "roomy", "--json")
    assert roomy.exit_code == 0, roomy.output
    filler = small_disk / "users-big-file"
    with open(filler, "wb") as f:  # leaves a few KB: run.json fits, the predictions do not
        try:
            f.write(b"x" * (2 * 1024 * 1024 - 12 * 1024))
        except OSError:
            pass
    before = snapshot(filler)
    full = invoke(*args, "--results", small_disk / "r")
    assert_error(full, "No space left on device", "ENOSPC", code=3)
    assert_unchanged(before)
    filler.unlink()
    again = invoke(*args, "--results", small_disk / "r", "--json")
    assert again.exit_code == 0, again.output
    roomy_tsv = tmp_path / "roomy" / "llava-tiny" / "MME" / "llava-tiny_MME.tsv"
    assert (small_disk / "r" / "llava-tiny" / "MME" / "llava-tiny_MME.tsv").read_bytes() == roomy_tsv.read_bytes()
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    read_only = invoke(*args, "--results", small_disk / "r2")
    assert_error(read_only, "Read-only file system", "EROFS", code=3)


# --- what a user reads --------------------------------------------------------------------------------
def test_score_says_how_many_repeated_rows_it_counted_once(tmp_path):
    import pandas as pd
    from tsv_fixtures import write_tsv, yes_no_table

    table = yes_no_table(3)
    write_tsv(table, tmp_path / "MME.tsv")
    once = pd.DataFrame({"index": table["index"], "prediction": table["answer"]})
    repeated = pd.concat([once] * 50, ignore_index=True)  # every row 50 times, all agreeing
    repeated.to_csv(tmp_path / "p.tsv", sep="\t", index=False)
    once.to_csv(tmp_path / "once.tsv", sep="\t", index=False)
    result = invoke("score", "--bench", "MME", "--predictions", tmp_path / "p.tsv", "--data", tmp_path / "MME.tsv",
                    "--json")
    assert result.exit_code == 0, result.output
    flat = " ".join(result.output.split())
    assert f"{len(once) * 49} row(s) repeat an index with the same prediction ({len(once)} index(es) repeated)" in flat
    clean = invoke("score", "--bench", "MME", "--predictions", tmp_path / "once.tsv", "--data", tmp_path / "MME.tsv",
                   "--json")
    assert json.loads(result.stdout)["headline"] == json.loads(clean.stdout)["headline"]


def test_the_mini_suite_is_known_as_the_projects_own_data(tmp_path):
    assert invoke("data", "mini", "--out", tmp_path / "mini", "--json").exit_code == 0
    result = invoke("run", "--model", "llava-tiny", "--bench", "MME", "--data-dir", tmp_path / "mini", "--results",
                    tmp_path / "r", "--max-new-tokens", "1", "--limit", "4")
    assert result.exit_code == 0, result.output
    assert "is not a known release" not in result.output  # the md5 warning is for real benchmark files
    manifest = json.loads((tmp_path / "r" / "llava-tiny" / "MME" / "manifest.json").read_text())
    assert manifest["data"]["mini_suite"] is True and manifest["data"]["embedded_mini_suite"] is False
    edited = tmp_path / "mini" / "MME.tsv"
    edited.write_text(edited.read_text() + "\n")  # no longer what the tool wrote: a table like any other
    again = invoke("run", "--model", "llava-tiny", "--bench", "MME", "--data-dir", tmp_path / "mini", "--results",
                   tmp_path / "r2", "--max-new-tokens", "1", "--limit", "4")
    assert "is not a known release of MME" in " ".join(again.output.split())


def test_inspect_points_into_a_training_folder(data, tmp_path):
    assert invoke(*train_args(data, tmp_path / "t", steps=1)).exit_code == 0
    result = invoke("inspect", tmp_path / "t", "--json")
    assert result.exit_code == 1
    assert json.loads(result.stdout)["notes"] == [f"checkpoints inside it: {tmp_path / 't' / 'model'}"]


def test_force_deletes_only_the_tools_own_files_even_of_an_unfinished_job(data, tmp_path, monkeypatch):
    out = tmp_path / "out"
    interrupted_at(monkeypatch, 3)
    assert invoke(*train_args(data, out)).exit_code == 130
    monkeypatch.undo()
    (out / "notes.txt").write_text("the user's, put beside the run")
    old_state = (out / "checkpoints" / "step-00000002" / "train_state.json").read_text()
    forced = invoke(*train_args(data, out, "--set", "learning_rate=0.001", "--force", steps=2))
    assert forced.exit_code == 0, forced.output
    assert (out / "notes.txt").read_text() == "the user's, put beside the run"  # not under the tool's names
    assert len(losses(out)) == 2  # the new job's log, the old one's deleted with its checkpoints
    assert (out / "checkpoints" / "step-00000002" / "train_state.json").read_text() != old_state
