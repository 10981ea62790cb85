"""Surrogate models by name: ``MODELS[name](X, Y, key=key, **options) -> Surrogate``.

Each model registers its fit function where it is defined
(``@register_model("gp")`` above ``fit_gp``), so adding a model is one entry
in one file; importing ``surrogates`` fills the registry.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from surrogates.protocol import FitFunction

F = TypeVar("F", bound=Callable)

#: Model name -> fit function, in the order the models were defined.
MODELS: dict[str, FitFunction] = {}


def register_model(name: str) -> Callable[[F], F]:
    """Decorator: list ``fit`` in :data:`MODELS` under ``name`` and return it unchanged."""

    def register(fit: F) -> F:
        if name in MODELS and MODELS[name] is not fit:
            raise ValueError(f"surrogate model {name!r} is already registered")
        MODELS[name] = fit
        return fit

    return register


__all__ = ["MODELS", "register_model"]
