"""Small VLMEvalKit-format TSVs written by the tests themselves (independent of the mini-suite)."""

from __future__ import annotations

import base64
import io
from collections import deque
from pathlib import Path

import pandas as pd
from PIL import Image


def b64_image(colour: tuple[int, int, int], size: tuple[int, int] = (24, 16), mode: str = "RGB") -> str:
    image = Image.new(mode, size, colour if mode == "RGB" else (*colour, 128))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def circular_table(questions: int = 3) -> pd.DataFrame:
    """An MMBench-like table: question g has 2 + g % 3 options, all rotated copies, copy 0 holds the image."""
    rows = []
    for g in range(questions):
        k = 2 + g % 3
        labels = "ABCD"[:k]
        options = [f"option {g}-{i}" for i in range(k)]
        answer = labels[g % k]
        for j in range(k):
            rot = deque(labels)
            rot.rotate(j)
            row = {"index": g + j * 1_000_000, "question": f"Question {g}?", "hint": None,
                   **{rot[i]: options[i] for i in range(k)}, "answer": rot[labels.index(answer)],
                   "category": f"cat{g % 2}", "l2-category": "coarse_perception", "split": "dev",
                   "image": b64_image((40 * g % 255, 90, 10)) if j == 0 else str(g)}
            rows.append(row)
    return pd.DataFrame(rows, columns=["index", "question", "hint", "A", "B", "C", "D", "answer", "category",
                                       "l2-category", "split", "image"])


def yes_no_table(images: int = 3) -> pd.DataFrame:
    """An MME-like table: two questions per image (Yes, No), the second referring to the first's image."""
    rows = []
    for i in range(images):
        category = ("color", "count", "OCR")[i % 3]
        path = f"{category}/{i}.jpg"
        rows.append({"index": 2 * i, "image": b64_image((200, 20 * i, 0)), "question": f"Is it {i}? Please answer yes or no.",
                     "answer": "Yes", "category": category, "image_path": path})
        rows.append({"index": 2 * i + 1, "image": str(2 * i), "question": f"Is it not {i}? Please answer yes or no.",
                     "answer": "No", "category": category, "image_path": path})
    return pd.DataFrame(rows)


def write_tsv(table: pd.DataFrame, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(path, sep="\t", index=False)
    return path
