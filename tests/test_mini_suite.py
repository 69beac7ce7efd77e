"""The mini-suite (evalsuite/mini): the six TSVs follow VLMEvalKit's formats exactly (read back with pandas
only), answers follow from the scene truth, the training data shares no scene with a benchmark (its formats:
tests/test_mini_training.py), and the output is deterministic."""

from __future__ import annotations

import ast
import base64
import hashlib
import io
import json
import random
import re
import string
from collections import deque
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from evalsuite.mini import write_mini_suite
from evalsuite.mini.claims import CLAIM_TYPES, ask, claims, truth
from evalsuite.mini.questions import MCQ_EN
from evalsuite.mini.world import COLORS, FRENCH, SIDES, pixel_key, random_scene, tallest

M = 1_000_000
NAMES = ["MMBench_DEV_EN", "CCBench", "MME", "HallusionBench", "ScienceQA_VAL", "MMMU_DEV_VAL"]
COLUMNS = {
    "MMBench_DEV_EN": ["index", "question", "hint", "A", "B", "C", "D", "answer", "category", "l2-category",
                       "split", "image"],
    "CCBench": ["index", "question", "A", "B", "C", "D", "answer", "category", "image"],
    "MME": ["index", "image", "question", "answer", "category", "image_path"],
    "HallusionBench": ["index", "image", "question", "answer", "category", "l2-category"],
    "ScienceQA_VAL": ["index", "question", "hint", "A", "B", "C", "D", "E", "answer", "category", "split",
                      "image"],
    "MMMU_DEV_VAL": ["index", "question", *"ABCDEFGHI", "answer", "split", "id", "category", "l2-category",
                     "image"],
}
MME_CATEGORIES = {"OCR", "artwork", "celebrity", "color", "count", "existence", "landmark", "position",
                  "posters", "scene", "code_reasoning", "commonsense_reasoning", "numerical_calculation",
                  "text_translation"}
MMBENCH_L2 = {"coarse_perception", "finegrained_perception (instance-level)",
              "finegrained_perception (cross-instance)", "logic_reasoning", "relation_reasoning",
              "attribute_reasoning"}
HALLUSION_L2 = {"VD_figure", "VD_illusion", "VD_math", "VD_ocr", "VD_video", "VS_chart", "VS_map", "VS_ocr",
                "VS_table"}
DISCIPLINES = {"Art & Design", "Science", "Tech & Engineering", "Humanities & Social Science", "Business",
               "Health & Medicine"}


@pytest.fixture(scope="module")
def suite(tmp_path_factory) -> dict[str, Path]:
    return write_mini_suite(tmp_path_factory.mktemp("mini") / "out", seed=0, scale=1)


@pytest.fixture(scope="module")
def tables(suite) -> dict[str, pd.DataFrame]:
    return {name: pd.read_csv(suite[name], sep="\t") for name in NAMES}


def missing(value) -> bool:
    return not isinstance(value, str) and pd.isna(value)


def options(row) -> list[str]:
    return [c for c in string.ascii_uppercase if c in row and not missing(row[c])]


def images_of(cell) -> list[str]:
    return [str(x) for x in ast.literal_eval(cell)] if cell.startswith("[") else [cell]


def decode(b64: str) -> Image.Image:
    image = Image.open(io.BytesIO(base64.b64decode(b64)))
    image.load()
    return image


def image_of(table: pd.DataFrame, row) -> Image.Image:
    cell = row["image"]
    if len(cell) <= 64:
        cell = table.loc[table["index"].astype(str) == cell, "image"].iloc[0]
    return decode(images_of(cell)[0])


def components(image: Image.Image) -> int:
    """Connected blobs of non-background pixels (4-neighbours)."""
    pixels = np.asarray(image.convert("RGB")).astype(int)
    flat = pixels.reshape(-1, 3)
    colors, counts = np.unique(flat, axis=0, return_counts=True)
    mask = (pixels != colors[counts.argmax()]).any(axis=2)
    seen, blobs, (h, w) = np.zeros_like(mask), 0, mask.shape
    for y0, x0 in zip(*np.nonzero(mask), strict=True):
        if seen[y0, x0]:
            continue
        blobs += 1
        stack = [(y0, x0)]
        seen[y0, x0] = True
        while stack:
            y, x = stack.pop()
            for ny, nx in ((y + 1, x), (y - 1, x), (y, x + 1), (y, x - 1)):
                if 0 <= ny < h and 0 <= nx < w and mask[ny, nx] and not seen[ny, nx]:
                    seen[ny, nx] = True
                    stack.append((ny, nx))
    return blobs


def tree_digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


# --- layout and common format rules ---------------------------------------------------------------------

def test_layout(suite):
    out = suite["MME"].parent
    assert set(suite) == {*NAMES, "pretrain", "finetune"}
    for name in NAMES:
        assert suite[name] == out / f"{name}.tsv" and suite[name].is_file()
    assert suite["pretrain"] == out / "train" / "pretrain.json"
    assert suite["finetune"] == out / "train" / "finetune.json"
    assert (out / "README.md").read_text(encoding="utf-8").strip()
    assert list((out / "train" / "images").glob("*.png"))
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    assert size < 5 * 2**20


@pytest.mark.parametrize("name", NAMES)
def test_columns_indexes_and_images(tables, name):
    table = tables[name]
    assert list(table.columns) == COLUMNS[name]
    assert table["index"].astype(str).is_unique
    stored = {str(i): cell for i, cell in zip(table["index"], table["image"], strict=True)
              if not missing(cell) and len(cell) > 64}
    for cell in table["image"]:
        if missing(cell):
            continue
        if len(cell) <= 64:  # a reference: resolves to a row holding an image
            assert cell in stored
            continue
        for b64 in images_of(cell):
            assert len(b64) > 64
            image = decode(b64)
            assert image.format == "PNG" and image.mode == "RGB"
    for column in table.columns:
        if re.fullmatch("[A-I]", column):  # option cells are text (never read back as numbers)
            assert all(isinstance(v, str) for v in table[column] if not missing(v)), column


@pytest.mark.parametrize("name", ["MMBench_DEV_EN", "CCBench", "ScienceQA_VAL", "MMMU_DEV_VAL"])
def test_mcq_answers(tables, name):
    for _, row in tables[name].iterrows():
        present = options(row)
        assert present == list(string.ascii_uppercase[:len(present)])  # no gaps
        if name == "MMMU_DEV_VAL" and not present:
            assert isinstance(row["answer"], str) and row["answer"]
            continue
        assert 2 <= len(present) <= {"MMBench_DEV_EN": 4, "CCBench": 4, "ScienceQA_VAL": 5}.get(name, 9)
        assert row["answer"] in present


# --- MMBench and CCBench: circular copies ---------------------------------------------------------------

@pytest.mark.parametrize("name", ["MMBench_DEV_EN", "CCBench"])
def test_circular_copies(tables, name):
    table = tables[name]
    by_index = {int(i): row for i, (_, row) in zip(table["index"], table.iterrows(), strict=True)}
    bases = [i for i in table["index"] if i < M]
    expected_order, ks = [], set()
    for g in bases:
        base = by_index[g]
        labels = options(base)
        ks.add(len(labels))
        assert len(base["image"]) > 64
        right_text = base[base["answer"]]
        for j in range(len(labels)):
            expected_order.append(g + j * M)
            copy = by_index[g + j * M]
            rot = deque(labels)
            rot.rotate(j)
            assert options(copy) == labels
            for i, old in enumerate(labels):
                assert copy[rot[i]] == base[old]
            assert copy["answer"] == rot[labels.index(base["answer"])]
            assert copy[copy["answer"]] == right_text
            assert copy["question"] == base["question"]
            if j:
                assert copy["image"] == str(g)
        assert g + len(labels) * M not in by_index
    assert list(table["index"]) == expected_order  # by base question, then copy
    assert ks == {2, 3, 4}
    assert len(bases) == {"MMBench_DEV_EN": 30, "CCBench": 20}[name]


def test_mmbench_fields(tables):
    table = tables["MMBench_DEV_EN"]
    assert set(table["split"]) == {"dev"}
    assert set(table["l2-category"]) == MMBENCH_L2
    assert 6 <= table["category"].nunique() <= 12
    assert table.groupby("category")["l2-category"].nunique().max() == 1
    hints = table["hint"].map(missing)
    assert 0 < (~hints).sum() < hints.sum()


def test_ccbench_is_chinese(tables):
    table = tables["CCBench"]
    cjk = re.compile("[\u4e00-\u9fff]")
    assert all(cjk.search(q) for q in table["question"])
    assert all(cjk.search(o) for _, row in table.iterrows() for o in (row[c] for c in options(row)))
    assert set(table["category"]) <= {"颜色", "数量", "位置", "形状"}


# --- yes/no benchmarks ----------------------------------------------------------------------------------

def test_mme_pairs(tables):
    table = tables["MME"]
    assert list(table["index"]) == list(range(len(table)))
    assert set(table["category"]) == MME_CATEGORIES
    assert set(table["answer"]) == {"Yes", "No"}
    assert all(q.endswith(" Please answer yes or no.") for q in table["question"])
    for _, pair in table.groupby("image_path", sort=False):
        assert len(pair) == 2 and sorted(pair["answer"]) == ["No", "Yes"]
        assert pair["category"].nunique() == 1
        first, second = pair.iloc[0], pair.iloc[1]
        assert len(first["image"]) > 64 and second["image"] == str(first["index"])
    assert table.groupby("category")["image_path"].nunique().min() == 3


def test_hallusionbench_structure(tables):
    table = tables["HallusionBench"]
    assert set(table["answer"]) == {"Yes", "No"}
    fields = table["index"].str.split("_")
    assert all(len(f) == 6 for f in fields)
    parsed = pd.DataFrame([{"cat": f[0], "l2": f"{f[0]}_{f[1]}", "visual": f[2], "set": int(f[3]),
                            "figure": int(f[4]), "question_id": int(f[5])} for f in fields])
    assert list(parsed["cat"]) == list(table["category"]) and list(parsed["l2"]) == list(table["l2-category"])
    assert set(table["category"]) == {"VD", "VS"}
    assert set(table["l2-category"]) <= HALLUSION_L2 and table["l2-category"].nunique() >= 4
    no_image = table["image"].map(missing)
    assert (no_image == (parsed["visual"] == "0")).all() and no_image.sum() >= 3
    visual = table[~no_image].assign(set=parsed["set"], figure=parsed["figure"], qid=parsed["question_id"])
    assert (parsed.loc[~no_image, "visual"] == "1").all()
    sets = list(visual.groupby(["l2-category", "set"]))
    assert len(sets) >= 8
    for _, group in sets:
        assert sorted(zip(group["figure"], group["qid"], strict=True)) == [(0, 0), (0, 1), (1, 0), (1, 1)]
        flips = 0
        for _, same_q in group.groupby("qid"):
            assert same_q["question"].nunique() == 1
            flips += same_q["answer"].nunique() == 2
        assert flips >= 1


# --- ScienceQA and MMMU ---------------------------------------------------------------------------------

def test_scienceqa_fields(tables):
    table = tables["ScienceQA_VAL"]
    assert set(table["split"]) == {"val"}
    assert set(table["category"]) <= {"natural science", "social science", "language science"}
    assert table["image"].map(missing).sum() >= 5
    assert {len(options(row)) for _, row in table.iterrows()} == {2, 3, 4, 5}


def test_mmmu_fields(tables):
    table = tables["MMMU_DEV_VAL"]
    assert table["split"].value_counts().to_dict() == {"validation": 20, "dev": 6}
    assert set(table["category"]) <= DISCIPLINES
    assert table.groupby("l2-category")["category"].nunique().max() == 1
    seen_ids = set()
    for _, row in table.iterrows():
        match = re.fullmatch(r"(dev|validation)_([A-Za-z_]+)_(\d+)", row["id"])
        assert match and match[1] == row["split"] and match[2] == row["l2-category"]
        seen_ids.add(row["id"])
    assert len(seen_ids) == len(table)
    open_rows = two_images = option_placed = 0
    for _, row in table.iterrows():
        n_images = len(images_of(row["image"]))
        if row["image"].startswith("["):
            assert row["image"] == str(ast.literal_eval(row["image"])) and n_images == 2
        texts = [row["question"]] + [row[c] for c in options(row)]
        refs = [int(n) for text in texts for n in re.findall(r"<image (\d)>", text)]
        assert refs and max(refs) <= n_images and min(refs) >= 1
        open_rows += not options(row)
        if n_images == 2 and "<image 1>" in row["question"] and "<image 2>" in row["question"]:
            two_images += 1
        if "<image 1>" not in row["question"] and any("<image 1>" in row[c] for c in options(row)):
            option_placed += 1
    assert open_rows >= 1 and 0.1 <= open_rows / len(table) <= 0.3
    assert two_images >= 1 and option_placed >= 1


# --- answers follow from what the images show -----------------------------------------------------------

def test_counts_match_the_pixels(tables):
    checked = 0
    for name, pattern in (("MME", r"(?:Are there exactly (\d+) shapes|Is there exactly (one) shape)"),
                          ("MMBench_DEV_EN", r"How many shapes"), ("CCBench", r"几个图形")):
        table = tables[name]
        for _, row in table.iterrows():
            match = re.search(pattern, row["question"])
            if not match:
                continue
            blobs = components(image_of(table, row))
            if name == "MME":
                claimed = 1 if match[2] else int(match[1])
                assert (blobs == claimed) == (row["answer"] == "Yes"), row["question"]
            else:
                assert row[row["answer"]].rstrip("个") == str(blobs)
            checked += 1
    assert checked >= 20


def test_yes_colors_are_in_the_image(tables):
    table = tables["MME"]
    for _, row in table[table["category"].isin(["color", "existence", "celebrity"])].iterrows():
        named = [c for c in COLORS if re.search(rf"\b{c}\b", row["question"])]
        assert len(named) == 1
        pixels = {tuple(p) for p in np.asarray(image_of(table, row)).reshape(-1, 3)}
        if row["answer"] == "Yes":
            assert COLORS[named[0]] in pixels


def test_questions_follow_the_scene_truth():
    rng = random.Random(5)
    for _ in range(300):
        scene = random_scene(rng, rng.choice(("shapes", "text", "chart", "table")),
                             text_kind=rng.choice(("word", "code", "math")))
        for ctype in CLAIM_TYPES:
            for claim in claims(ctype, scene):
                assert ask(claim)
                if ctype == "exists":
                    assert truth(claim, scene) == any((s.color, s.kind) == claim.args for s in scene.shapes)
                if ctype == "count":
                    assert truth(claim, scene) == (len(scene.shapes) == claim.args[0])
                if ctype in ("code_out", "calc"):
                    expression = scene.text[6:9] if ctype == "code_out" else scene.text[:3]
                    # one digit, one operator, one digit
                    assert truth(claim, scene) == (eval(expression) == claim.args[0])
                if ctype == "translate":
                    assert truth(claim, scene) == (FRENCH[scene.text] == claim.args[0])
        for qtype, make in MCQ_EN.items():
            mcq = make(scene, rng, 4)
            if mcq is None:
                continue
            assert len(set(mcq.options)) == len(mcq.options) >= 2
            if qtype == "count":
                assert mcq.answer_text == str(len(scene.shapes))
            if qtype == "color":
                kind = mcq.question.split()[-1].rstrip("?")
                assert [s.color for s in scene.shapes if s.kind == kind] == [mcq.answer_text]
            if qtype == "sides":
                color = mcq.question.split()[5]
                assert [str(SIDES[s.kind]) for s in scene.shapes if s.color == color] == [mcq.answer_text]
            if qtype == "chart_max":
                assert mcq.answer_text == tallest(scene).label
            if qtype == "ocr":
                assert mcq.answer_text == scene.text


# --- training data --------------------------------------------------------------------------------------

def test_no_scene_is_both_trained_on_and_tested(suite, tables):
    bench = set()
    for table in tables.values():
        for cell in table["image"]:
            if not missing(cell) and len(cell) > 64:
                bench |= {pixel_key(decode(b64)) for b64 in images_of(cell)}
    train = {pixel_key(Image.open(p)) for p in (suite["pretrain"].parent / "images").glob("*.png")}
    assert len(bench) > 100 and len(train) == 1000
    assert not bench & train


# --- determinism ----------------------------------------------------------------------------------------

def test_same_seed_same_bytes_other_seed_other_data(suite, tmp_path):
    out = suite["MME"].parent
    assert tree_digest(write_mini_suite(tmp_path / "again", seed=0)["MME"].parent) == tree_digest(out)
    other = write_mini_suite(tmp_path / "other", seed=1)
    for name in [*NAMES, "pretrain", "finetune"]:
        assert other[name].read_bytes() != suite[name].read_bytes(), name


def test_scale_multiplies_counts(tmp_path):
    paths = write_mini_suite(tmp_path / "x2", seed=0, scale=2)
    assert (pd.read_csv(paths["MMBench_DEV_EN"], sep="\t")["index"] < M).sum() == 60
    assert len(pd.read_csv(paths["MMMU_DEV_VAL"], sep="\t")) == 52
    assert len(json.loads(paths["finetune"].read_text(encoding="utf-8"))) == 4000
    with pytest.raises(ValueError):
        write_mini_suite(tmp_path / "bad", scale=0)


def test_train_scale_sizes_the_training_set_and_leaves_the_benchmarks_byte_identical(suite, tmp_path):
    more = write_mini_suite(tmp_path / "more", seed=0, scale=1, train_scale=2)
    for name in NAMES:
        assert more[name].read_bytes() == suite[name].read_bytes(), name
    captions = json.loads(more["pretrain"].read_text(encoding="utf-8"))
    assert len(captions) == 2 * len(json.loads(suite["pretrain"].read_text(encoding="utf-8"))) == 2000
    assert len(list((tmp_path / "more" / "train" / "images").glob("mini_*.png"))) == 2000
    assert "- seed: 0, scale: 1, training scale: 2" in (tmp_path / "more" / "README.md").read_text(encoding="utf-8")
    with pytest.raises(ValueError, match="train_scale must be a positive int"):
        write_mini_suite(tmp_path / "bad", train_scale=0)


def test_without_its_training_set_the_same_benchmarks_and_the_training_set_added_later_is_the_same(suite, tmp_path):
    """What evaluation alone needs (training=False) is the full suite's benchmark files; the same folder written again
    with its training set equals a suite written whole (the embedded default writes it so, when it trains)."""
    from evalsuite.mini import MARKER, is_written

    out = tmp_path / "later"
    paths = write_mini_suite(out, seed=0, training=False)
    assert set(paths) == set(NAMES) and not (out / "train").exists()
    assert all(paths[name].read_bytes() == suite[name].read_bytes() for name in NAMES)
    assert is_written(out, training=False) and not is_written(out)
    assert "The training set is not written here" in (out / "README.md").read_text(encoding="utf-8")
    write_mini_suite(out, seed=0, force=True)
    assert is_written(out) and tree_digest(out) == tree_digest(suite["MME"].parent)
    (out / MARKER).write_text("{not json")  # a damaged marker is no finished suite
    assert not is_written(out, training=False)


def test_training_images_hold_the_rendered_pixels(suite):
    """Training images are encoded fast (not optimized): the pixels are the rendered scene's, bit for bit."""
    from evalsuite.mini.training import training_scenes
    from evalsuite.mini.world import render

    scene, png = training_scenes(random.Random(0), 1, set())[0]
    assert pixel_key(Image.open(io.BytesIO(png))) == pixel_key(render(scene))
