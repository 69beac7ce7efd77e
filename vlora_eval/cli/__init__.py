"""`vlora-eval`, the command-line tool: one typer app with every command registered here, in one list.

    evaluation.py   inspect, generate, models, run, flops, demo
    data.py         score (VLMEvalKit files and lmms-eval's samples), merge, data mini, data convert
    training.py     train, export, sweep, report, foundations build/check (over vlora_eval/workflows/)
    common.py       option types, one-line errors and exit codes, the placement resolved at the edge
    views.py        what the commands print (rich)

User errors (`VLoRAEvalError`) are printed as one red line with exit code 2; anything else is a bug
and keeps its traceback.
"""

from __future__ import annotations

import typer

from vlora_eval.cli import data, evaluation, training

HELP = ("Evaluate and cost multimodal LLMs that see through their weights (VLoRA).\n\n"
        "Exit codes: 0 done; 1 `inspect` found no readable checkpoint; 2 bad input or too little memory (one line "
        "says what); 3 the disk refused a write (read-only, full, not permitted; one line names the path; the same "
        "command resumes once it is fixed); 130 interrupted (run the same command again to resume).")
COMMANDS = (evaluation.inspect, evaluation.generate, evaluation.models, evaluation.run, data.score, data.merge,
            evaluation.flops, evaluation.demo, training.train, training.export, training.sweep, training.report)
DATA_COMMANDS = {"mini": data.data_mini, "convert": data.data_convert}
FOUNDATIONS_COMMANDS = {"build": training.foundations_build, "check": training.foundations_check}
EMBEDDED_COMMANDS = {"build": training.embedded_build}
GROUPS = {"data": ("Benchmark data.", DATA_COMMANDS),
          "foundations": ("The tiny LLM and CLIP every tiny model starts from.", FOUNDATIONS_COMMANDS),
          "embedded": ("The embedded tiny models the main job uses without a --checkpoint.", EMBEDDED_COMMANDS)}


def build_app() -> typer.Typer:
    app = typer.Typer(help=HELP, no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                      rich_markup_mode=None)
    for command in COMMANDS:
        app.command()(command)
    for group, (words, commands) in GROUPS.items():
        sub = typer.Typer(help=words, no_args_is_help=True)
        for name, command in commands.items():
            sub.command(name)(command)
        app.add_typer(sub, name=group)
    return app


app = build_app()
