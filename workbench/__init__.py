"""Experiment and surrogate-modelling workbench for AI-driven science and engineering.

    import workbench as wb
    space = wb.SearchSpace([wb.Continuous("temperature", 30.0, 110.0, unit="degC")])
    campaign = wb.Campaign("demo", space, [wb.Objective("yield", "maximize")], tracking=None)
    trial, = campaign.ask(1)
    campaign.tell(trial.id, {"yield": 71.2})

Attributes are imported lazily so that ``workbench --help`` stays fast; JAX is
imported only when a model is fitted.
"""

from __future__ import annotations

import importlib
import os
from typing import Any

__version__ = "0.1.0"

# MLflow's usage telemetry posts to a third-party endpoint from a background
# thread. Nothing about a partner's campaigns leaves the site unasked: off
# unless the user sets MLFLOW_DISABLE_TELEMETRY=false (or DO_NOT_TRACK) first.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

_EXPORTS = {
    "SearchSpace": "workbench.space",
    "Continuous": "workbench.space",
    "Integer": "workbench.space",
    "Categorical": "workbench.space",
    "Composition": "workbench.space",
    "Objective": "workbench.space",
    "NChooseK": "workbench.constraints",
    "Campaign": "workbench.campaign",
    "Trial": "workbench.record",
    "Prediction": "workbench.record",
    "CampaignSpec": "workbench.spec",
    "load_spec": "workbench.spec",
    "WorkbenchError": "workbench.errors",
    "SpecError": "workbench.errors",
    "CampaignError": "workbench.errors",
    "NotSupportedYet": "workbench.errors",
    "problems": "workbench.problems",
    "datasets": "workbench.datasets",
    "simulators": "workbench.simulators",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'workbench' has no attribute {name!r}")
    mod = importlib.import_module(module)
    value = mod if module == f"workbench.{name}" else getattr(mod, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
