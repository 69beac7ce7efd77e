"""The protocol contract: every protocol registered with its columns, answer checks, identity checks,
prompts and choices; the YAML's headline is what the headline numbers read; a new protocol is one class
plus a YAML entry; evaluation and the mini-suite's training data share LLaVA's MCQ prompt."""

from __future__ import annotations

import random

import pandas as pd
import pytest
from tsv_fixtures import b64_image, circular_table, write_tsv, yes_no_table

import evalsuite.mini.items as items
import evalsuite.mini.training as training
from evalsuite import prompts
from evalsuite.benchmarks import PROTOCOLS, benchmark, spec_from_entry, specs
from evalsuite.benchmarks.mcq import llava_row_prompt
from evalsuite.benchmarks.protocol import BenchmarkProtocol, images_first
from evalsuite.data import load_benchmark_data
from evalsuite.errors import DataError
from evalsuite.requests import row_prompt
from evalsuite.scoring import score_predictions
from vlora.errors import ConfigError

BASE = ("index", "question", "image", "answer")


def _entry(name: str, **changes) -> dict:
    """The YAML entry of `name` as the file holds it, with `changes`."""
    spec = benchmark(name)
    headline = {"row": spec.headline.row, "scale": spec.headline.scale,
                "columns": {label: list(cols) for label, cols in spec.headline.columns.items()}}
    return {"protocol": spec.protocol, "md5": spec.md5, "url": spec.url, "headline": headline, **changes}


class Card:
    """The two things row_prompt asks of a model card."""

    def __init__(self, custom: tuple[str, ...] = ("MCQ",), max_images: int | None = None):
        self.custom, self.max_images = custom, max_images

    def prompt_style(self, dataset_type: str | None) -> str:
        return "llava_mcq" if dataset_type in self.custom else "dataset"


# --- registration ---------------------------------------------------------------------------------------
def test_every_protocol_is_registered_with_its_type_and_columns():
    assert set(PROTOCOLS) == {"circular", "vanilla", "mmmu", "mme", "hallusionbench"}
    assert {name: p.type for name, p in PROTOCOLS.items()} == {
        "circular": "MCQ", "vanilla": "MCQ", "mmmu": "MCQ", "mme": "Y/N", "hallusionbench": "Y/N"}
    expected = {"circular": BASE, "vanilla": BASE, "mmmu": BASE, "mme": BASE + ("category", "image_path"),
                "hallusionbench": BASE + ("category", "l2-category")}
    for name, protocol in PROTOCOLS.items():
        assert protocol.name == name and protocol.required_columns(True) == expected[name]
        assert "answer" not in protocol.required_columns(False)


def test_specs_take_their_protocol_object_and_type_from_the_yaml():
    for spec in specs().values():
        assert spec.handler is PROTOCOLS[spec.protocol] and spec.type == spec.handler.type
        assert (spec.headline is None) == (not spec.answers)
    assert benchmark("MMBench_TEST_EN").headline is None


@pytest.mark.parametrize("changes,fragment", [
    ({"protocol": "circularr"}, "benchmarks.yaml: Toy: protocol: unknown protocol 'circularr'"),
    ({"type": "MCQ"}, "benchmarks.yaml: Toy: type: not a setting here"),
    ({"headline": {"row": "dev", "column": "Overall", "scale": 100}}, "benchmarks.yaml: Toy: headline.column: not a "
                                                                      "setting here (did you mean columns?)"),
    ({"headline": {"row": "dev", "columns": {"Overall": 3}, "scale": 100}}, "Toy: headline.columns.Overall: expects"),
    ({"headline": {"row": "dev", "columns": {"Overall": "Overall"}, "scale": "100"}},
     "Toy: headline.scale: expects float, got '100'"),
    ({"answers": False}, "without answers has none"),
])
def test_a_malformed_yaml_entry_is_a_config_error_naming_it(changes, fragment):
    with pytest.raises(ConfigError) as error:
        spec_from_entry("Toy", _entry("MMBench_DEV_EN", **changes))
    assert fragment in str(error.value)


# --- the YAML's headline is what is reported ------------------------------------------------------------
def _hallusion_table() -> pd.DataFrame:
    return pd.DataFrame({"index": [f"VD_figure_1_0_{f}_{q}" for f in (0, 1) for q in (0, 1)],
                         "question": ["Q?"] * 4, "answer": ["Yes", "No", "No", "Yes"],
                         "category": ["VD"] * 4, "l2-category": ["VD_figure"] * 4})


def test_the_headline_columns_are_the_yaml_ones():
    meta = _hallusion_table()
    predictions = pd.DataFrame({"index": meta["index"], "prediction": ["Yes", "No", "Yes", "Yes"]})
    shipped = score_predictions(benchmark("HallusionBench"), meta, predictions, "2026-08")
    assert list(shipped.headline) == ["Avg", "aAcc", "fAcc", "qAcc"]
    assert shipped.headline["aAcc"] == pytest.approx(75) and shipped.headline["fAcc"] == pytest.approx(50)
    edited = spec_from_entry("HallusionBench", _entry("HallusionBench", headline={
        "row": "VD_figure", "columns": {"figures": "fAcc", "a+f": ["aAcc", "fAcc"]}, "scale": 2}))
    report = score_predictions(edited, meta, predictions, "2026-08")
    assert report.headline == {"figures": pytest.approx(100), "a+f": pytest.approx(250)}
    assert report.table.equals(shipped.table)  # the scorer is the same; only the reading changed


def test_the_headline_row_is_the_yaml_split():
    table = circular_table(3).drop(columns=["image"])
    table.loc[table["index"] % 1_000_000 == 2, "split"] = "test"  # question 2 is of split test
    predictions = pd.DataFrame({"index": table["index"], "prediction": table["answer"]})
    predictions.loc[predictions["index"] % 1_000_000 == 0, "prediction"] = "Z"  # question 0 (dev) wrong
    dev = score_predictions(benchmark("MMBench_DEV_EN"), table, predictions, "2026-08")
    test = score_predictions(spec_from_entry("MMBench_DEV_EN", _entry("MMBench_DEV_EN", headline={
        "row": "test", "columns": {"Overall": "Overall"}, "scale": 100})), table, predictions, "2026-08")
    assert dev.headline == {"Overall": pytest.approx(50)} and test.headline == {"Overall": pytest.approx(100)}


def test_a_headline_column_the_table_lacks_is_a_config_error():
    spec = spec_from_entry("MME", _entry("MME", headline={"row": "first", "columns": {"x": "cognition"}, "scale": 1}))
    meta = yes_no_table(1).drop(columns=["image"])
    with pytest.raises(ConfigError, match=r"headline column\(s\) \['cognition'\] are not in the mme score table"):
        score_predictions(spec, meta, meta.assign(prediction="Yes")[["index", "prediction"]], "2026-08")


# --- answer and identity checks -------------------------------------------------------------------------
@pytest.mark.parametrize("protocol,good,bad,fragment", [
    ("circular", {"A": "x", "B": "y", "answer": "B"}, {"A": "x", "B": "y", "answer": "C"}, "not among the options"),
    ("vanilla", {"A": "x", "B": "y", "answer": "A"}, {"A": "x", "B": "y", "answer": "x"}, "not among the options"),
    ("mmmu", {"answer": "42"}, {"A": "x", "B": "y", "answer": "42"}, "not among the options"),
    ("mme", {"answer": "No"}, {"answer": "no"}, "is not Yes or No"),
    ("hallusionbench", {"answer": "Yes"}, {"answer": "True"}, "is not Yes or No"),
])
def test_each_protocol_checks_its_answers(protocol, good, bad, fragment):
    check = PROTOCOLS[protocol].answer_problem
    assert check(pd.Series(good)) is None
    assert fragment in check(pd.Series(bad))
    assert check(pd.Series({**good, "answer": float("nan")})) == "no answer"


def test_identity_checks_belong_to_the_protocol():
    table = circular_table(2)
    assert benchmark("MMBench_DEV_EN").handler.identity_problem(table, benchmark("MMBench_DEV_EN")) is None
    named = table.assign(index=[f"q{i}" for i in range(len(table))])
    assert "is not an integer" in PROTOCOLS["circular"].identity_problem(named, benchmark("MMBench_DEV_EN"))
    assert "no row of split 'validation'" in PROTOCOLS["mmmu"].identity_problem(table, benchmark("MMMU_DEV_VAL"))
    assert "no row of split 'none'" in PROTOCOLS["circular"].identity_problem(table, benchmark("CCBench"))
    assert PROTOCOLS["circular"].identity_problem(table.drop(columns=["split"]), benchmark("CCBench")) is None
    assert PROTOCOLS["hallusionbench"].identity_problem(table, benchmark("HallusionBench")) is None


# --- prompts, choices, question counts ------------------------------------------------------------------
def test_messages_and_choices_follow_the_protocol():
    mcq = {"index": 0, "question": "Which?", "hint": "Look.", "A": "red", "B": "blue", "answer": "A"}
    dataset = "Hint: Look.\nQuestion: Which?\nOptions:\nA. red\nB. blue\nPlease select the correct answer from the options above. \n"
    llava = "Look.\nWhich?\nA. red\nB. blue\nAnswer with the option's letter from the given choices directly."
    for name in ("circular", "vanilla", "mmmu"):
        assert PROTOCOLS[name].message(mcq, 1, "dataset") == images_first(1, dataset)
        assert PROTOCOLS[name].message(mcq, 1, "llava_mcq") == images_first(1, llava)
        assert PROTOCOLS[name].choices(mcq) == ("A", "B")
    mmmu = {"index": 1, "question": "Compare <image 2> with <image 1>.", "answer": "7"}
    assert [m["type"] for m in PROTOCOLS["mmmu"].message(mmmu, 2, "dataset")] == ["text", "image", "text", "image", "text"]
    assert PROTOCOLS["mmmu"].choices(mmmu) == () and PROTOCOLS["mmmu"].unknown_images(mmmu, 1) == 1
    assert PROTOCOLS["vanilla"].unknown_images(mmmu, 1) == 0
    yes_no = {"index": 2, "question": "Is it red? Please answer yes or no.", "answer": "Yes"}
    for name in ("mme", "hallusionbench"):
        for style in ("dataset", "llava_mcq"):
            assert PROTOCOLS[name].message(yes_no, 2, style) == images_first(2, yes_no["question"])
        assert PROTOCOLS[name].choices(yes_no) == ("Yes", "No")
    prompt = row_prompt(benchmark("MMMU_DEV_VAL"), mmmu, 2, Card(custom=()), "likelihood")
    assert prompt.choices == () and prompt.unknown_images == 0
    assert row_prompt(benchmark("MME"), yes_no, 1, Card(), "likelihood").choices == ("Yes", "No")


def test_questions_are_counted_by_the_protocol():
    table = circular_table(4)  # 2 + 3 + 4 + 2 rotated copies of 4 questions
    assert len(table) == 11 and PROTOCOLS["circular"].question_count(table) == 4
    assert PROTOCOLS["vanilla"].question_count(table) == 11 and PROTOCOLS["mme"].question_count(yes_no_table(3)) == 6


# --- a new protocol: one class and a YAML entry ---------------------------------------------------------
class LeftRightProtocol(BenchmarkProtocol):
    name = "left_right"
    type = "Y/N"
    columns = ("side",)

    def value_problem(self, answer, row):
        return None if answer in ("left", "right") else f"{answer!r} is not left or right"

    def message(self, line, n_images, style):
        return images_first(n_images, f"{line['question']} Answer left or right.")

    def choices(self, line):
        return ("left", "right")

    def score(self, df, rules):
        verdicts = df.assign(hit=(df["prediction"].str.strip().str.lower() == df["answer"]).astype(int))
        return verdicts, pd.DataFrame([{"accuracy": verdicts["hit"].mean()}]), []


def test_a_new_protocol_is_one_class_and_a_yaml_entry(tmp_path, monkeypatch):
    monkeypatch.setitem(PROTOCOLS, "left_right", LeftRightProtocol())
    spec = spec_from_entry("Sides", {"protocol": "left_right", "md5": {},
                                     "headline": {"row": "first", "columns": {"accuracy": "accuracy"}, "scale": 100}})
    table = pd.DataFrame({"index": [0, 1], "question": ["Where is the dot?"] * 2, "side": ["a", "b"],
                          "answer": ["left", "right"], "image": [b64_image((9, 9, 9)), "0"]})
    data = load_benchmark_data(spec, write_tsv(table, tmp_path / "Sides.tsv"))
    prompt = row_prompt(spec, data.table.iloc[0].to_dict(), 1, Card(), "likelihood")
    assert prompt.message[-1]["value"] == "Where is the dot? Answer left or right." and prompt.choices == ("left", "right")
    report = score_predictions(spec, data.table, pd.DataFrame({"index": [0, 1], "prediction": ["Left", "left"]}), "2026-08")
    assert report.headline == {"accuracy": pytest.approx(50)}
    with pytest.raises(DataError, match="column answer: 'up' is not left or right"):
        load_benchmark_data(spec, write_tsv(table.assign(answer=["left", "up"]), tmp_path / "bad.tsv"))
    with pytest.raises(DataError, match=r"missing column\(s\) \['side'\]"):
        load_benchmark_data(spec, write_tsv(table.drop(columns=["side"]), tmp_path / "short.tsv"))


# --- one LLaVA MCQ prompt for evaluation and training ---------------------------------------------------
def test_the_training_data_asks_mcq_as_evaluation_does(monkeypatch):
    """Every multiple-choice prompt of the mini-suite's training data is the evaluation prompt of the
    benchmark row holding that question, hint and options (English and Chinese)."""
    assert items.llava_mcq_prompt is prompts.llava_mcq_prompt
    calls = []

    def recording(question, options, hint=None):
        calls.append((question, dict(options), hint, prompts.llava_mcq_prompt(question, options, hint)))
        return calls[-1][-1]

    monkeypatch.setattr(items, "llava_mcq_prompt", recording)
    rng = random.Random(5)
    scenes = training.training_scenes(rng, 60, set())
    records = [training.instruction_record(f"r{i}", "x.png", scenes[i % 60][0], rng) for i in range(400)]
    turns = {t["value"].removeprefix("<image>\n") for r in records for t in r["conversations"] if t["from"] == "human"}
    assert len(calls) > 100 and all(call[-1] in turns for call in calls)
    assert any(p.endswith("请直接回答选项字母。") for *_, p in calls)
    assert any(p.endswith("from the given choices directly.") for *_, p in calls)
    assert any(hint for _, _, hint, _ in calls)
    for question, options, hint, prompt in calls:
        line = {"index": 0, "question": question, "hint": hint, **options}
        assert llava_row_prompt(line) == prompt
        for name in ("circular", "vanilla", "mmmu"):
            assert PROTOCOLS[name].message(line, 1, "llava_mcq") == images_first(1, prompt)
