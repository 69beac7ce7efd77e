"""Do the embedded models read what a yes/no claim is about, or copy it from the question? (issue 23: where
the tiny models stop.)

The embedded models answer a yes/no claim in the "desc" style (README: Answer style): first what they see about
the claim, then the verdict ("Does the ant bar have a value of 6?" -> "4. No"). Where the thing seen is named in
the question (a value, a label, a word, a colour), a model that cannot read it can still lower its training loss
by saying the question's own word: that word is right on every true claim, half of them. Then its verdict is
"Yes" whatever the image. The fingerprint: on **false** claims, what a model that reads says is never the
question's word; what a copying model says is.

Per claim type (the question parsed back with the mini-suite's own templates, evalsuite/mini/claims.py):
n, the verdict's accuracy, and how often the part before the verdict equals the question's word, on true claims
and on false claims.

    .venv/bin/vlora-eval run --model vlora --bench mme --bench hallusionbench --results /tmp/copying
    .venv/bin/python benchmarks/answer_copying.py /tmp/copying [> results/mini/answer_copying.md]

RESULTS: a `vlora-eval run --results` folder (each model's MME / HallusionBench predictions, embedded or not).
Not a test: nothing here asserts.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pandas as pd

from evalsuite.mini.claims import CLAIM_TEMPLATES, ONE_SHAPE, YES_NO_SUFFIX

# claim type -> which arguments name what the "desc" answer says (claims where it is the question's own words)
SEEN_ARGUMENTS = {"count": (0,), "kind_color": (1,), "single": (0, 1), "word": (0,), "poster": (0,), "text_color": (0,),
                  "code_out": (0,), "calc": (0,), "largest_kind": (0,), "tallest": (0,), "bar_value": (1,),
                  "table_value": (1,)}
BENCHMARKS = ("MME", "HallusionBench")


def _pattern(template: str) -> re.Pattern:
    return re.compile("".join("(.+?)" if part == "{}" else re.escape(part)
                              for part in re.split(r"(\{\})", template)) + "$")


# every template, the most specific first: "Is the {} in the image {}?" also matches "Is the output of the code
# in the image 7?"
PATTERNS = {claim_type: _pattern(template) for claim_type, template in
            sorted(CLAIM_TEMPLATES.items(), key=lambda item: -len(item[1].replace("{}", "")))}


def parse(question: str) -> tuple[str, str] | None:
    """(claim type, the question's words for what is seen) of a yes/no question, or None for other claims."""
    question = question.removesuffix(YES_NO_SUFFIX).strip()
    if question == ONE_SHAPE:
        return "count", "1"
    for claim_type, pattern in PATTERNS.items():
        match = pattern.match(question)
        if match:
            if claim_type not in SEEN_ARGUMENTS:
                return None
            return claim_type, " ".join(match.group(1 + i) for i in SEEN_ARGUMENTS[claim_type])
    return None


def rows(results: Path) -> pd.DataFrame:
    """One row per parsed claim of every model's MME / HallusionBench predictions under `results`."""
    found = []
    for tsv in sorted(results.glob("*/*/*.tsv")):
        model, bench = tsv.parent.parent.name, tsv.parent.name
        if bench not in BENCHMARKS or tsv.name != f"{model}_{bench}.tsv":
            continue
        frame = pd.read_csv(tsv, sep="\t", dtype=str, keep_default_na=False)
        for question, answer, prediction in zip(frame["question"], frame["answer"], frame["prediction"], strict=True):
            parsed = parse(question)
            if parsed is None:
                continue
            said, _, verdict = prediction.strip().rpartition(".")
            found.append({"model": model, "claim": parsed[0], "true": answer == "Yes",
                          "right": verdict.strip().lower() == answer.lower(), "copied": said.strip() == parsed[1]})
    return pd.DataFrame(found)


def table(found: pd.DataFrame) -> str:
    lines = ["| model | claim | n | verdict right | says the question's word: true claims | false claims |",
             "|---|---|---:|---:|---:|---:|"]
    for (model, claim), group in found.groupby(["model", "claim"]):
        true, false = group[group["true"]], group[~group["true"]]
        lines.append(f"| {model} | {claim} | {len(group)} | {group['right'].mean():.2f} | "
                     f"{true['copied'].mean():.2f} | {false['copied'].mean():.2f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results", type=Path)
    args = parser.parse_args()
    found = rows(args.results)
    if found.empty:
        raise SystemExit(f"answer_copying: no MME or HallusionBench predictions under {args.results}")
    print("# Reading or copying: what the embedded models say before a yes/no verdict\n")
    print("Regenerate: `vlora-eval run --model M --bench mme --bench hallusionbench --results R` for each model, "
          "then `.venv/bin/python benchmarks/answer_copying.py R` (see the script's docstring). A model that reads "
          "says the question's word on true claims (1.00) and never on false ones (0.00); one that copies says it "
          "on both.\n")
    print(table(found))


if __name__ == "__main__":
    main()
