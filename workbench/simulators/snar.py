"""SnAr reaction in a plug-flow reactor (Hone et al., React. Chem. Eng. 2017).

2,4-difluoronitrobenzene (1) reacts with pyrrolidine (2) to the ortho (3) and
para (4) substitution products, both of which react on to the bis-adduct (5):

    1 + 2 -> 3   (k_a)        3 + 2 -> 5   (k_c)
    1 + 2 -> 4   (k_b)        4 + 2 -> 5   (k_d)

each second order, with the Arrhenius parameters Hone et al. fitted in ethanol
(reference rate constants at 90 degC in 10^-2 L mol^-1 s^-1, activation
energies in kJ/mol). The reactor is plug flow, so the concentrations after the
residence time ``tau`` are those of a batch after ``tau`` minutes; the ODEs are
integrated with fixed-step fourth-order Runge-Kutta (1,000 steps: the error is
below 1e-8 mol/L everywhere in the range, see the tests).

Objectives as in Summit's ``SnarBenchmark`` (Felton, Rittig, Lapkin,
Chemistry-Methods 2021): space-time yield of the ortho product (kg m^-3 h^-1,
maximise) and E-factor (mass of everything but the product, ethanol solvent
included, per mass of product; minimise). Two deliberate differences from
Summit 0.8: the para product forms at rate k_b (Summit uses k_a there, which
creates aromatic material and breaks the mass balance), and degC converts to
kelvin with 273.15 (Summit: 273.71).
"""

from __future__ import annotations

import functools
from typing import Any, Mapping

import jax
import jax.numpy as jnp

import surrogates  # noqa: F401  (float64 before any array exists)

# Molecular weights, g/mol: difluoronitrobenzene, pyrrolidine, ortho, para, bis-adduct.
MOLAR_MASS = (159.09, 71.12, 210.21, 210.21, 261.33)
# Hone et al. 2017 (the values Summit uses): k at 90 degC (10^-2 L/mol/s) and E_a (kJ/mol) of a, b, c, d.
K_REF = (57.9, 2.70, 0.865, 1.63)
ACTIVATION_ENERGY = (33.3, 35.3, 38.9, 44.8)
T_REF_C = 90.0
R_GAS = 8.314e-3          # kJ/mol/K
ETHANOL_DENSITY = 789.0   # g/L at 25 degC: the solvent counts as waste in the E-factor
E_FACTOR_CAP = 1e3        # Summit's cap, reached when hardly any product forms
STY_FLOOR = 1e-6
STEPS = 1000


def rate_constants(temperature):
    """k_a, k_b, k_c, k_d in L mol^-1 min^-1 at ``temperature`` (degC); shape (4,)."""
    T = temperature + 273.15
    T_ref = T_REF_C + 273.15
    k_ref = jnp.asarray(K_REF) * 0.6          # 10^-2 L/mol/s -> L/mol/min
    Ea = jnp.asarray(ACTIVATION_ENERGY)
    return k_ref * jnp.exp(-Ea / R_GAS * (1.0 / T - 1.0 / T_ref))


def _rates(C, k):
    """dC/dt (mol/L/min) of the five species; C: (5,), k: (4,)."""
    ka, kb, kc, kd = k[0], k[1], k[2], k[3]
    c1, c2, c3, c4 = C[0], C[1], C[2], C[3]
    ra, rb, rc, rd = ka * c1 * c2, kb * c1 * c2, kc * c3 * c2, kd * c4 * c2
    return jnp.stack([-ra - rb, -ra - rb - rc - rd, ra - rc, rb - rd, rc + rd])


@functools.partial(jax.jit, static_argnames="steps")
def concentrations(tau, equiv_pldn, conc_dfnb, temperature, steps: int = STEPS):
    """Outlet concentrations (mol/L) of the five species, shape (5,).

    tau: residence time (min); equiv_pldn: pyrrolidine per difluoronitrobenzene;
    conc_dfnb: inlet difluoronitrobenzene (mol/L); temperature: degC.
    """
    k = rate_constants(temperature)
    C0 = jnp.stack([conc_dfnb, equiv_pldn * conc_dfnb, 0.0 * conc_dfnb,
                    0.0 * conc_dfnb, 0.0 * conc_dfnb])
    h = tau / steps

    def rk4(_, C):
        k1 = _rates(C, k)
        k2 = _rates(C + 0.5 * h * k1, k)
        k3 = _rates(C + 0.5 * h * k2, k)
        k4 = _rates(C + h * k3, k)
        return C + h / 6.0 * (k1 + 2 * k2 + 2 * k3 + k4)

    return jax.lax.fori_loop(0, steps, rk4, C0)


@jax.jit
def snar(tau, equiv_pldn, conc_dfnb, temperature) -> dict:
    """Space-time yield, E-factor, conversion and yields at one setting (all scalars).

    Inputs as in :func:`concentrations`. Returns sty (kg m^-3 h^-1), e_factor
    (-), conversion, yield_ortho, yield_para, yield_bis (fractions of the
    difluoronitrobenzene fed) and the outlet concentrations ``C`` (5,).
    Vmappable over settings.
    """
    C = concentrations(tau, equiv_pldn, conc_dfnb, temperature)
    M = jnp.asarray(MOLAR_MASS)
    product = M[2] * C[2]                                   # g/L = kg/m^3
    sty = jnp.maximum(60.0 * product / tau, STY_FLOOR)      # per minute -> per hour
    waste = ETHANOL_DENSITY + jnp.sum(M * C) - product
    e_factor = jnp.where(product > 1e-9, waste / jnp.maximum(product, 1e-9), E_FACTOR_CAP)
    return {
        "sty": sty,
        "e_factor": jnp.minimum(e_factor, E_FACTOR_CAP),
        "conversion": 1.0 - C[0] / conc_dfnb,
        "yield_ortho": C[2] / conc_dfnb,
        "yield_para": C[3] / conc_dfnb,
        "yield_bis": C[4] / conc_dfnb,
        "C": C,
    }


def evaluate(simulator, params: Mapping[str, Any]) -> dict[str, float]:
    """The oracle entry point: checked parameters in, plain floats out."""
    x = simulator.check(params)
    out = snar(x["tau"], x["equiv_pldn"], x["conc_dfnb"], x["temperature"])
    return {name: float(out[name]) for name in simulator.output_names}
