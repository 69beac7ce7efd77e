"""The foundation LLM's ceiling per question type: held-out exact match with the scene written out in text
(what perfect perception would hand it), by form (MCQ, yes/no) and question type. Every tiny model built on
the foundations answers through this LLM, so a type it cannot answer from text is one no model on it sees.

    .venv/bin/python benchmarks/language_ceiling.py [FOUNDATIONS_DIR] [--per-form 600] [--threads 2]

FOUNDATIONS_DIR: a `vlora-eval foundations build` output (default: the shipped foundations). The questions
are drawn from the recipe's held-out scenes (none a training scene or a mini-suite benchmark image), in the
recipe's answer style, scored as the build's own log scores them (greedy decoding equals every answer token).
A second table says where answers go wrong: each answer token, the ones before it given (teacher forcing), is
right or not, grouped by what it takes: a word read from the scene text alone (a lookup: "7" in "fox 3, yak 7"
for "the yak bar"), a word of the question (a copy), or the rest (the verdict, punctuation, spaces, </s>).
"""

from __future__ import annotations

import argparse
import random
import tempfile
from collections import Counter
from pathlib import Path

import torch

ROLES = ("lookup", "copy", "rest")


def token_roles(tokenizer, scene: str, question: str, answer_ids) -> list[str]:
    """Per answer token: "lookup" (a word of the scene text and not of the question), "copy" (a word of the
    question) or "rest" (the verdict, punctuation, whitespace, </s>). An MCQ's question stops before its
    options: picking the option that the scene names is a lookup."""
    scene_ids = set(tokenizer(scene, add_special_tokens=False).input_ids)
    question_ids = set(tokenizer(question, add_special_tokens=False).input_ids)
    roles = []
    for token in answer_ids:
        word = tokenizer.decode([token]).strip()
        if word and word[0].isalnum() and token in question_ids:
            roles.append("copy")
        elif word and word[0].isalnum() and token in scene_ids:
            roles.append("lookup")
        else:
            roles.append("rest")
    return roles


def held_out_samples(current, tokenizer, per_form: int, seed: int):
    """(sample, "form/qtype", roles of its answer tokens) triples: questions about held-out scenes with the
    scene written out."""
    from evalsuite.mini.items import mcq_item, yes_no_item
    from vlora.prompting import IGNORE_INDEX
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
                text = scene_text(scene, rng)
                ids, labels = corpus.dialogue(f"{text}\n{item['prompt']}", corpus.style.answer(item), rng)
                answer = [token for t, token in enumerate(labels) if t > 0 and token != IGNORE_INDEX]
                out.append(((ids, labels), f"{item['form']}/{item['qtype']}",
                            token_roles(tokenizer, text, item["prompt"].split("\nA. ")[0], answer)))
                drawn += 1
    return out


def main() -> None:
    from transformers import LlamaForCausalLM

    from vlora.foundations import Foundations
    from vlora.training.language import answer_token_hits, share_by_label
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
    token_hits = answer_token_hits(llm, [sample for sample, _, _ in samples], tokenizer.pad_token_id)
    hits = [all(tokens) for tokens in token_hits]
    labels = [label for _, label, _ in samples]
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
    print_token_table(samples, token_hits)


def print_token_table(samples, token_hits) -> None:
    """Per question type: the share of right answer tokens (teacher forcing) by role, and how many there are."""
    right: dict[tuple[str, str], list[bool]] = {}
    for (_, label, roles), hits in zip(samples, token_hits, strict=True):
        for role, hit in zip(roles, hits, strict=True):
            right.setdefault((label, role), []).append(hit)
    print("\n## Where the answers go wrong\n")
    print("Each answer token with the ones before it given (teacher forcing): the share right, by what it takes "
          "(lookup: a word of the scene text only; copy: a word of the question; rest: verdict, punctuation, "
          "</s>), and the number of such tokens.\n")
    print("| form | question type | " + " | ".join(ROLES) + " |\n|---|---|" + "---:|" * len(ROLES))
    for label in sorted({label for _, label, _ in samples}):
        form, qtype = label.split("/")
        cells = [f"{sum(v) / len(v):.2f} ({len(v)})" if (v := right.get((label, role))) else "" for role in ROLES]
        print(f"| {form} | {qtype} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
