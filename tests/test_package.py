"""The installed package works without the checkout: the wheel, installed (not editable) into a scratch
environment, runs a sweep and the report from a folder outside the checkout, finding its shipped data (the
sweep configs, the paper's tables, the benchmarks, the embedded recipe, the foundations and the embedded models) in
the installed package."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

MICRO_SWEEP = textwrap.dedent("""\
    # two rank variants of VLoRA, two optimizer steps per stage, on a scale-1 mini-suite
    name: rank
    title: "Table 4 (a micro sweep)"
    paper: table4
    parameter: connector.rank
    base: {model: vlora, set: {pretrain.max_steps: 2, finetune.max_steps: 2, pretrain.batch_size: 4,
                               finetune.batch_size: 4, pretrain.log_every: 1, finetune.log_every: 1}}
    data: {train: suite/train, benchmarks: suite}
    benchmarks: [MME]
    seeds: 1
    reference: "16"
    variants:
      - {name: "16", set: {connector.rank: 1, connector.alpha: 1.0}}
      - {name: "32", set: {connector.rank: 2, connector.alpha: 2.0}}
    eval: {batch_size: 16, max_new_tokens: 1}
    """)


def _run(args: list[str], cwd: Path, env: dict[str, str], code: int = 0) -> subprocess.CompletedProcess:
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == code, f"{args}\n{done.stdout}\n{done.stderr}"
    return done


def test_the_wheel_runs_a_sweep_and_the_report_outside_the_checkout(tmp_path):
    dist, env_dir, work = tmp_path / "dist", tmp_path / "env", tmp_path / "work"
    work.mkdir()
    clean = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "LMUData", "VIRTUAL_ENV")}
    # the wheel, built with this environment's setuptools (nothing downloaded), from a copy of what it packages
    # (a build writes build/ and *.egg-info beside the sources: not into the checkout)
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "vlora", "evalsuite", "flops", "vlora_eval"):
        copy = shutil.copytree if (ROOT / name).is_dir() else shutil.copy2
        copy(ROOT / name, source / name, **({"ignore": shutil.ignore_patterns("__pycache__")} if (ROOT / name).is_dir()
                                            else {}))
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(dist), str(source)],
         tmp_path, clean)
    (wheel,) = dist.glob("vlora_eval-*.whl")
    # a scratch environment: the wheel installed in it; its dependencies (torch, transformers, ...) seen through a
    # path file, without this environment's editable install of the checkout
    _run([sys.executable, "-m", "venv", str(env_dir)], tmp_path, clean)
    python, tool = env_dir / "bin" / "python", env_dir / "bin" / "vlora-eval"
    _run([str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)], tmp_path, clean)
    site = _run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], tmp_path, clean)
    Path(site.stdout.strip(), "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")

    env = {**clean, "HOME": str(tmp_path / "home"), "XDG_CACHE_HOME": str(tmp_path / "cache")}
    where = _run([str(python), "-c", "import vlora_eval, vlora, evalsuite, flops; print(json.dumps([m.__file__ for m in "
                  "(vlora_eval, vlora, evalsuite, flops)]))".replace("json.", "__import__('json')."), ], work, env)
    assert all(path.startswith(str(env_dir)) for path in json.loads(where.stdout))  # the wheel's, not the checkout's
    for name in ("cli", "cli_common", "cli_views", "cli_workflows", "workflows"):  # no generic top-level modules
        _run([str(python), "-c", f"import {name}"], work, env, code=1)

    # the shipped foundations and embedded models are in the wheel, every file as its manifest lists it
    check = ("from vlora_eval.workflows import embedded_build as b; from vlora.foundations import Foundations; "
             "from vlora_eval.workflows.foundations import shipped; Foundations.load(shipped()); "
             "print(sorted(b.read_manifest(b.shipped())['models']), b.shipped())")
    models = _run([str(python), "-c", check], work, env).stdout
    assert "['llava-v1.5', 'llava-v1.5-qformer', 'vlora']" in models and str(env_dir) in models

    # the shipped sweep configs are found by name in the installed package
    shipped = _run([str(tool), "sweep", "rank", "--set", "connector.ranq=1"], work, env, code=2)
    assert "vlora_eval/configs/rank.yaml" in shipped.stderr and "ranq" in shipped.stderr

    _run([str(tool), "data", "mini", "--out", "suite", "--scale", "1", "--json"], work, env)
    (work / "micro.yaml").write_text(MICRO_SWEEP)
    sweep = _run([str(tool), "sweep", "micro.yaml", "--out", "results/sweeps/rank", "--threads", "1", "--json"],
                 work, env)
    assert json.loads(sweep.stdout)["done"] == 2
    table = (work / "results" / "sweeps" / "rank" / "table.md").read_text()
    assert "| 16 |" in table and "| 32 |" in table and "| 1212.7 |" in table  # beside the paper's MME of Table 4
    _run([str(tool), "report", "--results", "results"], work, env)
    report = (work / "results" / "report.md").read_text()
    assert "| VLoRA | 0 | 619 | 619.0 |" in report and "Table 4 (a micro sweep)" in report
