"""Real `vlora-eval run` processes: killed at a random moment (SIGKILL, SIGINT) and resumed, and two
processes pointed at one folder. One prediction per row, and the scores of an uninterrupted run."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from evalsuite.mini import write_mini_suite

CLI = Path(sys.executable).with_name("vlora-eval")
RUN = ["run", "--model", "vlora-tiny", "--bench", "mmbench", "--json"]


@pytest.fixture(scope="module")
def mini(tmp_path_factory) -> Path:
    return write_mini_suite(tmp_path_factory.mktemp("mini"))["MMBench_DEV_EN"].parent


def start(mini: Path, results: Path, *extra: str) -> subprocess.Popen:
    args = [str(CLI), *RUN, "--data-dir", str(mini), "--results", str(results), *extra]
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONWARNINGS": "ignore"})


def finish(process: subprocess.Popen) -> tuple[int, str, str]:
    out, err = process.communicate(timeout=300)
    return process.returncode, out, err


def indices(folder: Path) -> Counter:
    lines = (folder / "predictions.jsonl").read_text().splitlines()
    return Counter(json.loads(line)["index"] for line in lines)


def wait_for_lines(path: Path, process: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        if path.is_file() and path.read_bytes().count(b"\n") >= 1:
            return
        time.sleep(0.05)


SETTINGS = ("--batch-size", "4", "--max-new-tokens", "16")


@pytest.fixture(scope="module")
def uninterrupted(mini, tmp_path_factory) -> dict:
    code, out, err = finish(start(mini, tmp_path_factory.mktemp("whole"), *SETTINGS))
    assert code == 0, err
    return json.loads(out)[0]


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT], ids=["SIGKILL", "SIGINT"])
def test_killed_at_a_random_moment_then_resumed(mini, tmp_path, uninterrupted, sig):
    results = tmp_path / "results"
    folder = results / "vlora-tiny" / "MMBench_DEV_EN"
    process = start(mini, results, *SETTINGS)
    wait_for_lines(folder / "predictions.jsonl", process)
    delay = random.Random().uniform(0.0, 1.5)
    time.sleep(delay)
    process.send_signal(sig)
    code, printed, err = finish(process)
    finished_work = bool(printed.strip())  # the run printed its JSON: the signal came at the exit
    if code != 0 and not finished_work:
        assert code == (-9 if sig == signal.SIGKILL else 130), (delay, err)
    if sig == signal.SIGINT and code == 130:
        assert "Traceback" not in err and "resume" in err
    resumed_code, out, err = finish(start(mini, results, *SETTINGS))
    assert resumed_code == 0, err
    (resumed,) = json.loads(out)
    counts = indices(folder)
    assert set(counts.values()) == {1} and len(counts) == uninterrupted["rows"], delay
    assert resumed["scores"]["headline"] == uninterrupted["scores"]["headline"]
    assert resumed["scores"]["table"] == uninterrupted["scores"]["table"]


def test_two_processes_one_folder(mini, tmp_path):
    results = tmp_path / "results"
    folder = results / "vlora-tiny" / "MMBench_DEV_EN"
    slow = ("--batch-size", "1", "--max-new-tokens", "400", "--limit", "12")  # long enough for a second process to start
    first = start(mini, results, *slow)
    owner = folder / ".predictions.jsonl.owner"
    deadline = time.monotonic() + 120
    while not owner.is_file() and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    second_code, _, second_err = finish(start(mini, results, *slow))
    first_code, _, first_err = finish(first)
    assert first_code == 0, first_err
    assert second_code == 2, second_err
    assert f"pid {first.pid}" in second_err and "Traceback" not in second_err
    assert set(indices(folder).values()) == {1} and sum(indices(folder).values()) == 12
    again_code, out, _ = finish(start(mini, results, *slow))
    assert again_code == 0 and json.loads(out)[0]["predicted_now"] == 0


# --- `vlora-eval train`, killed at a random step --------------------------------------------------------
def _train(data: Path, out: Path, env: dict) -> subprocess.Popen:
    args = [str(CLI), "train", "--model", "vlora-tiny", "--stage", "pretrain", "--data", str(data), "--images",
            str(data.parent), "--out", str(out), "--set", "max_steps=12", "--set", "save_every=2", "--set",
            "batch_size=4", "--set", "dtype=float32", "--set", "gradient_checkpointing=false", "--set", "log_every=1",
            "--threads", "1", "--json"]
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def _losses(out: Path) -> list[tuple[int, float]]:
    return [(r["step"], r["loss"]) for r in map(json.loads, (out / "train_log.jsonl").read_text().splitlines())]


def test_train_killed_at_a_random_step_resumes_with_the_same_losses(tmp_path):
    from test_training import write_data

    data = write_data(tmp_path / "data", "pretrain", n=8)
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "XDG_CACHE_HOME": str(tmp_path / "cache")}
    code, _, err = finish(_train(data, tmp_path / "whole", env))
    assert code == 0, err
    out = tmp_path / "cut"
    process = _train(data, out, env)
    kill_after = random.Random().randint(2, 10)  # logged steps before the kill
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and process.poll() is None:
        log = out / "train_log.jsonl"
        if log.is_file() and log.read_bytes().count(b"\n") >= kill_after:
            break
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    finish(process)
    code, printed, err = finish(_train(data, out, env))
    assert code == 0, (kill_after, err)
    summary = json.loads(printed)
    assert summary["steps"] == 12 and (summary["already_trained"] or summary["resumed_from"] in (None, 2, 4, 6, 8, 10))
    assert _losses(out) == _losses(tmp_path / "whole"), kill_after
