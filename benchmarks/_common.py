"""What the VM and JIT benchmarks share: their options, the checks for bpfkit's JIT and for a usable
kernel, and batched timing.

The scripts run as ``python benchmarks/bench_x.py``: their directory is then ``sys.path[0]``, so they
import this module as ``_common`` from any working directory.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Sequence

BATCHES = 20
"""Run figures are the best of this many batches of runs/BATCHES runs: long stretches of native code are
slowed down by the host (CPU steal on a VM), short batches see the machine's real speed."""


def parse_args(doc: str | None, argv: Sequence[str] | None, *, runs: int, runs_help: str
               ) -> argparse.Namespace:
    """The options of every engine benchmark: ``--runs N`` (default `runs`) and ``--no-kernel``; the
    description is the first line of the script's docstring `doc`."""
    parser = argparse.ArgumentParser(description=(doc or "").split("\n")[0])
    parser.add_argument("--runs", type=int, default=runs, help=runs_help)
    parser.add_argument("--no-kernel", action="store_true", help="leave out the kernel column")
    return parser.parse_args(argv)


def jit_missing() -> bool:
    """True, after saying why, when bpfkit's JIT cannot run on this machine (the benchmark then has
    nothing to measure)."""
    from bpfkit.vm.jit import jit_supported

    reason = jit_supported()
    if reason is not None:
        print(f"bpfkit JIT: n/a ({reason})")
    return reason is not None


def kernel_unavailable(no_kernel: bool = False) -> str | None:
    """Why the kernel column is left out (``--no-kernel`` given: `no_kernel`; bpfkit.kernel missing; no
    root or no bpf(2): loading and test-running an XDP program fails), or None when it can be measured."""
    if no_kernel:
        return "--no-kernel given"
    try:
        from bpfkit.kernel.programs import Program
    except ImportError as exc:
        return f"bpfkit.kernel is not importable ({exc})"
    from bpfkit.isa import assemble
    from bpfkit.uapi.enums import ProgType

    try:
        with Program.load(assemble("r0 = 0\nexit"), ProgType.XDP) as prog:
            prog.test_run(bytes(64))
    except Exception as exc:
        return f"cannot load and test-run a program ({exc}); needs root and bpf(2)"
    return None


def best_of(fn: Callable[[], float], times: int = 3) -> float:
    """The smallest of `times` calls of `fn`."""
    return min(fn() for _ in range(times))


def best_batch(measure: Callable[[int], float], runs: int) -> float:
    """ns per run, the best of BATCHES batches: `measure(n)` does n = runs // BATCHES runs (at least 1)
    and gives ns per run (the kernel's own BPF_PROG_TEST_RUN duration, or `wall(...)`)."""
    batch = max(runs // BATCHES, 1)
    return best_of(lambda: measure(batch), BATCHES)


def wall(run: Callable[[int], object], before: Callable[[], object] | None = None) -> Callable[[int], float]:
    """A `measure` for `best_batch`: wall-clock ns per run of `run(n)` (which does n runs); `before` is
    called first, outside the timing."""
    def measure(n: int) -> float:
        if before is not None:
            before()
        start = time.perf_counter_ns()
        run(n)
        return (time.perf_counter_ns() - start) / n
    return measure


def timed_ms(fn: Callable[[], object]) -> float:
    """Milliseconds one call of `fn` takes."""
    start = time.perf_counter_ns()
    fn()
    return (time.perf_counter_ns() - start) / 1e6
