"""Errors meant for users: one line that names the file / key / value and what was expected.

`cli.py` catches `VLoRAEvalError` once and prints its message; any other exception is a bug and
keeps its traceback.
"""


class VLoRAEvalError(Exception):
    """Base class of every error the user can fix (bad input, bad checkpoint, bad config)."""


class ConfigError(VLoRAEvalError, ValueError):
    """A configuration value is out of range or inconsistent with another one."""


class CheckpointError(VLoRAEvalError):
    """A checkpoint folder is missing files or holds keys / shapes the model does not expect."""


class InputError(VLoRAEvalError, ValueError):
    """A request (image, prompt, batch) cannot be processed as given."""
