"""Bootstrap intervals of headline numbers (evalsuite/uncertainty.py): degenerate intervals for an answer
key and an all-wrong model, intervals that hold the point score and narrow with more questions, units
that resampling never splits (circular copies, MME pairs, HallusionBench figure sets, kept strata), a
bootstrap mean near the point score for every protocol, determinism, and no global RNG touched."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest
from tsv_fixtures import b64_image, circular_table, yes_no_table

from evalsuite.benchmarks import PROTOCOLS, BenchmarkSpec, benchmark, spec_from_entry
from evalsuite.benchmarks.protocol import BenchmarkProtocol, images_first
from evalsuite.data import BenchmarkData, load_benchmark_data
from evalsuite.mini import write_mini_suite
from evalsuite.prompts import options_of
from evalsuite.scoring import score_predictions
from evalsuite.uncertainty import (
    Resampler,
    bootstrap_distribution,
    bootstrap_interval,
    score_draw,
    scored_rows,
    standard_error,
)
from vlora.errors import ConfigError

RULES = "2026-08"
M = 1_000_000
NAMES = ["MMBench_DEV_EN", "CCBench", "ScienceQA_VAL", "MMMU_DEV_VAL", "MME", "HallusionBench"]


@pytest.fixture(scope="module")
def mini(tmp_path_factory) -> dict[str, BenchmarkData]:
    paths = write_mini_suite(tmp_path_factory.mktemp("mini") / "suite", seed=0, scale=1)
    return {name: load_benchmark_data(benchmark(name), paths[name], check_images=False, embedded=True)
            for name in NAMES}


# --- predictions ----------------------------------------------------------------------------------------
def wrong(row: dict, yes_no: bool) -> str:
    """A wrong answer: the other of Yes / No, another option letter, or B ('Other Answers') for an open
    MMMU question."""
    if yes_no:
        return "No" if row["answer"] == "Yes" else "Yes"
    others = [letter for letter in options_of(row) if letter != row["answer"]]
    return others[0] if others else "B"


def predict(spec: BenchmarkSpec, table: pd.DataFrame, right: Callable[[dict], bool]) -> pd.DataFrame:
    """The answer where `right(row)`, a wrong one elsewhere."""
    rows = table.to_dict("records")
    answers = [str(r["answer"]) if right(r) else wrong(r, spec.type == "Y/N") for r in rows]
    return pd.DataFrame({"index": table["index"], "prediction": answers})


def mixed(spec: BenchmarkSpec, table: pd.DataFrame, p: float = 0.6, seed: int = 1) -> pd.DataFrame:
    """Each row right with probability p (a local generator)."""
    rng = random.Random(seed)
    return predict(spec, table, lambda row: rng.random() < p)


# --- degenerate and chance-like predictions -------------------------------------------------------------
@pytest.mark.parametrize("name", NAMES)
def test_answer_key_and_all_wrong_give_degenerate_intervals(mini, name):
    data = mini[name]
    key = predict(data.spec, data.table, lambda row: True)
    headline = score_predictions(data.spec, data.table, key, RULES).headline
    assert bootstrap_interval(data.spec, data.table, key, RULES, draws=10) == {n: (v, v) for n, v in headline.items()}
    nothing = predict(data.spec, data.table, lambda row: False)
    assert bootstrap_interval(data.spec, data.table, nothing, RULES, draws=10) == {n: (0.0, 0.0) for n in headline}


def coin_per_question(table: pd.DataFrame, seed: int) -> Callable[[dict], bool]:
    """Chance-like for CircularEval: each question (all its copies) right or wrong by a fair coin (random
    letters would make nearly every small-table question wrong: chance is 1 / k^k there)."""
    rng = random.Random(seed)
    coin = {g: rng.random() < 0.5 for g in sorted(set(table["index"] % M))}
    return lambda row: coin[row["index"] % M]


def coin_per_row(table: pd.DataFrame, seed: int) -> Callable[[dict], bool]:
    """Chance for yes / no: each answer a fair coin."""
    rng = random.Random(seed)
    return lambda row: rng.random() < 0.5


@pytest.mark.parametrize(("name", "make", "chance"), [
    ("MMBench_DEV_EN", circular_table, coin_per_question), ("MME", yes_no_table, coin_per_row)])
def test_chance_intervals_hold_the_point_and_narrow_with_more_questions(name, make, chance):
    spec = benchmark(name)
    widths = []
    for n in (12, 96):
        table = make(n)
        predictions = predict(spec, table, chance(table, seed=n))
        point = score_predictions(spec, table, predictions, RULES).headline
        label = next(iter(point))  # Overall; MME: perception (yes_no_table's subtasks are perception ones)
        low, high = bootstrap_interval(spec, table, predictions, RULES, draws=60)[label]
        assert low < point[label] < high
        widths.append(high - low)
    assert widths[1] < 0.6 * widths[0]  # 8x the questions: about 1/sqrt(8) of the width


# --- units are never split ------------------------------------------------------------------------------
def one_draw(data: BenchmarkData, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The table (with an `origin` column: the row's own index) and one resample of it."""
    table = data.table.assign(origin=data.table["index"])
    predictions = mixed(data.spec, table)
    drawn = Resampler.of(data.spec.handler, scored_rows(table, predictions)).draw(np.random.default_rng(seed))
    return table, drawn


def origins_by(frame: pd.DataFrame, keys: list) -> list[frozenset]:
    return [frozenset(group["origin"]) for _, group in frame.groupby(keys, sort=False)]


def test_circular_questions_are_drawn_with_all_their_copies(mini):
    data = mini["MMBench_DEV_EN"]
    table, drawn = one_draw(data)
    questions = set(origins_by(table, [table["index"] % M]))
    drawn_questions = origins_by(drawn, [drawn["index"] % M])
    assert drawn["index"].is_unique and set(drawn_questions) <= questions
    assert len(drawn_questions) == len(questions)  # one stratum (split dev): as many questions as the table
    assert max(Counter(drawn_questions).values()) > 1  # a question drawn twice ...
    verdicts = score_draw(data.spec, drawn, RULES).verdicts
    assert len(verdicts) == len(questions)  # ... is scored twice
    copies = {frozenset(g["origin"]): len(g) for _, g in table.groupby(table["index"] % M)}
    by_group = drawn.assign(g=drawn["index"] % M).groupby("g")["origin"].agg(frozenset)
    assert [copies[by_group[g]] for g in verdicts["index"]] == list(verdicts["copies"])


def test_circular_relabel_keeps_g_index_groups():
    table = circular_table(6)
    table["g_index"] = table["index"] % M
    spec = benchmark("MMBench_DEV_EN")
    predictions = predict(spec, table, lambda row: row["index"] % M < 3)
    drawn = Resampler.of(spec.handler, scored_rows(table, predictions)).draw(np.random.default_rng(2))
    assert (drawn["index"] % M == drawn["g_index"]).all() and drawn["index"].is_unique
    report = score_draw(spec, drawn, RULES)
    assert len(report.verdicts) == 6 and report.notes == []


def test_mme_pairs_stay_pairs_within_their_subtask(mini):
    data = mini["MME"]
    table, drawn = one_draw(data)
    pairs = set(origins_by(table, ["category", "image_path"]))
    drawn_pairs = drawn.groupby(["category", "image_path"])
    assert drawn["index"].is_unique and all(len(g) == 2 and set(g["answer"]) == {"Yes", "No"} for _, g in drawn_pairs)
    assert set(origins_by(drawn, ["category", "image_path"])) <= pairs
    assert (drawn.groupby("category")["image_path"].nunique() == table.groupby("category")["image_path"].nunique()).all()
    assert not any("without both questions" in note for note in score_draw(data.spec, drawn, RULES).notes)


def test_hallusionbench_figure_sets_stay_whole(mini):
    data = mini["HallusionBench"]
    table, drawn = one_draw(data)

    def set_field(frame):
        return frame["index"].str.split("_").str[3]

    sets = set(origins_by(table, ["l2-category", set_field(table)]))
    drawn_sets = origins_by(drawn, ["l2-category", set_field(drawn)])
    assert drawn["index"].is_unique and set(drawn_sets) <= sets and len(drawn_sets) == len(sets)
    figures = {s: table[table["origin"].isin(s)]["index"].str.split("_").str[4].nunique() for s in sets}
    verdicts = score_draw(data.spec, drawn, RULES).verdicts
    assert verdicts.groupby(["l2-category", "set_id", "figure_id"]).ngroups == sum(figures[s] for s in drawn_sets)


def test_strata_keep_splits(mini):
    data = mini["MMMU_DEV_VAL"]
    table, drawn = one_draw(data, seed=5)
    assert (drawn["split"].value_counts().sort_index() == table["split"].value_counts().sort_index()).all()
    assert drawn["index"].is_unique and len(drawn) == len(table)


def test_only_rows_with_a_prediction_are_resampled(mini):
    data = mini["MMBench_DEV_EN"]
    half = data.table[data.table["index"] % M < 16]
    key = predict(data.spec, half, lambda row: True)
    drawn = Resampler.of(data.spec.handler, scored_rows(data.table, key)).draw(np.random.default_rng(0))
    assert len(set(drawn["index"] % M)) == 16 and score_draw(data.spec, drawn, RULES).missing_rows == 0
    assert bootstrap_interval(data.spec, data.table, key, RULES, draws=5) == {"Overall": (100.0, 100.0)}


# --- the distribution is of the point score ---------------------------------------------------------------
@pytest.mark.parametrize("name", NAMES)
def test_bootstrap_mean_is_near_the_point_score(mini, name):
    data = mini[name]
    predictions = mixed(data.spec, data.table)
    point = score_predictions(data.spec, data.table, predictions, RULES).headline
    distribution = bootstrap_distribution(data.spec, data.table, predictions, RULES, draws=60)
    assert distribution.keys() == point.keys()
    for label, values in distribution.items():
        sd = values.std(ddof=1)
        assert 0 < sd and abs(values.mean() - point[label]) < 4 * sd / np.sqrt(len(values)) + 0.02 * sd, label
        low, high = np.quantile(values, [0.025, 0.975])
        assert low <= point[label] <= high


def test_standard_error_is_the_spread_of_the_draws(mini):
    data = mini["ScienceQA_VAL"]
    predictions = mixed(data.spec, data.table)
    values = bootstrap_distribution(data.spec, data.table, predictions, RULES, draws=20, seed=3)["Overall"]
    assert standard_error(data.spec, data.table, predictions, RULES, draws=20, seed=3) == {
        "Overall": pytest.approx(values.std(ddof=1))}


# --- determinism, global RNG, errors -------------------------------------------------------------------
def test_deterministic_per_seed_and_the_global_rng_is_untouched(mini):
    data = mini["HallusionBench"]
    predictions = mixed(data.spec, data.table)
    random.seed(11)
    np.random.seed(11)
    python_state, numpy_state = random.getstate(), np.random.get_state()
    first = bootstrap_interval(data.spec, data.table, predictions, RULES, draws=20, seed=7)
    assert random.getstate() == python_state
    after = np.random.get_state()
    assert after[0] == numpy_state[0] and np.array_equal(after[1], numpy_state[1]) and after[2:] == numpy_state[2:]
    assert bootstrap_interval(data.spec, data.table, predictions, RULES, draws=20, seed=7) == first
    assert bootstrap_interval(data.spec, data.table, predictions, RULES, draws=20, seed=8) != first


def test_bad_arguments_are_refused(mini):
    data = mini["ScienceQA_VAL"]
    predictions = mixed(data.spec, data.table)
    with pytest.raises(ValueError, match="draws"):
        bootstrap_interval(data.spec, data.table, predictions, RULES, draws=1)
    with pytest.raises(ValueError, match="level"):
        bootstrap_interval(data.spec, data.table, predictions, RULES, level=95)


class NoUnitsProtocol(BenchmarkProtocol):
    """A protocol that scores but has no bootstrap unit rule."""

    name = "no_units"
    type = "Y/N"

    def value_problem(self, answer, row):
        return None

    def message(self, line, n_images, style):
        return images_first(n_images, str(line["question"]))

    def choices(self, line):
        return ()

    def score(self, df, rules):
        verdicts = df.assign(hit=(df["prediction"] == df["answer"]).astype(int))
        return verdicts, pd.DataFrame([{"accuracy": verdicts["hit"].mean()}]), []


def test_a_protocol_without_a_unit_rule_is_an_error(monkeypatch):
    monkeypatch.setitem(PROTOCOLS, "no_units", NoUnitsProtocol())
    spec = spec_from_entry("NoUnits", {"protocol": "no_units", "md5": {},
                                       "headline": {"row": "first", "columns": {"accuracy": "accuracy"}, "scale": 100}})
    table = pd.DataFrame({"index": [0, 1], "question": ["q", "q"], "answer": ["a", "b"],
                          "image": [b64_image((1, 2, 3)), "0"]})
    predictions = pd.DataFrame({"index": [0, 1], "prediction": ["a", "c"]})
    assert score_predictions(spec, table, predictions, RULES).headline == {"accuracy": 50.0}
    with pytest.raises(ConfigError, match="no_units protocol has no bootstrap unit rule"):
        bootstrap_interval(spec, table, predictions, RULES, draws=5)
