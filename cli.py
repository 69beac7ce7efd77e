"""`vlora-eval` from a checkout: `python cli.py run --model vlora --bench mmbench` runs what the installed
command runs. The commands live in vlora_eval/cli/ (installed as a package, so no top-level `cli` module
collides with another distribution's); this file is not installed."""

from vlora_eval.cli import app

if __name__ == "__main__":
    app()
