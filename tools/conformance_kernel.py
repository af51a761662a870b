#!/usr/bin/env python3
"""Run the eBPF ISA conformance vectors in the running kernel (BPF_PROG_TEST_RUN, needs root) and say
which pass, which the verifier rejects (with its reason, one line each) and which cannot run there.

    python tools/conformance_kernel.py [--corpus DIR] [--write] [--compare-vm]

`--write` records the verdicts in tests/data/conformance_kernel_verdicts.json (what the kernel test
checks the live kernel against, and what the VM test compares the VM with); `--compare-vm` also runs
every vector the kernel accepts in every VM engine and counts agreement on r0.
The harness that wraps a vector for the kernel is tests/kernel/conformance_runner.py.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]


def _runner() -> ModuleType:
    spec = importlib.util.spec_from_file_location("conformance_runner",
                                                  ROOT / "tests" / "kernel" / "conformance_runner.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["conformance_runner"] = module
    spec.loader.exec_module(module)
    return module


def main(argv: Sequence[str] | None = None) -> int:
    cr = _runner()
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--corpus", type=Path, default=cr.CORPUS, help="folder of .data vectors")
    parser.add_argument("--write", action="store_true", help=f"record the verdicts in {cr.VERDICTS}")
    parser.add_argument("--compare-vm", action="store_true", help="compare the VM with the kernel")
    args = parser.parse_args(argv)

    from bpfkit.isa.conformance import load_vectors

    vectors = load_vectors(args.corpus)
    if not vectors:
        print(f"no vectors in {args.corpus}", file=sys.stderr)
        return 2
    verdicts = [cr.run_in_kernel(v) for v in vectors]
    counts = Counter(v.verdict for v in verdicts)
    for title, verdict in (("rejected by the verifier", cr.REJECTED), ("not applicable", cr.NOT_APPLICABLE),
                           ("r0 differs from the expected result", cr.MISMATCH)):
        rows = [v for v in verdicts if v.verdict == verdict]
        if rows:
            print(f"{title} ({len(rows)}):")
            for v in rows:
                detail = v.reason or f"r0 = {v.r0:#x}"
                print(f"  {v.name:<32} {detail}")
    kernel = os.uname().release
    print(f"kernel {kernel}: {len(vectors)} vectors: {counts[cr.PASS]} pass, {counts[cr.REJECTED]} rejected, "
          f"{counts[cr.NOT_APPLICABLE]} n/a, {counts[cr.MISMATCH]} mismatch")
    if args.compare_vm:
        from bpfkit.vm import ENGINES
        from bpfkit.vm.conformance import run_vector

        by_name = {v.name: v for v in vectors}
        agree = Counter[str]()
        for kv in verdicts:
            if kv.r0 is None:
                continue
            for engine in ENGINES:
                outcome = run_vector(by_name[kv.name], engine)
                same = outcome.retval == kv.r0
                agree[f"{engine} {'agrees' if same else 'DISAGREES'}"] += 1
                if not same:
                    print(f"  VM ({engine}) disagrees on {kv.name}: kernel r0 = {kv.r0:#x}, "
                          f"VM r0 = {outcome.retval!r} {outcome.error or ''}")
        print("VM vs kernel on the vectors the kernel runs: " + ", ".join(f"{n} {k}" for k, n in
                                                                           sorted(agree.items())))
    if args.write:
        cr.write_verdicts(verdicts, kernel)
        print(f"wrote {cr.VERDICTS}")
    return 1 if counts[cr.MISMATCH] else 0


if __name__ == "__main__":
    sys.exit(main())
