"""fcc alloys of Cu, Ni, Pd, Ag, Pt, Au with ASE's effective-medium theory (EMT) potential.

A composition (element -> atomic fraction) becomes a random solid solution on
a 2 x 2 x 2 supercell of the conventional fcc cell (32 sites): the atom counts
are the fractions rounded by largest remainder, and the sites are shuffled
with a fixed seed, so the same composition always gives the same structure.
The lattice is relaxed isotropically: EMT energies at seven lattice constants
around Vegard's estimate are fitted with a Birch-Murnaghan equation of state,
whose minimum gives the energy, the lattice constant and the bulk modulus.
Atoms stay on their fcc sites (no local relaxation): enough to rank
compositions in seconds, not a converged alloy thermodynamics.

The mixing energy is the alloy's energy per atom minus the fraction-weighted
energies per atom of the pure elements, each relaxed the same way, so a pure
element has exactly zero.
"""

from __future__ import annotations

import functools
from typing import Any, Mapping

import numpy as np

from workbench.simulators import SimulatorError

ELEMENTS = ("Cu", "Ni", "Pd", "Ag", "Pt", "Au")
# Room-temperature experimental lattice constants (angstrom), only to centre the strain
# grid (Vegard's law); the result comes from the EMT fit.
_START_LATTICE = {"Cu": 3.615, "Ni": 3.524, "Pd": 3.891, "Ag": 4.086, "Pt": 3.924, "Au": 4.078}
SUPERCELL = 2            # 2 x 2 x 2 conventional cells: 32 atoms
SEED = 0
STRAINS = np.linspace(-0.03, 0.03, 7)
_SUM_TOLERANCE = 1e-6


def fractions(value: Any) -> dict[str, float]:
    """A composition as {element: fraction}: a mapping, or a pymatgen Composition
    (whose amounts are normalised to fractions).

    Raises SimulatorError for unknown elements, negative amounts or fractions
    that do not sum to one (within 1e-6).
    """
    if hasattr(value, "fractional_composition"):     # pymatgen Composition: amounts
        value = value.fractional_composition.get_el_amt_dict()
    if not isinstance(value, Mapping):
        raise SimulatorError(f"emt_alloy: got {value!r}; expected a composition, a mapping"
                             f" element -> fraction over {list(ELEMENTS)}")
    out: dict[str, float] = {}
    for el, x in value.items():
        el = str(el)
        if el not in ELEMENTS:
            raise SimulatorError(f"emt_alloy: element {el!r} is not modelled; expected"
                                 f" elements among {list(ELEMENTS)}")
        x = float(x)
        if not x >= 0.0:
            raise SimulatorError(f"emt_alloy: {el}: got {x:g}; expected a fraction >= 0")
        if x > 0.0:
            out[el] = out.get(el, 0.0) + x
    total = sum(out.values())
    if abs(total - 1.0) > _SUM_TOLERANCE:
        raise SimulatorError(f"emt_alloy: fractions {out} sum to {total:g}; expected 1")
    return {el: x / total for el, x in out.items()}


def occupancy(composition: Mapping[str, float], n_sites: int, seed: int = SEED) -> list[str]:
    """Element symbol on each of ``n_sites`` sites: largest-remainder counts, shuffled."""
    els = sorted(composition)
    exact = np.array([composition[e] * n_sites for e in els])
    counts = np.floor(exact).astype(int)
    for i in np.argsort(-(exact - counts), kind="stable")[: n_sites - counts.sum()]:
        counts[i] += 1
    symbols = np.repeat(els, counts)
    return list(np.random.default_rng(seed).permutation(symbols))


def _fit(symbols: list[str], cells: int) -> tuple[float, float, float]:
    """Birch-Murnaghan fit: energy per atom (eV), lattice constant (A), bulk modulus (GPa)."""
    from ase import units
    from ase.build import bulk
    from ase.calculators.emt import EMT
    from ase.eos import EquationOfState

    a0 = sum(_START_LATTICE[s] for s in symbols) / len(symbols)
    atoms = bulk("Cu", "fcc", a=a0, cubic=True).repeat(cells)
    atoms.set_chemical_symbols(symbols)
    atoms.calc = EMT()
    cell0 = atoms.get_cell()
    volumes, energies = [], []
    for s in STRAINS:
        atoms.set_cell(cell0 * (1.0 + s), scale_atoms=True)
        volumes.append(atoms.get_volume())
        energies.append(atoms.get_potential_energy())
    eos = EquationOfState(volumes, energies, eos="birchmurnaghan")
    v0, e0, b = eos.fit()
    n = len(symbols)
    return e0 / n, (4.0 * v0 / n) ** (1.0 / 3.0), b / units.GPa


@functools.lru_cache(maxsize=None)
def pure_element(element: str) -> tuple[float, float, float]:
    """(energy per atom, lattice constant, bulk modulus) of the pure fcc element."""
    return _fit([element] * 4, 1)


def emt_alloy(composition: Mapping[str, float], seed: int = SEED) -> dict[str, float]:
    """Mixing energy (eV/atom), lattice constant (angstrom) and bulk modulus (GPa).

    composition: element -> atomic fraction (sums to 1) over Cu, Ni, Pd, Ag,
    Pt, Au, or a pymatgen Composition; seed: the site shuffle.
    """
    x = fractions(composition)
    if len(x) == 1:
        (el,) = x
        e, a, b = pure_element(el)
        return {"mixing_energy": 0.0, "lattice_constant": a, "bulk_modulus": b, "energy": e}
    symbols = occupancy(x, 4 * SUPERCELL**3, seed)
    e, a, b = _fit(symbols, SUPERCELL)
    # Against the composition actually placed (fractions rounded to 1/32), so that a
    # cell that rounds to a pure element has exactly zero mixing energy.
    reference = sum(pure_element(el)[0] for el in symbols) / len(symbols)
    return {"mixing_energy": e - reference, "lattice_constant": a, "bulk_modulus": b,
            "energy": e}


def structure(composition: Mapping[str, float], seed: int = SEED):
    """The evaluated cell as an ``ase.Atoms``: the same random solid solution that
    :func:`emt_alloy` computes, at its relaxed (fitted) lattice constant."""
    from ase.build import bulk

    x = fractions(composition)
    if len(x) == 1:
        (el,) = x
        return bulk(el, "fcc", a=pure_element(el)[1], cubic=True).repeat(SUPERCELL)
    symbols = occupancy(x, 4 * SUPERCELL**3, seed)
    a = _fit(symbols, SUPERCELL)[1]
    atoms = bulk("Cu", "fcc", a=a, cubic=True).repeat(SUPERCELL)
    atoms.set_chemical_symbols(symbols)
    return atoms


def structure_text(simulator, params: Mapping[str, Any]) -> str:
    """The evaluated structure of a campaign's parameters as extended XYZ text (the
    artifact ``oracle: {simulator: emt_alloy, log_structures: true}`` logs)."""
    import io

    from ase.io import write

    buf = io.StringIO()
    write(buf, structure(_composition_parameter(params)), format="extxyz")
    return buf.getvalue()


def _composition_parameter(params: Mapping[str, Any]) -> Any:
    """The one composition among the parameters (a mapping or pymatgen Composition)."""
    found = [v for v in params.values() if isinstance(v, Mapping) or hasattr(v, "get_el_amt_dict")]
    if len(found) != 1:
        raise SimulatorError(
            f"emt_alloy: got parameters {sorted(params)} with {len(found)} compositions;"
            f" expected exactly one composition parameter over {list(ELEMENTS)}")
    return found[0]


def evaluate(simulator, params: Mapping[str, Any]) -> dict[str, float]:
    """The oracle entry point: the campaign's composition parameter in, plain floats out."""
    out = emt_alloy(_composition_parameter(params))
    return {name: float(out[name]) for name in simulator.output_names}
