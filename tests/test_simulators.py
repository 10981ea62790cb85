"""Built-in simulators against independent truth.

SnAr (Hone et al. 2017): mass balances, an independent stiff integrator, the trends the paper
reports. Van de Vusse CSTR: the nominal steady state that Chen et al. (1995) and Klatt and
Engell (1998) state. EMT alloys: ASE called directly (cell relaxation), experimental lattice
constants, zero mixing energy for pure elements, the signs of known mixing behaviour. Each
simulator as an oracle from YAML, run through ``workbench run``.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import workbench as wb
from workbench.oracles import OracleError, SimulatorOracle, space_issues
from workbench.simulators import SimulatorError, get
from workbench.simulators.alloys import emt_alloy, fractions, occupancy, pure_element
from workbench.simulators.process import van_de_vusse
from workbench.simulators.snar import concentrations, rate_constants, snar

REPO = Path(__file__).resolve().parents[1]

# (tau min, equiv, conc mol/L, temperature degC): corners and middle of the published range.
SNAR_SETTINGS = np.array([
    [0.5, 1.0, 0.1, 30.0], [2.0, 5.0, 0.5, 120.0], [1.0, 2.0, 0.25, 75.0],
    [2.0, 1.0, 0.5, 30.0], [0.5, 5.0, 0.1, 120.0], [1.5, 3.0, 0.3, 100.0],
])


def _snar_grid(settings):
    return jax.vmap(concentrations)(*(jnp.asarray(settings[:, i]) for i in range(4)))


# -- SnAr --------------------------------------------------------------------------------

def test_snar_conserves_the_aromatic_ring_and_pyrrolidine():
    C = np.asarray(_snar_grid(SNAR_SETTINGS))
    dfnb0 = SNAR_SETTINGS[:, 2]
    pldn0 = SNAR_SETTINGS[:, 1] * dfnb0
    # Every ring is difluoronitrobenzene, ortho, para or bis-adduct; each substitution uses
    # one pyrrolidine, the bis-adduct two.
    np.testing.assert_allclose(C[:, 0] + C[:, 2] + C[:, 3] + C[:, 4], dfnb0, rtol=1e-12)
    np.testing.assert_allclose(C[:, 1] + C[:, 2] + C[:, 3] + 2 * C[:, 4], pldn0, rtol=1e-12)
    assert np.all(C >= -1e-12)


def test_snar_matches_an_independent_stiff_integrator():
    from scipy.integrate import solve_ivp

    for tau, eq, c0, T in SNAR_SETTINGS:
        k = np.asarray(rate_constants(T))

        def rhs(_, C):
            ra, rb = k[0] * C[0] * C[1], k[1] * C[0] * C[1]
            rc, rd = k[2] * C[2] * C[1], k[3] * C[3] * C[1]
            return [-ra - rb, -ra - rb - rc - rd, ra - rc, rb - rd, rc + rd]

        ref = solve_ivp(rhs, (0, tau), [c0, eq * c0, 0, 0, 0], method="Radau",
                        rtol=1e-11, atol=1e-14).y[:, -1]
        np.testing.assert_allclose(np.asarray(concentrations(tau, eq, c0, T)), ref, atol=1e-8)


def test_snar_rate_constants_are_the_published_ones_at_90_degc():
    # Hone et al. 2017: k at 90 degC in 10^-2 L/mol/s; ours in L/mol/min.
    np.testing.assert_allclose(np.asarray(rate_constants(90.0)),
                               np.array([57.9, 2.70, 0.865, 1.63]) * 0.6, rtol=1e-12)


def test_snar_outputs_ranges_and_definitions():
    out = jax.vmap(snar)(*(jnp.asarray(SNAR_SETTINGS[:, i]) for i in range(4)))
    C = np.asarray(out["C"])
    conversion = np.asarray(out["conversion"])
    assert np.all((conversion >= 0) & (conversion <= 1 + 1e-12))
    total = np.asarray(out["yield_ortho"] + out["yield_para"] + out["yield_bis"])
    np.testing.assert_allclose(total, conversion, atol=1e-12)
    # STY: g/L of ortho product per residence time, in kg m^-3 h^-1.
    np.testing.assert_allclose(np.asarray(out["sty"]),
                               np.maximum(60 * 210.21 * C[:, 2] / SNAR_SETTINGS[:, 0], 1e-6))
    # E-factor: ethanol plus every other species, per mass of product.
    M = np.array([159.09, 71.12, 210.21, 210.21, 261.33])
    waste = 789.0 + (C * M).sum(axis=1) - M[2] * C[:, 2]
    np.testing.assert_allclose(np.asarray(out["e_factor"]),
                               np.minimum(waste / (M[2] * C[:, 2]), 1e3), rtol=1e-12)


def test_snar_trends_the_paper_reports():
    def conv(tau, eq, c, T):
        return float(snar(tau, eq, c, T)["conversion"])

    # Slower at low temperature, so conversion grows with residence time and temperature.
    assert conv(0.5, 2.0, 0.2, 30.0) < conv(1.0, 2.0, 0.2, 30.0) < conv(2.0, 2.0, 0.2, 30.0)
    assert conv(0.5, 2.0, 0.2, 30.0) < conv(0.5, 2.0, 0.2, 60.0) < conv(0.5, 2.0, 0.2, 90.0)
    # Excess pyrrolidine at high temperature drives the ortho product on to the bis-adduct.
    low = snar(2.0, 1.5, 0.3, 120.0)
    high = snar(2.0, 5.0, 0.3, 120.0)
    assert float(high["yield_bis"]) > float(low["yield_bis"])
    # The ortho product dominates the para product (k_a / k_b ~ 21 at 90 degC).
    out = snar(1.0, 2.0, 0.3, 90.0)
    assert float(out["yield_ortho"]) > 10 * float(out["yield_para"])


def test_snar_oracle_selects_outputs_and_refuses_bad_parameters():
    oracle = SimulatorOracle("snar", ["sty", "e_factor"])
    params = {"tau": 1.5, "equiv_pldn": 3.0, "conc_dfnb": 0.3, "temperature": 100.0}
    got = oracle(params)
    direct = snar(1.5, 3.0, 0.3, 100.0)
    assert got == {"sty": float(direct["sty"]), "e_factor": float(direct["e_factor"])}
    assert set(SimulatorOracle("snar")(params)) == set(get("snar").output_names)
    assert pickle.loads(pickle.dumps(oracle))(params) == got
    with pytest.raises(SimulatorError, match=r"temperature: got 150 degC; expected 30 to 120"):
        oracle({**params, "temperature": 150.0})
    with pytest.raises(SimulatorError, match=r"missing parameters \['tau'\]"):
        oracle({k: v for k, v in params.items() if k != "tau"})
    with pytest.raises(OracleError, match=r"oracle.outputs: got \['yield'\]"):
        SimulatorOracle("snar", ["yield"])
    with pytest.raises(SimulatorError, match=r"simulator: got 'nope'; expected one of"):
        SimulatorOracle("nope")


# -- van de Vusse CSTR ---------------------------------------------------------------------

def test_cstr_reproduces_the_published_nominal_steady_state():
    # Chen, Kremling, Allgower 1995 / Klatt, Engell 1998: F/V = 14.19 1/h, coolant
    # 112.9 degC, c_A0 = 5.1 mol/L -> 114.2 degC, c_A = 2.14, c_B = 1.09 mol/L,
    # Q_K = -1113.5 kJ/h.
    out = van_de_vusse(60.0 / 14.19, 112.9, 5.1)
    assert abs(float(out["temperature"]) - 114.2) < 0.05
    assert abs(float(out["c_A"]) - 2.14) < 0.005
    assert abs(float(out["c_B"]) - 1.09) < 0.005
    assert abs(float(out["heat_duty"]) + 1113.5) < 0.01 * 1113.5
    assert float(out["residual"]) < 1e-6


def test_cstr_steady_state_satisfies_the_balances_and_trends():
    from workbench.simulators import process as p

    for tau, tk, c0 in [(2.0, 80.0, 3.0), (5.0, 120.0, 5.0), (20.0, 140.0, 6.0)]:
        out = van_de_vusse(tau, tk, c0)
        cA, cB, T = float(out["c_A"]), float(out["c_B"]), float(out["temperature"])
        D = 60.0 / tau
        k = np.array(p.K0) * np.exp(-np.array(p.E_OVER_R) / (T + 273.15))
        scale = D * c0
        assert abs(D * (c0 - cA) - k[0] * cA - k[2] * cA**2) < 1e-4 * scale
        assert abs(-D * cB + k[0] * cA - k[1] * cB) < 1e-4 * scale
        assert 0 <= float(out["conversion"]) <= 1 and 0 <= float(out["selectivity"]) <= 1
        np.testing.assert_allclose(float(out["productivity"]), 10.0 * D * cB)
    temps = [float(van_de_vusse(5.0, tk, 5.0)["temperature"]) for tk in (90.0, 110.0, 130.0)]
    assert temps[0] < temps[1] < temps[2]


# -- EMT alloys ---------------------------------------------------------------------------

EXPERIMENT_A = {"Cu": 3.615, "Ni": 3.524, "Pd": 3.891, "Ag": 4.086, "Pt": 3.924, "Au": 4.078}


@pytest.mark.parametrize("element", sorted(EXPERIMENT_A))
def test_pure_element_lattice_constant_against_ase_directly(element):
    from ase.build import bulk
    from ase.calculators.emt import EMT
    from ase.filters import FrechetCellFilter
    from ase.optimize import BFGS

    atoms = bulk(element, "fcc", a=EXPERIMENT_A[element])
    atoms.calc = EMT()
    BFGS(FrechetCellFilter(atoms), logfile=None).run(fmax=1e-6, steps=200)
    a_ase = (4 * atoms.get_volume()) ** (1 / 3)
    _, a, b = pure_element(element)
    assert abs(a - a_ase) < 2e-3
    assert abs(a - EXPERIMENT_A[element]) / EXPERIMENT_A[element] < 0.015  # EMT was fitted
    result = emt_alloy({element: 1.0})
    assert result["mixing_energy"] == 0.0
    assert result["lattice_constant"] == a and 80 < b < 320


def test_alloy_mixing_signs_follow_known_behaviour_and_vegard():
    ag_ni = emt_alloy({"Ag": 0.5, "Ni": 0.5})
    cu_pt = emt_alloy({"Cu": 0.5, "Pt": 0.5})
    ni_pt = emt_alloy({"Ni": 0.5, "Pt": 0.5})
    assert ag_ni["mixing_energy"] > 0.1           # Ag-Ni: immiscible
    assert cu_pt["mixing_energy"] < 0 and ni_pt["mixing_energy"] < 0   # ordering alloys
    lo, hi = pure_element("Cu")[1], pure_element("Pt")[1]
    assert lo < cu_pt["lattice_constant"] < hi
    # A cell whose 32 sites round to a pure element has exactly zero mixing energy.
    assert emt_alloy({"Cu": 0.99, "Au": 0.01})["mixing_energy"] == pytest.approx(0, abs=1e-12)


def test_alloy_structure_is_fixed_by_seed_and_composition():
    sites = occupancy({"Cu": 0.5, "Ni": 0.3, "Au": 0.2}, 32)
    assert len(sites) == 32 and sites.count("Cu") == 16 and sites.count("Ni") == 10
    assert sites.count("Au") == 6
    assert sites == occupancy({"Cu": 0.5, "Ni": 0.3, "Au": 0.2}, 32)
    assert emt_alloy({"Cu": 0.5, "Ni": 0.5}) == emt_alloy({"Ni": 0.5, "Cu": 0.5})


def test_alloy_input_errors_and_pymatgen_compositions():
    from pymatgen.core import Composition

    assert fractions(Composition("Cu3Au")) == {"Cu": 0.75, "Au": 0.25}
    with pytest.raises(SimulatorError, match=r"element 'Fe' is not modelled"):
        emt_alloy({"Fe": 0.5, "Cu": 0.5})
    with pytest.raises(SimulatorError, match=r"sum to 0.9; expected 1"):
        emt_alloy({"Cu": 0.5, "Ni": 0.4})
    oracle = SimulatorOracle("emt_alloy", ["mixing_energy"])
    got = oracle({"alloy": {"Cu": 0.5, "Ni": 0.5}})
    assert got == {"mixing_energy": emt_alloy({"Cu": 0.5, "Ni": 0.5})["mixing_energy"]}
    with pytest.raises(SimulatorError, match=r"expected exactly one composition"):
        oracle({"x": 0.5})


# -- from YAML ------------------------------------------------------------------------------

def test_space_issues_name_the_mismatch():
    spec = wb.load_spec(REPO / "experiments" / "snar.yaml")
    assert space_issues(spec.oracle, ["tau", "equiv_pldn", "conc_dfnb", "temperature"]) == []
    (issue,) = space_issues(spec.oracle, ["tau", "temp"])
    assert issue[0] == ("oracle", "simulator") and "'snar' evaluates parameters" in issue[1]


def test_simulator_keys_in_a_spec_are_checked():
    from workbench.errors import SpecError
    from workbench.spec import parse_spec

    base = {"name": "s", "space": [{"name": "tau", "type": "continuous", "low": 0.5,
                                    "high": 2.0}],
            "objectives": [{"name": "sty", "direction": "maximize"}]}
    cases = [({"simulator": "nope"}, "simulator: got 'nope'; expected one of"),
             ({"simulator": "snar", "outputs": ["yield"]}, "outputs: got ['yield']"),
             ({"simulator": "snar", "builtin": "branin"}, "expected exactly one of"),
             ({"builtin": "branin", "outputs": ["sty"]}, "outputs: got ['sty']; expected it"
                                                         " only with simulator"),
             ({"simulator": "snar", "log_structures": True},
              "log_structures: got true with snar simulator; expected a simulator with atomic"
              " structures: ['emt_alloy']")]
    for oracle, message in cases:
        with pytest.raises(SpecError) as err:
            parse_spec({**base, "oracle": oracle})
        assert message in str(err.value), str(err.value)


def _run_cli(tmp_path: Path, name: str, budget: int, timeout: float = 600,
             extra: str = "") -> subprocess.CompletedProcess:
    spec = tmp_path / f"{name}.yaml"
    spec.write_text((REPO / "experiments" / f"{name}.yaml").read_text() + "tracking: null\n"
                    + extra)
    # PJRT_NPROC is left out so that the child sets its own (surrogates/_runtime.py), as a
    # user's process would, instead of inheriting this one's.
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI",
                                                           "WORKBENCH_DEBUG", "PJRT_NPROC")}
    try:
        result = subprocess.run([sys.executable, "-m", "workbench", "run", str(spec),
                                 "--budget", str(budget)], cwd=tmp_path, env=env,
                                capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as err:
        pytest.fail(f"workbench run {name} did not finish in {timeout:.0f} s (a hang):\n"
                    f"{err.stdout}\n{err.stderr}")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    return result


@pytest.mark.slow
def test_snar_campaign_from_yaml_through_workbench_run(tmp_path):
    _run_cli(tmp_path, "snar", budget=8)
    campaign = wb.Campaign.open(tmp_path / "campaigns" / "snar.zarr", tracking=None)
    done = [t for t in campaign.trials if t.status == "completed"]
    assert len(done) == 8
    for t in done:  # the record holds exactly what the simulator gives at those settings
        direct = snar(*(t.params[n] for n in ("tau", "equiv_pldn", "conc_dfnb",
                                              "temperature")))
        assert t.outcomes == {"sty": float(direct["sty"]), "e_factor": float(direct["e_factor"])}


_MANY_BATCHED_SOLVES = """
import surrogates, jax, jax.numpy as jnp
from jax.scipy.linalg import solve_triangular
L = jnp.tril(jnp.ones((64, 20, 20))) + 5 * jnp.eye(20)
f = jax.jit(lambda L, B: [solve_triangular(L + i, B * i, lower=True) for i in range(32)])
for _ in range(20):
    jax.block_until_ready(f(L, L))
print("done")
"""


def test_many_concurrent_batched_solves_finish_after_importing_surrogates(tmp_path):
    # The root cause of the CSTR hang, in isolation: 32 independent batched triangular solves
    # in one program, each large enough for jaxlib 0.10 to split it over XLA's CPU thread pool
    # and block on the pieces; with two pool threads this hangs on the first call.
    env = {k: v for k, v in os.environ.items() if k != "PJRT_NPROC"}
    try:
        out = subprocess.run([sys.executable, "-c", _MANY_BATCHED_SOLVES], cwd=tmp_path,
                             env=env, capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired:
        pytest.fail("batched triangular solves hung (jaxlib CPU LAPACK pool deadlock)")
    assert out.returncode == 0 and out.stdout.strip() == "done", out.stderr


@pytest.mark.slow
def test_cstr_campaign_with_an_outcome_constraint_gets_past_its_first_model_proposal(tmp_path):
    # Regression: on jaxlib 0.10 (CPU) the constrained two-objective search (qLogNEHVI times
    # the feasibility of temperature <= 130) deadlocked in its first model-based proposal:
    # every XLA pool thread waited inside a batched LAPACK solve for pieces queued behind it.
    # A subprocess with a timeout turns such a hang into a failure. (The default for two
    # objectives from a simulator is now the analytic log_ehvi: qlog_nehvi is asked for.)
    _run_cli(tmp_path, "cstr", budget=10, timeout=300, extra="acquisition: {type: qlog_nehvi}\n")
    campaign = wb.Campaign.open(tmp_path / "campaigns" / "cstr.zarr", tracking=None)
    done = [t for t in campaign.trials if t.status == "completed"]
    assert len(done) == 10
    assert [t.strategy for t in done].count("qlog_nehvi") == 2
    for t in done:  # the record holds exactly what the simulator gives at those settings
        direct = van_de_vusse(*(t.params[n] for n in ("residence_time", "coolant_temperature",
                                                     "feed_concentration")))
        assert {"productivity", "cost"} <= set(t.outcomes)
        assert t.outcomes == {k: float(direct[k]) for k in t.outcomes}


def test_alloy_structures_are_logged_as_artifacts_when_asked(tmp_path):
    """``log_structures: true``: each evaluated cell goes to the run as extended XYZ, the
    same 32 sites the simulator computed, at its relaxed lattice constant."""
    from ase.io import read
    from mlflow.tracking import MlflowClient

    from workbench.simulators.alloys import SUPERCELL, emt_alloy, occupancy

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    c = wb.Campaign.from_dict({
        "name": "structures", "tracking": uri, "store": str(tmp_path / "a.zarr"),
        "space": [{"name": "alloy", "type": "composition", "elements": ["Cu", "Ni", "Au"]}],
        "objectives": [{"name": "mixing_energy", "direction": "minimize"}],
        "oracle": {"simulator": "emt_alloy", "outputs": ["mixing_energy"],
                   "log_structures": True},
        "initial_design": {"n": 3}, "budget": 3})
    c.run()
    assert [t.status for t in c.trials] == ["completed"] * 3
    client = MlflowClient(uri)
    names = sorted(a.path for a in client.list_artifacts(c.run_id, "structures"))
    assert names == [f"structures/trial_{i:04d}.extxyz" for i in range(3)]
    for t in c.trials:
        atoms = read(client.download_artifacts(c.run_id, names[t.id], str(tmp_path)))
        assert len(atoms) == 4 * SUPERCELL**3
        x = {el: v for el, v in t.params["alloy"].items() if v > 0}
        assert sorted(atoms.get_chemical_symbols()) == sorted(occupancy(x, len(atoms)))
        np.testing.assert_allclose(atoms.cell.lengths(),
                                   SUPERCELL * emt_alloy(x)["lattice_constant"], rtol=1e-9)


@pytest.mark.slow
def test_alloy_campaign_from_yaml_through_workbench_run(tmp_path):
    from workbench.simulators.alloys import emt_alloy

    _run_cli(tmp_path, "alloy", budget=9)  # 8 design points, then one model proposal
    campaign = wb.Campaign.open(tmp_path / "campaigns" / "alloy.zarr", tracking=None)
    done = [t for t in campaign.trials if t.status == "completed"]
    assert len(done) == 9 and done[-1].strategy == "log_ei"
    for t in done[-2:]:  # compositions sum to one and the record holds the simulator's value
        assert abs(sum(t.params["alloy"].values()) - 1.0) < 1e-9
        assert t.outcomes["mixing_energy"] == pytest.approx(
            emt_alloy(t.params["alloy"])["mixing_energy"], abs=1e-12)


@pytest.mark.slow
def test_mixed_emulator_campaign_from_yaml_through_workbench_run(tmp_path):
    import yaml

    spec = yaml.safe_load((REPO / "experiments" / "direct_arylation_emulator.yaml").read_text())
    n0 = spec["initial_design"]["n"]
    _run_cli(tmp_path, "direct_arylation_emulator", budget=n0 + 1)
    campaign = wb.Campaign.open(tmp_path / "campaigns" / "direct_arylation_emulator.zarr",
                                tracking=None)
    done = [t for t in campaign.trials if t.status == "completed"]
    assert len(done) == n0 + 1 and done[-1].strategy not in ("sobol",)
    for t in done:  # a yield in percent for a mixed categorical + continuous setting
        assert -5.0 <= t.outcomes["yield"] <= 105.0
