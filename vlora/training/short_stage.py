"""What the foundations' short stages share (language.py, contrastive.py): a stage of minutes that keeps no
checkpoints, so a killed run starts over.

    claim(out, identity, what)            the folder claimed for the job (vlora/output_folder.py): a finished
                                          job's result, or None (a new or restarted run)
    StepLog(out, log_every)               the optimizer step (clipping, schedule), the JSONL step log (mean loss
                                          since the last line, the learning rate, seconds) and the progress bar
    finish(model, out, folder, log, ...)  the model saved quietly under out/model, the folder finished, the result
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from pathlib import Path

from vlora.output_folder import Job, OutputFolder, State
from vlora.training.loop import LOG_FILE, TrainResult, finished_result


def claim(out: Path, identity: dict, what: str, *, force: bool, say: Callable[[str], None]
          ) -> tuple[OutputFolder, TrainResult | None]:
    folder = OutputFolder(out, Job("train", identity), owned=(LOG_FILE, "model"))
    state = folder.claim(force=force)
    if state is State.FINISHED:
        say(f"{out} holds this job's finished training; nothing to do")
        return folder, finished_result(out, ())
    if state is State.RESUME:
        say(f"{out}: an interrupted {what} starts over (it keeps no checkpoints)")
        folder.redo()
    return folder, None


class StepLog:
    """The step, its log line every `log_every` steps (and at the last), and the progress bar."""

    def __init__(self, out: Path, total: int, log_every: int, progress: bool):
        from vlora.training.loop import _Progress

        self.total, self.log_every, self.began = total, log_every, time.perf_counter()
        self.bar, self.file, self.since, self.last, self.tokens = _Progress(progress, total, 0), (out / LOG_FILE).open("w"), [], math.nan, 0

    def step(self, step: int, loss, parameters, optimizer, rates, max_grad_norm: float | None, tokens: int = 0,
             extra: Callable[[], dict] | None = None) -> None:
        """Backward, clip, step the optimizer and the schedule; log; `extra()` adds fields to a logged line."""
        import torch

        loss.backward()
        torch.nn.utils.clip_grad_norm_(parameters, max_grad_norm or math.inf)
        optimizer.step()
        rates.step()
        optimizer.zero_grad(set_to_none=True)
        self.last = loss.item()
        self.since.append(self.last)
        self.tokens += tokens
        if step % self.log_every == 0 or step == self.total:
            record = {"step": step, "loss": sum(self.since) / len(self.since), "lr": rates.get_last_lr()[0],
                      "seconds": round(time.perf_counter() - self.began, 3), **(extra() if extra else {})}
            self.file.write(json.dumps(record) + "\n")
            self.file.flush()
            self.since = []
        self.bar.update(step, self.last, self.tokens / max(time.perf_counter() - self.began, 1e-9))

    def close(self) -> None:
        self.bar.close()
        self.file.close()


def finish(model, out: Path, folder: OutputFolder, log: StepLog, batch_size: int) -> TrainResult:
    from vlora.hf_quiet import quiet_transformers

    model.eval()
    with quiet_transformers():
        model.save_pretrained(out / "model")
    folder.finish(steps=log.total)
    seconds = time.perf_counter() - log.began
    return TrainResult(final_loss=log.last, steps=log.total, steps_this_run=log.total, resumed_from=None,
                       seconds=seconds, samples_per_second=log.total * batch_size / seconds,
                       tokens_per_second=log.tokens / seconds, model_dir=out / "model", log_file=out / LOG_FILE,
                       checkpoints=())
