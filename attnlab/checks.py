"""Argument checks shared by every layer: one message for one mistake.

A count (layers, heads, steps, a batch size) must be a true ``int``: Python's ``bool`` is an
``int`` subclass, so ``True`` would pass ``isinstance(value, int)`` and silently mean 1.
"""

from __future__ import annotations

from collections.abc import Iterable

from attnlab.errors import AttnlabError


def is_int(value: object) -> bool:
    """True for an ``int`` that is not a ``bool``."""
    return isinstance(value, int) and not isinstance(value, bool)


def check_int(name: str, value: object, minimum: int = 1, *, hint: str = "") -> None:
    """Raise a one-line :class:`AttnlabError` unless ``value`` is an int >= ``minimum``.

    ``name`` is the subject of the message as the caller's user knows it: a parameter
    (``batch_size``), a flag (``--beam``) or a phrase (``The 'max_steps' training parameter``);
    ``hint`` follows the bound, e.g. ``" (1 = greedy)"``.
    """
    if not is_int(value) or value < minimum:  # type: ignore[operator]
        raise AttnlabError(f"{name} must be an int >= {minimum}{hint}. Got {value!r} instead.")


def check_int_fields(owner: object, names: Iterable[str], minimum: int = 1, *, label: str = "",
                     subject: str = "The {name!r} parameter of {label}",
                     optional: Iterable[str] = ()) -> None:
    """Each named attribute of ``owner`` an int >= ``minimum``; each in ``optional`` that or None.

    The message's subject is ``subject`` with the field's ``name`` and ``label`` (default: the
    owner's class name) filled in: "The 'n_heads' parameter of GPTConfig must be an int >= 1.
    Got 0 instead." Any frozen dataclass of counts uses it (model, training and comparison configs).
    """
    label = label or type(owner).__name__
    for name in names:
        check_int(subject.format(name=name, label=label), getattr(owner, name), minimum)
    for name in optional:
        value = getattr(owner, name)
        if value is not None:
            check_int(subject.format(name=name, label=label), value, minimum, hint=" or None")
