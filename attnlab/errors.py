"""The one exception type attnlab raises for bad input.

Every message is a single line that names what is wrong and how to fix it,
in the spirit of scikit-learn's parameter errors. The CLI prints it as
``attnlab: error: <message>`` and exits non-zero, without a traceback.
"""

from __future__ import annotations


class AttnlabError(ValueError):
    """Bad input to attnlab: a wrong shape, a broken checkpoint, an unknown model type."""
