"""`vlora-eval report`: results/ assembled into one markdown report, every number traced to its source.

    Table 1   the paper's rows and GFLOPs (vlora/paper.yaml) beside the FLOPs formula
              (flops.report) and our scores where runs exist (results/**/manifest.json)
    Tables 2-5 the sweeps' tables (results/sweeps/<name>/table.md, written by `vlora-eval sweep`)
    Figure 4  results/flops/figure4.png (written by `vlora-eval flops --plot results/flops`)
    Also      links to the benchmark scripts' tables (results/mini, results/throughput)
Nothing here computes a score: it reads what the commands wrote and says which command wrote it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from vlora.atomic import write_text_atomic
from vlora.connector_kinds import KINDS
from vlora.paper import paper_table, paper_tables

SWEEPS = (("main", "Table 2"), ("types", "Table 3"), ("rank", "Table 4"), ("blocks", "Table 5"))


def model_rows() -> dict[str, str]:
    """Our model names -> the paper's row labels (the connector kinds' display names)."""
    return {kind.model_name: kind.display_name for kind in KINDS.values()}


def run_manifests(results: Path) -> list[tuple[Path, dict]]:
    """Every benchmark run's manifest under `results` (sweep runs included), newest file order."""
    found = []
    for path in sorted(results.rglob("manifest.json")):
        try:
            manifest = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(manifest, dict) and "benchmark" in manifest and "scores" in manifest:
            found.append((path, manifest))
    return found


def _ours(results: Path) -> dict[str, dict[str, tuple[float, Path, bool]]]:
    """Model name -> benchmark -> (headline, manifest, embedded), from runs outside the sweeps."""
    ours: dict[str, dict[str, tuple[float, Path, bool]]] = {}
    for path, manifest in run_manifests(results):
        if "sweeps" in path.parts or not manifest.get("scores") or manifest["data"].get("control"):
            continue  # the sweeps have their tables; a control (shuffled images) is not the model's score
        name = manifest["model"].get("name")
        embedded = bool(manifest["model"].get("embedded")) or bool(manifest["data"].get("embedded_mini_suite"))
        value = next(iter(manifest["scores"].values()))
        ours.setdefault(name, {})[manifest["benchmark"]] = (value, path, embedded)
    return ours


def table1(results: Path, out_dir: Path) -> list[str]:
    from flops.report import table1_rows
    from flops.settings import FlopsSettings

    columns = list(paper_tables().columns)
    formula = {r["model"]: r["formula"] for r in table1_rows(FlopsSettings())}
    ours = _ours(results)
    lines = ["## Table 1: GFLOPs and the six benchmarks", "",
             "Paper: `vlora/paper.yaml`. Formula: `vlora-eval flops --text-len 32` (the paper's own "
             "formula, Vicuna-7B shape). Ours: the runs found under `results/` (manifest linked); *embedded* marks "
             "the tiny embedded models on the synthetic mini-suite, which check the pipeline and are not comparable "
             "with the paper's numbers.", "",
             "| model | visual tokens | GFLOPs paper | GFLOPs formula | " + " | ".join(columns) + " |",
             "|---|---:|---:|---:|" + "---:|" * len(columns)]
    for name, row in paper_table("table1").rows.items():
        lines.append(f"| {name} | {row.visual_tokens} | {row.gflops:g} | {formula.get(name, '')} | "
                     + " | ".join(str(v) for v in row.scores) + " |")
    labels = model_rows()
    for name in sorted(ours, key=lambda n: (n not in labels, n)):
        label = labels.get(name, name)
        cells = []
        for bench in columns:
            if bench in ours[name]:
                value, path, embedded = ours[name][bench]
                link = os.path.relpath(path, out_dir)
                cells.append(f"[{value:.1f}]({link})" + (" *embedded*" if embedded else ""))
            else:
                cells.append("")
        lines.append(f"| ours: {label} | | | | " + " | ".join(cells) + " |")
    return lines + [""]


def sweep_sections(results: Path, out_dir: Path) -> list[str]:
    lines = []
    for name, label in SWEEPS:
        table = results / "sweeps" / name / "table.md"
        if not table.is_file():
            lines += [f"## {label}", "", f"Not run yet: `vlora-eval sweep {name} --out {results / 'sweeps' / name}`.", ""]
            continue
        body = table.read_text(encoding="utf-8").splitlines()
        title = body[0].lstrip("# ")
        lines += [f"## {title}" if title.startswith(label) else f"## {label}: {title}", *body[1:], ""]
        plots = sorted((results / "sweeps" / name).glob("*.png"))
        lines += [" ".join(f"![{p.stem}]({os.path.relpath(p, out_dir)})" for p in plots), ""]
    return lines


MEASURED = [("mini/scores.md", "The embedded tiny models on the mini-suite, beside chance, the answer key and two "
             "controls (shuffled images, the foundations only)",
             ".venv/bin/python benchmarks/embedded_default.py --out results/mini"),
            ("throughput/throughput.md", "Evaluation throughput (samples/s per model and batch size)",
             ".venv/bin/python benchmarks/throughput.py --out results/throughput"),
            ("throughput/training.md", "Stage-1 training throughput (samples/s) beside the FLOPs of a training step",
             ".venv/bin/python benchmarks/training_throughput.py --out results/throughput")]


def measured_sections(results: Path, out_dir: Path) -> list[str]:
    """Links (not copies) to the benchmark scripts' tables: their numbers stay in the file that wrote them."""
    lines = ["## Also measured", ""]
    for name, label, command in MEASURED:
        path = results / name
        lines.append(f"- {label}: [{name}]({os.path.relpath(path, out_dir)}) (`{command}`)" if path.is_file()
                     else f"- {label}: not measured yet (`{command}`)")
    return [*lines, ""]


def build_report(results: Path, out: Path | None = None) -> Path:
    out = out or results / "report.md"
    out_dir = out.parent
    lines = ["# vlora-eval report: the paper's Tables 1-5 and Figure 4, ours beside theirs", "",
             f"Regenerate: `vlora-eval report --results {results}` (it reads `{results}/`; each section names the "
             "command that wrote its numbers).", ""]
    lines += table1(results, out_dir)
    lines += sweep_sections(results, out_dir)
    figure = results / "flops" / "figure4.png"
    lines += ["## Figure 4: GFLOPs against visual tokens", "",
              f"![Figure 4]({os.path.relpath(figure, out_dir)})" if figure.is_file()
              else "Not drawn yet: `vlora-eval flops --text-len 32 --count --plot results/flops`.", ""]
    lines += measured_sections(results, out_dir)
    write_text_atomic(out, "\n".join(lines))
    return out
