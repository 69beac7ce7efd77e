"""Where a command runs, resolved once at the edge: process, device, dtype, CPU threads."""

from __future__ import annotations

import os

import pytest
import torch

from vlora.errors import ConfigError
from vlora.placement import Placement, Process, cpu_threads, resolve_device, resolve_dtype


def test_process_from_torchrun_and_accelerate_variables():
    assert Process.from_environment({}) == Process(0, 1, 0, 1)
    process = Process.from_environment({"RANK": "5", "WORLD_SIZE": "8", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "4"})
    assert process == Process(5, 8, 1, 4) and process.shard == (5, 8)
    for bad in ({"RANK": "x", "WORLD_SIZE": "2"}, {"RANK": "3", "WORLD_SIZE": "2"}):
        with pytest.raises(ConfigError):
            Process.from_environment(bad)


def test_devices(monkeypatch):
    assert resolve_device("cpu") == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto", Process(0, 2, 1, 2)) == torch.device("cpu")
    with pytest.raises(ConfigError, match="CUDA is not available"):
        resolve_device("cuda")
    with pytest.raises(ConfigError, match="choose auto, cpu, cuda or cuda:N"):
        resolve_device("tpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert resolve_device("auto", Process(3, 4, 1, 2)) == torch.device("cuda", 1)  # LOCAL_RANK's GPU
    assert resolve_device("cuda:0", Process(3, 4, 1, 2)) == torch.device("cuda", 0)
    with pytest.raises(ConfigError, match="GPU 2 does not exist"):
        resolve_device("cuda:2")


def test_dtypes():
    cpu, gpu = torch.device("cpu"), torch.device("cuda", 0)
    assert resolve_dtype("auto", cpu, torch.bfloat16) == torch.float32  # CPUs compute in float32
    assert resolve_dtype("auto", gpu, torch.float16) == torch.float16  # the checkpoint's own on a GPU
    assert resolve_dtype("auto", gpu, None) == torch.float32  # random models
    assert resolve_dtype("bfloat16", cpu) == torch.bfloat16
    with pytest.raises(ConfigError):
        resolve_dtype("int8", cpu)


def test_threads_share_the_cores_and_leave_busy_ones_out():
    cores = len(os.sched_getaffinity(0))
    assert cpu_threads(Process(), load=0) == cores
    assert cpu_threads(Process(0, 2, 0, 2), load=0) == max(1, cores // 2)
    assert cpu_threads(Process(), load=cores) == 1  # every core busy elsewhere: one thread, never zero
    assert cpu_threads(Process(), requested=3) == 3
    with pytest.raises(ConfigError):
        cpu_threads(Process(), requested=0)


def test_placement_describes_itself_for_the_manifest():
    placement = Placement.resolve("cpu", "auto", threads=1, environ={})
    assert placement.describe()["device"] == "cpu" and placement.describe()["cpu_threads"] == 1
    assert placement.describe()["dtype"] == "float32" and placement.describe()["world_size"] == 1


def test_a_run_records_where_it_ran(tmp_path):
    import json

    from tsv_fixtures import write_tsv, yes_no_table
    from typer.testing import CliRunner

    from vlora_eval.cli import app

    data = write_tsv(yes_no_table(1), tmp_path / "MME.tsv")
    result = CliRunner().invoke(app, ["run", "--model", "llava-tiny", "--bench", "MME", "--data", str(data),
                                      "--results", str(tmp_path / "r"), "--max-new-tokens", "2", "--device", "cpu",
                                      "--threads", "1", "--dtype", "bfloat16", "--json"])
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "r" / "llava-tiny" / "MME" / "manifest.json").read_text())
    environment = manifest["environment"]
    assert (environment["device"], environment["cpu_threads"], environment["dtype"]) == ("cpu", 1, "bfloat16")
    assert environment["device_name"] and (environment["rank"], environment["world_size"]) == (0, 1)
