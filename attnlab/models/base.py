"""What every attnlab model shares: its config, saving, and a parameter count."""

from __future__ import annotations

from pathlib import Path

from torch import nn

from attnlab.models.config import ModelConfig


class PreTrainedModel(nn.Module):
    """Base of BERT and GPT: holds ``config``; saves to the Hugging Face layout."""

    config_class: type[ModelConfig] = ModelConfig
    # The Hugging Face class whose checkpoint layout this model reads and writes.
    hf_architecture: str = ""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config

    def save_pretrained(self, directory: str | Path) -> Path:
        """Write ``config.json`` + ``model.safetensors`` that ``transformers`` loads.

        Both files are written atomically (temporary file, then rename).
        """
        from attnlab.interop.hf import save_pretrained

        return save_pretrained(self, directory)

    def num_parameters(self) -> int:
        """Number of distinct parameters (tied weights counted once)."""
        return sum(p.numel() for p in self.parameters())

    def init_weights(self, std: float = 0.02) -> None:
        """Normal(0, 0.02) weights, zero biases, unit LayerNorms (GPT-2 and BERT)."""
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.normal_(module.weight, mean=0.0, std=std)
                if isinstance(module, nn.Linear) and module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.LayerNorm):
                nn.init.ones_(module.weight)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.RMSNorm):
                nn.init.ones_(module.weight)
