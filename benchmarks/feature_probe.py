"""What the foundation CLIP's patch features carry about each cell of a shapes scene (issue 23: where the tiny
models stop). Every tiny model reads the scene through these features, so what a linear probe cannot read
from them, no connector sees.

Shapes scenes. The mini-suite draws shapes on a 3 x 3 grid of cells (evalsuite/mini/world.py) and the foundation CLIP cuts
its 96-px image into 3 x 3 patches of 32 px: cell (col, row) is patch 3 * row + col, and each shape stays in
its cell. Three linear probes (softmax regression, AdamW, full batch), each trained on the features of
--train scenes and scored on --test other scenes, per cell:

- `colour`: which colour is in the cell (one of 6, or empty);  `kind`: which kind (one of 3, or empty);
- `local`: from that cell's own patch feature only (one probe shared by all cells);
- `all patches`: from the 9 patch features in order (concatenated), one head per cell: what a connector that
  knows the patch order (VLoRA's generator adds a position embedding; LLaVA's LLM reads the patches in order)
  could at best read from the features by a linear map;
- the local probe on the raw pixels of the patch (32 x 32 x 3) as the reference of what is there to see.

Charts and tables (where the models score lowest: MMBench's structuralized questions, HallusionBench's VS
sets, ScienceQA's social science, MMMU's Economics): per bar slot (chart) or table row, which label
(one of 8, or none) and which value (1-9, or none); per scene, which slot holds the tallest bar (or a tie) and
which label it has: `all patches` probes on the CLIP features (raw pixels of the whole image, 27,648 inputs
per head, take too long on a CPU for a reference here).

    .venv/bin/python benchmarks/feature_probe.py [FOUNDATIONS_DIR] [--train 3000] [--test 1000] [--threads 2]

FOUNDATIONS_DIR: a `vlora-eval foundations build` output (default: the shipped foundations). The scenes are
drawn from their own stream (seeded; shapes scenes as the mini-suite draws them). Not a test: nothing here
asserts.
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

import numpy as np
import torch

GRID = 3
EMPTY = 0  # class 0 of every probe: the cell is empty


def scenes_and_labels(n: int, seed: int):
    """n shapes scenes rendered, with per-cell labels: colour [n, 9] and kind [n, 9] (0 = empty)."""
    from evalsuite.mini.world import COLORS, KINDS, random_scene, render

    rng, images = random.Random(f"feature-probe/{seed}"), []
    colour = np.zeros((n, GRID * GRID), dtype=np.int64)
    kind = np.zeros((n, GRID * GRID), dtype=np.int64)
    for i in range(n):
        scene = random_scene(rng, "shapes")
        images.append(render(scene))
        for shape in scene.shapes:
            cell = GRID * shape.row + shape.col
            colour[i, cell] = 1 + list(COLORS).index(shape.color)
            kind[i, cell] = 1 + KINDS.index(shape.kind)
    return images, {"colour": torch.from_numpy(colour), "kind": torch.from_numpy(kind)}


def charts_and_labels(n: int, seed: int, kind: str):
    """n chart (or table) scenes rendered, with labels: per slot `label` and `value` [n, 4] (0 = no bar),
    per scene `tallest slot` and `tallest label` [n, 1] (0 = a tie)."""
    from evalsuite.mini.world import BAR_LABELS, random_scene, render, tallest

    rng, images = random.Random(f"feature-probe/{kind}/{seed}"), []
    targets = {name: np.zeros((n, width), dtype=np.int64) for name, width in
               (("label", 4), ("value", 4), ("tallest slot", 1), ("tallest label", 1))}
    for i in range(n):
        scene = random_scene(rng, kind)
        images.append(render(scene))
        for slot, bar in enumerate(scene.bars):
            targets["label"][i, slot] = 1 + BAR_LABELS.index(bar.label)
            targets["value"][i, slot] = bar.value
        top = tallest(scene)
        if top is not None:
            targets["tallest slot"][i, 0] = 1 + scene.bars.index(top)
            targets["tallest label"][i, 0] = 1 + BAR_LABELS.index(top.label)
    return images, {name: torch.from_numpy(array) for name, array in targets.items()}


def load_tower(folder: Path):
    """The foundation CLIP's vision tower, as every tiny model reads it."""
    from vlora.foundations import Foundations
    from vlora.vision import VisionTower

    found = Foundations.load(folder)
    tower = VisionTower.from_pretrained(found.folder / "clip", select_layer=found.vision_config.select_layer).eval()
    assert tower.config.image_size // tower.config.patch_size == GRID, "the probe assumes a 3 x 3 patch grid"
    return tower


def clip_patches(tower, images) -> torch.Tensor:
    """The tower's patch features of the images: [n, 9, d_v]."""
    from vlora.vision import preprocess_images

    pixels = preprocess_images(images, tower.config)
    return torch.cat([tower(chunk) for chunk in pixels.split(256)])


def pixel_patches(images) -> torch.Tensor:
    """Raw pixels cut into the same 3 x 3 patches: [n, 9, 32 * 32 * 3], scaled to [0, 1]."""
    array = torch.from_numpy(np.stack([np.asarray(image, dtype=np.float32) / 255.0 for image in images]))
    n, size = array.shape[0], array.shape[1]
    p = size // GRID
    cells = array.view(n, GRID, p, GRID, p, 3).permute(0, 1, 3, 2, 4, 5)  # [n, row, col, p, p, 3]
    return cells.reshape(n, GRID * GRID, p * p * 3)


def fit_softmax(x_train: torch.Tensor, y_train: torch.Tensor, x_test: torch.Tensor, classes: int,
                steps: int = 400) -> torch.Tensor:
    """Softmax regression (standardised inputs, zero start, AdamW, full batch); predicted classes of x_test."""
    mean, std = x_train.mean(0), x_train.std(0) + 1e-6
    x_train, x_test = (x_train - mean) / std, (x_test - mean) / std
    head = torch.nn.Linear(x_train.shape[1], classes)
    torch.nn.init.zeros_(head.weight), torch.nn.init.zeros_(head.bias)  # deterministic: no RNG draws
    optimizer = torch.optim.AdamW(head.parameters(), lr=1e-2, weight_decay=1e-2)
    for _ in range(steps):
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(head(x_train), y_train).backward()
        optimizer.step()
    with torch.no_grad():
        return head(x_test).argmax(-1)


def probe(features: torch.Tensor, labels: torch.Tensor, n_train: int, how: str) -> tuple[float, float]:
    """(accuracy over every label column, accuracy where the label is not 0) of one probe on the test scenes.
    `local`: one probe for every cell, from the cell's own patch; `all patches`: one head per label column
    (cell, slot or scene), from the 9 patches in order."""
    classes = int(labels.max()) + 1
    y_test = labels[n_train:]
    if how == "local":
        predicted = fit_softmax(features[:n_train].flatten(0, 1), labels[:n_train].flatten(),
                                features[n_train:].flatten(0, 1), classes).view_as(y_test)
    else:
        flat = features.flatten(1)
        predicted = torch.stack([fit_softmax(flat[:n_train], labels[:n_train, j], flat[n_train:], classes)
                                 for j in range(labels.shape[1])], dim=1)
    hits = predicted == y_test
    return hits.float().mean().item(), hits[y_test != EMPTY].float().mean().item()


def main() -> None:
    from vlora.foundations import Foundations
    from vlora_eval.workflows import foundations as workflow

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", nargs="?", type=Path, default=None)
    parser.add_argument("--train", type=int, default=3000)
    parser.add_argument("--test", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    folder = args.folder or workflow.shipped()
    images, labels = scenes_and_labels(args.train + args.test, args.seed)
    tower = load_tower(folder)
    sources = {"foundation CLIP": clip_patches(tower, images), "raw pixels": pixel_patches(images)}
    print("# What the foundation CLIP's patch features carry, cell by cell\n")
    print("Regenerate: `.venv/bin/python benchmarks/feature_probe.py > results/mini/feature_probe.md` (CPU, about 5 "
          "minutes). Linear probes; see the script's docstring.\n")
    label = "The shipped foundations" if args.folder is None else f"Foundations `{folder}`"
    print(f"{label} (fingerprint {Foundations.load(folder).fingerprint}); {args.train} "
          f"probe-training scenes, {args.test} test scenes; accuracy over all 9 cells / over occupied cells.\n")
    print("| features | probe | colour | kind |\n|---|---|---:|---:|")
    for name, features in sources.items():
        for how in ("local", "all patches") if name == "foundation CLIP" else ("local",):
            cells = [probe(features, labels[target], args.train, how) for target in ("colour", "kind")]
            print(f"| {name} | {how} | " + " | ".join(f"{every:.3f} / {occupied:.3f}" for every, occupied in cells) + " |")
    print("\n## Charts and tables\n\nAll patches, one head per bar slot (chart) or table row: accuracy over all slots / over "
          "slots that hold a bar; `tallest`: over all scenes / over scenes without a tie.\n")
    print("| scenes | features | label | value | tallest slot | tallest label |\n|---|---|---:|---:|---:|---:|")
    for kind in ("chart", "table"):
        images, labels = charts_and_labels(args.train + args.test, args.seed, kind)
        features = clip_patches(tower, images)
        cells = [probe(features, labels[target], args.train, "all patches") for target in labels]
        print(f"| {kind} | foundation CLIP | " + " | ".join(f"{every:.3f} / {present:.3f}" for every, present in cells) + " |")


if __name__ == "__main__":
    main()
