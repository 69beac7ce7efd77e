"""One strict typed reader (vlora/schema.py) for every YAML the project reads: an unknown or ill-typed key is
refused in one line naming the file and the key."""

from __future__ import annotations

import dataclasses
from importlib import resources
from pathlib import Path

import pytest
import yaml

from vlora.errors import ConfigError
from vlora.schema import ROOT, from_data, read_yaml, to_data


@dataclasses.dataclass(frozen=True)
class Inner:
    a: int
    names: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class Outer:
    name: str
    inner: Inner
    rows: dict[str, Inner] = dataclasses.field(default_factory=dict)
    rate: float = 1.0
    optional: int | None = None


@pytest.mark.parametrize("data,message", [
    ({"name": "n", "inner": {"a": 1}, "colour": 1}, "f.yaml: colour: not a setting here (known: name, inner, rows, "
                                                    "rate, optional)"),
    ({"name": "n", "inner": {"a": "1"}}, "f.yaml: inner.a: expects int, got '1'"),
    ({"name": "n", "inner": {"a": True}}, "f.yaml: inner.a: expects int, got True"),
    ({"inner": {"a": 1}}, "f.yaml: name: is missing"),
    ({"name": "n", "inner": {"a": 1}, "rows": {"r": {"a": 2, "nmaes": []}}}, "f.yaml: rows.r.nmaes: not a setting "
                                                                             "here (did you mean names?)"),
    ({"name": "n", "inner": {"a": 1, "names": ["x", 2]}}, "f.yaml: inner.names[1]: expects str, got 2"),
    ({"name": "n", "inner": {"a": 1}, "rate": "fast"}, "f.yaml: rate: expects float, got 'fast'"),
    ({"name": "n", "inner": {"a": 1}, "rate": "100"}, "f.yaml: rate: expects float, got '100'"),
    ({"name": "n", "inner": {"a": 1}, "optional": "x"}, "f.yaml: optional: expects int, got 'x'"),
    ([1, 2], "f.yaml: expects a mapping of name, inner, rows, rate, optional, got [1, 2]"),
])
def test_bad_data_is_one_line_naming_the_key(data, message):
    with pytest.raises(ConfigError) as error:
        from_data(Outer, data, "f.yaml" + ROOT)
    assert str(error.value) == message


def test_good_data_is_typed_and_round_trips():
    data = {"name": "n", "inner": {"a": 1, "names": ["x"]}, "rows": {"r": {"a": 2}}, "rate": "1e-5"}
    value = from_data(Outer, data, "f.yaml" + ROOT)
    assert value == Outer("n", Inner(1, ("x",)), {"r": Inner(2)}, 1e-5)  # YAML 1.1 reads 1e-5 as text
    assert from_data(Outer, to_data(value), "again" + ROOT) == value


def _edit(source, change) -> dict:
    data = yaml.safe_load(source.read_text(encoding="utf-8"))
    change(data)
    return data


def _write(tmp_path: Path, data) -> Path:
    path = tmp_path / "edited.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True))
    return path


def _benchmarks(tmp_path, change):
    from evalsuite.benchmarks import spec_from_entry

    data = _edit(resources.files("evalsuite.benchmarks").joinpath("benchmarks.yaml"), change)
    return {name: spec_from_entry(name, entry) for name, entry in data.items()}


def _embedded(tmp_path, change):
    from vlora_eval.workflows.embedded import EmbeddedRecipe

    return read_yaml(_write(tmp_path, _edit(resources.files("vlora_eval.workflows").joinpath("embedded.yaml"),
                                            change)), EmbeddedRecipe)


def _sweep(tmp_path, change):
    from vlora_eval.workflows.sweeps import load_sweep

    return load_sweep(_write(tmp_path, _edit(resources.files("vlora_eval.configs").joinpath("rank.yaml"), change)))


def _crossover(tmp_path, change):
    from vlora.dispatch import CROSSOVER_TABLE, read_table

    return read_table(_write(tmp_path, _edit(CROSSOVER_TABLE, change)))


def _paper(tmp_path, change):
    from vlora.paper import PaperTables

    return read_yaml(_write(tmp_path, _edit(resources.files("vlora").joinpath("paper.yaml"), change)), PaperTables)


@pytest.mark.parametrize("reader,change,where", [
    (_benchmarks, lambda d: d["MME"].update(colour="red"), "benchmarks.yaml: MME: colour: not a setting here"),
    (_benchmarks, lambda d: d["MME"]["headline"].update(scale="x"), "benchmarks.yaml: MME: headline.scale: expects float"),
    (_embedded, lambda d: d.update(colour="red"), "edited.yaml: colour: not a setting here"),
    (_embedded, lambda d: d["mini_suite"].update(scale="4"), "edited.yaml: mini_suite.scale: expects int, got '4'"),
    (_embedded, lambda d: d["mini_suite"].update(train_scale=0), "edited.yaml: mini_suite: train_scale: must be at "
                                                                 "least 1, not 0"),
    (_embedded, lambda d: d["models"]["vlora"].update(preset="vlora-tiny"), "edited.yaml: models.vlora.preset: not a "
                                                                            "setting here"),
    (_sweep, lambda d: d["eval"].update(batch=4) if "eval" in d else d.update(eval={"batch": 4}),
     "edited.yaml: eval.batch: not a setting here (did you mean batch_size?)"),
    (_sweep, lambda d: d["base"].update(sett={}), "edited.yaml: base.sett: not a setting here (did you mean set?)"),
    (_crossover, lambda d: d["measurements"][0].update(colour=1), "edited.yaml: measurements[0].colour: not a setting"),
    (_crossover, lambda d: d["measurements"][0].update(rank="16"), "edited.yaml: measurements[0].rank: expects int"),
    (_paper, lambda d: d["tables"]["table2"].update(colour=1), "edited.yaml: tables.table2.colour: not a setting here"),
    (_paper, lambda d: d["tables"]["table4"]["rows"]["16"].update(scores=[1, 2]), "table4.rows.16.scores: 2 scores for "
                                                                                  "6 columns"),
])
def test_every_yaml_reader_refuses_an_unknown_or_ill_typed_key(tmp_path, reader, change, where):
    with pytest.raises(ConfigError) as error:
        reader(tmp_path, change)
    assert where in str(error.value) and "\n" not in str(error.value)


def test_the_shipped_files_read():
    from evalsuite.benchmarks import specs
    from vlora.dispatch import read_table
    from vlora.paper import paper_tables
    from vlora_eval.workflows.embedded import recipe
    from vlora_eval.workflows.sweeps import load_sweep, shipped

    assert len(specs()) >= 6 and read_table() and paper_tables().tables["table1"].rows["VLoRA"].gflops == 619
    assert recipe().mini_suite.scale >= 1
    assert shipped() == ["blocks", "main", "rank", "types"]
    for name in shipped():
        assert load_sweep(name).source == f"vlora_eval/configs/{name}.yaml"
    with pytest.raises(ConfigError, match="neither a file nor a shipped sweep"):
        load_sweep("ranks")
