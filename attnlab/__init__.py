"""attnlab: the attention-model family, from the perceptron to GPT, built from
scratch on PyTorch and open to inspection down to every value vector."""

from attnlab.errors import AttnlabError  # noqa: E402
from attnlab.inference import generate  # noqa: E402
from attnlab.interop.hf import load_pretrained  # noqa: E402
from attnlab.models import GPT, BertConfig, BertModel, GPTConfig  # noqa: E402
from attnlab.models.mlp import MLPClassifier  # noqa: E402
from attnlab.models.perceptron import Perceptron  # noqa: E402
from attnlab.version import __version__  # noqa: E402

__all__ = [
    "GPT",
    "AttnlabError",
    "BertConfig",
    "BertModel",
    "GPTConfig",
    "MLPClassifier",
    "Perceptron",
    "__version__",
    "generate",
    "load_pretrained",
]
