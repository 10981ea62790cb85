"""Process-level JAX hygiene: compiled programs against the kernel's memory-map limit."""

import json
import os
import subprocess
import sys

import pytest

linux_proc = pytest.mark.skipif(not os.path.exists("/proc/self/maps"),
                                reason="memory maps are counted through Linux's /proc")

SCRIPT = r"""
import json, sys
import jax, jax.numpy as jnp
import surrogates
jax.config.update("jax_compilation_cache_dir", sys.argv[1])
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
from surrogates import memory_maps, release_programs_if_crowded

@jax.jit
def nll(x):
    K = jnp.exp(-0.5 * (x[:, None] - x[None, :]) ** 2) + 1e-3 * jnp.eye(x.shape[0])
    L = jnp.linalg.cholesky(K)
    return jnp.sum(jax.scipy.linalg.cho_solve((L, True), x)) + jnp.sum(jnp.log(jnp.diag(L)))

grad = jax.jit(jax.value_and_grad(nll))
xs = [jnp.linspace(0.0, 1.0, 8 + i) for i in range(12)]
first = [float(grad(x)[0]) for x in xs]       # compile and warm up the runtime
before = memory_maps()[0]
jax.clear_caches()
import gc; gc.collect()
base = memory_maps()[0]
again = [float(grad(x)[0]) for x in xs]      # 12 programs from the disk cache, kept
loaded = memory_maps()[0]
kept = release_programs_if_crowded(fraction=1.0, min_interval_s=0.0)
released = release_programs_if_crowded(fraction=0.0, min_interval_s=0.0)
after = memory_maps()[0]
throttled = release_programs_if_crowded(fraction=0.0, min_interval_s=3600.0)
third = [float(grad(x)[0]) for x in xs]
print(json.dumps(dict(base=base, loaded=loaded, after=after, kept=kept, released=released,
                      throttled=throttled, first=first, again=again, third=third)))
"""


@linux_proc
def test_memory_maps_are_this_process_and_the_kernel_limit():
    from surrogates import memory_maps

    used, limit = memory_maps()
    with open("/proc/sys/vm/max_map_count") as f:
        assert limit == int(f.read())
    with open("/proc/self/maps") as f:
        assert abs(used - len(f.readlines())) <= 5  # reading a file maps little
    assert 0 < used < limit


@linux_proc
def test_release_frees_the_maps_of_kept_programs_and_they_still_compute(tmp_path):
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    env.pop("WORKBENCH_CACHE_DIR", None)
    out = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path / "cache")], capture_output=True, text=True,
                         env=env, timeout=300, check=True).stdout
    r = json.loads(out.strip().splitlines()[-1])
    grown = r["loaded"] - r["base"]
    # Each kept program holds several maps: this is what reaches the limit.
    assert grown >= 3 * 12, r
    assert not r["kept"] and r["released"] and not r["throttled"]
    # Releasing gives back (nearly) all of them...
    assert r["after"] - r["base"] <= 0.1 * grown, r
    # ...and the programs come back on their next call with the same results.
    assert r["first"] == r["again"] == r["third"]


@pytest.mark.parametrize("before", ["numpy", "scipy.special", "scipy.linalg"])
def test_scipy_lapack_gets_one_thread_and_child_processes_keep_their_default(before):
    """Importing surrogates without OPENBLAS_NUM_THREADS: SciPy's OpenBLAS (under JAX's
    CPU Cholesky) runs one thread, NumPy's keeps its own count, and the variable is not
    left in the environment that command oracles and workers inherit. Also where a SciPy
    module that loads that OpenBLAS was imported first (``scipy.special``, which xarray
    and dask bring): it had read no limit, and two spinning threads there cost a
    campaign run more CPU than its fits."""
    pytest.importorskip("threadpoolctl")
    script = (
        "import os, subprocess, sys\n"
        f"import numpy, {before}\n"
        "from threadpoolctl import threadpool_info\n"
        "import surrogates\n"
        "threads = {('scipy' if 'scipy.libs' in i['filepath'] else 'numpy'): i['num_threads']\n"
        "           for i in threadpool_info() if i['internal_api'] == 'openblas'}\n"
        "child = subprocess.run([sys.executable, '-c', 'import os;"
        " print(os.environ.get(\"OPENBLAS_NUM_THREADS\"))'], capture_output=True, text=True)\n"
        "print(threads.get('scipy'), os.environ.get('OPENBLAS_NUM_THREADS'), child.stdout.strip())\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    scipy_threads, left, child = out.stdout.split()
    assert scipy_threads in ("1", "None")  # None: no bundled SciPy OpenBLAS (e.g. conda)
    assert left == "None" and child == "None"
