"""The foundation LLM's ceiling per question type: held-out exact match with the scene written out in text
(what perfect perception would hand it), by form (MCQ, yes/no) and question type. Every tiny model built on
the foundations answers through this LLM, so a type it cannot answer from text is one no model on it sees.

    .venv/bin/python benchmarks/language_ceiling.py [FOUNDATIONS_DIR] [--per-form 600] [--threads 2]

FOUNDATIONS_DIR: a `vlora-eval foundations build` output (default: the shipped foundations). The questions
are drawn from the recipe's held-out scenes (none a training scene or a mini-suite benchmark image), in the
recipe's answer style, scored as the build's own log scores them (greedy decoding equals every answer token).
"""

from __future__ import annotations

import argparse
import random
import tempfile
from collections import Counter
from pathlib import Path

import torch


def held_out_samples(current, tokenizer, per_form: int, seed: int):
    """(sample, "form/qtype") pairs: questions about held-out scenes with the scene written out."""
    from evalsuite.mini.items import mcq_item, yes_no_item
    from vlora_eval.workflows import foundations as workflow
    from vlora_eval.workflows.foundation_corpus import scene_text

    with tempfile.TemporaryDirectory() as work:
        _, scenes, _ = workflow.training_scenes(current, Path(work), lambda message: None)
    corpus = workflow.text_corpus(current, scenes, tokenizer)
    rng, out = random.Random(f"language-ceiling/{seed}"), []
    for make in (mcq_item, yes_no_item):
        drawn = 0
        while drawn < per_form:
            scene = scenes[rng.randrange(len(scenes))]
            item = make(scene, rng)
            if item is not None:
                user = f"{scene_text(scene, rng)}\n{item['prompt']}"
                out.append((corpus.dialogue(user, corpus.style.answer(item), rng), f"{item['form']}/{item['qtype']}"))
                drawn += 1
    return out


def main() -> None:
    from transformers import LlamaForCausalLM

    from vlora.foundations import Foundations
    from vlora.training.language import exact_match, share_by_label
    from vlora_eval.workflows import foundations as workflow

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", nargs="?", type=Path, default=None)
    parser.add_argument("--per-form", type=int, default=600)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    found = Foundations.load(args.folder or workflow.shipped())
    tokenizer = found.tokenizer()
    llm = LlamaForCausalLM.from_pretrained(found.folder / "llm").eval()
    samples = held_out_samples(workflow.recipe(), tokenizer, args.per_form, args.seed)
    hits = exact_match(llm, [sample for sample, _ in samples], tokenizer.pad_token_id)
    labels = [label for _, label in samples]
    forms = [f"{label.split('/')[0]}/**all**" for label in labels]
    scores = {**share_by_label(hits, labels), **share_by_label(hits, forms)}
    counts = Counter(labels) + Counter(forms)
    print("# The foundation LLM's ceiling per question type, the scene written out\n")
    print(f"Regenerate: `.venv/bin/python benchmarks/language_ceiling.py --per-form {args.per_form}` (CPU, about a minute "
          "at 400). Held-out exact match: greedy decoding must equal every answer token, in the embedded answer style.\n")
    where = "the shipped foundations" if args.folder is None else f"foundations `{found.folder}`"
    print(f"{where} (fingerprint {found.fingerprint}); {args.per_form} MCQ and {args.per_form} yes/no questions.\n")
    print("| form | question type | exact match | questions |\n|---|---|---:|---:|")
    for label, score in sorted(scores.items(), key=lambda pair: (pair[0].split("/")[0], "**" in pair[0], pair[0])):
        form, qtype = label.split("/")
        print(f"| {form} | {qtype} | {score:.3f} | {counts[label]} |")


if __name__ == "__main__":
    main()
