"""Surrogate fitters by name: the Problem's settings onto ``surrogates``' fit functions.

``FITTERS[problem.surrogate]`` fits on encoded observations and returns the
model and a JSON-ready state (the GP's hyperparameters, for the next fit's
warm start and the audit) or None. Each fitter is registered where it is
defined (``@fitter("gp", conditionable=True)``), so adding a model to the
engine is one entry here. ``conditionable`` says, before fitting, whether the
model takes Kriging-believer fantasies: it then needs room for them;
``known_noise`` that it takes the observations' known noise variances (``noise=``,
from told standard errors): the other models treat every mean as a plain observation.

Shapes: ``n`` observations, ``d`` encoded columns (after any descriptors), ``m``
modelled outputs.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import partial
from typing import Any

import jax.numpy as jnp
import numpy as np

import surrogates as sg
from surrogates.gp_fit import SUBSET_MIN_CAPACITY
from surrogates.output_warping import OutputWarp, OutputWarped
from surrogates.transforms import InputTransformed, Latent
from workbench.engine.problem import Problem
from workbench.transfer import fit_with_prior

# The GP's refit policy in a running campaign (``_fit_gp``, ``Refit``): from
# WARM_FIT_MIN_OBSERVATIONS on, with the previous fit's hyperparameters at hand, a
# proposal refines them alone (``fit_gp``'s ``refine_only``: one start, no restarts, the
# refinement's stopping rule), and refits from scratch (every restart) only when the
# data say so. Below it every fit has every restart (the previous hyperparameters among
# the starts): there each observation still moves the likelihood's optimum, and warm
# fits cost the suite's problems regret at 10-40 observations
# (benchmarks/results/running_campaign.md, ablation), while a fit costs little.
WARM_FIT_MIN_OBSERVATIONS = 100
# The data say so on:
# - growth: the observations grew by this fraction since the last full fit (a full fit
#   every 25 % more data: every 25 proposals at 100 observations, every 500 at 2,000);
REFIT_GROWTH = 0.25
# - the surprise test: the observations told since the previous model, predicted from the
#   others under the warm model's hyperparameters (their joint leave-out posterior), have
#   a sum of squared z-scores that a chi-squared law with as many degrees of freedom
#   exceeds with probability below this: the hyperparameters do not explain the new data
#   (a change of regime, a length-scale the earlier points could not resolve).
SURPRISE_P = 1e-3
# The surprise test looks at the newest observations, at most this many (one compiled
# program per count).
SURPRISE_MAX_ROWS = 16
# Between refinements: while the observations grew by at most this fraction since the
# last refinement (or full fit), a warm proposal does not refine the hyperparameters but
# conditions the previous ones on the data (one factorisation, no optimisation). A
# proposal refines them once the data grew by more than 1 %: every second proposal at
# 100-199 observations, every third at 200-299, every eleventh at 1,000, every 21st at
# 2,000. The surprise test still looks at each new observation under the hyperparameters
# that predict it: a surprise refines them (and, if the refined ones are surprised too,
# refits from scratch).
REFINE_GROWTH = 0.01

# The deep-kernel GP's restarts train a network each: at most this many.
_DEEP_KERNEL_MAX_RESTARTS = 4
# SAAS keeps every this-many-th NUTS draw, for about 32 retained samples a chain:
# enough for the mixture's moments, few enough that predictions stay cheap.
_SAAS_RETAINED = 32

Fit = Callable[[Problem, np.ndarray, np.ndarray, Any, int, "dict | None"],
               "tuple[Any, dict | None]"]


@dataclass(frozen=True)
class Fitter:
    """fit(problem, X (n, d), Y (n, m), key, capacity, warm) -> (model, state);
    conditionable: whether the model takes Kriging-believer fantasies; known_noise:
    whether fit also takes ``noise=`` (n, m) known noise variances in output units."""

    fit: Fit
    conditionable: bool
    known_noise: bool = False


#: Surrogate name (``Problem.surrogate``) -> its fitter.
FITTERS: dict[str, Fitter] = {}

# Models built in this process: "fit" (hyperparameters optimised), "condition" (given
# hyperparameters, no optimisation). Read with ``models_built()``.
_BUILT: Counter = Counter({"fit": 0, "condition": 0})


def models_built() -> dict[str, int]:
    """How many surrogates this process has built, by way: ``"fit"`` (``fit_surrogate``,
    hyperparameters optimised) and ``"condition"`` (``condition_surrogate``, stored
    hyperparameters on the data). Compare two readings to count what a call built."""
    return dict(_BUILT)


def fitter(name: str, *, conditionable: bool,
           known_noise: bool = False) -> Callable[[Fit], Fit]:
    """Decorator: register ``fit`` in :data:`FITTERS` under ``name``."""

    def register(fit: Fit) -> Fit:
        FITTERS[name] = Fitter(fit, conditionable, known_noise)
        return fit

    return register


def fit_surrogate(problem: Problem, X: np.ndarray, Y: np.ndarray, key, capacity: int,
                  warm: dict | None, noise: np.ndarray | None = None):
    """Fit the Problem's surrogate on encoded X (n, d), outputs Y (n, m).

    capacity: rows to leave room for (observations plus fantasies); warm: the
    previous fit's state, or None; noise: (n, m) known noise variances of Y in
    output units (squared standard errors, 0 where unknown), or None; models
    without ``known_noise`` ignore it. Returns (model, state): the model queried
    with encoded points (descriptors, when the space asks for them, are
    computed inside it), and the JSON-ready state or None.
    """
    _BUILT["fit"] += 1
    fitter_ = FITTERS[problem.surrogate]
    fit = fitter_.fit
    warp = output_warp(problem, Y, noise)
    if warp is not None:
        if noise is not None:  # variances scale with the warp's squared slope
            noise = np.asarray(noise) * warp.slope(Y) ** 2
        Y = warp(Y)
    if noise is not None and fitter_.known_noise:
        fit = partial(fit, noise=noise)
    transform = problem.feature_transform()
    if transform is None:
        model, state = fit(problem, X, Y, key, capacity, warm)
    else:
        # Composition / substance descriptors: fit on [X, features(X)], query with encoded X.
        Xt = np.asarray(transform(jnp.asarray(X)))
        model, state = fit(problem, Xt, Y, key, capacity, warm)
        model = InputTransformed(model, transform)
    if warp is None:
        return model, state
    if state is not None:
        state = dict(state, output_warp=warp.to_dict())
    return OutputWarped(model, warp), state


def output_warp(problem: Problem, Y: np.ndarray,
                noise: np.ndarray | None = None) -> OutputWarp | None:
    """The Yeo-Johnson warp of ``problem.warped_outputs`` fitted on Y (n, m), or None
    when the problem warps none, or when every output keeps the exponent 1 (the outputs
    that only constraints bound, whose warp was not strong: then the model is the
    unwarped one, not a restandardised copy of it). ``fit_surrogate`` fits the model on
    ``warp(Y)`` and wraps it in ``OutputWarped``, whose posterior is in output units
    again.

    noise: (n, m) known noise variances of Y (told standard errors squared), or None.
    Observations told with standard errors are measurements: "auto" then leaves them
    as they are, as it does under a noisy acquisition; an explicit "yeo_johnson"
    warps them and scales their variances with the warp's squared slope."""
    if not problem.warped_outputs:
        return None
    told = noise is not None and bool(np.any(np.asarray(noise) > 0))
    if told and problem.surrogate_options.get("output_warping") != "yeo_johnson":
        return None
    warp = OutputWarp.fit(Y, problem.warped_outputs, problem.strong_warp_outputs)
    return None if bool(np.all(np.asarray(warp.lam) == 1.0)) else warp


def condition_surrogate(problem: Problem, X: np.ndarray, Y: np.ndarray, capacity: int,
                        state: dict | None) -> Any | None:
    """The plain GP on encoded X (n, d), Y (n, m) with the hyperparameters ``state`` of
    an earlier fit (``fit_surrogate``'s state), without optimising them; None where that
    cannot be done: another surrogate, a transferred prior, no state, or a state that
    does not fit this kernel and data (the caller then fits). Known noise variances of
    the observations are not added, as in ``fit_surrogate`` without ``noise``."""
    if problem.surrogate != "gp" or problem.prior is not None or not state:
        return None
    transform = problem.feature_transform()
    Xt = X if transform is None else np.asarray(transform(jnp.asarray(X)))
    d = Xt.shape[1]
    cfg = problem.surrogate_options
    learn_noise = cfg["noise"] is None
    theta = _warm_start(state, _gp_kernel(problem, d), d, Y.shape[1], learn_noise,
                        problem.noise_prior)
    if theta is None:
        return None
    _BUILT["condition"] += 1
    fixed = None if learn_noise else np.full(Y.shape, cfg["noise"])
    warp = output_warp(problem, Y)
    model = sg.gp_from_hyperparameters(Xt, Y if warp is None else warp(Y), theta,
                                       bounds=_unit(d), capacity=capacity, noise=fixed)
    model = model if transform is None else InputTransformed(model, transform)
    return model if warp is None else OutputWarped(model, warp)


def _unit(d: int) -> tuple[np.ndarray, np.ndarray]:
    """Bounds of encoded inputs: already in the unit cube, so the model does not rescale."""
    return np.zeros(d), np.ones(d)


def _gp_kernel(problem: Problem, d: int):
    """The GP's kernel over d columns: the spec's expression, exchangeable one-hot
    categories, and input warping when asked. Columns that describe substances
    (their encoded categories, and the descriptors ``feature_transform`` appends
    after the space's own columns) have the dimension-scaled length-scale prior
    over their number; the parameters' own columns the flat one."""
    cfg = problem.surrogate_options
    kernel = sg.with_descriptor_columns(
        sg.parse_kernel(cfg["kernel"]),
        problem.substance_columns + tuple(range(problem.dim, d)))
    if problem.kernel_onehot:
        kernel = sg.with_categorical(kernel, list(problem.kernel_onehot), d,
                                     structure=cfg["categorical"])
    return sg.resolve_kernel(kernel, d, warping=cfg["warping"])


def _warm_start(warm: dict | None, kernel, d: int, m: int, learn_noise: bool,
                noise_prior: str):
    """The previous fit's hyperparameters if they fit this kernel and data, else None."""
    if warm is None:
        return None
    try:
        start = sg.hyperparameters_from_dict(warm)
        sg.gp.check_warm_start(start, kernel, d, m, learn_noise,
                               sg.gp.resolve_noise_prior(noise_prior))
    except (ValueError, KeyError, TypeError):
        return None  # another kernel or dimension: start cold
    return start


@dataclass(frozen=True)
class Refit:
    """What the refit policy keeps in the GP's state (under ``"refit"``): the number of
    observations (observed output values) of the last full fit, of the last fit that
    optimised the hyperparameters (a full fit or a refinement) and of the last model
    (the last fit, or the previous hyperparameters conditioned on the data)."""

    full_fit_observations: int
    refined_observations: int
    observations: int

    @classmethod
    def of(cls, warm: dict | None) -> "Refit | None":
        """The record in a state, or None (no state, or one from before the policy). A
        record without ``refined_observations`` (from before conditioning between
        refinements) had its hyperparameters optimised at its last fit."""
        try:
            record = (warm or {})["refit"]
            observations = int(record["observations"])
            out = cls(int(record["full_fit_observations"]),
                      int(record.get("refined_observations", observations)), observations)
        except (KeyError, TypeError, ValueError, AttributeError):
            return None
        ordered = 0 < out.full_fit_observations <= out.refined_observations <= out.observations
        return out if ordered else None

    def due(self, observations: int) -> bool:
        """Whether ``observations`` call for a full fit before any look at the data:
        fewer than at the last fit (data replaced), or ``REFIT_GROWTH`` more than at
        the last full fit."""
        return (observations < self.observations
                or observations >= (1.0 + REFIT_GROWTH) * self.full_fit_observations)

    def refine_due(self, observations: int) -> bool:
        """Whether ``observations`` grew by more than ``REFINE_GROWTH`` since the last
        refinement (or full fit): below, the previous hyperparameters are conditioned on
        the data without optimising them."""
        return observations > (1.0 + REFINE_GROWTH) * self.refined_observations

    def surprised(self, model, rows: int, observations: int) -> bool:
        """The surprise test on a warm ``model`` (refined or conditioned) of ``rows``
        rows: the newest rows, those told since the last model (at most
        ``SURPRISE_MAX_ROWS``; rows are in trial order), predicted from the others. True
        when their chi-squared statistic has a p-value below ``SURPRISE_P`` (or is not
        finite)."""
        from scipy.special import chdtrc

        count = min(observations - self.observations, SURPRISE_MAX_ROWS, rows)
        if count <= 0:
            return False
        statistic, dof = (float(np.sum(v)) for v in model.leave_out_chi2(rows - count, count))
        return not (dof == 0 or chdtrc(dof, statistic) >= SURPRISE_P)  # NaN: surprised


@fitter("gp", conditionable=True, known_noise=True)
def _fit_gp(problem: Problem, X, Y, key, capacity: int, warm: dict | None,
            noise: np.ndarray | None = None):
    """The GP by MAP: a warm model while the refit policy allows one (from
    ``WARM_FIT_MIN_OBSERVATIONS``; ``Refit``: growth and the surprise test), else a full
    fit with every restart. A warm model is the previous hyperparameters conditioned on
    the data while the data grew by at most ``REFINE_GROWTH`` since they were last
    optimised, else (or when the new observations surprise them) those hyperparameters
    refined alone. The state records the hyperparameters and the policy's ``refit``
    record. The same data, key and warm state give the same model."""
    cfg = problem.surrogate_options
    d = X.shape[1]
    if problem.prior is not None:
        prior = problem.prior
        model = fit_with_prior(prior.location, problem.space, X, Y, key=key,
                               tracking=prior.tracking, base_dir=prior.base_dir,
                               capacity=capacity, restarts=cfg["restarts"])
        return model, None
    kernel = _gp_kernel(problem, d)
    learn_noise = cfg["noise"] is None
    start = _warm_start(warm, kernel, d, Y.shape[1], learn_noise, problem.noise_prior)
    # Known standard errors add their variances to each point's (learned or fixed) noise.
    fixed = None if learn_noise else np.full(Y.shape, cfg["noise"])
    noise = fixed if noise is None else noise if fixed is None else fixed + noise
    fit = partial(sg.fit_gp, X, Y, key=key, bounds=_unit(d), capacity=capacity, kernel=kernel,
                  noise=noise, learn_noise=learn_noise, noise_prior=problem.noise_prior)
    observations = int(np.sum(np.isfinite(Y)))
    last = Refit.of(warm) if start is not None else None
    if last is not None and observations >= WARM_FIT_MIN_OBSERVATIONS and \
            not last.due(observations):
        if not last.refine_due(observations):
            model = sg.gp_from_hyperparameters(X, Y, start, bounds=_unit(d), capacity=capacity,
                                               noise=noise)
            if not last.surprised(model, len(X), observations):
                return model, _gp_state(model, Refit(last.full_fit_observations,
                                                     last.refined_observations, observations))
        model = fit(warm_start=start, refine_only=True)
        if not last.surprised(model, len(X), observations):
            return model, _gp_state(model, Refit(last.full_fit_observations, observations,
                                                 observations))
    if start is not None and sg.bucket_size(max(len(X), capacity)) >= SUBSET_MIN_CAPACITY:
        start = None  # from this size fit_gp only refines a warm start: from scratch instead
    model = fit(restarts=cfg["restarts"], warm_start=start)
    return model, _gp_state(model, Refit(observations, observations, observations))


def _gp_state(model, refit: Refit) -> dict:
    """The GP's JSON-ready state: its hyperparameters (the next fit's warm start) and the
    refit policy's record."""
    return {**sg.hyperparameters_to_dict(model.hyperparameters), "refit": asdict(refit)}


@fitter("saas", conditionable=True)
def _fit_saas(problem: Problem, X, Y, key, capacity: int, warm: dict | None):
    cfg = problem.surrogate_options
    model = sg.fit_saas_gp(X, Y, key=key, bounds=_unit(X.shape[1]), capacity=capacity,
                           num_warmup=cfg["num_warmup"], num_samples=cfg["num_samples"],
                           thinning=max(1, cfg["num_samples"] // _SAAS_RETAINED))
    return model, {"median_lengthscale": np.asarray(model.median_lengthscale).tolist()}


@fitter("ensemble", conditionable=False)
def _fit_ensemble(problem: Problem, X, Y, key, capacity: int, warm: dict | None):
    cfg = problem.surrogate_options
    model = sg.fit_ensemble(X, Y, key=key, members=cfg["members"], hidden=tuple(cfg["hidden"]),
                            epochs=cfg["epochs"], bounds=_unit(X.shape[1]))
    # Acquisitions want the latent posterior: a repeated point should gain nothing.
    return Latent(model), None


@fitter("bll", conditionable=False)
def _fit_bll(problem: Problem, X, Y, key, capacity: int, warm: dict | None):
    cfg = problem.surrogate_options
    model = sg.fit_bll(X, Y, key=key, hidden=tuple(cfg["hidden"]), epochs=cfg["epochs"],
                       bounds=_unit(X.shape[1]))
    return model, None


@fitter("deep_kernel", conditionable=True)
def _fit_deep_kernel(problem: Problem, X, Y, key, capacity: int, warm: dict | None):
    cfg = problem.surrogate_options
    model = sg.fit_deep_kernel_gp(X, Y, key=key, bounds=_unit(X.shape[1]), capacity=capacity,
                                  hidden=tuple(cfg["hidden"]), features=cfg["features"],
                                  restarts=min(cfg["restarts"], _DEEP_KERNEL_MAX_RESTARTS))
    return model, None


@fitter("svgp", conditionable=False)
def _fit_svgp(problem: Problem, X, Y, key, capacity: int, warm: dict | None):
    cfg = problem.surrogate_options
    model = sg.fit_svgp(X, Y, key=key, num_inducing=min(cfg["num_inducing"], len(X)),
                        bounds=_unit(X.shape[1]))
    return model, None


# Task columns: hyperparameter warm starts are the plain GP's only.

@fitter("multitask", conditionable=True)
def _fit_multitask(problem: Problem, X, Y, key, capacity: int, warm: dict | None):
    cfg, tasks = problem.surrogate_options, problem.tasks
    model = sg.fit_multitask_columns(X, Y, key=key, layout=tasks.layout,
                                     target=tasks.target_index, rank=cfg["rank"],
                                     capacity=capacity, restarts=cfg["restarts"])
    return model, None


@fitter("multifidelity", conditionable=True)
def _fit_multifidelity(problem: Problem, X, Y, key, capacity: int, warm: dict | None):
    cfg, tasks = problem.surrogate_options, problem.tasks
    model = sg.fit_multifidelity_columns(X, Y, key=key, layout=tasks.layout,
                                         costs=tasks.costs, capacity=capacity,
                                         restarts=cfg["restarts"])
    return model, None


__all__ = ["FITTERS", "Fitter", "REFINE_GROWTH", "REFIT_GROWTH", "Refit", "SURPRISE_P",
           "WARM_FIT_MIN_OBSERVATIONS", "fit_surrogate", "fitter", "output_warp"]
