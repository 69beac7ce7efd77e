"""The contrastive stage's hard negatives (evalsuite/mini/edits.py): one thing changed, and for text scenes the
text itself changed in every text kind, so that a CLIP must read letters, digits and operators."""

from __future__ import annotations

import dataclasses
import random
from collections import Counter

from evalsuite.mini.edits import edited
from evalsuite.mini.world import TEXT_KINDS, random_scene, render


def _changed_fields(a, b) -> set[str]:
    return {f.name for f in dataclasses.fields(a) if getattr(a, f.name) != getattr(b, f.name)}


def test_an_edit_changes_one_thing_and_the_picture():
    rng = random.Random(3)
    for kind in ("shapes", "text", "chart", "table"):
        for _ in range(60):
            scene = random_scene(rng, kind)
            copy = edited(scene, rng)
            if copy is None:
                continue
            assert copy.kind == scene.kind
            assert len(_changed_fields(scene, copy)) == 1, (scene, copy)
            assert render(copy, 48).tobytes() != render(scene, 48).tobytes()


def test_text_edits_rewrite_words_code_and_sums():
    """Each text kind gets new text of its own kind (a word for a word; print(a?b) for code; a+b=? for sums)."""
    rng = random.Random(4)
    rewritten = Counter()
    for text_kind in TEXT_KINDS:
        for _ in range(200):
            scene = random_scene(rng, "text", text_kind=text_kind, n_shapes_with_text=0)
            copy = edited(scene, rng)
            if copy.text != scene.text:
                rewritten[text_kind] += 1
                assert copy.text_kind == text_kind
                assert copy.text.startswith("print(") == scene.text.startswith("print(")
                assert copy.text.endswith("=?") == scene.text.endswith("=?")
    # half the text edits rewrite the text (the rest: colour or band): 100 of 200 expected per kind
    assert all(70 <= rewritten[k] <= 130 for k in TEXT_KINDS), rewritten
