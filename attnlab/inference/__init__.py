"""Generation, decoding and the fast inference paths, on the models of :mod:`attnlab.models`.

Importing this package registers :func:`attnlab.inference.generation.generate` with
:mod:`attnlab.models.base`, so that ``model.generate(...)`` (a method of the layer below) is
the same function as ``attnlab.generate(model, ...)``.
"""

from attnlab.inference.generation import generate
from attnlab.models.base import register_implementations

register_implementations(generate=generate)

__all__ = ["generate"]
