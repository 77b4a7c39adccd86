"""Evaluation: BLEU, the translation baselines, and fine-tuning metrics."""
