"""`bpfkit vm run` and `bpfkit vm conformance-plugin`: run programs in the userspace VM.

`vm run FILE` takes an assembly listing, raw or hex bytecode, or an ELF object (loaded by
`Vm.load_object` with the chosen program and what it needs: its maps, the programs its program arrays
hold initially; the object's other programs are neither loaded nor verified. CO-RE against `--btf`
or vmlinux's BTF, `.kconfig` from `--kconfig` over the running kernel's config; the same BTF types
the contexts of fentry/fexit, tp_btf and iterator programs for the verifier) and prints r0;
`--trace` prints every executed instruction with the registers after it. bpfkit's verifier checks the
program first (a raw-memory program for the size of `--mem` / `--data`), as the kernel would before
running it; `--no-verify` runs trusted code unverified, with every run-time check on.

`vm jit-dump FILE` compiles the program with the x86-64 JIT and prints its native code, each piece under
a `; ...` comment naming the eBPF instruction (or JIT routine) it came from, the way `bpftool prog dump
jited` shows a kernel program: disassembled with capstone when it is installed, else as hex bytes.

`vm conformance-plugin` speaks the plugin protocol of the bpf_conformance runner, so the VM can be
checked by that runner (through a two-line wrapper script, as the runner runs a single executable):
the program arrives on stdin as hex bytes on one line (or as `--program HEX`), the memory as hex bytes
in the first argument (optional, may be empty); further arguments are options (`--engine NAME`, and
ubpf's plugin flags `--interpret` and `--jit`), possibly all in one string. On success r0 is printed
in hex (no `0x`) and the exit status is 0; on error the message goes to stdout (the runner compares it
with the vector's `-- error`) and to stderr, and the status is 1. The program is verified for the memory
given (a refusal is an error) unless `--no-verify` is among the options.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from bpfkit._records import replace
from bpfkit.elf import is_elf
from bpfkit.errors import AsmError, BpfkitError
from bpfkit.isa import Instruction, assemble, decode
from bpfkit.obj.spec import ProgramSpec
from bpfkit.uapi.enums import ProgType
from bpfkit.vm import DEFAULT_BUDGET, ENGINES, EngineName, TraceStep, Vm, VmProgram, conformance_helpers

if TYPE_CHECKING:
    from bpfkit.vm.jit.compile import CompiledCode

_HEX_TEXT = re.compile(r"^(?:\s|0[xX]|[0-9a-fA-F])*$")
_UBPF_HINT = re.compile(r"%r\d")


def parse_hex(text: str, what: str) -> bytes:
    """Hex bytes separated by whitespace (`b7 00 ...`, as the conformance runner writes them), or runs
    of hex digits (`b700...`), with optional `0x` prefixes."""
    out = bytearray()
    for token in text.split():
        digits = token[2:] if token[:2].lower() == "0x" else token
        try:
            if len(digits) <= 2:
                out.append(int(digits, 16))
            elif len(digits) % 2 == 0:
                out += bytes.fromhex(digits)
            else:
                raise ValueError(digits)
        except ValueError:
            raise AsmError(f"{what}: {token!r} is not a hex byte") from None
    return bytes(out)


# -- vm run --------------------------------------------------------------------------------------

def _program_from_text(text: str, dialect: str, name: str) -> list[Instruction]:
    if dialect != "auto":
        return assemble(text, dialect)
    if _UBPF_HINT.search(text):
        return assemble(text, "ubpf")
    try:
        return assemble(text, "llvm")
    except AsmError as llvm_error:
        try:
            return assemble(text, "ubpf")
        except AsmError:
            raise AsmError(f"{name}: {llvm_error.message} (tried the llvm and ubpf dialects; pick one with "
                           f"--dialect for that dialect's message)", index=llvm_error.index,
                           line=llvm_error.line, source=llvm_error.source) from None


def _pick_program(specs: dict[str, ProgramSpec], section: str | None, name: str) -> ProgramSpec:
    if not specs:
        raise BpfkitError(f"{name}: the object has no programs")
    if section is None:
        if len(specs) == 1:
            return next(iter(specs.values()))
        known = ", ".join(f"{p.section} ({n})" for n, p in specs.items())
        raise BpfkitError(f"{name}: the object has several programs; choose one with --section: {known}")
    for prog_name, spec in specs.items():
        if section in (spec.section, prog_name):
            return spec
    known = ", ".join(f"{p.section} ({n})" for n, p in specs.items())
    raise BpfkitError(f"{name}: no program in section {section!r} (programs: {known})")


def _load(vm: Vm, data: bytes, args: argparse.Namespace) -> tuple[VmProgram, ProgType | None]:
    """Load FILE into `vm`: (VmProgram, program type)."""
    name = args.file
    prog_type = _prog_type(args.type) if args.type else None
    if is_elf(data):
        from bpfkit.obj import load_object

        obj = load_object(data, name)
        spec = _pick_program(obj.programs, args.section, name)
        key = next(k for k, v in obj.programs.items() if v is spec)
        if prog_type is not None:
            obj.programs[key] = replace(spec, type=prog_type)
        coll = vm.load_object(obj, target_btf=args.btf, kconfig=_kconfig_option(args.kconfig),
                              verify=not args.no_verify, programs=[key])
        prog = coll.programs[key]
        return prog, prog.prog_type
    for option in ("section", "btf", "kconfig"):
        if getattr(args, option):
            raise BpfkitError(f"{name}: --{option} applies to ELF objects only")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    insns: list[Instruction]
    if text is not None and text.strip() and _HEX_TEXT.match(text):
        insns = decode(parse_hex(text, name))
    elif text is not None and text.strip():
        insns = _program_from_text(text, args.dialect, name)
    else:
        insns = decode(data)
    return vm.load(insns, prog_type=prog_type, name=Path(name).stem, verify=not args.no_verify), prog_type


def _kconfig_option(items: list[str] | None) -> dict[str, str] | None:
    """`--kconfig NAME=VALUE` options over the running kernel's config (None: no option given, the
    VM reads the config itself)."""
    if not items:
        return None
    from bpfkit.obj.kconfig import read_kconfig

    config = read_kconfig()
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise BpfkitError(f"--kconfig: {item!r} is not NAME=VALUE (e.g. CONFIG_HZ=250)")
        config[key.strip()] = value.strip()
    return config


def _prog_type(text: str) -> ProgType:
    try:
        return ProgType[text.upper().replace("-", "_")]
    except KeyError:
        raise BpfkitError(f"unknown program type {text!r} (e.g. xdp, socket_filter, sched_cls)") from None


def cmd_run(args: argparse.Namespace) -> int:
    data = sys.stdin.buffer.read() if args.file == "-" else Path(args.file).read_bytes()
    mem = b""
    if args.mem is not None:
        mem = parse_hex(args.mem, "--mem")
    elif args.data is not None:
        mem = Path(args.data).read_bytes()
    ctx = parse_hex(args.ctx, "--ctx") if args.ctx is not None else None
    vm = Vm(helpers=conformance_helpers() if args.conformance_helpers else None, engine=args.engine,
            budget=args.budget or None)
    prog, _ = _load(vm, data, args)
    trace: list[TraceStep] | None = [] if args.trace else None
    try:
        result = prog.test_run(mem, ctx, engine=args.engine, trace=trace)
    finally:
        prog.close()  # the JIT's native code
        if trace:
            for step in trace:
                print(step)
    if args.json:
        print(json.dumps({"r0": result.retval, "data_out": result.data_out.hex(),
                          "instructions": result.instructions}))
    else:
        signed = result.retval - (1 << 64) if result.retval >> 63 else result.retval
        print(f"r0 = {result.retval:#x} ({signed})")
    return 0


# -- vm jit-dump ---------------------------------------------------------------------------------

NativeInsn = tuple[int, bytes, str, str]
"""One disassembled x86-64 instruction: address, bytes, mnemonic, operands."""
Disassembler = Callable[[bytes, int], list[NativeInsn]]


def capstone_disassembler() -> Disassembler | None:
    """An x86-64 disassembler from capstone (Intel syntax), or None when capstone is not installed (it is
    optional: `pip install capstone`)."""
    try:
        import capstone  # type: ignore[import-untyped]
    except ImportError:
        return None
    md = capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_64)

    def disassemble(code: bytes, address: int) -> list[NativeInsn]:
        return [(i.address, bytes(i.bytes), i.mnemonic, i.op_str) for i in md.disasm(code, address)]

    return disassemble


def jit_code(prog: VmProgram) -> CompiledCode:
    """The JIT's code for `prog`: the very code a run would execute (map value addresses are host
    addresses; the accesses its verification proved safe unchecked), or, where native code cannot run,
    the same compilation without a VM's memory."""
    from bpfkit.vm.jit import jit_supported, program_for, runtime_for
    from bpfkit.vm.jit.compile import Compiler

    if jit_supported() is None:
        prog.prepare_jit()
        return program_for(prog.loaded, runtime_for(prog.vm.mem)).compiled
    safe = prog.verification.proven_safe if prog.verification is not None else ()
    return Compiler(prog.loaded, proven_safe=safe).compile()


def _insn_text(prog: VmProgram, slot: int, dialect: str) -> str:
    step = prog.loaded.steps[slot]
    assert step is not None  # marks name instruction slots only
    if dialect == "ubpf":
        from bpfkit.isa.ubpf import format_ubpf

        return format_ubpf(step.insn, slot=slot)
    from bpfkit.isa.disasm import format_insn

    return format_insn(step.insn, pc=slot, helper_names=True)


def jit_listing(prog: VmProgram, code: CompiledCode, disassemble: Disassembler | None,
                dialect: str = "llvm") -> list[dict[str, Any]]:
    """The code cut at its marks: one block per eBPF instruction or JIT routine, in code order, with
    its bytes and (given a disassembler) its x86-64 instructions."""
    blocks: list[dict[str, Any]] = []
    marks = code.marks
    for i, mark in enumerate(marks):
        end = marks[i + 1].offset if i + 1 < len(marks) else len(code.code)
        data = code.code[mark.offset:end]
        block: dict[str, Any] = {
            "offset": mark.offset, "size": len(data), "pc": mark.slot,
            "insn": _insn_text(prog, mark.slot, dialect) if mark.slot is not None else None,
            "routine": mark.name or None, "bytes": data.hex(), "native": None}
        if disassemble is not None:
            native = disassemble(data, mark.offset)
            done = sum(len(raw) for _, raw, _, _ in native)
            if done < len(data):  # bytes capstone could not decode: shown as data, never dropped
                native.append((mark.offset + done, data[done:], ".byte",
                               ", ".join(f"{b:#04x}" for b in data[done:])))
            block["native"] = [{"addr": addr, "bytes": raw.hex(), "mnemonic": mnem, "operands": ops}
                               for addr, raw, mnem, ops in native]
        blocks.append(block)
    return blocks


def _render_listing(name: str, code: CompiledCode, blocks: list[dict[str, Any]], note: str | None) -> str:
    width = max(2, len(f"{len(code.code):x}"))
    lines = [f"{name}:  ; {len(code.code)} bytes of x86-64, {code.checked} checked and {code.unchecked} "
             f"unchecked memory accesses"]
    if note:
        lines.append(note)
    for block in blocks:
        lines.append(f"; {block['insn']}" if block["pc"] is not None else f"; <{block['routine']}>")
        if block["native"] is not None:
            for n in block["native"]:
                spaced = " ".join(n["bytes"][i:i + 2] for i in range(0, len(n["bytes"]), 2))
                lines.append(f"{n['addr']:>{width + 2}x}:\t{spaced:<29}\t{n['mnemonic']} {n['operands']}"
                             .rstrip())
            continue
        data = bytes.fromhex(block["bytes"])
        for at in range(0, len(data), 16):
            chunk = data[at:at + 16]
            lines.append(f"{block['offset'] + at:>{width + 2}x}:\t{chunk.hex(' ')}")
    return "\n".join(lines) + "\n"


def cmd_jit_dump(args: argparse.Namespace) -> int:
    data = sys.stdin.buffer.read() if args.file == "-" else Path(args.file).read_bytes()
    vm = Vm(helpers=conformance_helpers() if args.conformance_helpers else None)
    prog, _ = _load(vm, data, args)
    try:
        code = jit_code(prog)
        disassemble = None if args.raw else capstone_disassembler()
        dialect = "ubpf" if args.dialect == "ubpf" else "llvm"
        blocks = jit_listing(prog, code, disassemble, dialect)
    finally:
        prog.close()
    if args.json:
        print(json.dumps({"name": prog.name, "size": len(code.code), "entry": code.entry,
                          "functions": {str(k): v for k, v in sorted(code.functions.items())},
                          "checked": code.checked, "unchecked": code.unchecked,
                          "disassembler": None if disassemble is None else "capstone", "blocks": blocks}))
        return 0
    note = None if disassemble is not None or args.raw else "; (install capstone for disassembly)"
    sys.stdout.write(_render_listing(prog.name, code, blocks, note))
    return 0


# -- vm conformance-plugin -----------------------------------------------------------------------

def run_plugin_program(program: bytes, memory: bytes, engine: EngineName = "fast", *,
                       verify: bool = True) -> int:
    """What the plugin computes: r0 of `program` run on a copy of `memory` (r1 = its address, r2 = its
    length) with the conformance suite's helpers, verified for that memory unless `verify` is False.
    Raises `BpfkitError` when bpfkit (or its verifier) refuses the program or it faults."""
    vm = Vm(helpers=conformance_helpers(), engine=engine, budget=1_000_000)
    with vm.load(decode(program), name="plugin", verify=verify) as prog:
        return prog.test_run(memory).retval


def plugin_main(argv: Sequence[str], stdin: TextIO, stdout: TextIO, stderr: TextIO) -> int:
    """The plugin protocol (module docstring) on explicit streams; returns the exit status."""
    args = list(argv)
    memory_hex = ""
    if args and not args[0].startswith("--"):
        memory_hex = args.pop(0)
    options = [arg for arg in args if arg.strip()]
    engine: EngineName = "fast"
    program_hex: str | None = None
    verify = True
    try:
        while options:
            opt = options.pop(0)
            if len(opt.split()) > 1:  # the runner passes all its plugin options as one argument
                options[:0] = opt.split()
                continue
            opt = opt.strip()
            if opt in ("--engine", "--program") and not options:
                raise BpfkitError(f"{opt} needs a value")
            if opt == "--engine":
                value = options.pop(0)
                if value not in ENGINES:
                    raise BpfkitError(f"unknown engine {value!r} (choose from {', '.join(ENGINES)})")
                engine = value  # type: ignore[assignment]  # checked against ENGINES above
            elif opt == "--program":
                program_hex = options.pop(0)
            elif opt == "--interpret":
                engine = "interp"
            elif opt == "--no-verify":
                verify = False
            elif opt == "--jit":  # ubpf's plugin flag: bpfkit's JIT where there is one
                engine = "jit" if "jit" in ENGINES else "fast"  # type: ignore[comparison-overlap]
            else:
                raise BpfkitError(f"invalid argument {opt!r} (options: --engine {'|'.join(ENGINES)}, "
                                  f"--interpret, --jit, --no-verify, --program HEX)")
        if program_hex is None:
            program_hex = stdin.readline()
        program = parse_hex(program_hex, "program")
        if not program:
            raise BpfkitError("no program on stdin")
        r0 = run_plugin_program(program, parse_hex(memory_hex, "memory"), engine, verify=verify)
    except BpfkitError as err:
        message = str(err).replace("\n", " ")
        print(message, file=stdout)
        print(f"bpfkit: error: {message}", file=stderr)
        return 1
    print(f"{r0:x}", file=stdout)
    return 0


def cmd_plugin(args: argparse.Namespace) -> int:
    return plugin_main(args.args, sys.stdin, sys.stdout, sys.stderr)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    vm = sub.add_parser("vm", help="run programs in the userspace VM")
    verbs = vm.add_subparsers(dest="verb", metavar="VERB")

    def usage(_args: argparse.Namespace) -> int:
        vm.print_help(sys.stderr)
        return 2

    vm.set_defaults(func=usage)

    p = verbs.add_parser("run", help="run a program (assembly, raw or hex bytecode, ELF object); print r0")
    p.add_argument("file", help="assembly listing, raw/hex bytecode or ELF object ('-' for stdin)")
    p.add_argument("--section", help="ELF: the program's section (or function) name")
    mem = p.add_mutually_exclusive_group()
    mem.add_argument("--mem", metavar="HEX", help="memory (or packet) as hex bytes")
    mem.add_argument("--data", metavar="FILE", help="memory (or packet) read from FILE")
    p.add_argument("--ctx", metavar="HEX", help="context bytes (tracing programs: the record r1 points to)")
    p.add_argument("--engine", choices=ENGINES, default="fast")
    p.add_argument("--budget", type=int, default=DEFAULT_BUDGET, metavar="N",
                   help=f"stop after N instructions (default {DEFAULT_BUDGET:,}; 0: no limit)")
    p.add_argument("--trace", action="store_true", help="print each instruction and the registers after it "
                   "(uses the interpreter)")
    p.add_argument("--dialect", choices=("auto", "llvm", "ubpf"), default="auto",
                   help="assembly dialect (default: auto)")
    p.add_argument("--type", help="program type giving the context (xdp, socket_filter, sched_cls...); "
                   "default: the ELF section's, else conformance style (r1 = memory, r2 = length)")
    p.add_argument("--btf", metavar="PATH", help="ELF: the kernel BTF to apply CO-RE relocations against "
                   "and to type fentry/fexit, tp_btf and iterator contexts for the verifier (default: "
                   "/sys/kernel/btf/vmlinux when readable)")
    p.add_argument("--kconfig", metavar="NAME=VALUE", action="append",
                   help="ELF: a .kconfig value (e.g. CONFIG_HZ=250, LINUX_KERNEL_VERSION=393728), over the "
                   "running kernel's config; repeatable")
    p.add_argument("--conformance-helpers", action="store_true",
                   help="the conformance suite's helpers instead of the kernel-like ones")
    p.add_argument("--no-verify", action="store_true", help="trusted code: run without bpfkit's verifier "
                   "(every memory access stays checked at run time)")
    p.add_argument("-j", "--json", action="store_true", help="JSON output")
    p.set_defaults(func=cmd_run)

    p = verbs.add_parser("jit-dump", help="print the x86-64 code the JIT makes of a program, under the eBPF "
                         "instruction each piece came from (disassembled when capstone is installed)")
    p.add_argument("file", help="assembly listing, raw/hex bytecode or ELF object ('-' for stdin)")
    p.add_argument("--section", help="ELF: the program's section (or function) name")
    p.add_argument("--dialect", choices=("auto", "llvm", "ubpf"), default="auto",
                   help="assembly dialect of FILE and of the eBPF comments (default: auto; comments: llvm)")
    p.add_argument("--raw", action="store_true", help="hex bytes, no disassembly")
    p.add_argument("--type", help="program type (xdp, socket_filter...); default: the ELF section's")
    p.add_argument("--btf", metavar="PATH", help="ELF: the kernel BTF for CO-RE and the verifier "
                   "(default: /sys/kernel/btf/vmlinux when readable)")
    p.add_argument("--kconfig", metavar="NAME=VALUE", action="append",
                   help="ELF: a .kconfig value; repeatable")
    p.add_argument("--conformance-helpers", action="store_true",
                   help="the conformance suite's helpers instead of the kernel-like ones")
    p.add_argument("--no-verify", action="store_true", help="compile without verifying: every memory "
                   "access checked (by default a verified program's proven-safe accesses are not)")
    p.add_argument("-j", "--json", action="store_true", help="JSON output")
    p.set_defaults(func=cmd_jit_dump)

    p = verbs.add_parser("conformance-plugin", help="bpf_conformance plugin: program hex on stdin, memory "
                         "hex as the first argument; prints r0 in hex")
    p.add_argument("args", nargs=argparse.REMAINDER, help="[MEMORY_HEX] [--engine NAME] [--interpret] "
                   "[--jit] [--no-verify] [--program HEX]")
    p.set_defaults(func=cmd_plugin)

    from bpfkit.cli import vm_verify_cmds  # imports this module's loading helpers

    vm_verify_cmds.register_verbs(verbs)
