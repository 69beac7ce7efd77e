"""Training the three models (VLoRA, LLaVA-v1.5, the Q-Former baseline) in the release's two stages.

    stages.py   the stages as records (pretrain, finetune): template, what trains, the recipe's defaults
    recipe.py   TrainingRecipe (frozen, validated), a stage's recipe (official_recipe), TrainingPlan
    data.py     LLaVA-format JSON -> checked, tokenised, cached `datasets.Dataset`; the image collator
    loop.py     train(): accelerate, AdamW over the trainable parameters, cosine schedule, token-weighted
                loss under gradient accumulation, JSONL log, progress bar, the model saved at the end
    resume.py   checkpoints that resume exactly, the run's private RNG, the step log
    export.py   a trained VLoRA -> the official release layout

Imports only vlora/ and libraries (never evalsuite/ or flops/).
"""

from vlora.training.data import TrainingData, load_training_data, read_records, tokenize_sample
from vlora.training.export import export_official_vlora
from vlora.training.loop import TrainResult, train
from vlora.training.recipe import TrainingPlan, TrainingRecipe, official_recipe
from vlora.training.resume import read_log
from vlora.training.stages import STAGES, Stage, register_stage, stage_record

__all__ = ["STAGES", "Stage", "TrainResult", "TrainingData", "TrainingPlan", "TrainingRecipe", "export_official_vlora",
           "load_training_data", "official_recipe", "read_log", "read_records", "register_stage", "stage_record",
           "tokenize_sample", "train"]
