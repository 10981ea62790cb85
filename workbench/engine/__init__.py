"""The proposal engine: a frozen Problem resolved once from the spec, registries of
surrogate fitters and acquisition builders by name, and ``propose() -> [Proposal]``.

    problem = resolve(spec, space)                       # the only reader of the spec
    proposals = propose(problem, X, Y, pending, q, key, warm_start)

Modules: ``policy`` (defaults the spec leaves open), ``problem`` (Problem,
resolve), ``fitters`` (FITTERS), ``acquisitions`` (ACQUISITIONS),
``incumbents`` (incumbent, anchors), ``proposals`` (Proposal, propose).
Attributes load lazily: resolving a Problem does not import JAX; fitting does.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Problem": "workbench.engine.problem",
    "resolve": "workbench.engine.problem",
    "acquisition_of": "workbench.engine.problem",
    "noise_prior_of": "workbench.engine.problem",
    "output_warping_of": "workbench.engine.problem",
    "FITTERS": "workbench.engine.fitters",
    "fit_surrogate": "workbench.engine.fitters",
    "condition_surrogate": "workbench.engine.fitters",
    "models_built": "workbench.engine.fitters",
    "output_warp": "workbench.engine.fitters",
    "ACQUISITIONS": "workbench.engine.acquisitions",
    "LOG_SPACE": "workbench.engine.acquisitions",
    "build_acquisition": "workbench.engine.acquisitions",
    "anchors": "workbench.engine.incumbents",
    "incumbent": "workbench.engine.incumbents",
    "Proposal": "workbench.engine.proposals",
    "propose": "workbench.engine.proposals",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'workbench.engine' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
