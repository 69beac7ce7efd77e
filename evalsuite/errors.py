"""The harness's user errors (one line each, printed by the CLI with exit code 2)."""

from vlora.errors import VLoRAEvalError


class DataError(VLoRAEvalError):
    """A benchmark or predictions file is missing or malformed."""


class ResultsError(VLoRAEvalError):
    """A results folder cannot be used as asked (outside the root, in use, damaged, other settings)."""
