"""The six benchmarks from their Hugging Face copies (the ones lmms-eval reads), as the tables VLMEvalKit's TSVs
hold, so that everything after the table (requests, runner, scoring, uncertainty) does not know which it came
from. Facts: shared/reference/lmms_eval_and_hf.md.

    a repo folder     (`hf download lmms-lab-encoder/MME --repo-type dataset --local-dir DIR`): datasets.load_dataset
    a save_to_disk folder (dataset_info.json / dataset_dict.json):                    datasets.load_from_disk
    parquet files     (one .parquet, or a folder of them):                             datasets.load_dataset("parquet")

Per benchmark, the copy's config and split(s) and a mapping of its columns onto the TSV's (LAYOUTS). Images are
read as bytes (`Image(decode=False)`, never decoded here) and written as base64 the way the TSVs hold them; a
row whose image bytes equal an earlier row's refers to it by index, as the TSVs' circular copies do. A copy's
identity is its source, revision (where the download recorded one), row count and a content hash: VLMEvalKit's
md5s cannot apply, and identity with VLMEvalKit's TSV is not guaranteed (it re-encodes some images).
"""

from __future__ import annotations

import ast
import base64
import hashlib
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from evalsuite.errors import DataError

LETTERS = "ABCDEFGHIJ"
# MMMU's subjects by discipline (the TSV's category = discipline, l2-category = subject)
MMMU_DISCIPLINES = {
    "Art & Design": ("Art", "Art_Theory", "Design", "Music"),
    "Business": ("Accounting", "Economics", "Finance", "Manage", "Marketing"),
    "Science": ("Biology", "Chemistry", "Geography", "Math", "Physics"),
    "Health & Medicine": ("Basic_Medical_Science", "Clinical_Medicine", "Diagnostics_and_Laboratory_Medicine",
                          "Pharmacy", "Public_Health"),
    "Humanities & Social Science": ("History", "Literature", "Sociology", "Psychology"),
    "Tech & Engineering": ("Agriculture", "Architecture_and_Engineering", "Computer_Science", "Electronics",
                           "Energy_and_Power", "Materials", "Mechanical_Engineering"),
}
DISCIPLINE = {subject: discipline for discipline, subjects in MMMU_DISCIPLINES.items() for subject in subjects}

Row = dict[str, Any]


def _b64(image: Any) -> str | None:
    """The bytes of an `Image(decode=False)` cell as base64 (None for no image)."""
    if image is None:
        return None
    data = image.get("bytes") if isinstance(image, dict) else None
    if data is None and isinstance(image, dict) and image.get("path"):
        data = Path(image["path"]).read_bytes()
    if not data:
        return None
    return base64.b64encode(data).decode()


def _mmbench(row: Row, split: str, position: int) -> Row:
    return {**{k: row.get(k) for k in ("index", "question", "hint", "A", "B", "C", "D", "answer", "category")},
            "l2-category": row.get("L2-category"), "split": row.get("split") or split, "image": _b64(row["image"])}


def _ccbench(row: Row, split: str, position: int) -> Row:
    return {**{k: row.get(k) for k in ("index", "question", "A", "B", "C", "D", "answer", "category")},
            "image": _b64(row["image"])}


def _scienceqa(row: Row, split: str, position: int) -> Row:
    choices = list(row["choices"])
    if len(choices) > len(LETTERS):
        raise ValueError(f"{len(choices)} choices, more than the letters A-{LETTERS[-1]}")
    return {"index": position, "question": row["question"], "hint": row.get("hint") or None,
            **{LETTERS[i]: c for i, c in enumerate(choices)}, "answer": LETTERS[int(row["answer"])],
            "category": row.get("category"), "split": "val" if split == "validation" else split,
            "image": _b64(row.get("image"))}


def _mmmu(row: Row, split: str, position: int) -> Row:
    options = ast.literal_eval(row["options"]) if isinstance(row["options"], str) else list(row["options"] or [])
    images = [b for i in range(1, 8) if (b := _b64(row.get(f"image_{i}"))) is not None]
    subject = "_".join(str(row["id"]).split("_")[1:-1])
    return {"index": position, "question": row["question"], **{LETTERS[i]: o for i, o in enumerate(options)},
            "answer": row["answer"], "split": split, "id": row["id"], "category": DISCIPLINE.get(subject, subject),
            "l2-category": subject, "image": (images[0] if len(images) == 1 else str(images)) if images else None}


def _mme(row: Row, split: str, position: int) -> Row:
    return {"index": position, "image": _b64(row["image"]), "question": row["question"], "answer": row["answer"],
            "category": row["category"], "image_path": row["question_id"]}


def _hallusionbench(row: Row, split: str, position: int) -> Row:
    fields = [row[k] for k in ("category", "subcategory", "visual_input", "set_id", "figure_id", "question_id")]
    return {"index": "_".join(str(f) for f in fields), "question": row["question"],
            "answer": {"1": "Yes", "0": "No"}[str(row["gt_answer"])], "category": row["category"],
            "l2-category": f"{row['category']}_{row['subcategory']}", "image": _b64(row.get("image"))}


@dataclass(frozen=True)
class Layout:
    """Where a benchmark lives in its HF copy and how a row of it becomes a row of the TSV."""

    repo: str  # the dataset on the Hub (for the user's download command)
    config: str | None
    splits: tuple[str, ...]
    columns: tuple[str, ...]  # the copy's columns the mapping reads
    image_columns: tuple[str, ...]
    to_row: Callable[[Row, str, int], Row]


LAYOUTS: dict[str, Layout] = {
    "MMBench_DEV_EN": Layout("lmms-lab-encoder/MMBench", "en", ("dev",),
                             ("index", "question", "answer", "A", "B", "category", "image"), ("image",), _mmbench),
    "CCBench": Layout("lmms-lab-encoder/MMBench", "cc", ("test",),
                      ("index", "question", "answer", "A", "B", "category", "image"), ("image",), _ccbench),
    "ScienceQA_VAL": Layout("lmms-lab-encoder/ScienceQA", "ScienceQA-IMG", ("validation",),
                            ("question", "choices", "answer", "image"), ("image",), _scienceqa),
    "ScienceQA_TEST": Layout("lmms-lab-encoder/ScienceQA", "ScienceQA-IMG", ("test",),
                             ("question", "choices", "answer", "image"), ("image",), _scienceqa),
    "MMMU_DEV_VAL": Layout("lmms-lab-encoder/MMMU", None, ("dev", "validation"),
                           ("id", "question", "options", "answer", "image_1"), tuple(f"image_{i}" for i in range(1, 8)),
                           _mmmu),
    "MME": Layout("lmms-lab-encoder/MME", None, ("test",), ("question_id", "image", "question", "answer", "category"),
                  ("image",), _mme),
    "HallusionBench": Layout("lmms-lab-encoder/HallusionBench", None, ("image",),
                             ("category", "subcategory", "visual_input", "set_id", "figure_id", "question_id",
                              "question", "gt_answer", "image"), ("image",), _hallusionbench),
}


# --- what a path holds ---------------------------------------------------------------------------------
def form_of(path: Path) -> str | None:
    """"save_to_disk", "repo", "parquet", or None (not an HF copy: a TSV, or nothing)."""
    if path.is_file():
        return "parquet" if path.suffix == ".parquet" else None
    if not path.is_dir():
        return None
    if (path / "dataset_info.json").is_file() or (path / "dataset_dict.json").is_file():
        return "save_to_disk"
    if (path / "README.md").is_file() or any(path.glob("*.parquet")) or any(path.glob("*/*.parquet")):
        return "repo" if (path / "README.md").is_file() else "parquet"
    return None


def _revision(path: Path) -> str | None:
    """The commit `hf download --local-dir` recorded for the files it fetched, where it did."""
    for meta in sorted(path.glob(".cache/huggingface/download/**/*.metadata")):
        lines = meta.read_text(encoding="utf-8", errors="replace").splitlines()
        if lines and len(lines[0]) == 40:
            return lines[0]
    return None


def _load_split(path: Path, form: str, config: str | None, split: str):
    import datasets

    from vlora.hf_quiet import datasets_progress

    with datasets_progress(False):
        try:
            if form == "save_to_disk":
                loaded = datasets.load_from_disk(str(path))
                if isinstance(loaded, datasets.DatasetDict):
                    if split not in loaded:
                        raise DataError(f"{path}: no split {split!r} (has {', '.join(loaded)}); give --hf-split")
                    return loaded[split]
                return loaded
            # a private cache, in memory: a copy's rows are read once, and the shared cache (keyed by file names,
            # not content) could hand back another folder's data
            with tempfile.TemporaryDirectory(prefix="vlora-eval-hf-") as cache:
                if form == "parquet":
                    return datasets.load_dataset("parquet", data_files=_parquet_files(path, split), split="train",
                                                 cache_dir=cache, keep_in_memory=True)
                return datasets.load_dataset(str(path), config, split=split, cache_dir=cache, keep_in_memory=True)
        except DataError:
            raise
        except (ValueError, FileNotFoundError) as e:  # an unknown config or split, no data files
            raise DataError(f"{path}: {form} copy: {str(e).splitlines()[0]}") from None


def _parquet_files(path: Path, split: str) -> list[str]:
    """A parquet file is one split; in a folder of them, a split's files are named after it (`dev-00000-of-…`)."""
    if path.is_file():
        return [str(path)]
    files = sorted(p for p in path.rglob("*.parquet"))
    mine = [str(p) for p in files if p.name.startswith(f"{split}-") or p.name == f"{split}.parquet"]
    if not mine:
        raise DataError(f"{path}: no parquet file of split {split!r} (its files: {', '.join(p.name for p in files)})")
    return mine


def read_hf_copy(name: str, path: Path, config: str | None = None, split: str | None = None
                 ) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The benchmark `name`'s table (the TSV's columns; `line` = its position in the table, `hf_split` / `hf_row` = where it is in the copy) from its HF copy at
    `path`, and the source record for the manifest. `config` / `split` default to the layout's."""
    import datasets

    if name not in LAYOUTS:
        raise DataError(f"{name} has no Hugging Face copy layout (known: {', '.join(LAYOUTS)}); use its TSV")
    layout, form = LAYOUTS[name], form_of(path)
    if form is None:
        raise DataError(f"{path} is not a Hugging Face copy (a repo folder, a save_to_disk folder or parquet files)")
    config = config if config is not None else layout.config
    splits = (split,) if split is not None else layout.splits
    if form == "parquet" and path.is_file() and len(splits) > 1:
        raise DataError(f"{path} is one parquet file, one split; {name} has {' and '.join(splits)}: give --hf-split, "
                        "or the folder that holds them all")
    rows, digest = [], hashlib.sha256()
    for one in splits:
        dataset = _load_split(path, form, config, one)
        absent = [c for c in layout.columns if c not in dataset.column_names]
        if absent:
            raise DataError(f"{path} ({config or 'default'}, {one}): no column {absent[0]!r} for {name} "
                            f"(has {', '.join(dataset.column_names)})")
        for column in layout.image_columns:
            if column in dataset.column_names:
                dataset = dataset.cast_column(column, datasets.Image(decode=False))
        for position, row in enumerate(dataset):
            try:
                mapped = layout.to_row(row, one, len(rows))
            except (KeyError, ValueError, TypeError, SyntaxError, OSError) as e:
                raise DataError(f"{path} ({config or 'default'}, {one}): row {position}: cannot be read for {name} "
                                f"({type(e).__name__}: {e})") from None
            rows.append({"line": len(rows), **mapped, "hf_split": one, "hf_row": position})
    table = _share_images(pd.DataFrame(rows))
    for value in pd.util.hash_pandas_object(table.drop(columns=["line", "hf_row"]).astype(str), index=False):
        digest.update(int(value).to_bytes(8, "little"))
    source = {"hf_copy": str(path), "form": form, "repo": layout.repo, "config": config, "splits": list(splits),
              "revision": _revision(path), "rows": len(table), "content_sha256": digest.hexdigest(),
              "note": "a Hugging Face copy: identity with VLMEvalKit's TSV (and its md5) is not guaranteed"}
    return table, source


def _share_images(table: pd.DataFrame) -> pd.DataFrame:
    """A row whose single image equals an earlier row's holds that row's index instead (a TSV reference)."""
    if "image" not in table:
        return table
    first: dict[str, Any] = {}  # the image's hash -> the index of the first row that holds it
    cells = []
    for index, cell in zip(table["index"], table["image"], strict=True):
        if isinstance(cell, str) and not cell.startswith("["):
            key = hashlib.sha256(cell.encode()).hexdigest()
            if key in first:
                cells.append(str(first[key]))
                continue
            first[key] = index
        cells.append(cell)
    return table.assign(image=cells)
