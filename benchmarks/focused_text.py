"""Can the foundation LLM learn a kind of question from text alone, given only that kind? (issue 23: where the
tiny models stop.) The language ceiling (benchmarks/language_ceiling.py) says what the foundation LLM answers
with the scene written out; this trains a copy of it further on chart and table questions only (by default),
the scene written out, and scores held-out ones per form / type as it goes. If a lookup is not learned here,
from text, no connector will teach it through the image.

    .venv/bin/python benchmarks/focused_text.py [--steps 500] [--every 250] [--lr 1e-3] [--threads 1]
        [--fresh [--set hidden_size=256 --set num_layers=6 ...]] [--value-first] [--readout]

--fresh starts instead from a random LLM of the foundations' recipe (foundations.yaml's `llm`, changed by --set):
is the lookup learnable at a size at all, and after how many steps? --value-first and --readout change how the
chart is written and how claims about named bars are answered (value_first, readout_answer).

The samples: scenes of the world (charts and tables), one question each of a focused type in the embedded
answer style (evalsuite/mini/items.py), its scene written out as the foundations' corpus writes it; 600 held-out
questions from their own seeded stream. AdamW (the language stage's betas), batch 48, a 50-step warm-up, then
constant; gradients clipped at 1. Nothing is saved: the shipped foundations stay as they are. Not a test.
"""

from __future__ import annotations

import argparse
import dataclasses
import random
import time

import torch

FOCUS = ("chart_max", "chart_value", "tallest", "taller", "bar_value", "table_greater", "table_value")
BATCH, WARMUP, HELD_OUT = 48, 50, 600


def value_first(scene, text: str) -> str:
    """The scene text with each bar's or row's value before its label ("8 fox" for "fox 8"): the value's token
    then follows what it belongs to, as a colour precedes its shape ("a red circle")."""
    for bar in scene.bars:
        text = text.replace(f"{bar.label} {bar.value}", f"{bar.value} {bar.label}")
    return text


READOUT_CLAIMS = ("bar_value", "table_value", "taller", "table_greater")


def readout_answer(scene, item: dict, answer: str) -> str:
    """A yes/no claim about named bars or rows answered by reading the chart in order up to the last one it
    names, then the verdict ("bee 2, fox 3, yak 7. No" for "Does the yak bar have a value of 1?"): each step
    reads the next slot, and the verdict compares words already written; no lookup by name. Other items keep
    `answer`."""
    if item["form"] != "yn" or item["qtype"] not in READOUT_CLAIMS:
        return answer
    words = set(item["prompt"].replace("?", " ").split())
    last = max(i for i, bar in enumerate(scene.bars) if bar.label in words)
    return ", ".join(f"{bar.label} {bar.value}" for bar in scene.bars[:last + 1]) + f". {item['yn']}"


def sampler(corpus, focus: set[str], write=lambda scene, text: text, answer=lambda scene, item, text: text):
    """draw(rng) -> (sample, "form/qtype"): a chart or table question of a focused type, the scene in text
    (as the foundations' corpus writes it, then through `write`), answered in the embedded style (then through
    `answer`)."""
    from evalsuite.mini.items import mcq_item, open_item, yes_no_item
    from evalsuite.mini.world import random_scene
    from vlora_eval.workflows.foundation_corpus import scene_text

    def draw(rng: random.Random):
        while True:
            scene = random_scene(rng, rng.choice(("chart", "table")))
            item = rng.choice((mcq_item, yes_no_item, open_item))(scene, rng)
            if item is not None and item["qtype"] in focus:
                user = f"{write(scene, scene_text(scene, rng))}\n{item['prompt']}"
                reply = answer(scene, item, corpus.style.answer(item))
                return corpus.dialogue(user, reply, rng), f"{item['form']}/{item['qtype']}"
    return draw


def main() -> None:
    from transformers import LlamaForCausalLM

    from evalsuite.mini.items import AnswerStyle
    from vlora.foundations import Foundations
    from vlora.training.language import exact_match, pad, share_by_label, shifted_loss
    from vlora_eval.workflows import foundations as workflow
    from vlora_eval.workflows.foundation_corpus import TextCorpus

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--every", type=int, default=250)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--types", default=",".join(FOCUS), help="comma-separated question types to train on")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--fresh", action="store_true", help="start from a random LLM of the recipe's size")
    parser.add_argument("--value-first", action="store_true", help="write each bar's value before its label")
    parser.add_argument("--readout", action="store_true",
                        help="answer yes/no claims about named bars by reading the chart in order first")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=INT",
                        help="with --fresh: a size of foundations.yaml's llm (hidden_size, num_layers, ...)")
    args = parser.parse_args()
    if args.set and not args.fresh:
        parser.error("--set changes the size of a --fresh LLM only")
    torch.set_num_threads(args.threads)
    found = Foundations.load(workflow.shipped())
    tokenizer = found.tokenizer()
    if args.fresh:
        current = workflow.recipe()
        sizes = dict(current.llm)
        for pair in args.set:
            key, _, value = pair.partition("=")
            if key not in sizes or not value.isdigit():
                parser.error(f"--set {pair}: expected KEY=INT with KEY one of {', '.join(sizes)}")
            sizes[key] = int(value)
        llm = workflow.build_llm(dataclasses.replace(current, llm=sizes), tokenizer)
    else:
        llm = LlamaForCausalLM.from_pretrained(found.folder / "llm")
    corpus = TextCorpus(scenes=(), tokenizer=tokenizer, style=AnswerStyle(), system_prompt_share=0.0)
    draw = sampler(corpus, set(args.types.split(",")), value_first if args.value_first else (lambda scene, text: text),
                   readout_answer if args.readout else (lambda scene, item, text: text))
    test_rng = random.Random("focused-text/held-out")
    held_out = [draw(test_rng) for _ in range(HELD_OUT)]
    labels = sorted({label for _, label in held_out})
    who = "A random LLM trained" if args.fresh else "The foundation LLM trained further"
    print(f"# {who} on a few question types, the scene written out\n")
    start_from = (f"a random LLM of {sum(p.numel() for p in llm.parameters()):,} parameters" if args.fresh
                  else f"foundations {found.fingerprint}")
    flags = (" --fresh" + "".join(f" --set {pair}" for pair in args.set) if args.fresh else "") + \
        (" --value-first" if args.value_first else "") + (" --readout" if args.readout else "")
    print(f"`.venv/bin/python benchmarks/focused_text.py --steps {args.steps} --lr {args.lr} --types {args.types}{flags}`; "
          f"batch {BATCH}; held-out exact match of {HELD_OUT} questions ({start_from}).\n")
    print("| step | loss | seconds | " + " | ".join(labels) + " |\n|" + "---:|" * (len(labels) + 3))

    def report(step: int, loss: float | None, seconds: float) -> None:
        hits = exact_match(llm, [sample for sample, _ in held_out], tokenizer.pad_token_id)
        shares = share_by_label(hits, [label for _, label in held_out])
        loss_text = "" if loss is None else f"{loss:.3f}"
        print(f"| {step} | {loss_text} | {seconds:.0f} | " + " | ".join(f"{shares[label]:.2f}" for label in labels) + " |",
              flush=True)

    report(0, None, 0.0)
    optimizer = torch.optim.AdamW(llm.parameters(), lr=args.lr, betas=(0.9, 0.98), weight_decay=0.0)
    rng, start = random.Random("focused-text/train"), time.time()
    llm.train()
    for step in range(1, args.steps + 1):
        for group in optimizer.param_groups:
            group["lr"] = args.lr * min(1.0, step / WARMUP)
        ids, targets, attention = pad([draw(rng)[0] for _ in range(BATCH)], tokenizer.pad_token_id)
        loss = shifted_loss(llm(input_ids=ids, attention_mask=attention).logits, targets)
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(llm.parameters(), 1.0)
        optimizer.step()
        if step % args.every == 0:
            report(step, loss.item(), time.time() - start)


if __name__ == "__main__":
    main()
