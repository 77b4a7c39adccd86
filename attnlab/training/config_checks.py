"""Validation of training configs: one message for one mistake, the same in every config.

Each training config's ``__post_init__`` names its fields and their kind; the
messages say which field, what it must be and what it got, e.g. ``lr must be > 0
and finite. Got 0.0 instead.`` Every comparison with NaN is False, so NaN fails
every bound here.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from attnlab.checks import check_int
from attnlab.errors import AttnlabError

DTYPES = ("auto", "fp32", "bf16")


def check_counts(config: object, names: Iterable[str], *, what: str = "training",
                 optional: Iterable[str] = ()) -> None:
    """Each field in ``names`` an int >= 1; each in ``optional`` None or an int >= 1."""
    for name in names:
        check_int(f"The {name!r} {what} parameter", getattr(config, name))
    for name in optional:
        value = getattr(config, name)
        if value is not None:
            check_int(f"The {name!r} {what} parameter", value, hint=" or None")


def check_number(
    name: str,
    value: object,
    *,
    above: float | None = None,
    at_least: float | None = None,
    below: float = math.inf,
    finite: bool = True,
    optional: bool = False,
    unit: str = "",
) -> None:
    """A real number > ``above`` (or >= ``at_least``) and < ``below``; finite unless ``finite=False``.

    ``optional``: None is allowed too. The message states the bound the way the field is read:
    ``> 0 and finite``, ``>= 0``, ``in [0, 1)``.
    """
    if value is None and optional:
        return
    low = above if above is not None else at_least
    is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
    ok = is_number and (value > above if above is not None else value >= at_least)  # type: ignore[operator]
    ok = ok and (value < below or (not finite and below == math.inf))  # type: ignore[operator]
    if ok:
        return
    if below < math.inf:
        bound = f"in {'(' if above is not None else '['}{low:g}, {below:g})"
    else:
        bound = f"{'>' if above is not None else '>='} {low:g}{unit}" + (" and finite" if finite else "")
    raise AttnlabError(f"{name} must be {bound}{' or None' if optional else ''}. Got {value!r} instead.")


def check_dtype(value: object) -> None:
    if value not in DTYPES:
        raise AttnlabError(f"dtype must be 'auto', 'fp32' or 'bf16'. Got {value!r} instead.")

