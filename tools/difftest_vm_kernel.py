#!/usr/bin/env python3
"""Long runs of the VM-vs-kernel differential test (needs root): random programs from
tests/kernel/vm_kernel_diff.py in both VM engines and in the kernel (BPF_PROG_TEST_RUN), comparing r0,
every register, the stack and the packet.

    python tools/difftest_vm_kernel.py --examples 5000 [--seed N] [--max-body 40]

Prints how many programs were compared and how many the verifier refused (with its most common
reasons); on a disagreement, hypothesis shrinks the program and the difference is printed, exit 1.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]


def _support() -> ModuleType:
    path = ROOT / "tests" / "kernel" / "vm_kernel_diff.py"
    spec = importlib.util.spec_from_file_location("vm_kernel_diff", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["vm_kernel_diff"] = module
    spec.loader.exec_module(module)
    return module


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--examples", type=int, default=1000, help="programs to generate (default 1000)")
    parser.add_argument("--seed", type=int, default=None, help="hypothesis seed (default: random)")
    parser.add_argument("--max-body", type=int, default=24, help="most body instructions (default 24)")
    args = parser.parse_args(argv)

    from hypothesis import HealthCheck, assume, given, seed, settings

    from bpfkit.vm import ENGINES

    d = _support()
    stats = d.Stats()

    @settings(max_examples=args.examples, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(d.programs(max_body=args.max_body))
    def check(gen: object) -> None:
        kernel = d.run_kernel(gen)
        if isinstance(kernel, str):
            stats.rejected += 1
            stats.reasons[kernel] += 1
            assume(False)
        stats.compared += 1
        for engine in ENGINES:
            vm = d.run_vm(gen, engine)
            assert vm == kernel, d.explain(gen, kernel, vm, engine)

    if args.seed is not None:
        check = seed(args.seed)(check)
    start = time.monotonic()
    status = 0
    try:
        check()
    except AssertionError as e:
        print(e)
        status = 1
    print(f"{stats.summary()} in {time.monotonic() - start:.1f} s "
          f"(counts include the shrinking of a failure)" if status else
          f"{stats.summary()} in {time.monotonic() - start:.1f} s")
    return status


if __name__ == "__main__":
    sys.exit(main())
