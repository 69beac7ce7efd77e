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
from collections import defaultdict
from pathlib import Path

import torch

FORMS = ("mcq", "yn")


def held_out_samples(current, tokenizer, per_form: int, seed: int):
    """(sample, (form, qtype)) pairs: questions about held-out scenes with the scene written out."""
    from evalsuite.mini.items import mcq_item, yes_no_item
    from vlora_eval.workflows import foundations as workflow
    from vlora_eval.workflows.foundation_corpus import scene_text

    with tempfile.TemporaryDirectory() as work:
        _, scenes, _ = workflow.training_scenes(current, Path(work), lambda message: None)
    corpus = workflow.text_corpus(current, scenes, tokenizer)
    rng, out = random.Random(f"language-ceiling/{seed}"), []
    for form, make in zip(FORMS, (mcq_item, yes_no_item), strict=True):
        while sum(tag[0] == form for _, tag in out) < per_form:
            scene = scenes[rng.randrange(len(scenes))]
            item = make(scene, rng)
            if item is not None:
                user = f"{scene_text(scene, rng)}\n{item['prompt']}"
                out.append((corpus.dialogue(user, corpus.style.answer(item), rng), (form, item["qtype"])))
    return out


def main() -> None:
    from transformers import LlamaForCausalLM

    from vlora.foundations import Foundations
    from vlora.training.language import exact_match
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
    by_type: dict[tuple[str, str], list[bool]] = defaultdict(list)
    for hit, (_, tag) in zip(hits, samples, strict=True):
        by_type[tag].append(hit)
    print(f"foundations {found.fingerprint} ({found.folder}): held-out exact match, the scene written out")
    print("| form | question type | exact match | questions |\n|---|---|---:|---:|")
    for form in FORMS:
        tags = sorted(tag for tag in by_type if tag[0] == form)
        for tag in tags:
            print(f"| {form} | {tag[1]} | {sum(by_type[tag]) / len(by_type[tag]):.2f} | {len(by_type[tag])} |")
        hits_form = [h for tag in tags for h in by_type[tag]]
        print(f"| {form} | **all** | **{sum(hits_form) / len(hits_form):.2f}** | {len(hits_form)} |")


if __name__ == "__main__":
    main()
