"""The shuffled-images control: every row shows another row's image; a model that reads the image falls to
chance, and the run records the control."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from tsv_fixtures import b64_image, write_tsv
from typer.testing import CliRunner

from evalsuite.adapter import ModelCard, Request
from evalsuite.benchmarks import benchmark
from evalsuite.controls import shuffle_images
from evalsuite.data import load_benchmark_data
from evalsuite.runner import RunOptions, run_benchmark
from vlora.presets import preset
from vlora_eval.cli import app

COLOURS = {"A": (250, 0, 0), "B": (0, 250, 0), "C": (0, 0, 250)}


def coloured_mcq(rows: int = 30) -> pd.DataFrame:
    """A ScienceQA-like table whose answer is written in the image's colour (A red, B green, C blue)."""
    answers = [("A", "B", "C")[i % 3] for i in range(rows)]
    return pd.DataFrame({"index": range(rows), "question": [f"Which colour, {i}?" for i in range(rows)],
                         "A": "red", "B": "green", "C": "blue", "answer": answers, "split": "val",
                         "image": [b64_image(COLOURS[a], size=(8 + i, 8)) for i, a in enumerate(answers)]})


class ColourReader:
    """An adapter that answers from the image alone: the letter of its colour."""

    takes_image_sources = False

    def __init__(self):
        self.card = ModelCard(name="colour-reader", config=preset("llava-tiny"), parameters={})

    def generate(self, requests: list[Request]) -> list[str]:
        letters = []
        for request in requests:
            pixel = request.images[0].convert("RGB").getpixel((0, 0))
            letters.append(next(k for k, c in COLOURS.items() if c == pixel))
        return letters

    def loglikelihood(self, requests):  # pragma: no cover - generate mode only
        raise NotImplementedError


def test_shuffled_images_move_every_image_and_keep_the_rest(tmp_path):
    data = load_benchmark_data(benchmark("ScienceQA_VAL"), write_tsv(coloured_mcq(), tmp_path / "ScienceQA_VAL.tsv"))
    control = shuffle_images(data, seed=3)
    before = [data.image_sources(p)[0].key for p in range(len(data.table))]
    after = [control.image_sources(p)[0].key for p in range(len(data.table))]
    assert all(a != b for a, b in zip(before, after, strict=True)) and sorted(before) == sorted(after)
    assert control.table.drop(columns=["image"]).equals(data.table.drop(columns=["image"]))
    assert shuffle_images(data, seed=3).table["image"].equals(control.table["image"])  # deterministic
    assert control.control == "images shuffled across rows (seed 3)"


def test_a_model_that_reads_the_image_falls_to_chance_when_they_are_shuffled(tmp_path):
    data = load_benchmark_data(benchmark("ScienceQA_VAL"), write_tsv(coloured_mcq(), tmp_path / "ScienceQA_VAL.tsv"))
    plain = run_benchmark(ColourReader(), data, RunOptions(results_root=tmp_path, run_name="plain", progress=False))
    shuffled = run_benchmark(ColourReader(), shuffle_images(data), RunOptions(results_root=tmp_path, run_name="s",
                                                                              progress=False))
    assert plain.report.headline["Overall"] == pytest.approx(100)
    assert shuffled.report.headline["Overall"] < 60  # chance is 33: a third of the swaps keep the colour
    manifest = json.loads((tmp_path / "s" / "ScienceQA_VAL" / "manifest.json").read_text())
    assert manifest["data"]["control"] == "images shuffled across rows (seed 0)"


def test_the_cli_runs_the_control_in_its_own_folder(tmp_path):
    write_tsv(coloured_mcq(6), tmp_path / "ScienceQA_VAL.tsv")
    args = ["run", "--model", "llava-tiny", "--bench", "ScienceQA_VAL", "--data", str(tmp_path / "ScienceQA_VAL.tsv"),
            "--results", str(tmp_path / "r"), "--max-new-tokens", "1", "--json"]
    result = CliRunner().invoke(app, [*args, "--shuffle-images"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)[0]["folder"].endswith("llava-tiny-shuffled-images/ScienceQA_VAL")
    assert CliRunner().invoke(app, args).exit_code == 0  # the plain run: another folder, no settings clash
