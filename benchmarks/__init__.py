"""Speed and sample-efficiency benchmarks against the tools users would pick instead.

Run them through the one entry point: ``python -m benchmarks list`` names them and
``python -m benchmarks run NAME|all [--quick] [options]`` runs them. Each benchmark is a
module here with a ``main(argv)``; it writes its page to ``benchmarks/results/NAME.md``
(``benchmarks/out/NAME.md`` with ``--quick``). ``problems_suite`` and ``problems_mo`` hold
the test problems the suite draws on.
"""

# Benchmark modules in the order ``list`` shows them and ``run all`` runs them.
BENCHMARKS: tuple[str, ...] = (
    "hartmann6",
    "suite",
    "formulation",
    "gp_fit",
    "ensemble",
    "surrogate_quality",
    "campaigns_vs_random",
    "reaction_screens",
    "transfer",
    "tracking_overhead",
    "store_growth",
    "commands",
    "cold_start",
    "whole_job",
    "running_campaign",
    "soak",
)
