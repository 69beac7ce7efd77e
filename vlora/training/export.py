"""A trained VLoRA model -> the official release layout (FeipengMa6/VLoRA), which
`vlora.checkpoints.load_model` (and the official code) read back. Both folders it writes are claimed for
the export (vlora/output_folder.py): never written over another job's output or files it did not write."""

from __future__ import annotations

from pathlib import Path

from vlora.errors import ConfigError
from vlora.output_folder import Job, OutputFolder, State


def export_official_vlora(model, folder: str | Path, clip_folder: str | Path | None = None, *,
                          source: dict | None = None, force: bool = False) -> tuple[Path, bool]:
    """Write `model` (a VLoRA MultimodalLM, e.g. `train`'s result or `load_model(out / "model")`) in
    the official layout; its CLIP goes to `clip_folder` (default: `<folder>-clip` beside it), which
    config.json names as `mm_vision_tower`. `source` identifies what is exported (the checkpoint's files);
    returns the folder and whether it already held this export (nothing written)."""
    from vlora.checkpoints import official_vlora

    if model.config.kind != "vlora":
        raise ConfigError(f"only VLoRA models have an official release layout; this is a {model.config.kind} model")
    folder = Path(folder)
    clip = Path(clip_folder) if clip_folder is not None else folder.with_name(folder.name + "-clip")
    identity = {"model": model.config.to_dict(), "source": source or {}, "clip": str(clip.resolve())}
    targets = [OutputFolder(folder, Job("export", identity)), OutputFolder(clip, Job("export-clip", identity), "--clip-out")]
    if all(target.is_finished() for target in targets) and not force:
        return folder, True
    for target in targets:
        if target.claim(force=force) is not State.NEW:
            target.redo()  # this export's own unfinished (or, with force, finished) output: written again
    official_vlora.export(model, folder, clip)
    for target in targets:
        target.finish()
    return folder, False
