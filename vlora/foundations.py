"""Foundations: the pretrained tiny LLM ("the tiny Vicuna") and tiny CLIP that tiny models start from, as the
paper's three models all start from one Vicuna and one CLIP; their two stages only teach the connector (and
then the LLM) to use them.

    <folder>/manifest.json      what built them (recipe, command, library versions, seconds), every file's
                                sha256, and reference outputs (logits / features on a fixed input)
    <folder>/tokenizer/         the tokenizer, learned from the world's texts
    <folder>/llm/               config.json + model.safetensors: transformers' LlamaForCausalLM
    <folder>/clip/              config.json + model.safetensors: transformers' CLIPVisionModel (the vision half
                                of the contrastively trained CLIP)
    <folder>/logs/              the training logs of each stage

`Foundations.load(folder)` checks the files against the manifest; `model_config(connector)` is the
configuration of a model built on them; `apply(model)` puts their weights into a freshly built model (shapes
checked, every tensor filled); the tokenizer is theirs.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import torch

from vlora.config import LLMConfig, ModelConfig, VisionConfig
from vlora.errors import CheckpointError

MANIFEST = "manifest.json"
PARTS = ("tokenizer", "llm", "clip")


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def file_hashes(folder: Path) -> dict[str, str]:
    """sha256 of every file under the parts' folders (what the manifest records and `load` checks)."""
    return {str(p.relative_to(folder)): sha256_of(p) for part in PARTS for p in sorted((folder / part).rglob("*"))
            if p.is_file()}


@dataclass(frozen=True)
class Foundations:
    folder: Path
    manifest: dict[str, Any]

    @classmethod
    def load(cls, folder: str | Path) -> Foundations:
        """The foundations in `folder`, their files checked against the manifest (one line naming a file that
        is missing or changed)."""
        folder = Path(folder)
        try:
            manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise CheckpointError(f"{folder}: no readable foundations {MANIFEST} ({type(e).__name__}); build them with "
                                  "`vlora-eval foundations build`") from None
        expected = manifest.get("files", {}) if isinstance(manifest, dict) else {}
        found = file_hashes(folder)
        for name, digest in expected.items():
            if name not in found:
                raise CheckpointError(f"{folder / name} is missing (the foundations' manifest lists it)")
            if found[name] != digest:
                raise CheckpointError(f"{folder / name} was changed since the foundations were built (sha256 differs)")
        if not expected:
            raise CheckpointError(f"{folder / MANIFEST} lists no files")
        return cls(folder, manifest)

    @property
    def fingerprint(self) -> str:
        """What identifies them: the hash of their files' hashes."""
        return hashlib.sha256(json.dumps(self.manifest["files"], sort_keys=True).encode()).hexdigest()[:16]

    @cached_property
    def llm_config(self) -> LLMConfig:
        return LLMConfig.from_hf_dict(json.loads((self.folder / "llm" / "config.json").read_text(encoding="utf-8")))

    @cached_property
    def vision_config(self) -> VisionConfig:
        from transformers import CLIPVisionConfig

        hf = CLIPVisionConfig.from_pretrained(self.folder / "clip")
        return VisionConfig.from_hf(hf, select_layer=int(self.manifest.get("select_layer", -2)))

    def model_config(self, connector) -> ModelConfig:
        """A model on these foundations with `connector` (a ConnectorConfig)."""
        return ModelConfig(llm=self.llm_config, vision=self.vision_config, connector=connector)

    def tokenizer(self):
        from vlora.tokenizer import load_tokenizer

        return load_tokenizer(self.folder / "tokenizer")

    def reproduces_reference(self, atol: float = 1e-3) -> str | None:
        """None when the weights give the manifest's reference outputs, else what differs (one line)."""
        now, then = reference_outputs(self.folder, int(self.manifest.get("select_layer", -2))), self.manifest["reference"]
        for key in ("llm_logits_first16", "clip_features"):
            if not torch.allclose(torch.tensor(now[key]), torch.tensor(then[key]), atol=atol):
                return f"{key}: {now[key]} != recorded {then[key]}"
        return None if now["llm_greedy"] == then["llm_greedy"] else f"greedy {now['llm_greedy']!r} != {then['llm_greedy']!r}"

    @torch.no_grad()
    def apply(self, model) -> None:
        """Fill `model`'s LLM and vision tower with the foundations' weights (every tensor, shapes checked);
        the connector keeps its own initialisation."""
        from safetensors.torch import load_file

        for part, module in (("llm", model.llm), ("clip", model.vision.clip)):
            state = load_file(self.folder / part / "model.safetensors")
            own = module.state_dict()
            missing = sorted(set(own) - set(state))
            extra = sorted(set(state) - set(own))
            if missing or extra:
                raise CheckpointError(f"{self.folder / part}: keys do not match the model ({(missing or extra)[0]} "
                                      f"{'missing' if missing else 'unexpected'})")
            for key, tensor in state.items():
                if own[key].shape != tensor.shape:
                    raise CheckpointError(f"{self.folder / part}: {key} is {tuple(tensor.shape)}, the model's "
                                          f"{tuple(own[key].shape)}")
                own[key].copy_(tensor)


# --- reference outputs: what a load must reproduce -----------------------------------------------------------
REFERENCE_QUESTION = "What color is the circle?\nAnswer the question using a single word or phrase."


def reference_image(size: int) -> torch.Tensor:
    """A fixed input [1, 3, size, size]: smooth ramps in each channel (no file, no RNG)."""
    ramp = torch.linspace(-1.5, 1.5, size)
    return torch.stack([ramp[None, :].expand(size, size), ramp[:, None].expand(size, size),
                        (ramp[None, :] * ramp[:, None]).clamp(-1.5, 1.5)])[None]


@torch.no_grad()
def reference_outputs(folder: Path, select_layer: int = -2) -> dict[str, Any]:
    """The LLM's last-position logits (first 16 ids, and the greedy next 5 tokens) on the Vicuna prompt of a fixed
    question, and the vision tower's selected features (first 4 patches x 8 channels) on a fixed image."""
    from transformers import CLIPVisionModel, LlamaForCausalLM

    from vlora.hf_quiet import quiet_transformers
    from vlora.prompting import VICUNA_V1
    from vlora.tokenizer import load_tokenizer

    folder = Path(folder)
    tokenizer = load_tokenizer(folder / "tokenizer")
    with quiet_transformers():
        llm = LlamaForCausalLM.from_pretrained(folder / "llm").eval()
        vision = CLIPVisionModel.from_pretrained(folder / "clip").eval()
    ids = torch.tensor([tokenizer(VICUNA_V1.prompt(REFERENCE_QUESTION)).input_ids])
    logits = llm(input_ids=ids).logits[0, -1]
    greedy = llm.generate(ids, max_new_tokens=5, do_sample=False, pad_token_id=tokenizer.pad_token_id)[0, ids.shape[1]:]
    image = reference_image(vision.config.image_size)
    features = vision(pixel_values=image, output_hidden_states=True).hidden_states[select_layer][0, 1:5, :8]
    return {"question": REFERENCE_QUESTION, "llm_logits_first16": [round(float(x), 5) for x in logits[:16]],
            "llm_greedy": tokenizer.decode(greedy), "clip_features": [[round(float(x), 5) for x in row] for row in features]}
