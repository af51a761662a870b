"""`bpfkit vm verify FILE`: check programs with bpfkit's own verifier, without a kernel.

FILE is an assembly listing (llvm or ubpf dialect, detected as `vm run` does), raw or hex bytecode, or
an ELF object (every program, or the one `--section` names, checked with the object's maps, license,
attach type and source lines, as a loader hands it over: CO-RE relocations applied against `--btf` or
vmlinux's BTF, `.kconfig` filled from `--kconfig` over the running kernel's config; the same BTF types
TRACING contexts and kfuncs). Each accepted program prints one line
``NAME: accepted (N insns processed, M states, stack D bytes)``; a refused one prints ``NAME: refused``
and the verifier's report (instruction, source line, path, registers, hint) and the exit status is 1.
``-v`` adds the kernel-style log (log level 1; ``-vv`` level 2, with the registers each instruction
wrote), with ``; source @ file:line`` lines where the object has line info; ``-j`` prints JSON.

This verb is registered on the `vm` noun by `bpfkit.cli.vm_cmds` (see `register_verbs`).
"""

from __future__ import annotations

import argparse
import bisect
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bpfkit._records import record, replace
from bpfkit.cli.vm_cmds import _HEX_TEXT, _pick_program, _prog_type, _program_from_text, parse_hex
from bpfkit.elf import is_elf
from bpfkit.errors import AsmError, BpfkitError, VerificationError
from bpfkit.isa import Instruction, decode
from bpfkit.obj.spec import ProgramSpec
from bpfkit.uapi.enums import ProgType
from bpfkit.vm.verifier import Report, VerifierResult, verify, verify_program

if TYPE_CHECKING:
    from bpfkit.vm.machine import TargetBtf

LineTable = Mapping[int, tuple[str, int, str]]
"""Instruction slot -> (file, line, source text), as `verify` takes line info."""


@record
class Outcome:
    """What the verifier said about one program: `result` when accepted, else `report`."""

    name: str
    section: str
    prog_type: ProgType | None
    result: VerifierResult | None
    report: Report | None
    lines: LineTable


def _listing(data: bytes, name: str, dialect: str) -> list[Instruction]:
    """Instructions of a non-ELF FILE: hex text, assembly text, or raw bytecode."""
    try:
        text: str | None = data.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is not None and text.strip() and not _HEX_TEXT.match(text):
        return _program_from_text(text, dialect, name)
    if not data.strip():
        raise BpfkitError(f"{name}: the file is empty")
    code = parse_hex(text, name) if text is not None else data
    try:
        return decode(code)
    except AsmError as err:
        raise AsmError(f"{name}: {err.message}", index=err.index) from None


def _outcome(name: str, section: str, prog_type: ProgType | None, lines: LineTable,
             run: Any) -> Outcome:
    try:
        return Outcome(name, section, prog_type, run(), None, lines)
    except VerificationError as err:
        return Outcome(name, section, prog_type, None, err.report, lines)


def verify_file(data: bytes, name: str, *, section: str | None = None, type_name: str | None = None,
                mem_size: int = 0, log_level: int = 0, dialect: str = "auto", btf: str | None = None,
                kconfig: Mapping[str, str] | None = None) -> list[Outcome]:
    """Verify every program FILE holds (or the one `section` names); one `Outcome` each, in file order.
    ELF programs are verified after CO-RE (against `btf`, a path, default vmlinux's) and `.kconfig`
    (`kconfig` over the running kernel's config) have been applied (`bpfkit.vm.objects.resolve_object`).

    Raises `BpfkitError` for input that is not a program (bad ELF, assembly or bytecode; unknown
    section or type) — a refusal is an `Outcome`, not an exception.
    """
    prog_type = _prog_type(type_name) if type_name else None
    if is_elf(data):
        from bpfkit.obj import load_object
        from bpfkit.vm.machine import TargetBtf
        from bpfkit.vm.objects import resolve_object

        obj = load_object(data, name)
        target = TargetBtf(btf)  # the kernel's is read only if CO-RE or some program needs it
        resolved = resolve_object(obj, target_btf=target, kconfig=kconfig)
        obj.programs, obj.maps = resolved.programs, resolved.maps
        if section is not None:
            picked = _pick_program(obj.programs, section, name)
            specs = [(n, p) for n, p in obj.programs.items() if p is picked]
        else:
            if not obj.programs:
                raise BpfkitError(f"{name}: the object has no programs")
            specs = list(obj.programs.items())
        out = []
        for prog_name, spec in specs:
            if prog_type is not None:
                spec = replace(spec, type=prog_type)
            lines = {rec.index: (rec.file, rec.line, rec.text) for rec in spec.lines}
            out.append(_outcome(prog_name, spec.section, spec.type, lines,
                                lambda s=spec: _verify_spec(s, obj.maps, target, log_level, mem_size)))
        return out
    if section is not None:
        raise BpfkitError(f"{name}: --section applies to ELF objects only")
    insns = _listing(data, name, dialect)
    return [_outcome(Path(name).stem, "", prog_type, {},
                     lambda: verify(insns, prog_type=prog_type, mem_size=mem_size, log_level=log_level))]


def _verify_spec(spec: ProgramSpec, maps: Mapping[str, Any], target: TargetBtf, log_level: int,
                 mem_size: int) -> VerifierResult:
    """`verify_program` with the target BTF when the program needs it, and a hint naming `--btf` when
    it needs one and there is none (`TargetBtf.verify`, as `Vm.load` does)."""
    return target.verify(spec.type, spec.insns, lambda btf: verify_program(
        spec, maps, log_level=log_level, mem_size=mem_size, btf=btf))


def annotate_log(log: str, lines: LineTable) -> str:
    """The kernel-style log with ``; text @ file:line`` before the first instruction of each source
    line the walk enters, as the kernel prints it for programs loaded with line info."""
    if not lines or not log:
        return log
    keys = sorted(lines)
    out: list[str] = []
    shown: tuple[str, int, str] | None = None
    for line in log.splitlines():
        head, colon, _ = line.partition(":")
        if colon and head.isdigit() and line[len(head) + 1:len(head) + 3] == " (":
            i = bisect.bisect_right(keys, int(head)) - 1
            if i >= 0 and lines[keys[i]] != shown:
                shown = lines[keys[i]]
                file, number, text = shown
                if number and text.strip():  # line 0: code the compiler made, from no source line
                    out.append(f"; {text.strip()} @ {Path(file).name}:{number}")
        elif line.startswith("from "):
            shown = None  # a new path: the kernel repeats the source line
        out.append(line)
    return "\n".join(out) + "\n"


def _summary(result: VerifierResult) -> str:
    return (f"accepted ({result.processed_insns} insns processed, {result.states} states, "
            f"stack {result.max_stack} bytes)")


def outcome_record(o: Outcome, verbose: bool) -> dict[str, Any]:
    """One program's outcome for `-j`."""
    rec: dict[str, Any] = {"name": o.name, "section": o.section,
                           "type": o.prog_type.name.lower() if o.prog_type is not None else None,
                           "accepted": o.result is not None}
    if o.result is not None:
        r = o.result
        rec.update(processed_insns=r.processed_insns, states=r.states, peak_states=r.peak_states,
                   pruned=r.pruned, stack_depth=r.max_stack, subprograms=list(r.subprograms))
        log = r.log
    else:
        rep = o.report
        assert rep is not None
        rec["error"] = {
            "insn": rep.insn, "instruction": rep.instruction, "message": rep.message, "hint": rep.hint,
            "source": None if rep.source is None else {"file": rep.source.file, "line": rep.source.line,
                                                       "text": rep.source.text.strip()},
            "path": list(rep.path), "registers": dict(rep.registers),
            "report": str(rep)}
        log = rep.log
    if verbose:
        rec["log"] = annotate_log(log, o.lines)
    return rec


def cmd_verify(args: argparse.Namespace) -> int:
    data = sys.stdin.buffer.read() if args.file == "-" else Path(args.file).read_bytes()
    level = min(args.verbose, 2)
    from bpfkit.cli.vm_cmds import _kconfig_option

    outcomes = verify_file(data, args.file, section=args.section, type_name=args.type,
                           mem_size=args.mem_size, log_level=level, dialect=args.dialect, btf=args.btf,
                           kconfig=_kconfig_option(args.kconfig))
    refused = any(o.result is None for o in outcomes)
    if args.json:
        print(json.dumps({"file": args.file, "programs": [outcome_record(o, level > 0) for o in outcomes]}))
        return 1 if refused else 0
    for o in outcomes:
        if level:
            log = o.result.log if o.result is not None else o.report.log if o.report is not None else ""
            sys.stdout.write(annotate_log(log, o.lines))
        if o.result is not None:
            print(f"{o.name}: {_summary(o.result)}")
        else:
            print(f"{o.name}: refused\n{o.report}")
    return 1 if refused else 0


def _size(text: str) -> int:
    try:
        value = int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is negative")
    return value


def register_verbs(verbs: argparse._SubParsersAction[argparse.ArgumentParser],
                   parents: Sequence[argparse.ArgumentParser] = ()) -> None:
    """Add `verify` to the `vm` noun's verbs (called by `bpfkit.cli.vm_cmds.register`)."""
    p = verbs.add_parser("verify", parents=list(parents),
                         help="check programs with bpfkit's verifier (assembly, raw/hex bytecode, ELF)")
    p.add_argument("file", help="assembly listing, raw/hex bytecode or ELF object ('-' for stdin)")
    p.add_argument("--section", help="ELF: verify only this program (section or function name)")
    p.add_argument("--type", help="program type (xdp, socket_filter, sched_cls...); default: the ELF "
                   "section's, else raw memory (r1 = memory of --mem-size bytes, r2 = its size)")
    p.add_argument("--mem-size", type=_size, default=0, metavar="N",
                   help="raw memory mode: the size of the memory r1 points to (default 0)")
    p.add_argument("--dialect", choices=("auto", "llvm", "ubpf"), default="auto",
                   help="assembly dialect (default: auto)")
    p.add_argument("--btf", metavar="PATH", help="ELF: the kernel BTF to apply CO-RE relocations against "
                   "and to type contexts and kfuncs (default: /sys/kernel/btf/vmlinux when readable)")
    p.add_argument("--kconfig", metavar="NAME=VALUE", action="append",
                   help="ELF: a .kconfig value, over the running kernel's config; repeatable")
    p.add_argument("-v", "--verbose", action="count", default=0,
                   help="print the kernel-style verifier log (-vv: with the registers written)")
    p.add_argument("-j", "--json", action="store_true", help="JSON output")
    p.set_defaults(func=cmd_verify)
