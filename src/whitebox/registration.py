"""The decorator behind ``@register_model`` and ``@register_augmentation``: a name -> function
table filled by the modules that define them."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

Registered = TypeVar("Registered", bound=Callable)


def registrar(table: dict[str, Callable], kind: str, name: str
              ) -> Callable[[Registered], Registered]:
    """A decorator that enters its function into ``table`` as ``name``; a second, different
    function under the same name raises ValueError naming both modules."""

    def register(function: Registered) -> Registered:
        if table.get(name, function) is not function:
            raise ValueError(f"{kind} '{name}' is registered twice ({table[name].__module__} and "
                             f"{function.__module__})")
        table[name] = function
        return function

    return register
