"""Scoring protocols with hand-worked expectations: circular groups, vanilla, MMMU open questions,
MME image pairs, HallusionBench figure / question groups, partial predictions, headline numbers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from evalsuite.benchmarks import benchmark
from evalsuite.benchmarks.mcq import score_circular, score_mmmu, score_vanilla
from evalsuite.benchmarks.yes_no import score_hallusionbench, score_mme
from evalsuite.errors import DataError
from evalsuite.scoring import score_predictions

M = 1_000_000


def _circular_rows(g, options, answer, category="attribute_recognition", l2="attribute_reasoning"):
    """The k rotated copies of one question, as vlmutil circular builds them."""
    from collections import deque

    labels = "ABCD"[:len(options)]
    rows = []
    for j in range(len(options)):
        rot = deque(labels)
        rot.rotate(j)
        new = {rot[i]: options[i] for i in range(len(options))}
        rows.append({"index": g + j * M, "question": "Q", **new, "answer": rot[labels.index(answer)],
                     "category": category, "l2-category": l2, "split": "dev"})
    return rows


def test_circular_groups():
    rows = (_circular_rows(0, ["red", "blue", "green", "pink"], "A")          # all right -> 1
            + _circular_rows(1, ["one", "two", "three", "four"], "B")         # one copy wrong -> 0
            + _circular_rows(2, ["yes", "no"], "B", category="ocr")           # 2 options, both right -> 1
            + _circular_rows(3, ["up", "down", "left"], "C", category="ocr")  # a copy unparseable -> 0
            + _circular_rows(4, ["a", "b", "c", "d"], "D", l2="logic_reasoning"))  # a copy missing, rest right -> 1
    df = pd.DataFrame(rows)
    df["prediction"] = df["answer"]
    df.loc[df["index"] == 1 + 2 * M, "prediction"] = "A" if df.loc[df["index"] == 1 + 2 * M, "answer"].item() != "A" else "B"
    df.loc[df["index"] == 3 + 1 * M, "prediction"] = "I cannot tell"
    df = df[df["index"] != 4 + 3 * M]  # copy 3 of question 4 has no prediction
    verdicts, table, notes = score_circular(df, "2024-05")
    assert dict(zip(verdicts["index"], verdicts["hit"], strict=True)) == {0: 1, 1: 0, 2: 1, 3: 0, 4: 1}
    assert dict(zip(verdicts["index"], verdicts["copies"], strict=True)) == {0: 4, 1: 4, 2: 2, 3: 3, 4: 3}
    row = table.iloc[0]
    assert row["split"] == "dev" and row["Overall"] == pytest.approx(3 / 5)
    assert row["AR"] == pytest.approx(2 / 4) and row["LR"] == 1.0  # l2-categories, abbreviated
    assert row["ocr"] == pytest.approx(1 / 2) and row["attribute_recognition"] == pytest.approx(2 / 3)
    assert notes == []


def test_circular_group_without_main_row_is_not_scored():
    df = pd.DataFrame(_circular_rows(7, ["x", "y"], "A"))
    df["prediction"] = df["answer"]
    verdicts, _, notes = score_circular(df[df["index"] != 7], "2024-05")
    assert verdicts.empty and "not scored" in notes[0]


def test_circular_answers_mapped_through_rotation():
    rows = _circular_rows(0, ["red", "blue", "green", "pink"], "A")
    assert [r["answer"] for r in rows] == ["A", "D", "C", "B"]  # deque.rotate(j): old A gets the letter rot[0]
    assert rows[1]["D"] == "red" and rows[1]["A"] == "blue"  # j = 1: new D = old A, new A = old B
    # the correct option's text is the same in every copy
    assert all(r[r["answer"]] == "red" for r in rows)


def test_vanilla_scienceqa():
    df = pd.DataFrame({"index": [1, 2, 3, 4], "question": ["q"] * 4, "A": ["cat", "dog", "x", "sun"],
                       "B": ["dog", "cat", "y", "moon"], "answer": ["A", "B", "A", "B"],
                       "prediction": ["A", "The answer is cat", "C", "moon"], "split": ["val"] * 4})
    verdicts, table, _ = score_vanilla(df, "2024-05")
    assert list(verdicts["extracted"]) == ["A", "B", "Z", "B"] and list(verdicts["hit"]) == [1, 1, 0, 1]
    assert table.iloc[0]["Overall"] == pytest.approx(0.75)


def test_mmmu_open_questions():
    df = pd.DataFrame({"index": [1, 2, 3, 4, 5], "question": ["q"] * 5,
                       "A": [np.nan, np.nan, np.nan, "x", np.nan], "B": [np.nan, np.nan, np.nan, "y", np.nan],
                       "answer": ["42", "red", "7", "B", "C"],
                       "prediction": ["It is 42.", "Other Answers", "seven", "B", "C"],
                       "split": ["validation"] * 4 + ["dev"], "l2-category": ["Math", "Art", "Math", "Art", "Art"],
                       "category": ["Science", "Art & Design", "Science", "Art & Design", "Art & Design"]})
    verdicts, table, notes = score_mmmu(df, "2024-05")
    assert list(verdicts["GT"]) == ["A", "A", "A", "B", "C"]  # an open answer "C" is a capital letter: kept
    assert list(verdicts["A"][:3]) == ["42", "red", "7"] and list(verdicts["B"][:3]) == ["Other Answers"] * 3
    assert list(verdicts["hit"]) == [1, 0, 0, 1, 0]  # row 5: A = 'C', B = 'Other Answers', GT 'C' unreachable
    validation = table[table["split"] == "validation"].iloc[0]
    assert validation["Overall"] == pytest.approx(0.5) and validation["Math"] == pytest.approx(0.5)
    assert validation["Science"] == pytest.approx(0.5) and np.isnan(table[table["split"] == "dev"].iloc[0]["Math"])
    assert "4 open question(s)" in notes[0]


def _mme_rows():
    rows = []
    for category, pairs in (("color", [("Yes", "No"), ("Yes", "Yes")]), ("count", [("Yes", "No")])):
        for i, (first, second) in enumerate(pairs):
            path = f"{category}/{i}.jpg"
            rows += [{"index": len(rows), "question": "Is it? Please answer yes or no.", "answer": "Yes",
                      "category": category, "image_path": path, "prediction": first},
                     {"index": len(rows) + 1, "question": "Is it? Please answer yes or no.", "answer": "No",
                      "category": category, "image_path": path, "prediction": second}]
    return pd.DataFrame(rows)


def test_mme_pairs():
    verdicts, table, notes = score_mme(_mme_rows(), "2024-05")
    row = table.iloc[0]
    assert list(verdicts["score"]) == [1, 1, 1, 0, 1, 1]
    assert row["color"] == pytest.approx(75 + 50)  # acc 3/4, acc+ 1/2
    assert row["count"] == pytest.approx(200)
    assert row["perception"] == pytest.approx(325) and row["reasoning"] == 0
    assert any("no predictions" in n for n in notes)


def test_mme_image_with_one_question_is_left_out_of_acc_plus():
    rows = _mme_rows().iloc[:5]  # the count image lost its second question
    _, table, notes = score_mme(rows, "2024-05")
    assert table.iloc[0]["color"] == pytest.approx(125)
    assert table.iloc[0]["count"] == pytest.approx(100 + 0)  # acc 1/1; acc+ has no complete pair
    assert any(n.startswith("count: 1 image(s) without both questions") for n in notes)


def test_hallusionbench_groups():
    index = ["VD_figure_1_0_0_0", "VD_figure_1_0_0_1", "VD_figure_1_0_1_0", "VD_figure_1_0_1_1",
             "VS_chart_1_1_0_0", "VS_chart_1_1_1_0"]
    df = pd.DataFrame({"index": index, "question": ["q"] * 6, "answer": ["Yes"] * 6,
                       "category": ["VD"] * 4 + ["VS"] * 2, "l2-category": ["VD_figure"] * 4 + ["VS_chart"] * 2,
                       "prediction": ["yes", "Yes.", "yes", "no", "Yes", "yes"]})
    _, table, _ = score_hallusionbench(df, "2024-05")
    overall = table[table["split"] == "Overall"].iloc[0]
    assert overall["aAcc"] == pytest.approx(500 / 6)  # 5 of 6 right
    assert overall["fAcc"] == pytest.approx(75)  # figures (set, figure): 3 of 4 all right
    assert overall["qAcc"] == pytest.approx(200 / 3)  # questions (set, question): 2 of 3 all right
    assert overall["Avg"] == pytest.approx((500 / 6 + 75 + 200 / 3) / 3)
    assert list(table["split"]) == ["Overall", "VD", "VS", "VD_figure", "VS_chart"]


def test_headline_and_partial_predictions():
    spec = benchmark("mme")
    meta = _mme_rows().drop(columns=["prediction"])
    predictions = _mme_rows()[["index", "prediction"]].iloc[:4]
    report = score_predictions(spec, meta, predictions, "2024-05")
    assert report.missing_rows == 2 and report.scored_rows == 4
    assert report.headline["perception"] == pytest.approx(125)
    assert report.notes[0].startswith("2 of 6 rows have no prediction")
    assert list(report.headline) == ["perception", "cognition (reasoning)", "total"]


def test_predictions_outside_the_benchmark_are_an_error():
    meta = _mme_rows().drop(columns=["prediction"])
    stray = pd.DataFrame({"index": [99], "prediction": ["Yes"]})
    with pytest.raises(DataError, match="index 99 is not a row of MME"):
        score_predictions(benchmark("MME"), meta, stray, "2024-05")


def test_benchmark_names_and_aliases():
    assert benchmark("mmbench").name == "MMBench_DEV_EN" and benchmark("MMMU").name == "MMMU_DEV_VAL"
    assert benchmark("sqa").protocol == "vanilla" and benchmark("HallusionBench").type == "Y/N"
    assert not benchmark("MMBench_TEST_EN").answers
