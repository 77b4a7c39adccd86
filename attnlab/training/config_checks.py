"""Training configs: one validation helper and one vocabulary of names.

Each training config's ``__post_init__`` names its fields and their kind; the
messages say which field, what it must be and what it got, e.g. ``lr must be > 0
and finite. Got 0.0 instead.`` Every comparison with NaN is False, so NaN fails
every bound here.

The same setting has the same name in every config (``max_steps``, ``warmup_steps``,
``eval_interval``, ``beta1``/``beta2``/``eps``); :func:`with_old_names` keeps the
names they had before (``max_iters``, ``warmup_iters``, ``eval_every``, ``adam_beta2``, ...)
working.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable
from dataclasses import fields
from typing import Any, TypeVar

from attnlab.checks import check_int_fields
from attnlab.errors import AttnlabError

T = TypeVar("T")

DTYPES = ("auto", "fp32", "bf16")


def check_counts(config: object, names: Iterable[str], *, what: str = "training",
                 optional: Iterable[str] = ()) -> None:
    """Each field in ``names`` an int >= 1; each in ``optional`` None or an int >= 1."""
    check_int_fields(config, names, subject="The {name!r} " + what + " parameter", optional=optional)


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



# One vocabulary for the same setting in every training config (issue 19). The old spellings
# still work, as keyword arguments and as attributes, and in checkpoints written before.
OLD_NAMES = {"max_iters": "max_steps", "warmup_iters": "warmup_steps", "eval_every": "eval_interval",
             "adam_beta1": "beta1", "adam_beta2": "beta2", "adam_eps": "eps"}


def with_old_names(cls: type[T]) -> type[T]:
    """Class decorator for a keyword-only config dataclass: each field named in ``OLD_NAMES``'s
    values may also be given, and read, under its old name."""
    names = {old: new for old, new in OLD_NAMES.items() if new in {f.name for f in fields(cls)}}
    init = cls.__init__

    @functools.wraps(init)
    def init_with_old_names(self, **kwargs: Any) -> None:
        used = {old: new for old, new in names.items() if old in kwargs}
        for old, new in used.items():
            if new in kwargs:
                raise AttnlabError(f"{old} is the old name of {new}; give only one of them.")
            kwargs[new] = kwargs.pop(old)
        try:
            init(self, **kwargs)
        except AttnlabError as error:
            renamed = [f"{old} is now called {new}" for old, new in used.items() if new in str(error)]
            if not renamed:
                raise
            raise AttnlabError(f"{error} ({'; '.join(renamed)}.)") from None

    cls.__init__ = init_with_old_names  # type: ignore[method-assign]
    for old, new in names.items():
        setattr(cls, old, property(lambda self, new=new: getattr(self, new), doc=f"The old name of {new}."))
    return cls


def current_names(record: dict[str, Any]) -> dict[str, Any]:
    """A saved config's fields under today's names (a checkpoint written before the renaming)."""
    return {OLD_NAMES.get(key, key): value for key, value in record.items()}
