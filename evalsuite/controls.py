"""Controls: the same benchmark with what the model should rely on taken away, to show that it relies on it.

    shuffle_images(data, seed)   every row shows another row's image(s) (a seeded derangement among the rows
                                 with the same number of images), questions and answers untouched: a model that
                                 reads the image falls to about chance; one that guesses from the text does not.

A control is recorded in the run's settings and manifest (`data.control`), so its predictions never mix with
the plain run's.
"""

from __future__ import annotations

import dataclasses
import random
from collections import defaultdict

from evalsuite.data import BenchmarkData


def shuffle_images(data: BenchmarkData, seed: int = 0) -> BenchmarkData:
    """`data` with each row's images replaced by those of another row (never its own, wherever a group has
    two rows or more); rows keep their number of images, so prompts that name `<image 2>` stay valid."""
    cells = [data._cell(position) for position in range(len(data.table))]  # references resolved
    names = (list(data.table["image_path"]) if "image_path" in data.table.columns else [None] * len(cells))
    groups: dict[int, list[int]] = defaultdict(list)
    for position in range(len(cells)):
        groups[data.image_count(position)].append(position)
    rng = random.Random(f"vlora-eval shuffle_images/{seed}")
    source = list(range(len(cells)))
    for members in groups.values():
        order = members[:]
        rng.shuffle(order)
        for i, position in enumerate(order):  # a rotation of a shuffled order: nobody keeps their own
            source[position] = order[(i + 1) % len(order)]
    table = data.table.copy()
    table["image"] = [cells[source[p]] for p in range(len(cells))]
    if "image_path" in table.columns:
        table["image_path"] = [names[source[p]] for p in range(len(cells))]
    stored = {str(i): str(im) for i, im in zip(table["index"], table["image"], strict=True)}
    return dataclasses.replace(data, table=table, stored_images=stored, control=f"images shuffled across rows (seed {seed})")
