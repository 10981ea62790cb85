"""The benchmarks' one entry point.

    python -m benchmarks list                          # each benchmark and what it measures
    python -m benchmarks run NAME [--quick] [options]  # one benchmark; NAME --help for options
    python -m benchmarks run all [--quick] [--threads N]

``run all`` runs each benchmark in a process of its own, one after the other, so that one
benchmark's thread settings, compiled programs and failures do not reach the next.
"""

from __future__ import annotations

import argparse
import ast
import importlib
import subprocess
import sys
from collections.abc import Sequence

from benchmarks import BENCHMARKS
from benchmarks.common import BENCHMARKS_DIR, ROOT, limit_threads


def describe(name: str) -> str:
    """The first line of benchmark ``name``'s docstring, read without importing it."""
    tree = ast.parse((BENCHMARKS_DIR / f"{name}.py").read_text())
    return (ast.get_docstring(tree) or "").split("\n", 1)[0]


def list_benchmarks() -> int:
    width = max(len(n) for n in BENCHMARKS)
    for name in BENCHMARKS:
        print(f"{name:{width}s}  {describe(name)}")
    return 0


def run_one(name: str, argv: list[str]) -> int:
    """Run benchmark ``name`` in this process with its options ``argv``."""
    peek = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    peek.add_argument("--threads", type=int, default=None)
    threads = peek.parse_known_args(argv)[0].threads
    if threads:  # before the benchmark's import loads numpy, JAX or torch
        limit_threads(threads)
    module = importlib.import_module(f"benchmarks.{name}")
    return int(module.main(argv) or 0)


def run_all(argv: list[str]) -> int:
    """Every benchmark in turn, each in a fresh process; the options common to all only."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks run all", allow_abbrev=False)
    parser.add_argument("--quick", action="store_true", help="reduced settings for each")
    parser.add_argument("--threads", type=int, default=None, help="thread limit for each")
    parser.parse_args(argv)  # refuses options that belong to one benchmark only
    failed = []
    for name in BENCHMARKS:
        print(f"== {name}", file=sys.stderr, flush=True)
        rc = subprocess.run([sys.executable, "-m", "benchmarks", "run", name, *argv],
                            cwd=ROOT, check=False).returncode
        if rc != 0:
            failed.append(f"{name} (exit {rc})")
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks",
                                     description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list", help="each benchmark and what it measures")
    run = commands.add_parser("run", help="run one benchmark, or all of them",
                              description="Options after NAME go to the benchmark; "
                                          "`run NAME --help` lists them.")
    run.add_argument("name", choices=(*BENCHMARKS, "all"), metavar="NAME|all",
                     help=f"one of {', '.join(BENCHMARKS)}, or all")
    run.add_argument("options", nargs=argparse.REMAINDER,
                     help="the benchmark's options (--quick, --page, --out, --threads, ...)")
    args = parser.parse_args(argv)
    if args.command == "list":
        return list_benchmarks()
    if args.name == "all":
        return run_all(args.options)
    return run_one(args.name, args.options)


if __name__ == "__main__":
    sys.exit(main())
