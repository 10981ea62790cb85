"""Training throughput of the deep ensemble and of the sparse variational GP.

Training samples per second of a deep ensemble trained as one vmapped model against the same
members trained one by one, and the SVGP's Adam steps per second on minibatches of large data
sets, with the closed-form q(u) pass that ends a fit.

1. The ensemble either way: the same compiled step function, keys, steps and batch size,
   applied to all members at once or to one member at a time; timed after compilation, the
   median of ``--repeats`` runs; samples per second = members x steps x batch / seconds.
2. The SVGP at each of ``--svgp-sizes`` rows (the per-step cost does not depend on n; the data
   stay in device memory).

OpenBLAS is held to one thread unless OPENBLAS_NUM_THREADS is set: jaxlib runs CPU Cholesky
and triangular solves there, and its threads contend with XLA's for the cores.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # before numpy/scipy load OpenBLAS

import argparse  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import surrogates  # noqa: E402, F401  (float64)
from benchmarks import common  # noqa: E402
from benchmarks.common import Stopwatch  # noqa: E402
from surrogates import ensemble as E  # noqa: E402
from surrogates import svgp as S  # noqa: E402

QUICK = {"members": 3, "n": 1000, "steps": 50, "batch": "32", "repeats": 2,
         "svgp_sizes": "10000", "svgp_steps": 20}
LOSS_STEPS_COMPARED = 10  # first steps over which both ways must give the same losses


def timed(fn: Callable[[], object], repeats: int) -> tuple[list[float], list[float]]:
    """Wall-clock and process CPU seconds of ``fn()``, blocking on its result, ``repeats``
    times each."""
    sw = Stopwatch()
    for _ in range(repeats):
        with sw:
            jax.block_until_ready(fn())
    return sw.wall, sw.cpu


# -- ensemble -----------------------------------------------------------------------


def bench_ensemble(members: int, n: int, d: int, hidden: tuple[int, ...], steps: int,
                   batch: int, repeats: int) -> dict:
    """Vmapped ensemble against member-by-member training of the same members."""
    rng = np.random.default_rng(0)
    X = rng.uniform(size=(n, d))
    y = np.sin(3 * X).sum(axis=1) + 0.05 * rng.normal(size=n)
    Z, Ys, mask, n_rows, *_ = E.prepare_data(X, y)
    cfg = E._Config(hidden=hidden, activation="silu", likelihood="heteroscedastic",
                    steps=steps, batch=batch, dtype="float32")
    init_keys, data_keys = E._member_keys(jax.random.key(0), members)
    stacked = E._init_members(init_keys, d, 1, cfg)
    data = [jnp.asarray(a, jnp.float32) for a in (Z, Ys, mask)]
    rest = (jnp.asarray(n_rows, jnp.int32),)
    rates = (jnp.float32(1e-2), jnp.float32(1e-4))
    alone = [jax.tree.map(lambda a, i=i: a[i:i + 1], stacked) for i in range(members)]

    def vmapped():
        return E._train(stacked, *data, *rest, data_keys, *rates, cfg)

    def one_by_one():
        return [E._train(alone[i], *data, *rest, data_keys[i:i + 1], *rates, cfg)
                for i in range(members)]

    t = time.perf_counter()
    _, loss_together = jax.block_until_ready(vmapped())
    compile_vmapped = time.perf_counter() - t
    t = time.perf_counter()
    separate = jax.block_until_ready(one_by_one())
    compile_single = time.perf_counter() - t
    # The same members either way: vmap must not couple them. Compared on the
    # first steps' losses only: float32 rounding of batched against single matrix
    # products then grows through Adam, as any perturbation of SGD does.
    loss_separate = jnp.concatenate([loss for _, loss in separate], axis=1)
    k = LOSS_STEPS_COMPARED
    diff = float(jnp.max(jnp.abs(loss_together[:k] - loss_separate[:k])))
    t_v, c_v = timed(vmapped, repeats)
    t_s, c_s = timed(one_by_one, repeats)
    samples = members * steps * batch
    return {
        "members": members, "n": n, "d": d, "hidden": list(hidden), "steps": steps,
        "batch": batch, "repeats": repeats, "vmapped_s": t_v, "member_by_member_s": t_s,
        "vmapped_cpu_s": c_v, "member_by_member_cpu_s": c_s,
        "first_call_vmapped_s": compile_vmapped, "first_call_member_by_member_s": compile_single,
        "vmapped_samples_per_s": samples / float(np.median(t_v)),
        "member_by_member_samples_per_s": samples / float(np.median(t_s)),
        "speedup": float(np.median(t_s) / np.median(t_v)),
        "cpu_time_speedup": float(np.median(c_s) / np.median(c_v)),
        "max_abs_loss_difference_first_steps": diff,
    }


# -- SVGP ---------------------------------------------------------------------------


def bench_svgp(n: int, d: int, num_inducing: int, batch: int, steps: int, repeats: int) -> dict:
    """Adam steps per second of the minibatch ELBO and the closed-form q(u) pass."""
    rng = np.random.default_rng(1)
    X = rng.uniform(size=(n, d))
    y = np.sin(3 * X).sum(axis=1) + 0.1 * rng.normal(size=n)
    Xs, Ys, mask, n_rows, *_ = E.prepare_data(X, y)
    Xs, Ys, mask = jnp.asarray(Xs), jnp.asarray(Ys), jnp.asarray(mask)
    key = jax.random.key(0)
    t = time.perf_counter()
    Z = jax.block_until_ready(
        S._initial_inducing(key, Xs, mask, num=num_inducing, init="kmeans++", m=1))
    init_s = time.perf_counter() - t
    v0 = S._Variational(Z=Z, q_mean=jnp.zeros((1, num_inducing)),
                        q_tril=jnp.zeros((1, num_inducing, num_inducing)),
                        q_log_diag=jnp.zeros((1, num_inducing)),
                        theta=S.default_hyperparameters(d, 1))
    cfg = S._Config(steps=steps, batch=batch, full_batch=False, jitter=1e-6,
                    train_hyperparameters=True, train_inducing=True)

    def train():
        return S._train(v0, Xs, Ys, mask, jnp.asarray(n_rows, jnp.int32), key,
                        jnp.asarray(0.01), cfg)

    t = time.perf_counter()
    v, trace = jax.block_until_ready(train())
    first = time.perf_counter() - t
    times, cpu = timed(train, repeats)
    model = S._assemble(v, jnp.zeros(d), jnp.ones(d), jnp.zeros(1), jnp.ones(1), jitter=1e-6)
    jax.block_until_ready(S._with_optimal_q(model, Xs, Ys, mask))
    q_times, _ = timed(lambda: S._with_optimal_q(model, Xs, Ys, mask), max(1, repeats // 2))
    return {
        "n": n, "d": d, "num_inducing": num_inducing, "batch": batch, "steps": steps,
        "repeats": repeats, "train_s": times, "train_cpu_s": cpu, "first_call_s": first,
        "steps_per_s": steps / float(np.median(times)),
        "kmeanspp_first_call_s": init_s, "optimal_q_pass_s": q_times,
        "elbo_first_last": [float(trace[0]), float(trace[-1])],
    }


# -- report -------------------------------------------------------------------------


def markdown(report: dict) -> str:
    """The ensemble table (both ways per batch size), its settings, then the SVGP table."""
    lines = [
        "| ensemble training | samples/s | median wall s | median CPU s | speedup (wall) "
        "| speedup (CPU) |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for e in report["ensemble"]:
        lines.append(f"| {e['members']} members vmapped (one program), batch {e['batch']} | "
                     f"{e['vmapped_samples_per_s']:,.0f} | {np.median(e['vmapped_s']):.3f} | "
                     f"{np.median(e['vmapped_cpu_s']):.3f} | {e['speedup']:.1f}x | "
                     f"{e['cpu_time_speedup']:.1f}x |")
        lines.append(f"| {e['members']} members one by one, batch {e['batch']} | "
                     f"{e['member_by_member_samples_per_s']:,.0f} | "
                     f"{np.median(e['member_by_member_s']):.3f} | "
                     f"{np.median(e['member_by_member_cpu_s']):.3f} | 1.0x | 1.0x |")
    e = report["ensemble"][0]
    diff = max(r["max_abs_loss_difference_first_steps"] for r in report["ensemble"])
    lines += [
        "",
        f"Ensemble: MLP {e['hidden']}, d = {e['d']}, n = {e['n']}, {e['steps']} steps, "
        f"median of {e['repeats']}; largest difference of the members' losses over the "
        f"first {LOSS_STEPS_COMPARED} steps between the two ways: {diff:.1e}. "
        f"JAX device: {report['jax_device']}.",
        "",
        "| SVGP n | inducing | batch | steps/s | k-means++ (s, 1st call) "
        "| closed-form q(u) pass (s) |",
        "| ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for s in report["svgp"]:
        lines.append(f"| {s['n']:,} | {s['num_inducing']} | {s['batch']} | "
                     f"{s['steps_per_s']:.0f} | {s['kmeanspp_first_call_s']:.2f} | "
                     f"{np.median(s['optimal_q_pass_s']):.2f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks run ensemble",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--members", type=int, default=10)
    p.add_argument("--n", type=int, default=10_000, help="ensemble training rows")
    p.add_argument("--d", type=int, default=8)
    p.add_argument("--hidden", default="64,64")
    p.add_argument("--steps", type=int, default=500)
    p.add_argument("--batch", default="32,128", help="ensemble batch sizes, comma-separated")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--svgp-sizes", default="100000,1000000")
    p.add_argument("--svgp-inducing", type=int, default=128)
    p.add_argument("--svgp-batch", type=int, default=1024)
    p.add_argument("--svgp-steps", type=int, default=200)
    a = common.parse_args(p, argv, QUICK)
    run = common.Run.start(__name__, __doc__, a, argv)
    report: dict = {"jax_device": str(jax.devices()[0])}
    hidden = tuple(int(w) for w in a.hidden.split(","))
    print("ensemble ...", file=sys.stderr, flush=True)
    report["ensemble"] = [
        bench_ensemble(a.members, a.n, a.d, hidden, a.steps, int(b), a.repeats)
        for b in a.batch.split(",")
    ]
    report["svgp"] = []
    for n in (int(float(s)) for s in a.svgp_sizes.split(",")):
        print(f"svgp n = {n} ...", file=sys.stderr, flush=True)
        report["svgp"].append(bench_svgp(n, a.d, a.svgp_inducing, a.svgp_batch,
                                         a.svgp_steps, a.repeats))
    report["loadavg_at_end"] = os.getloadavg()
    run.write_raw(report)
    page = run.write_page(markdown(report))
    print(page.read_text())
    return 0
