"""Van de Vusse reactions in a cooled, non-isothermal CSTR (a classic process benchmark).

Cyclopentenol (B) is made from cyclopentadiene (A) in a 10 L stirred tank
reactor with a cooling jacket; B reacts on to a diol (C) and A dimerises (D):

    A -> B (k1),   B -> C (k2),   2 A -> D (k3)

Model and every constant as in Chen, Kremling and Allgower (ECC 1995) and
Klatt and Engell (Automatica 34, 1998): Arrhenius rate constants, reaction
enthalpies, density, heat capacity, jacket heat transfer, feed at 104.9 degC.
The mass and energy balances (A, B, reactor temperature; the jacket held at
``coolant_temperature``) are integrated from a start-up state (reactor full of
solvent at the feed temperature) with fixed-step fourth-order Runge-Kutta for
twelve residence times, long enough for every setting in range to settle; the
outputs are the steady state. At their nominal point (F/V = 14.19 1/h,
coolant 112.9 degC) the papers state 114.2 degC, c_A = 2.14 and
c_B = 1.09 mol/L, which the tests reproduce.

Objectives: productivity of B (mol/h, maximise) and cost per mol of B
(EUR/mol, minimise: A fed, at an assumed 1 EUR/mol, plus heating or cooling,
at an assumed 2e-5 EUR/kJ, per mol of B; the prices are illustrative, not from
the papers). ``temperature`` is the steady reactor temperature, the
quantity a safety limit bounds (``outcome_constraints: ["temperature <= 130"]``).
"""

from __future__ import annotations

import functools
from typing import Any, Mapping

import jax
import jax.numpy as jnp

import surrogates  # noqa: F401  (float64 before any array exists)

K0 = (1.287e12, 1.287e12, 9.043e9)        # 1/h, 1/h, L/(mol h)
E_OVER_R = (9758.3, 9758.3, 8560.0)       # K
DELTA_H = (4.2, -11.0, -41.85)            # kJ/mol (A->B, B->C, 2A->D per mol A)
DENSITY = 0.9342                          # kg/L
HEAT_CAPACITY = 3.01                      # kJ/(kg K)
HEAT_TRANSFER = 4032.0 * 0.215            # k_w A_R, kJ/(h K)
VOLUME = 10.0                             # L
FEED_TEMPERATURE = 104.9                  # degC
PRICE_A = 1.0                             # EUR/mol, assumed
PRICE_HEAT = 2e-5                         # EUR/kJ, assumed
STEPS = 6000
HORIZON = 12.0                            # residence times integrated


def _balances(state, dilution, feed_concentration, coolant_temperature):
    """d(c_A, c_B, T)/dt in mol/L/h and K/h; T in degC; dilution = F/V in 1/h."""
    cA, cB, T = state[0], state[1], state[2]
    k = jnp.asarray(K0) * jnp.exp(-jnp.asarray(E_OVER_R) / (T + 273.15))
    r1, r2, r3 = k[0] * cA, k[1] * cB, k[2] * cA * cA
    heat = -(r1 * DELTA_H[0] + r2 * DELTA_H[1] + r3 * DELTA_H[2])      # kJ/(L h) released
    rho_cp = DENSITY * HEAT_CAPACITY
    return jnp.stack([
        dilution * (feed_concentration - cA) - r1 - r3,
        -dilution * cB + r1 - r2,
        dilution * (FEED_TEMPERATURE - T) + heat / rho_cp
        + HEAT_TRANSFER * (coolant_temperature - T) / (rho_cp * VOLUME),
    ])


@functools.partial(jax.jit, static_argnames="steps")
def steady_state(residence_time, coolant_temperature, feed_concentration, steps: int = STEPS):
    """(c_A, c_B, T) after start-up and the largest |derivative| there (settling check).

    residence_time: V/F in min; coolant_temperature: degC; feed_concentration:
    mol/L. Returns a (3,) state (mol/L, mol/L, degC) and a scalar.
    """
    dilution = 60.0 / residence_time
    args = (dilution, feed_concentration, coolant_temperature)
    h = HORIZON * (residence_time / 60.0) / steps
    y0 = jnp.stack([0.0 * feed_concentration, 0.0 * feed_concentration,
                    FEED_TEMPERATURE + 0.0 * feed_concentration])

    def rk4(_, y):
        k1 = _balances(y, *args)
        k2 = _balances(y + 0.5 * h * k1, *args)
        k3 = _balances(y + 0.5 * h * k2, *args)
        k4 = _balances(y + h * k3, *args)
        return y + h / 6.0 * (k1 + 2 * k2 + 2 * k3 + k4)

    y = jax.lax.fori_loop(0, steps, rk4, y0)
    return y, jnp.max(jnp.abs(_balances(y, *args)))


@jax.jit
def van_de_vusse(residence_time, coolant_temperature, feed_concentration) -> dict:
    """Steady-state outputs at one setting (scalars in, dict of scalars out; vmappable).

    productivity (mol B/h), cost (EUR/mol B), temperature (degC), conversion,
    selectivity (B per A converted), heat_duty (kJ/h into the reactor; negative
    when cooling), c_A, c_B (mol/L), residual (largest |derivative| at the end).
    """
    y, residual = steady_state(residence_time, coolant_temperature, feed_concentration)
    cA, cB, T = y[0], y[1], y[2]
    flow = VOLUME * 60.0 / residence_time                     # L/h
    duty = HEAT_TRANSFER * (coolant_temperature - T)           # kJ/h
    made = flow * cB                                           # mol B/h
    cost = (PRICE_A * flow * feed_concentration + PRICE_HEAT * jnp.abs(duty)) / jnp.maximum(
        made, 1e-12)
    converted = feed_concentration - cA
    return {
        "productivity": made,
        "cost": cost,
        "temperature": T,
        "conversion": converted / feed_concentration,
        "selectivity": cB / jnp.maximum(converted, 1e-12),
        "heat_duty": duty,
        "c_A": cA,
        "c_B": cB,
        "residual": residual,
    }


def evaluate(simulator, params: Mapping[str, Any]) -> dict[str, float]:
    """The oracle entry point: checked parameters in, plain floats out."""
    x = simulator.check(params)
    out = van_de_vusse(x["residence_time"], x["coolant_temperature"], x["feed_concentration"])
    return {name: float(out[name]) for name in simulator.output_names}
