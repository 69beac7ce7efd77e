"""Weight files of a checkpoint folder: `.safetensors` or `.bin`, single or sharded with an index.

Reading is lazy where the format allows (safetensors headers, memory-mapped `.bin`), so a 7B
folder can be described without loading it and loaded one shard at a time.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import torch

from vlora.errors import CheckpointError

INDEX_NAMES = ("model.safetensors.index.json", "pytorch_model.bin.index.json")
SINGLE_NAMES = ("model.safetensors", "pytorch_model.bin")


def folder_fingerprint(folder: Path) -> dict:
    """What identifies a checkpoint's content cheaply: its path and every weight file's size and modification
    time (a retrained checkpoint at the same path is another one)."""
    files = weight_files(Path(folder))
    return {"path": str(Path(folder).resolve()),
            "files": {f.name: [f.stat().st_size, f.stat().st_mtime_ns] for f in files}}


def weight_files(folder: Path) -> list[Path]:
    """The weight files of a folder, in a stable order; a clear error when there are none."""
    for name in INDEX_NAMES:
        index = folder / name
        if index.is_file():
            weight_map = read_json(index).get("weight_map")
            if not isinstance(weight_map, dict) or not all(isinstance(f, str) for f in weight_map.values()):
                raise CheckpointError(f"{index}: not a valid shard index (no weight_map of key -> file name)")
            files = [folder / f for f in sorted(set(weight_map.values()))]
            outside = [f for f in files if f.resolve().parent != folder.resolve()]
            if outside:
                raise CheckpointError(f"{index} names a shard outside the folder: {outside[0]}")
            missing = [f.name for f in files if not f.is_file()]
            if missing:
                raise CheckpointError(f"{index} names shard(s) that are not in the folder: {missing}")
            return files
    for name in SINGLE_NAMES:
        if (folder / name).is_file():
            return [folder / name]
    found = sorted(folder.glob("*.safetensors")) or sorted(folder.glob("*.bin"))
    if not found:
        raise CheckpointError(f"{folder} holds no weights (*.safetensors or *.bin)")
    return found


def _load_bin(path: Path) -> dict[str, torch.Tensor]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as e:  # torch raises many types for a corrupt or non-torch file
        raise CheckpointError(f"{path}: cannot read as a PyTorch state dict ({type(e).__name__}: {e})") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: expected a state dict, found {type(state).__name__}")
    return state


def iter_tensors(path: Path) -> Iterator[tuple[str, torch.Tensor]]:
    """(key, tensor) pairs of one weight file."""
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError, safe_open

        try:
            with safe_open(str(path), framework="pt") as f:
                for key in f.keys():
                    yield key, f.get_tensor(key)
        except SafetensorError as e:
            raise CheckpointError(f"{path}: cannot read safetensors file ({e})") from None
    else:
        yield from _load_bin(path).items()


def tensor_shapes(path: Path) -> dict[str, tuple[tuple[int, ...], str]]:
    """key -> (shape, dtype name) of one weight file, without reading the data where possible."""
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError, safe_open

        try:
            with safe_open(str(path), framework="pt") as f:
                return {k: (tuple(f.get_slice(k).get_shape()), f.get_slice(k).get_dtype()) for k in f.keys()}
        except SafetensorError as e:
            raise CheckpointError(f"{path}: cannot read safetensors file ({e})") from None
    return {k: (tuple(v.shape), str(v.dtype).removeprefix("torch.")) for k, v in _load_bin(path).items()}


def save_state_dict(state: dict[str, torch.Tensor], folder: Path, max_shard_size: str | int = "5GB",
                    safe_serialization: bool = True) -> list[Path]:
    """Write `state` as HF-style weight files (sharded with an index when larger than max_shard_size)."""
    from huggingface_hub import split_torch_state_dict_into_shards

    folder.mkdir(parents=True, exist_ok=True)
    pattern = "model{suffix}.safetensors" if safe_serialization else "pytorch_model{suffix}.bin"
    split = split_torch_state_dict_into_shards(state, filename_pattern=pattern, max_shard_size=max_shard_size)
    written = []
    for filename, keys in split.filename_to_tensors.items():
        shard = {k: state[k].detach().contiguous().cpu() for k in keys}
        if safe_serialization:
            from safetensors.torch import save_file

            save_file(shard, str(folder / filename), metadata={"format": "pt"})
        else:
            torch.save(shard, folder / filename)
        written.append(folder / filename)
    if split.is_sharded:
        index = {"metadata": split.metadata, "weight_map": split.tensor_to_filename}
        (folder / INDEX_NAMES[0 if safe_serialization else 1]).write_text(json.dumps(index, indent=2))
    return written


def read_json(path: Path) -> dict:
    """A JSON object from a checkpoint file; a missing, unreadable or non-object file is a CheckpointError."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CheckpointError(f"{path} does not exist") from None
    except IsADirectoryError:
        raise CheckpointError(f"{path} is a folder, not a JSON file") from None
    except (ValueError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{path}: invalid JSON ({e})") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{path}: expected a JSON object, found a {type(data).__name__}")
    return data
