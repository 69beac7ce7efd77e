"""`vlora-eval embedded build`: the embedded models trained once by the package's recipe, and shipped with it.

The two stages at embedded.yaml's length (the length the models need to see: README "Embedded models") take
about 75 minutes of one CPU core for the three models (4,455 s measured: one build per model, side by side on a
2-core CPU, 27 minutes the longest), more than the main job's first run may take, so they are trained once by this command and shipped in vlora_eval/embedded_models/ (as the
foundations are). The main job installs a shipped model into its cache when the model was made by the current
recipe (the same cache fingerprint: embedded.model_folder) and trains it itself otherwise; `sweep` always trains.

    embedded.yaml --> per model name: embedded.plan(name), trained by workflows/train.py's train_plan on the
                      embedded mini-suite in <out>/work/<cache folder name>/       (a killed build resumes there)
                  --> <out>/<name>/          the tensors the stages trained (llm.*, connector.*) as safetensors
                                             shards under 5 MB; the vision tower is the foundations' (frozen,
                                             checked bit-identical before it is left out)
                  --> <out>/logs/<name>/<stage>.jsonl, <out>/manifest.json  (what made each model: its cache
                                             folder's name, plan, seconds, every file's sha256)
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import torch

from vlora.errors import CheckpointError, ConfigError
from vlora.placement import Placement

MANIFEST = "manifest.json"
FORMAT = "vlora-eval embedded models"
TRAINED = ("llm.", "connector.")  # what the two stages change; vision.* stays the foundations'
SHARD = "4MB"
Say = Callable[[str], None]


def shipped() -> Path:
    """The shipped embedded models' folder (inside the installed package)."""
    return Path(str(resources.files("vlora_eval").joinpath("embedded_models")))


# --- building ------------------------------------------------------------------------------------------
def build(out: Path, *, names: Sequence[str], placement: Placement, progress: bool = True, force: bool = False,
          say: Say = print) -> Path:
    """Train each embedded model `names` by the current recipe (resuming a killed build) and keep its trained
    tensors, logs and record under `out`; returns `out`."""
    from vlora.output_folder import Job, OutputFolder, State
    from vlora_eval.workflows import embedded

    unknown = sorted(set(names) - set(embedded.names()))
    if unknown:
        raise ConfigError(f"no embedded model {unknown[0]!r}; embedded: {', '.join(embedded.names())}")
    out = Path(out)
    job = Job("embedded-models", {name: embedded.model_folder(name).name for name in names})
    folder = OutputFolder(out, job, owned=(*names, "logs", "work", MANIFEST))
    if folder.claim(force=force) is State.FINISHED:
        say(f"{out} holds these embedded models, finished; nothing to do")
        return out
    records = {}
    for name in names:
        began = time.perf_counter()
        final = _train(name, out / "work", placement=placement, progress=progress, say=say)
        records[name] = keep_model(name, final, out, seconds=round(time.perf_counter() - began, 1))
    write_manifest(out, records)
    folder.finish()
    say(f"embedded models {', '.join(names)} built in {out}")
    return out


def _train(name: str, work: Path, *, placement: Placement, progress: bool, say: Say) -> Path:
    """The embedded model `name` trained by the current recipe in work/<its cache folder's name>/."""
    from vlora_eval.workflows import embedded
    from vlora_eval.workflows.train import TrainingSet, train_plan

    current = embedded.plan(name)
    data = TrainingSet.folder(embedded.mini_suite(say, training=True) / "train", list(current.stages))
    final, _ = train_plan(current, data, work / embedded.model_folder(name).name, placement=placement,
                          label=f"the embedded {name}", foundations=embedded.foundations(), progress=progress, say=say)
    return final


def keep_model(name: str, final: Path, out: Path, *, seconds: float) -> dict[str, Any]:
    """The trained tensors of the model in `final` as shards under out/<name>/, its stages' logs under
    out/logs/<name>/; returns its manifest record."""
    from vlora.checkpoints import load_model
    from vlora.checkpoints.files import save_state_dict
    from vlora_eval.workflows import embedded

    model = load_model(final)
    frozen = _vision_differs(model, embedded.foundations())
    if frozen:
        raise CheckpointError(f"{final}: the vision tower is not the foundations' ({frozen}); it is not shipped")
    target = out / name
    shutil.rmtree(target, ignore_errors=True)  # the build's own folder (claimed with `out`)
    save_state_dict({key: t for key, t in model.state_dict().items() if key.startswith(TRAINED)}, target, SHARD)
    logs = out / "logs" / name
    logs.mkdir(parents=True, exist_ok=True)
    for stage_folder in sorted(final.parent.parent.iterdir()):
        if (stage_folder / "train_log.jsonl").is_file():
            shutil.copyfile(stage_folder / "train_log.jsonl", logs / f"{stage_folder.name}.jsonl")
    return {"made_of": embedded.model_folder(name).name, "plan": embedded.plan(name).to_dict(),
            "foundations": embedded.foundations().fingerprint, "seconds": seconds}


def _vision_differs(model, foundations) -> str | None:
    from safetensors.torch import load_file

    theirs = load_file(foundations.folder / "clip" / "model.safetensors")
    for key, tensor in model.vision.clip.state_dict().items():
        if not torch.equal(tensor, theirs[key]):
            return key
    return None


def write_manifest(out: Path, records: dict[str, dict[str, Any]]) -> None:
    import platform

    import transformers

    from vlora.atomic import write_json_atomic
    from vlora.foundations import sha256_of

    files = {str(p.relative_to(out)): sha256_of(p) for name in records for part in (name, f"logs/{name}")
             for p in sorted((out / part).rglob("*")) if p.is_file()}
    write_json_atomic(out / MANIFEST, {
        "format": FORMAT, "command": "vlora-eval embedded build", "models": records, "files": files,
        "libraries": {"torch": torch.__version__, "transformers": transformers.__version__,
                      "python": platform.python_version()}})


# --- installing: a shipped model into the cache ----------------------------------------------------------
def read_manifest(folder: Path) -> dict[str, Any] | None:
    """The shipped models' manifest, its files checked (None when there is none)."""
    from vlora.foundations import sha256_of

    path = folder / MANIFEST
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise CheckpointError(f"{path} cannot be read ({type(e).__name__})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a manifest of embedded models")
    for name, digest in manifest.get("files", {}).items():
        if not (folder / name).is_file():
            raise CheckpointError(f"{folder / name} is missing (the embedded models' manifest lists it)")
        if sha256_of(folder / name) != digest:
            raise CheckpointError(f"{folder / name} was changed since the embedded models were built (sha256 differs)")
    return manifest


def shipped_record(name: str, folder: Path | None = None) -> tuple[dict[str, Any] | None, str]:
    """The shipped record of model `name` when it was made by the current recipe, else None; and why, in words."""
    from vlora_eval.workflows import embedded

    folder = folder or shipped()
    manifest = read_manifest(folder)
    record = (manifest or {}).get("models", {}).get(name)
    if record is None:
        return None, f"no shipped embedded {name} in {folder}"
    if record.get("made_of") != embedded.model_folder(name).name:
        return None, (f"the shipped embedded {name} ({folder}) was made by another recipe than embedded.yaml's "
                      f"({record.get('made_of')}, this one {embedded.model_folder(name).name})")
    return record, f"the shipped embedded {name} ({folder}, built by `{manifest['command']}`)"


def install(name: str, target: Path, folder: Path | None = None) -> Path:
    """The shipped model `name` in the project's own layout at `target`: the foundations' model with the shipped
    trained tensors put in (every one of them, shapes checked); returns `target`."""
    from vlora.checkpoints import save_model
    from vlora.checkpoints.assemble import fill
    from vlora.checkpoints.files import iter_tensors, weight_files
    from vlora.model import build_model
    from vlora_eval.workflows import embedded

    folder = folder or shipped()
    found = embedded.foundations()  # the record was made by the current plan (shipped_record checks it)
    model = build_model(embedded.plan(name).model, tokenizer=found.tokenizer(), seed=0)
    found.apply(model)
    tensors = [(key, key, t) for path in weight_files(folder / name) for key, t in iter_tensors(path)]
    trained = {key for key in model.state_dict() if key.startswith(TRAINED)}
    if {key for key, _, _ in tensors} != trained:
        raise CheckpointError(f"{folder / name}: its tensors are not the model's trained ones")
    fill(model, tensors, str(folder / name))
    model.eval()
    return save_model(model, target)
