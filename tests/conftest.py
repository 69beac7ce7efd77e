"""Shared fixtures: tiny random models, images, and an official-layout checkpoint written by the test
itself from the independent reference (tests/reference/official_vlora.py)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
from PIL import Image
from reference.official_vlora import OfficialTinyConfig, official_config_json, random_official_state_dict

from vlora.model import MultimodalLM, build_model
from vlora.placement import usable_cores
from vlora.presets import preset
from vlora.tokenizer import build_tiny_tokenizer


def _pin_worker() -> None:
    """Under pytest-xdist (pyproject's addopts), each worker keeps to its own share of the cores (one core each
    when there are as many workers as cores), and so do the processes it starts: torch's threads never spin
    against another worker's (two busy processes on shared cores run several times slower)."""
    worker, count = os.environ.get("PYTEST_XDIST_WORKER"), int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if worker is None or not hasattr(os, "sched_setaffinity"):
        return
    cores, index = sorted(os.sched_getaffinity(0)), int(worker.removeprefix("gw"))
    os.sched_setaffinity(0, cores[index::count] or [cores[index % len(cores)]])


def pytest_xdist_auto_num_workers(config) -> int:
    """`-n auto`: one worker per core this process may use (its affinity), at most 8 (each holds torch and tiny
    models); not the machine's count, which a container's share of it can be far below."""
    return min(8, usable_cores())


_pin_worker()
torch.set_num_threads(min(2, usable_cores()))  # never more threads than the cores given


@pytest.fixture
def one_thread():
    """One CPU thread for a module of tiny-model tests (they gain nothing from threads, and a busy
    2-core machine makes them 20x slower); the suite's setting afterwards. Use with
    `pytestmark = pytest.mark.usefixtures("one_thread")`."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def clean_home(tmp_path, monkeypatch):
    """An empty home and cache, no $LMUData, run from tmp_path; counts the training stages run (their names)."""
    import vlora.training

    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("LMUData", raising=False)
    monkeypatch.chdir(tmp_path)
    stages, original = [], vlora.training.train

    def counting(model, recipe, *args, **kwargs):
        stages.append(recipe.stage)
        return original(model, recipe, *args, **kwargs)

    monkeypatch.setattr(vlora.training, "train", counting)
    return tmp_path, stages


def make_image(seed: int, size: tuple[int, int] = (60, 44)) -> Image.Image:
    """A random RGB image (deterministic)."""
    g = torch.Generator().manual_seed(seed)
    pixels = torch.randint(0, 256, (size[1], size[0], 3), generator=g, dtype=torch.uint8)
    return Image.fromarray(pixels.numpy())


def randomize_w_s(model: MultimodalLM, std: float = 0.5, seed: int = 0) -> MultimodalLM:
    """W_s is zero at initialisation; tests give it values so the perceptual weights act."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.connector.w_s.values():
            p.copy_(torch.randn(p.shape, generator=g) * std)
    return model


@pytest.fixture
def tiny_config():
    return preset("vlora-tiny")


@pytest.fixture
def tiny_model(tiny_config) -> MultimodalLM:
    return randomize_w_s(build_model(tiny_config, seed=0)).eval()


@pytest.fixture
def images() -> list[Image.Image]:
    return [make_image(1), make_image(2, (40, 70)), make_image(3, (50, 50))]


OFFICIAL_TINY = OfficialTinyConfig(vocab_size=1024, vlora_heads=16)  # 16 heads: the official hard-coded value


def write_clip_folder(folder: Path, hidden: int = OFFICIAL_TINY.vlora_visual_dim, seed: int = 0) -> Path:
    """A tiny random CLIP vision model saved as users have CLIP: a folder with config.json + weights."""
    from transformers import CLIPVisionConfig, CLIPVisionModel

    torch.manual_seed(seed)
    clip = CLIPVisionModel(CLIPVisionConfig(image_size=56, patch_size=14, hidden_size=hidden,
                                            intermediate_size=2 * hidden, num_hidden_layers=2, num_attention_heads=4))
    clip.save_pretrained(folder)
    return folder


def write_official_checkpoint(folder: Path, cfg: OfficialTinyConfig = OFFICIAL_TINY, seed: int = 0,
                              state: dict | None = None, shards: int = 1, safetensors: bool = False,
                              with_extras: bool = True) -> dict[str, torch.Tensor]:
    """An official-layout folder written key by key from the reference (not by the project's exporter)."""
    folder.mkdir(parents=True, exist_ok=True)
    state = state if state is not None else random_official_state_dict(cfg, seed=seed, with_extras=with_extras)
    clip = write_clip_folder(folder.parent / f"{folder.name}-clip")
    (folder / "config.json").write_text(json.dumps(official_config_json(cfg, vision_tower=str(clip))))
    build_tiny_tokenizer(cfg.vocab_size).save_pretrained(folder)
    keys = list(state)
    parts = [keys[i::shards] for i in range(shards)]
    ext = "safetensors" if safetensors else "bin"
    names = ([f"model.{ext}" if safetensors else "pytorch_model.bin"] if shards == 1 else
             [f"{'model' if safetensors else 'pytorch_model'}-{i + 1:05d}-of-{shards:05d}.{ext}" for i in range(shards)])
    for name, part in zip(names, parts, strict=True):
        tensors = {k: state[k].contiguous() for k in part}
        if safetensors:
            from safetensors.torch import save_file

            save_file(tensors, str(folder / name))
        else:
            torch.save(tensors, folder / name)
    if shards > 1:
        index = {"metadata": {}, "weight_map": {k: names[i] for i, part in enumerate(parts) for k in part}}
        index_name = "model.safetensors.index.json" if safetensors else "pytorch_model.bin.index.json"
        (folder / index_name).write_text(json.dumps(index))
    return state


@pytest.fixture
def official_checkpoint(tmp_path) -> tuple[Path, dict[str, torch.Tensor]]:
    folder = tmp_path / "vlora-official"
    return folder, write_official_checkpoint(folder)
