"""Training: one loop for every model (:mod:`attnlab.training.loop`), schedules, and the tasks."""

from attnlab.training.gpt_pretrain import LMTrainingConfig, evaluate_loss, train_language_model
from attnlab.training.loop import Task, TrainingConfig, run_training
from attnlab.training.schedule import warmup_cosine

__all__ = [
    "LMTrainingConfig",
    "Task",
    "TrainingConfig",
    "evaluate_loss",
    "run_training",
    "train_language_model",
    "warmup_cosine",
]
