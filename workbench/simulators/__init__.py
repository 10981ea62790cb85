"""Built-in simulators that stand in for the lab: a catalogue of models from the literature.

    from workbench import simulators
    snar = simulators.get("snar")
    snar({"tau": 1.5, "equiv_pldn": 3.0, "conc_dfnb": 0.3, "temperature": 100.0})
    # {"sty": ..., "e_factor": ..., "conversion": ..., ...}
    snar.space()          # the published ranges as a SearchSpace, with units

From YAML: ``oracle: {simulator: snar}`` (``outputs: [sty]`` keeps some outputs).

This module is metadata only (names, ranges, units, outputs), so that a spec
validates without importing JAX or ASE; each model's module is imported on
its first evaluation. The kinetic models are pure JAX functions under
``jit`` (``snar.snar``, ``process.van_de_vusse``), vmappable over settings;
the alloy model drives ASE's EMT calculator.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Mapping

from workbench.errors import WorkbenchError

# Inputs may overshoot their range by this fraction of its width (round-off in
# a decoded proposal) before an evaluation refuses them.
_RANGE_SLACK = 1e-9


class SimulatorError(WorkbenchError, ValueError):
    """An unknown simulator or parameters it cannot evaluate (missing, out of range)."""

    exit_code = 2


@dataclass(frozen=True)
class Input:
    """One input of a simulator: its name, published range and unit."""

    name: str
    low: float
    high: float
    unit: str
    description: str = ""


@dataclass(frozen=True)
class Output:
    """One output: its name, unit and, for objectives, the direction users want."""

    name: str
    unit: str
    direction: str | None = None
    description: str = ""


@dataclass(frozen=True)
class Simulator:
    """A named simulator: callable on a parameter dict, returning a dict of outputs.

    ``composition``: the simulator takes one composition parameter (element ->
    fraction) instead of the continuous ``inputs``. Pickles by value (the
    module name travels, not the model), so executors can send it anywhere.
    """

    name: str
    module: str
    description: str
    reference: str
    inputs: tuple[Input, ...] = ()
    outputs: tuple[Output, ...] = ()
    composition: tuple[str, ...] = field(default=())
    structures: bool = False  # the module has structure_text(simulator, params)

    @property
    def input_names(self) -> list[str]:
        return [i.name for i in self.inputs]

    @property
    def output_names(self) -> list[str]:
        return [o.name for o in self.outputs]

    def check(self, params: Mapping[str, Any]) -> dict[str, float]:
        """The continuous inputs as floats; SimulatorError naming what is wrong."""
        missing = [n for n in self.input_names if n not in params]
        if missing:
            raise SimulatorError(f"simulator {self.name!r}: missing parameters {missing};"
                                 f" expected {self.input_names}")
        values = {}
        for inp in self.inputs:
            try:
                v = float(params[inp.name])
            except (TypeError, ValueError):
                raise SimulatorError(f"simulator {self.name!r}: {inp.name}: got"
                                     f" {params[inp.name]!r}; expected a number") from None
            slack = _RANGE_SLACK * (inp.high - inp.low)
            if not inp.low - slack <= v <= inp.high + slack:
                raise SimulatorError(
                    f"simulator {self.name!r}: {inp.name}: got {v:g} {inp.unit}; expected"
                    f" {inp.low:g} to {inp.high:g} {inp.unit} (the model's validated range)")
            values[inp.name] = min(max(v, inp.low), inp.high)
        return values

    def __call__(self, params: Mapping[str, Any]) -> dict[str, float]:
        model = importlib.import_module(self.module)
        return model.evaluate(self, params)

    def structure_text(self, params: Mapping[str, Any]) -> str:
        """The evaluated atomic structure as extended XYZ (simulators with structures)."""
        if not self.structures:
            raise SimulatorError(f"simulator {self.name!r} has no atomic structure to give")
        return importlib.import_module(self.module).structure_text(self, params)

    def space(self):
        """The inputs as a SearchSpace with units (not for composition simulators)."""
        from workbench.space import Continuous, SearchSpace

        if self.composition:
            raise SimulatorError(f"simulator {self.name!r} takes a composition of"
                                 f" {list(self.composition)}; build its space with"
                                 " wb.Composition")
        return SearchSpace([Continuous(i.name, i.low, i.high, unit=i.unit) for i in self.inputs])


SIMULATORS: dict[str, Simulator] = {
    "snar": Simulator(
        name="snar",
        module="workbench.simulators.snar",
        description="SnAr of 2,4-difluoronitrobenzene with pyrrolidine in a flow reactor"
                    " (plug flow, 4 second-order reactions); space-time yield and E-factor",
        reference="C. A. Hone, N. Holmes, G. R. Akien, R. A. Bourne, F. L. Muller,"
                  " React. Chem. Eng. 2, 103-108 (2017), doi:10.1039/C6RE00109B;"
                  " the benchmark form of Summit's SnarBenchmark (Felton et al.,"
                  " Chemistry-Methods 1, 116 (2021))",
        inputs=(
            Input("tau", 0.5, 2.0, "min", "residence time"),
            Input("equiv_pldn", 1.0, 5.0, "", "equivalents of pyrrolidine"),
            Input("conc_dfnb", 0.1, 0.5, "mol/L", "2,4-difluoronitrobenzene at the inlet"),
            Input("temperature", 30.0, 120.0, "degC", "reactor temperature"),
        ),
        outputs=(
            Output("sty", "kg/m^3/h", "maximize", "space-time yield of the ortho product"),
            Output("e_factor", "", "minimize", "mass of waste per mass of ortho product"),
            Output("conversion", "", None, "fraction of 2,4-difluoronitrobenzene converted"),
            Output("yield_ortho", "", None, "ortho product per difluoronitrobenzene fed"),
            Output("yield_para", "", None, "para product per difluoronitrobenzene fed"),
            Output("yield_bis", "", None, "bis-adduct per difluoronitrobenzene fed"),
        ),
    ),
    "cstr": Simulator(
        name="cstr",
        module="workbench.simulators.process",
        description="Van de Vusse reactions (A -> B -> C, 2A -> D) in a cooled, non-isothermal"
                    " CSTR run to steady state; productivity, cost and reactor temperature"
                    " (a safety limit)",
        reference="H. Chen, A. Kremling, F. Allgower, Proc. European Control Conference"
                  " 1995, 3247-3252; K.-U. Klatt, S. Engell, Automatica 34, 1057-1070"
                  " (1998), doi:10.1016/S0005-1098(98)00049-5",
        inputs=(
            Input("residence_time", 2.0, 20.0, "min", "reactor volume / feed flow"),
            Input("coolant_temperature", 80.0, 140.0, "degC", "jacket temperature"),
            Input("feed_concentration", 3.0, 6.0, "mol/L", "concentration of A in the feed"),
        ),
        outputs=(
            Output("productivity", "mol/h", "maximize", "B leaving the 10 L reactor"),
            Output("cost", "EUR/mol", "minimize", "feed and utility cost per mol of B"),
            Output("temperature", "degC", None, "steady reactor temperature (safety limit)"),
            Output("conversion", "", None, "fraction of A converted"),
            Output("selectivity", "", None, "B formed per A converted"),
            Output("heat_duty", "kJ/h", None, "heat through the jacket (negative: removed)"),
        ),
    ),
    "emt_alloy": Simulator(
        name="emt_alloy",
        module="workbench.simulators.alloys",
        description="Random fcc solid solution of Cu, Ni, Pd, Ag, Pt, Au (32-atom supercell,"
                    " fixed seed) with ASE's EMT potential; lattice relaxed by an E(V) fit",
        reference="K. W. Jacobsen, P. Stoltze, J. K. Norskov, Surf. Sci. 366, 394-402 (1996),"
                  " doi:10.1016/0039-6028(96)00816-3; ASE, J. Phys.: Condens. Matter 29,"
                  " 273002 (2017)",
        outputs=(
            Output("mixing_energy", "eV/atom", "minimize",
                   "energy per atom minus the fraction-weighted pure elements"),
            Output("lattice_constant", "angstrom", None, "cubic fcc lattice constant"),
            Output("bulk_modulus", "GPa", None, "from the Birch-Murnaghan fit"),
        ),
        composition=("Cu", "Ni", "Pd", "Ag", "Pt", "Au"),
        structures=True,
    ),
}


def names() -> list[str]:
    """Names of the built-in simulators."""
    return sorted(SIMULATORS)


def get(name: str) -> Simulator:
    """The simulator called ``name``; SimulatorError listing the names otherwise."""
    try:
        return SIMULATORS[name]
    except (KeyError, TypeError):
        raise SimulatorError(f"simulator: got {name!r}; expected one of {names()}") from None
