"""Griffe extension: document names a package exports lazily (PEP 562).

``workbench/__init__.py`` binds its public names on first access through a
module-level ``__getattr__``, so static analysis cannot see them. For a package
that defines ``__getattr__``, this imports it, reads ``__all__`` and adds each
name the source does not bind as an alias to where the object is defined at
run time. The API pages therefore name only public paths (``workbench.Campaign``),
whichever private module holds the object.
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any

import griffe


class LazyExports(griffe.Extension):
    def on_package(self, *, pkg: griffe.Module, loader: griffe.GriffeLoader, **kwargs: Any) -> None:
        if "__getattr__" not in pkg.members:
            return
        module = importlib.import_module(pkg.path)
        exports = list(getattr(module, "__all__", ()))
        for name in exports:
            if name in pkg.members and not pkg.members[name].is_function:
                continue
            value = getattr(module, name)
            if inspect.ismodule(value):
                target = value.__name__
            else:
                target = f"{value.__module__}.{value.__qualname__}"
            pkg.set_member(name, griffe.Alias(name, target, parent=pkg))
        pkg.exports = exports
