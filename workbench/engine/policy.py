"""Which acquisition, which noise prior and which output warping a campaign uses when
the spec leaves them to the workbench: plain rules over plain values (no spec, no JAX), shared
by the spec's validation and by ``engine.problem.resolve``.
"""

from __future__ import annotations

#: Acquisitions for several objectives (hypervolume or scalarisation).
MULTI_OBJECTIVE = ("qlog_nehvi", "log_ehvi", "parego")
#: The most objectives the analytic log EHVI's box decomposition takes.
LOG_EHVI_MAX_OBJECTIVES = 3
#: Acquisitions for noisy observations (they rank by the posterior mean): "auto" output
#: warping leaves their objective as it is, as it does measurements (the "lab" noise
#: prior), since a power transform of noisy values makes the noise depend on the value,
#: which the GP's one noise level cannot follow.
NOISY_ACQUISITIONS = ("log_nei", "qlog_nei")


def noise_prior(chosen: str, measured: bool) -> str:
    """The GP's noise prior: ``chosen``, with "auto" read from the oracle.

    measured: whether the oracle returns measurements (a lab command, a
    dataset's recorded values), which are noisy: "lab". Simulators, emulators,
    Python functions and campaigns told by hand keep "low", which fits exact
    values tightly (a user telling measured data through the API sets "lab").
    """
    if chosen != "auto":
        return chosen
    return "lab" if measured else "low"


def default_acquisition(*, objectives: int, targets: bool, surrogate: str, batch_size: int,
                        noise_prior: str) -> str:
    """The acquisition when the spec names none.

    One objective: log_ei. Several: the analytic log_ehvi where it is exact and
    safe (at most three objectives without targets, an exact GP, simulator-like
    data under the "low" noise prior, one point per ask), since it matches
    qlog_nehvi's fronts at a small fraction of its cost; otherwise qlog_nehvi,
    whose Monte-Carlo samples handle noisy incumbents, joint batches, targets and
    non-Gaussian posteriors.
    """
    if objectives == 1:
        return "log_ei"
    if (objectives <= LOG_EHVI_MAX_OBJECTIVES and not targets and surrogate == "gp"
            and batch_size == 1 and noise_prior == "low"):
        return "log_ehvi"
    return "qlog_nehvi"


def output_warping(chosen: str, *, surrogate: str, objectives: int, targets: bool,
                   constraints: bool, acquisition: str, known_noise: bool,
                   noise_prior: str) -> str:
    """The output warping in use: "yeo_johnson" or "none".

    "auto" warps the objective of an exact GP ("gp") with one objective, no target, no
    outcome constraint, no known noise variance, the "low" noise prior (simulators,
    not measurements) and a noiseless acquisition: a skewed objective (a cost over
    decades, a sum of squares) then looks Gaussian to the GP. It leaves as they are a
    target's squared distance and several objectives (their reference point lives in
    output units), noisy values (measurements, see NOISY_ACQUISITIONS), and
    objectives under outcome constraints: there the lowest values are often infeasible
    (a cheaper design that breaks a constraint), and a warp that stretches the best
    values apart draws the search into them (the pressure vessel,
    ``benchmarks/results/output_warping.md``). Other surrogates: "none".
    """
    if surrogate != "gp":
        return "none"
    if chosen != "auto":
        return chosen
    plain = (objectives == 1 and not targets and not constraints
             and _simulated(acquisition, known_noise, noise_prior))
    return "yeo_johnson" if plain else "none"


def _simulated(acquisition: str, known_noise: bool, noise_prior: str) -> bool:
    """Whether "auto" output warping treats the outputs as a simulator's: the "low" noise
    prior, no known noise variances and a noiseless acquisition (a power transform would
    make measurement noise depend on the value)."""
    return not known_noise and noise_prior == "low" and acquisition not in NOISY_ACQUISITIONS


def constraint_warping(chosen: str, *, surrogate: str, objectives: int, acquisition: str,
                       known_noise: bool, noise_prior: str) -> str:
    """How the outputs that only outcome constraints bound are warped (with their
    bounds): "none", "strong" (each keeps its fitted warp only where the warp is strong:
    ``surrogates.STRONG_WARP_GAIN``) or "yeo_johnson" (each keeps it).

    The warp is increasing, so a point is feasible exactly when its warped value is
    within the warped bound. A constraint whose values span decades (a load ratio far
    from its limit) then resolves its boundary: the welded beam and the spring gained
    on nearly every seed. A mild skew (the pressure vessel's volume, the speed
    reducer's ratios) gains little from the warp and lost to its distortion near the
    bound, hence "strong" for "auto" (``benchmarks/results/output_warping.md``). "auto"
    warps simulators' outputs only, as ``output_warping`` does: not under the "lab"
    noise prior, known noise variances or a noisy acquisition, and (as measured) with
    one objective. Other surrogates: "none".
    """
    if surrogate != "gp" or chosen == "none":
        return "none"
    if chosen == "yeo_johnson":
        return "yeo_johnson"
    return "strong" if objectives == 1 and _simulated(acquisition, known_noise,
                                                      noise_prior) else "none"


__all__ = ["LOG_EHVI_MAX_OBJECTIVES", "MULTI_OBJECTIVE", "NOISY_ACQUISITIONS",
           "constraint_warping", "default_acquisition", "noise_prior", "output_warping"]
