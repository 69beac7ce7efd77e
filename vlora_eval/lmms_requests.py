"""lmms-eval's requests -> our `Request`s, and back: the plain half of the lmms-eval plugin.

Nothing here imports lmms-eval (the tests run it with Instance-like stand-ins); vlora_eval/lmms_plugin.py
is the half that does. `manifests()` is the payload of the entry point `lmms_eval.models: vlora_eval`
(pyproject.toml): lmms-eval calls it on every `import lmms_eval.models`, so this module imports nothing
heavy at import time and the call imports only lmms-eval's own registry module.

An lmms-eval 0.7.3 request's `args` (api/instance.py, evaluator.py):
    generate_until   (context, gen_kwargs, doc_to_visual, doc_id, task, split)
    loglikelihood    (context, continuation, doc_to_visual, doc_id, task, split), one per choice of a
                     multiple_choice task, the continuation = target_delimiter + choice
The document is `task_dict[task][split][doc_id]`; `doc_to_visual(doc)` gives its images.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from vlora.errors import ConfigError, InputError

MODEL_ID = "vlora_eval"
OVERRIDE_SEPARATOR = ";"  # --model_args splits on commas, so `set=` joins several overrides with ';'
SAMPLING_KEYS = ("do_sample", "temperature", "num_beams")  # any other gen_kwargs key is not ours to read

DocLookup = Callable[[str, str, Any], Any]  # (task, split, doc_id) -> the document


def manifests():
    """The `lmms_eval.models` entry point's payload: `--model vlora_eval` is VLoRAEvalLMM (simple, i.e.
    a text context plus `doc_to_visual`). Imports only lmms-eval's registry, which is what calls it."""
    from lmms_eval.models.registry_v2 import ModelManifest

    return [ModelManifest(model_id=MODEL_ID, simple_class_path="vlora_eval.lmms_plugin.VLoRAEvalLMM")]


def parse_overrides(value: Any) -> list[str]:
    """`set=connector.rank=16;llm.num_layers=2` -> ["connector.rank=16", "llm.num_layers=2"] (the KEY=VALUE
    pairs of `--set`; `;` because lmms-eval splits --model_args on commas)."""
    if value is None or value == "":
        return []
    parts = [part.strip() for part in str(value).split(OVERRIDE_SEPARATOR)]
    bad = [part for part in parts if "=" not in part]
    if bad:
        raise ConfigError(f"--model_args set={value!r}: {bad[0]!r} is not KEY=VALUE (join several with "
                          f"'{OVERRIDE_SEPARATOR}', e.g. set=connector.rank=16;llm.num_layers=2)")
    return parts


def positive_int(what: str, value: Any) -> int:
    """A count given as int or str (lmms-eval's handle_arg_string types --model_args values); `what` names it."""
    try:
        number = int(str(value))
    except ValueError:
        number = 0
    if number < 1:
        raise ConfigError(f"{what}={value!r}: expected a positive integer")
    return number


def greedy_settings(gen_kwargs: Mapping[str, Any] | None, default_max_new_tokens: int,
                    where: str) -> tuple[int, tuple[str, ...]]:
    """(max_new_tokens, stop strings) of one generate_until request. Decoding is greedy: a request that
    asks for sampling or beams (do_sample true, temperature > 0, num_beams > 1) is refused, as lmms-eval's
    own models would sample; top_p / top_k mean nothing without sampling and are not read."""
    kwargs = dict(gen_kwargs or {})
    asked = {k: kwargs[k] for k in SAMPLING_KEYS if k in kwargs and kwargs[k] is not None}
    sampling = (bool(asked.get("do_sample")) or float(asked.get("temperature", 0) or 0) > 0
                or int(asked.get("num_beams", 1) or 1) > 1)
    if sampling:
        raise InputError(f"{where}: gen_kwargs {asked} ask for sampling or beam search; vlora_eval decodes greedily "
                         "(set do_sample: false, temperature: 0, num_beams: 1 in the task or --gen_kwargs)")
    until = kwargs.get("until") or ()
    until = (until,) if isinstance(until, str) else tuple(until)
    if not all(isinstance(s, str) for s in until):
        raise InputError(f"{where}: gen_kwargs until={until!r} must be strings")
    max_new = kwargs.get("max_new_tokens")
    return (default_max_new_tokens if max_new is None else positive_int(f"{where}: gen_kwargs max_new_tokens", max_new)), until


def cut_at_stops(text: str, until: Sequence[str]) -> str:
    """The answer up to the first stop string (greedy decoding would have said the same up to there)."""
    for stop in until:
        if stop:
            text = text.split(stop, 1)[0]
    return text


def visuals_of(doc_to_visual: Callable | None, doc: Any, max_images: int | None) -> tuple[tuple[Any, ...], int]:
    """The document's images (PIL images or paths; None and [] mean none) and how many were dropped: a
    model that takes fewer (VLoRA: one) gets the first ones, as VLMEvalKit gives non-interleaving models
    (evalsuite/requests.py does the same)."""
    found = doc_to_visual(doc) if doc_to_visual is not None else None
    images = tuple(v for v in (found or ()) if v is not None)
    if max_images is None or len(images) <= max_images:
        return images, 0
    return images[:max_images], len(images) - max_images


def where_of(args: Sequence[Any]) -> str:
    """"task <task> (<split>) doc <doc_id>": what an error names."""
    doc_id, task, split = args[3], args[4], args[5]
    return f"task {task} ({split}) doc {doc_id}"


def generation_request(args: Sequence[Any], index: int, doc_of: DocLookup, max_images: int | None,
                       default_max_new_tokens: int) -> tuple[Any, tuple[str, ...], int]:
    """One generate_until request's args -> (our Request, its stop strings, images dropped)."""
    from evalsuite.adapter import Request

    context, gen_kwargs, doc_to_visual, doc_id, task, split = args
    max_new, until = greedy_settings(gen_kwargs, default_max_new_tokens, where_of(args))
    images, dropped = visuals_of(doc_to_visual, doc_of(task, split, doc_id), max_images)
    return Request(str(index), str(context), images, max_new_tokens=max_new), until, dropped


@dataclass(frozen=True)
class ChoiceGroup:
    """The loglikelihood requests of one document and context: one prompt, its continuations as choices."""

    args: tuple  # the first member's args (context, continuation, doc_to_visual, doc_id, task, split)
    members: tuple[int, ...]  # positions in the request list, in choice order
    choices: tuple[str, ...]


def choice_groups(all_args: Sequence[Sequence[Any]]) -> list[ChoiceGroup]:
    """Loglikelihood requests grouped by (task, split, doc_id, context), in first-seen order, so each
    document's choices share one prefill of its prompt (evalsuite/multimodal.py)."""
    groups: dict[tuple, list[int]] = {}
    for i, args in enumerate(all_args):
        context, _, _, doc_id, task, split = args
        groups.setdefault((task, split, doc_id, context), []).append(i)
    return [ChoiceGroup(tuple(all_args[m[0]]), tuple(m), tuple(str(all_args[i][1]) for i in m))
            for m in groups.values()]


def likelihood_request(group: ChoiceGroup, doc_of: DocLookup, max_images: int | None) -> tuple[Any, int]:
    """A group -> (our Request with the continuations as choices, images dropped). The context is the
    user's turn and each continuation, without its leading whitespace (lmms-eval's target_delimiter), is
    scored as the assistant's answer after the template's 'ASSISTANT: ', as lmms-eval's llava model and
    our own likelihood mode do."""
    from evalsuite.adapter import Request

    context, _, doc_to_visual, doc_id, task, split = group.args
    images, dropped = visuals_of(doc_to_visual, doc_of(task, split, doc_id), max_images)
    choices = tuple(c.lstrip() for c in group.choices)
    return Request(str(group.members[0]), str(context), images, choices), dropped
