"""Training: schedules and the language-model training loop."""

from attnlab.training.lm import LMTrainingConfig, evaluate_loss, train_language_model
from attnlab.training.schedule import warmup_cosine

__all__ = ["LMTrainingConfig", "evaluate_loss", "train_language_model", "warmup_cosine"]
