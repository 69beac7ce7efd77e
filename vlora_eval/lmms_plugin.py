"""Our models as an lmms-eval 0.7.3 model: `--model vlora_eval`, over the adapter contract.

    pip install 'vlora-eval[lmms]'
    python -m lmms_eval --model vlora_eval --model_args model=vlora,checkpoint=/models/VLoRA-7b-v1 \\
        --tasks mme --batch_size 8 --output_path out --log_samples

lmms-eval finds the class through the entry point `lmms_eval.models: vlora_eval` (pyproject.toml,
vlora_eval/lmms_requests.py `manifests`); nothing in this project imports this module, and it needs
lmms-eval (the optional extra `lmms`). `--model_args` (`k=v,k=v`; a value cannot hold a comma):

    model         a `vlora-eval models` name: vlora, llava-v1.5, llava-v1.5-qformer (a checkpoint, else the
                  embedded tiny model, installed from the shipped ones or trained, once, and cached),
                  vlora-tiny, llava-tiny, llava-qformer-tiny
    checkpoint    a local checkpoint folder;  vision_tower  a local CLIP folder
    device        auto | cpu | cuda | cuda:N (or lmms-eval's --device);  dtype  auto | float32 | bfloat16 | ...
    mode          VLoRA's execution: auto | factorized | merged | delta;  threads  torch's CPU threads
    set           --set overrides of a tiny model's preset, joined with ';': set=connector.rank=8;llm.num_layers=2
    max_new_tokens  when a task's gen_kwargs give none (default 64)
The batch size is lmms-eval's own `--batch_size N` (its CLI always passes one; `auto` is refused).

Requests: generate_until takes the context (the user's turn; `<image>` placeholders are prepended when
absent) and `doc_to_visual(doc)`; decoding is greedy (sampling settings are refused) up to the task's
max_new_tokens, and the answer is cut at the first `until` string. loglikelihood groups a document's
choices into one request (one prefill) and scores each continuation as the assistant's answer. A request
the model cannot run stops the evaluation with one line naming the task and document; a model that takes
one image (VLoRA) gets a document's first image, as VLMEvalKit gives it, and the count is logged.

Two defects of lmms-eval 0.7.3 that loglikelihood works around (checked in its source):
- its evaluator passes every result through `unwrap_generation_output` (api/instance.py), which turns
  anything but a string into `str(result)`, so a bare `(number, is_greedy)` tuple reaches a
  multiple_choice task as a string and breaks it for every model. We return
  `GenerationResult(text=(number, is_greedy))`, which it unwraps unchanged;
- the number is documented as the log-probability, but multiple_choice picks `np.argmin` of it
  (api/task.py, process_results: "we return the actual loss"), as lmms-eval's llava models return their
  loss. We return the summed negative log-probability of the continuation (lower = likelier), so acc
  picks the likeliest choice (our likelihood mode's answer) and acc_norm the lowest loss per character.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

try:
    from lmms_eval.api.instance import GenerationResult
    from lmms_eval.api.model import lmms
except ImportError as error:
    if (error.name or "").split(".")[0] != "lmms_eval":
        raise
    raise ImportError("vlora_eval.lmms_plugin needs lmms-eval: pip install 'vlora-eval[lmms]' "
                      "(lmms-eval 0.7.3)") from error

from evalsuite.adapter import Failure
from vlora.errors import ConfigError, InputError
from vlora_eval.lmms_requests import (
    choice_groups,
    cut_at_stops,
    generation_request,
    likelihood_request,
    parse_overrides,
    positive_int,
    where_of,
)

ARGS = ("model", "checkpoint", "vision_tower", "device", "dtype", "batch_size", "mode", "set", "threads",
        "max_new_tokens")


class VLoRAEvalLMM(lmms):
    """VLoRA, LLaVA-v1.5 and the Q-Former baseline (any `vlora-eval models` name) behind lmms-eval's `lmms`."""

    is_simple = True  # a text context plus doc_to_visual, as lmms-eval's llava model

    def __init__(self, model: str = "vlora", checkpoint: str | None = None, vision_tower: str | None = None,
                 device: str = "auto", dtype: str = "auto", batch_size: int | str = 8, mode: str = "auto",
                 set: str | None = None, threads: int | str | None = None, max_new_tokens: int | str = 64,
                 max_batch_size: int | None = None, **unknown: Any):
        super().__init__()
        from evalsuite.registry import create_model
        from vlora.checkpoints import stored_dtype
        from vlora.config import ExecutionMode
        from vlora.placement import Placement
        from vlora_eval.workflows.embedded import checkpoint_for

        if unknown:
            raise ConfigError(f"--model_args {sorted(unknown)[0]}: unknown; vlora_eval takes {', '.join(ARGS)}")
        if str(batch_size).startswith("auto") or max_batch_size is not None:
            raise ConfigError(f"--batch_size {batch_size}: give a number (vlora_eval does not search batch sizes)")
        if str(mode) not in {m.value for m in ExecutionMode}:
            raise ConfigError(f"--model_args mode={mode!r}: choose {', '.join(m.value for m in ExecutionMode)}")
        given = Path(str(checkpoint)) if checkpoint else None
        placement = Placement.resolve(str(device), str(dtype), None if threads is None else positive_int(
            "--model_args threads", threads), stored_dtype(given) if given is not None else None)
        placement.apply()
        self._rank, self._world_size = placement.process.rank, placement.process.world_size
        from loguru import logger  # lmms-eval's logger

        self.logger = logger
        found, embedded = checkpoint_for(str(model), given, placement=placement, progress=self._rank == 0,
                                         say=logger.info)
        overrides = parse_overrides(set)
        self.adapter = create_model(str(model), found, vision_tower=vision_tower, device=placement.device,
                                    dtype=placement.dtype, overrides=overrides,
                                    batch_size=positive_int("--batch_size", batch_size), mode=str(mode))
        for note in self.adapter.notes:
            logger.warning(note)
        self.placement, self.embedded = placement, embedded
        self.max_new_tokens = positive_int("--model_args max_new_tokens", max_new_tokens)
        self.images_dropped = 0
        logger.info(f"vlora_eval: {self.adapter.card.name} from {found or 'its random tiny preset'}"
                    f"{' (the embedded tiny model)' if embedded else ''}{f' with --set {overrides}' if overrides else ''}"
                    f" on {placement.describe()}")

    @property
    def device(self):  # the evaluator gathers counts on it when world_size > 1
        return self.placement.device

    @property
    def batch_size(self) -> int:
        return self.adapter.batch_size

    # --- the request types ---------------------------------------------------------------------------
    def generate_until(self, requests) -> list[str]:
        """Greedy answers, batched by our adapter (longest contexts first), cut at each request's stops."""
        results: list[str] = [""] * len(requests)
        for chunk in self._chunks(sorted(range(len(requests)), key=lambda i: -len(str(requests[i].args[0]))),
                                  len(requests), "generate_until"):
            made = [generation_request(requests[i].args, i, self._doc, self.adapter.card.max_images,
                                       self.max_new_tokens) for i in chunk]
            answers = self.adapter.generate([request for request, _, _ in made])
            for i, (_, until, dropped), answer in zip(chunk, made, answers, strict=True):
                results[i] = cut_at_stops(self._ok(answer, requests[i].args), until)
                self.images_dropped += dropped
        self._say_dropped()
        return results

    def loglikelihood(self, requests) -> list:
        """(-logprob, is_greedy) per request, each wrapped in GenerationResult: 0.7.3 picks the argmin of the
        number and would turn a bare tuple into a string (the module's docstring). A document's
        continuations are scored together after one prefill of its prompt."""
        results: list = [None] * len(requests)
        groups = choice_groups([request.args for request in requests])
        for chunk in self._chunks(sorted(groups, key=lambda g: -len(str(g.args[0]))), len(requests), "loglikelihood",
                                  weight=lambda group: len(group.members)):
            made = [likelihood_request(group, self._doc, self.adapter.card.max_images) for group in chunk]
            scores = self.adapter.loglikelihood([request for request, _ in made], greedy=True)
            for group, (_, dropped), score in zip(chunk, made, scores, strict=True):
                for member, (logprob, greedy) in zip(group.members, self._ok(score, group.args), strict=True):
                    results[member] = GenerationResult(text=(-logprob, greedy))  # a loss: 0.7.3 takes argmin
                self.images_dropped += dropped
        self._say_dropped()
        return results

    def generate_until_multi_round(self, requests) -> list[str]:
        raise NotImplementedError("vlora_eval answers single-round requests only (generate_until, loglikelihood)")

    # --- helpers ---------------------------------------------------------------------------------------
    def _doc(self, task: str, split: str, doc_id: Any) -> Any:
        return self.task_dict[task][split][doc_id]

    def _chunks(self, items: list, total: int, label: str, weight=lambda item: 1):
        """`items` in batches of the adapter's batch size, with lmms-eval's progress bar on rank 0."""
        from tqdm import tqdm

        size = self.adapter.batch_size
        with tqdm(total=total, disable=self.rank != 0, desc=f"vlora_eval {label}") as bar:
            for start in range(0, len(items), size):
                chunk = items[start:start + size]
                yield chunk
                bar.update(sum(weight(item) for item in chunk))

    @staticmethod
    def _ok(result: Any, args: tuple) -> Any:
        if isinstance(result, Failure):
            raise InputError(f"{where_of(args)}: {result.message}")
        return result

    def _say_dropped(self) -> None:
        if self.images_dropped:
            self.logger.warning(f"vlora_eval: {self.images_dropped} image(s) dropped: {self.adapter.card.name} takes "
                                f"{self.adapter.card.max_images} per request and got each document's first, as "
                                "VLMEvalKit gives models that take one image")
            self.images_dropped = 0
