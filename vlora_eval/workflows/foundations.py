"""`vlora-eval foundations build`: the tiny LLM and tiny CLIP that every tiny model starts from.

    foundations.yaml --> training scenes (disjoint from the mini-suite's benchmark images)
                     --> tokenizer      learned from the world's texts (vlora.tokenizer.train_tiny_tokenizer)
                     --> language       the LLM on text, a curriculum (foundation_corpus.py, vlora/training/language.py)
                     --> contrastive    a CLIP on image-caption pairs with hard negatives (vlora/training/contrastive.py)
                     --> <out>/{tokenizer, llm, clip, logs, manifest.json}     (read by vlora/foundations.py)

Each stage is one declaration of its stage record (vlora/training/stages.py: language, contrastive) with the
file's recipe changes. The stages' own folders (<out>/stages/) make a killed build resume at the stage it
was in. The shipped foundations (vlora_eval/foundations/) were built by this command; `shipped()` finds them.
"""

from __future__ import annotations

import random
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import torch

from vlora.errors import ConfigError

RECIPE_FILE = "foundations.yaml"
Say = Callable[[str], None]


@dataclass(frozen=True)
class MiniSuiteRef:
    seed: int
    scale: int


@dataclass(frozen=True)
class Phase:
    steps: int
    mix: dict[str, float]


@dataclass(frozen=True)
class LanguageSettings:
    answer_style: dict[str, str]
    system_prompt_share: float
    verdict_forms: str
    phases: list[Phase]
    held_out: dict[str, int]
    eval_every: int
    recipe: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ContrastiveSettings:
    edits_per_scene: int
    recipe: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class FoundationsRecipe:
    """foundations.yaml."""

    version: int
    seed: int
    avoid_mini_suite: MiniSuiteRef
    scenes: int
    held_out_scenes: int
    vocab_size: int
    llm: dict[str, int]
    language: LanguageSettings
    vision: dict[str, int]
    text_tower: dict[str, int]
    contrastive: ContrastiveSettings

    def with_steps(self, scale: float) -> FoundationsRecipe:
        """The same recipe with every phase and the contrastive stage `scale` times as long (a quick build)."""
        import dataclasses

        phases = [Phase(max(1, round(p.steps * scale)), p.mix) for p in self.language.phases]
        steps = max(1, round(self.contrastive.recipe.get("max_steps", 1) * scale))
        return dataclasses.replace(
            self, language=dataclasses.replace(self.language, phases=phases),
            contrastive=dataclasses.replace(self.contrastive, recipe={**self.contrastive.recipe, "max_steps": steps}))


@cache
def recipe() -> FoundationsRecipe:
    from vlora.schema import read_yaml

    return read_yaml(resources.files("vlora_eval.workflows").joinpath(RECIPE_FILE), FoundationsRecipe,
                     f"vlora_eval/workflows/{RECIPE_FILE}")


def shipped() -> Path:
    """The foundations shipped with the package (built by this command from foundations.yaml)."""
    return Path(str(resources.files("vlora_eval").joinpath("foundations")))


# --- the parts ---------------------------------------------------------------------------------------------
def training_scenes(current: FoundationsRecipe, work: Path, say: Say):
    """(training scenes, held-out scenes), none a benchmark image of the mini-suite named in the recipe."""
    from evalsuite.mini import benchmark_image_keys, write_mini_suite
    from evalsuite.mini.training import training_scenes as draw

    suite = work / "mini-suite"
    say(f"writing the mini-suite to avoid (seed {current.avoid_mini_suite.seed}, scale {current.avoid_mini_suite.scale})")
    write_mini_suite(suite, seed=current.avoid_mini_suite.seed, scale=current.avoid_mini_suite.scale, force=True,
                     training=False)  # its benchmarks are what is avoided
    forbidden = benchmark_image_keys(suite)
    scenes = [scene for scene, _ in draw(random.Random(f"foundations/scenes/{current.seed}"),
                                         current.scenes + current.held_out_scenes, forbidden)]
    return scenes[:current.scenes], scenes[current.scenes:], len(forbidden)


def language_recipe(current: FoundationsRecipe):
    from vlora.training import official_recipe

    total = sum(p.steps for p in current.language.phases)
    return official_recipe("language", seed=current.seed, max_steps=total, **current.language.recipe)


def build_llm(current: FoundationsRecipe, tokenizer):
    """A random LlamaForCausalLM of the recipe's size (its own init from a local seed; the global RNG kept)."""
    from transformers import LlamaForCausalLM

    from vlora.config import LLMConfig

    config = LLMConfig(num_kv_heads=current.llm["num_heads"], vocab_size=len(tokenizer), **current.llm)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(current.seed)
        return LlamaForCausalLM(config.to_hf())


def text_corpus(current: FoundationsRecipe, scenes, tokenizer):
    from evalsuite.mini.items import AnswerStyle
    from vlora_eval.workflows.foundation_corpus import TextCorpus

    settings = current.language
    return TextCorpus(scenes, tokenizer, AnswerStyle(**settings.answer_style), settings.system_prompt_share,
                      settings.verdict_forms)


def language_stage(current: FoundationsRecipe, scenes, held_out_scenes, tokenizer, work: Path, *, progress: bool,
                   say: Say):
    from vlora.schema import to_data
    from vlora.training.data import tokenizer_fingerprint
    from vlora.training.language import train_language

    recipe_ = language_recipe(current)
    corpus = text_corpus(current, scenes, tokenizer)
    phases = [(p.steps, p.mix) for p in current.language.phases]
    held_out = text_corpus(current, held_out_scenes, tokenizer).held_out(current.language.held_out, current.seed)
    identity = {"stage": "language", "recipe": to_data(current), "tokenizer": tokenizer_fingerprint(tokenizer)[:20]}
    llm = build_llm(current, tokenizer)
    say(f"language stage: {recipe_.max_steps} steps of {recipe_.batch_size} (an LLM of "
        f"{sum(p.numel() for p in llm.parameters()):,} parameters)")
    return train_language(llm, recipe_, corpus.batches(phases, recipe_.batch_size, current.seed), recipe_.max_steps,
                          work / "language", identity=identity, pad_id=tokenizer.pad_token_id, held_out=held_out,
                          eval_every=current.language.eval_every, progress=progress, say=say)


def contrastive_stage(current: FoundationsRecipe, scenes, tokenizer, work: Path, *, progress: bool, say: Say):
    from vlora.config import VisionConfig
    from vlora.training import official_recipe
    from vlora.training.contrastive import TextTower, build_clip, train_contrastive
    from vlora_eval.workflows.foundation_corpus import write_pairs

    vision = VisionConfig(**current.vision)
    recipe_ = official_recipe("contrastive", seed=current.seed, **current.contrastive.recipe)
    data = work / "contrastive-data"
    if not (data / "contrastive.json").is_file():
        say(f"drawing {len(scenes)} scenes with {current.contrastive.edits_per_scene} edited copies each")
        write_pairs(scenes, data, current.contrastive.edits_per_scene, current.seed, vision.image_size)
    clip = build_clip(vision, TextTower(**current.text_tower), tokenizer, current.seed)
    say(f"contrastive stage: {recipe_.max_steps} steps of {recipe_.batch_size} (a vision tower of "
        f"{sum(p.numel() for p in clip.vision_model.parameters()):,} parameters, {vision.num_patches} patches)")
    return train_contrastive(clip, tokenizer, recipe_, data / "contrastive.json", data, work / "contrastive",
                             vision=vision, progress=progress, say=say)


# --- the command ---------------------------------------------------------------------------------------------
def build(out: Path, *, current: FoundationsRecipe | None = None, progress: bool = True, force: bool = False,
          say: Say = print) -> Path:
    """Build the foundations into `out` (resuming a killed build at its stage); returns `out`."""
    from vlora.hf_quiet import quiet_transformers
    from vlora.output_folder import Job, OutputFolder, State
    from vlora.schema import to_data

    current = current or recipe()
    check_recipe(current)
    out = Path(out)
    folder = OutputFolder(out, Job("foundations", {"recipe": to_data(current)}),
                          owned=("tokenizer", "llm", "clip", "logs", "stages", "manifest.json"))
    if folder.claim(force=force) is State.FINISHED:
        say(f"{out} holds these foundations, finished; nothing to do")
        return out
    began, work = time.perf_counter(), out / "stages"
    scenes, held_out, avoided = training_scenes(current, work, say)
    tokenizer = learned_tokenizer(current, scenes, out / "tokenizer", say)
    seconds = {"scenes_and_tokenizer": round(time.perf_counter() - began, 1)}
    language = language_stage(current, scenes, held_out, tokenizer, work, progress=progress, say=say)
    contrastive = contrastive_stage(current, scenes, tokenizer, work, progress=progress, say=say)
    seconds.update(language=round(language.seconds, 1), contrastive=round(contrastive.seconds, 1))
    with quiet_transformers():
        keep_parts(out, work, current)
        write_manifest(out, current, tokenizer, seconds, avoided)
    folder.finish()
    say(f"foundations built in {out} ({time.perf_counter() - began:.0f} s)")
    return out


def learned_tokenizer(current: FoundationsRecipe, scenes, folder: Path, say: Say):
    from vlora.tokenizer import has_tokenizer, load_tokenizer, train_tiny_tokenizer
    from vlora_eval.workflows.foundation_corpus import tokenizer_texts

    if not has_tokenizer(folder):
        say(f"learning a {current.vocab_size}-token tokenizer from the world's texts")
        train_tiny_tokenizer(tokenizer_texts(scenes, current.seed), current.vocab_size).save_pretrained(folder)
    return load_tokenizer(folder)


def keep_parts(out: Path, work: Path, current: FoundationsRecipe) -> None:
    """The stages' results in the foundations' layout: llm/ (the LLM), clip/ (the CLIP's vision half), logs/."""
    from transformers import CLIPModel, CLIPVisionModel, LlamaForCausalLM

    LlamaForCausalLM.from_pretrained(work / "language" / "model").save_pretrained(out / "llm")
    clip = CLIPModel.from_pretrained(work / "contrastive" / "model")
    vision = CLIPVisionModel(clip.config.vision_config)
    vision.load_state_dict({key.removeprefix("vision_model."): tensor for key, tensor in clip.state_dict().items()
                            if key.startswith("vision_model.")})  # strict: every tensor of the tower
    vision.save_pretrained(out / "clip")
    (out / "logs").mkdir(exist_ok=True)
    for stage in ("language", "contrastive"):
        shutil.copyfile(work / stage / "train_log.jsonl", out / "logs" / f"{stage}.jsonl")


def write_manifest(out: Path, current: FoundationsRecipe, tokenizer, seconds: dict, avoided: int) -> None:
    import platform

    import tokenizers
    import transformers

    from vlora.atomic import write_json_atomic
    from vlora.foundations import MANIFEST, file_hashes, reference_outputs
    from vlora.schema import to_data

    write_json_atomic(out / MANIFEST, {
        "format": "vlora-eval foundations", "command": "vlora-eval foundations build", "recipe": to_data(current),
        "select_layer": current.vision["select_layer"], "answer_style": current.language.answer_style,
        "avoids": {"mini_suite": to_data(current.avoid_mini_suite), "benchmark_images": avoided},
        "seconds": seconds, "libraries": {"torch": torch.__version__, "transformers": transformers.__version__,
                                          "tokenizers": tokenizers.__version__, "python": platform.python_version()},
        "reference": reference_outputs(out, select_layer=current.vision["select_layer"]),
        "files": file_hashes(out)})


def check_recipe(current: FoundationsRecipe) -> None:
    """Refuse, in one line naming the key and before any work, a recipe whose stage changes name unknown recipe
    fields, whose phases or held-out sets name unknown sample kinds, or whose answer style is unknown."""
    from evalsuite.mini.items import AnswerStyle
    from vlora.training import official_recipe
    from vlora_eval.workflows.foundation_corpus import KINDS, VERDICT_FORMS

    where = f"vlora_eval/workflows/{RECIPE_FILE}"
    for stage, changes in (("language", current.language.recipe), ("contrastive", current.contrastive.recipe)):
        try:
            official_recipe(stage, **changes)
        except ConfigError as e:
            raise ConfigError(f"{where}: {stage}.recipe: {e}") from None
    named = [(f"language.phases[{i}].mix", kind) for i, phase in enumerate(current.language.phases) for kind in phase.mix]
    named += [("language.held_out", kind) for kind in current.language.held_out]
    for key, kind in named:
        if kind not in KINDS:
            raise ConfigError(f"{where}: {key}: {kind!r} is not a sample kind ({', '.join(KINDS)})")
    if current.language.verdict_forms not in VERDICT_FORMS:
        raise ConfigError(f"{where}: language.verdict_forms: {current.language.verdict_forms!r} is not one of "
                          f"{', '.join(VERDICT_FORMS)}")
    try:
        AnswerStyle(**current.language.answer_style)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{where}: language.answer_style: {e}") from None
