"""The exception types attnlab raises: bad input, and the machine failing a write.

Every message is a single line that names what is wrong and how to fix it,
in the spirit of scikit-learn's parameter errors. The CLI prints it as
``attnlab: error: <message>`` without a traceback, and exits 2 for bad input,
1 for a :class:`SystemFailureError`.
"""

from __future__ import annotations

import errno

# An OSError with one of these names a path that is wrong (missing, of the wrong kind, not
# allowed): bad input. Any other (a full disk, an I/O error) is the system failing.
BAD_PATH_ERRNOS = frozenset({errno.ENOENT, errno.ENOTDIR, errno.EISDIR, errno.EEXIST, errno.ENAMETOOLONG,
                             errno.ELOOP, errno.EACCES, errno.EPERM, errno.EROFS})


class AttnlabError(ValueError):
    """Bad input to attnlab: a wrong shape, a broken checkpoint, an unknown model type."""


class SystemFailureError(AttnlabError):
    """Not the input's fault: the machine could not do the job (a full disk, an I/O error).

    A subclass, so that ``except AttnlabError`` still catches it; the CLI exits 1, not 2.
    """
