"""Hugging Face copies of the mini-suite's benchmarks, in the layouts of lmms-eval's datasets
(shared/reference/lmms_eval_and_hf.md), written by the tests with `datasets` in the three forms users hold:
a downloaded repo folder (parquet + a README's `configs:`), a `save_to_disk` folder, and parquet files."""

from __future__ import annotations

import ast
import base64
from pathlib import Path

import pandas as pd

LETTERS = "ABCDEFGHI"
CONFIG = {"MMBench_DEV_EN": "en", "CCBench": "cc", "ScienceQA_VAL": "ScienceQA-IMG"}


def _resolved(table: pd.DataFrame) -> list:
    """Each row's image(s) as bytes (references to other rows resolved), None for a row without one."""
    stored = {str(i): str(im) for i, im in zip(table["index"], table["image"], strict=True) if len(str(im)) > 64}
    out = []
    for cell in table["image"]:
        if pd.isna(cell):
            out.append(None)
            continue
        cell = stored.get(str(cell), str(cell))
        cells = ast.literal_eval(cell) if cell.startswith("[") else [cell]
        out.append([base64.b64decode(c) for c in cells])
    return out


def _image(data: list | None, i: int = 0):
    return {"bytes": data[i], "path": None} if data is not None and i < len(data) else None


def lmms_rows(name: str, tsv: Path) -> dict[str, list[dict]]:
    """The TSV's rows in the HF copy's layout, by split."""
    table = pd.read_csv(tsv, sep="\t")
    images = _resolved(table)
    rows: dict[str, list[dict]] = {}
    for (_, row), image in zip(table.iterrows(), images, strict=True):
        def get(key: str, row=row):
            return None if key not in row or pd.isna(row[key]) else row[key]

        if name in ("MMBench_DEV_EN", "CCBench"):
            out = {"index": int(row["index"]), "question": row["question"], "answer": row["answer"],
                   **{c: get(c) for c in "ABCD"}, "category": row["category"], "image": _image(image),
                   "source": "mini"}
            if name == "MMBench_DEV_EN":
                out.update({"hint": get("hint"), "L2-category": row["l2-category"], "split": row["split"],
                            "comment": None})
            split = "dev" if name == "MMBench_DEV_EN" else "test"
        elif name == "ScienceQA_VAL":
            choices = [row[c] for c in "ABCDE" if get(c) is not None]
            out = {"image": _image(image), "question": row["question"], "choices": choices,
                   "answer": "ABCDE".index(row["answer"]), "hint": get("hint") or "", "task": "closed choice",
                   "grade": "grade1", "subject": "natural science", "topic": "", "category": row["category"],
                   "skill": "", "lecture": "", "solution": ""}
            split = "validation"
        elif name == "MMMU_DEV_VAL":
            options = [row[c] for c in LETTERS if get(c) is not None]
            out = {"id": row["id"], "question": row["question"], "options": str(options), "explanation": "",
                   **{f"image_{k}": _image(image, k - 1) for k in range(1, 8)}, "img_type": "['Diagrams']",
                   "answer": row["answer"], "topic_difficulty": "Easy",
                   "question_type": "multiple-choice" if options else "open", "subfield": row["l2-category"]}
            split = row["split"]
        elif name == "MME":
            out = {"question_id": row["image_path"], "image": _image(image), "question": row["question"],
                   "answer": row["answer"], "category": row["category"]}
            split = "test"
        else:  # HallusionBench
            category, subcategory, visual, set_id, figure, question = str(row["index"]).split("_")
            out = {"category": category, "subcategory": subcategory, "visual_input": visual, "set_id": set_id,
                   "figure_id": figure, "sample_note": "", "question_id": question, "question": row["question"],
                   "gt_answer_details": "", "gt_answer": "1" if row["answer"] == "Yes" else "0",
                   "filename": "", "image": _image(image)}
            split = "image"
        rows.setdefault(split, []).append(out)
    return rows


def _dataset(rows: list[dict]):
    import datasets

    frame = {key: [r[key] for r in rows] for key in rows[0]}
    features = datasets.Dataset.from_dict({k: v for k, v in frame.items() if not _is_image(k)}).features
    for key in frame:
        if _is_image(key):
            features[key] = datasets.Image()
    return datasets.Dataset.from_dict(frame, features=datasets.Features({k: features[k] for k in frame}))


def _is_image(key: str) -> bool:
    return key == "image" or key.startswith("image_")


def write_copy(name: str, rows: dict[str, list[dict]], form: str, folder: Path) -> Path:
    """The copy in `form` ("repo", "save_to_disk", "parquet") under `folder`; returns the path to give --data."""
    import datasets

    from vlora.hf_quiet import datasets_progress

    folder.mkdir(parents=True, exist_ok=True)
    with datasets_progress(False):
        splits = {split: _dataset(r) for split, r in rows.items()}
        if form == "save_to_disk":
            (datasets.DatasetDict(splits) if len(splits) > 1 else next(iter(splits.values()))).save_to_disk(str(folder))
            return folder
        if form == "parquet":
            (split, dataset), = splits.items()  # one split in one file
            dataset.to_parquet(str(folder / f"{split}.parquet"))
            return folder / f"{split}.parquet"
        config = CONFIG.get(name, "default")
        lines = ["---", "configs:", f"- config_name: {config}", "  data_files:"]
        for split, dataset in splits.items():
            (folder / config).mkdir(exist_ok=True)
            dataset.to_parquet(str(folder / config / f"{split}-00000-of-00001.parquet"))
            lines += [f"  - split: {split}", f"    path: {config}/{split}-*"]
        (folder / "README.md").write_text("\n".join([*lines, "---", f"# {name} (a test copy)", ""]))
        return folder
