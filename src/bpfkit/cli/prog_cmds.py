"""`bpfkit prog ...`: loaded programs, in bpftool's shape.

    bpfkit prog list [-j|-p]
    bpfkit prog show [id N | pinned PATH | name NAME | tag TAG]
    bpfkit prog dump xlated (id N | pinned PATH) [opcodes]
    bpfkit prog pin (id N | pinned PATH) PATH
    bpfkit prog run (id N | pinned PATH) data_in FILE [data_out FILE] [ctx_in FILE] [ctx_out FILE]
                    [data_size_out N] [ctx_size_out N] [repeat N]
    bpfkit prog load|loadall FILE PATH [type TYPE] [pinmaps DIR]   (bpfkit.cli.load_cmds)
    bpfkit prog attach|detach PROG ATTACH_TYPE [TARGET] [pin PATH]  (bpfkit.cli.attach_cmds)

JSON keys and value formats are bpftool's (``bytes_xlated``, ``loaded_at`` in epoch seconds...).
"""

from __future__ import annotations

import argparse
import struct
import sys
from collections.abc import Iterator
from typing import Any

from bpfkit.cli.output import (
    UsageError,
    emit_json,
    json_parent,
    local_time,
    parse_int,
    split_words,
    table,
    take_ref,
    wants_json,
)
from bpfkit.errors import AsmError
from bpfkit.isa import Instruction
from bpfkit.isa.disasm import format_insn
from bpfkit.kernel import introspect, objects
from bpfkit.kernel.fd import Fd
from bpfkit.kernel.introspect import Kind, ProgramEntry
from bpfkit.kernel.programs import Program
from bpfkit.uapi.enums import ProgType

_REF_KINDS = ("id", "pinned", "name", "tag")


def prog_type_name(value: ProgType | int) -> str:
    """A program type as bpftool prints it (``sched_cls``), or its number."""
    return value.name.lower() if isinstance(value, ProgType) else str(value)


def prog_record(entry: ProgramEntry) -> dict[str, Any]:
    """One program as bpftool's ``prog show -j`` has it."""
    i = entry.info
    rec: dict[str, Any] = {"id": i.id, "type": prog_type_name(i.type)}
    if i.name:
        rec["name"] = i.name
    rec.update(tag=i.tag, gpl_compatible=i.gpl_compatible)
    if i.run_cnt or i.run_time_ns:
        rec.update(run_time_ns=i.run_time_ns, run_cnt=i.run_cnt)
    if i.recursion_misses:
        rec["recursion_misses"] = i.recursion_misses
    rec.update(loaded_at=int(introspect.boot_ns_to_epoch(i.load_time_ns)), uid=i.created_by_uid,
               bytes_xlated=i.xlated_len, jited=bool(i.jited_len))
    if i.jited_len:
        rec["bytes_jited"] = i.jited_len
    rec["bytes_memlock"] = entry.memlock
    if i.map_ids:
        rec["map_ids"] = list(i.map_ids)
    if i.btf_id:
        rec["btf_id"] = i.btf_id
    rec["verified_insns"] = i.verified_insns
    return rec


def _matches(entry: ProgramEntry, kind: str, value: str) -> bool:
    return (entry.info.name == value) if kind == "name" else (entry.info.tag == value.lower())


def _entries(words: list[str]) -> list[ProgramEntry]:
    """The programs a `show` names (all of them without a reference)."""
    if not words:
        return list(introspect.programs_info())
    (kind, value), rest = take_ref(words, "program", _REF_KINDS)
    if rest:
        raise UsageError(f"unexpected words after the program: {' '.join(rest)}")
    if kind in ("id", "pinned"):
        with open_prog(kind, value) as fd:
            return [introspect.program_entry(fd)]
    found = [e for e in introspect.programs_info() if _matches(e, kind, value)]
    if not found:
        raise UsageError(f"no program has {kind} {value!r}")
    return found


def open_prog(kind: str, value: str) -> Fd:
    """A new fd for the program named by a reference (``id 42``, ``pinned PATH``, ``name foo``)."""
    if kind == "id":
        return introspect.open_id(Kind.PROG, parse_int(value, "program id"))
    if kind == "pinned":
        return objects.get_pinned(value, "program")
    found = [e.info.id for e in introspect.programs_info() if _matches(e, kind, value)]
    if len(found) != 1:
        raise UsageError(f"{len(found)} programs have {kind} {value!r}: name one by id"
                         if found else f"no program has {kind} {value!r}")
    return introspect.open_id(Kind.PROG, found[0])


def _text(entries: list[ProgramEntry]) -> str:
    stats = any(e.info.run_cnt for e in entries)
    headers = ["ID", "TYPE", "NAME", "TAG", "GPL", "LOADED_AT", "UID", "XLATED", "JITED", "MEMLOCK"]
    if stats:
        headers += ["RUN_CNT", "RUN_TIME_NS"]
    headers.append("MAP_IDS")
    rows: list[list[object]] = []
    for e in entries:
        i = e.info
        row: list[object] = [i.id, prog_type_name(i.type), i.name or "-", i.tag, "yes" if i.gpl_compatible
                             else "no", local_time(introspect.boot_ns_to_epoch(i.load_time_ns)),
                             i.created_by_uid, i.xlated_len, i.jited_len, e.memlock]
        if stats:
            row += [i.run_cnt, i.run_time_ns]
        row.append(",".join(map(str, i.map_ids)) or "-")
        rows.append(row)
    return table(rows, headers)


def cmd_show(args: argparse.Namespace) -> int:
    entries = _entries(args.words)
    if wants_json(args):
        records = [prog_record(e) for e in entries]
        emit_json(args, records if args.verb == "list" or not args.words or len(records) > 1
                  else records[0])
    else:
        sys.stdout.write(_text(entries))
    return 0


# --- dump xlated -------------------------------------------------------------------------------------------

_SLOT = struct.Struct("<BBhi")
_PSEUDO_MAP_FD, _PSEUDO_MAP_VALUE = 1, 2  # what the kernel writes in src_reg of a dumped map load


def _slots(code: bytes) -> Iterator[tuple[int, int, int, int, int, int]]:
    """(pc, opcode, dst, src, off, imm) per instruction; ld_imm64's imm is the whole 64-bit value."""
    pc, n = 0, len(code) // 8
    while pc < n:
        op, regs, off, imm = _SLOT.unpack_from(code, pc * 8)
        width = 1
        if op == 0x18 and pc + 1 < n:
            imm = (imm & 0xFFFFFFFF) | (_SLOT.unpack_from(code, pc * 8 + 8)[3] << 32)
            width = 2
        yield pc, op, regs & 0xF, regs >> 4, off, imm
        pc += width


def xlated_lines(code: bytes) -> list[tuple[int, str, bytes]]:
    """(pc, text, raw bytes) per instruction of a program's xlated code, as ``(18) r1 = map[id:7]``.

    Map loads show the map id the kernel put in the dump; helper calls are named from /proc/kallsyms
    (the kernel stores them as offsets from __bpf_call_base)."""
    slots = list(_slots(code))
    calls = [imm for _, op, _, src, _, imm in slots if op == 0x85 and src == 0]
    base = introspect.call_base() if calls else 0
    names = introspect.kernel_symbols(base + imm for imm in calls) if base else {}
    out = []
    for pc, op, dst, src, off, imm in slots:
        width = 2 if op == 0x18 else 1
        raw = code[pc * 8:(pc + width) * 8]
        if op == 0x18 and src == _PSEUDO_MAP_FD:
            text = f"r{dst} = map[id:{imm & 0xFFFFFFFF}]"
        elif op == 0x18 and src == _PSEUDO_MAP_VALUE:
            text = f"r{dst} = map[id:{imm & 0xFFFFFFFF}][0]+{imm >> 32}"
        elif op == 0x85 and src == 0:
            name = names.get(base + imm) if base else None
            text = f"call {name}#{imm}" if name else f"call #{imm}"
        else:
            try:
                text = format_insn(Instruction(op, dst, src, off, imm), helper_names=True)
            except AsmError:
                text = f"<kernel-internal insn {raw.hex()}>"
        out.append((pc, f"({op:02x}) {text}", raw))
    return out


def cmd_dump(args: argparse.Namespace) -> int:
    if not args.words or args.words[0] != "xlated":
        raise UsageError("bpfkit prog dump supports: xlated (id N | pinned PATH) [opcodes]")
    (kind, value), rest = take_ref(args.words[1:], "program", _REF_KINDS)
    opcodes = "opcodes" in rest
    if [w for w in rest if w != "opcodes"]:
        raise UsageError(f"unexpected words: {' '.join(w for w in rest if w != 'opcodes')}")
    with Program.from_fd(open_prog(kind, value)) as prog:
        code = prog.xlated()
    lines = xlated_lines(code)
    if wants_json(args):
        recs: list[dict[str, Any]] = []
        for _pc, text, raw in lines:
            rec: dict[str, Any] = {"disasm": text}
            if opcodes:
                rec["opcodes"] = [f"0x{b:02x}" for b in raw]
            recs.append(rec)
        emit_json(args, recs)
    else:
        for pc, text, raw in lines:
            sys.stdout.write(f"{pc:4d}: {text}\n")
            if opcodes:
                sys.stdout.write(f"       {raw.hex(' ')}\n")
    return 0


# --- pin, run ----------------------------------------------------------------------------------------------

def cmd_pin(args: argparse.Namespace) -> int:
    (kind, value), rest = take_ref(args.words, "program", _REF_KINDS)
    if len(rest) != 1:
        raise UsageError("bpfkit prog pin (id N | pinned PATH) PATH")
    with open_prog(kind, value) as fd:
        objects.pin(fd, rest[0])
    return 0


def _read(path: str) -> bytes:
    if path == "-":
        return sys.stdin.buffer.read()
    with open(path, "rb") as f:
        return f.read()


def _write(path: str, data: bytes) -> None:
    if path == "-":
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
        return
    with open(path, "wb") as f:
        f.write(data)


_RUN_WORDS = ("data_in", "data_out", "ctx_in", "ctx_out", "data_size_out", "ctx_size_out", "repeat")


def cmd_run(args: argparse.Namespace) -> int:
    (kind, value), rest = take_ref(args.words, "program", _REF_KINDS)
    opts = split_words(rest, _RUN_WORDS)
    for key, vals in opts.items():
        if len(vals) != 1:
            raise UsageError(f"{key} takes one value, got {len(vals)}")
    o = {k: v[0] for k, v in opts.items()}
    data = _read(o["data_in"]) if "data_in" in o else b""
    ctx = _read(o["ctx_in"]) if "ctx_in" in o else None
    if not data and ctx is None:
        raise UsageError("bpfkit prog run needs data_in FILE and/or ctx_in FILE")
    repeat = parse_int(o.get("repeat", "1"), "repeat")
    data_size_out = parse_int(o["data_size_out"], "data_size_out") if "data_size_out" in o else None
    ctx_size_out = parse_int(o["ctx_size_out"], "ctx_size_out") if "ctx_size_out" in o else None
    with Program.from_fd(open_prog(kind, value)) as prog:
        res = prog.test_run(data, data_out_size=data_size_out, ctx_in=ctx, ctx_out_size=ctx_size_out,
                            repeat=repeat)
    if "data_out" in o:
        _write(o["data_out"], res.data_out)
    if "ctx_out" in o:
        _write(o["ctx_out"], res.ctx_out)
    to_stdout = "-" in (o.get("data_out"), o.get("ctx_out"))
    if wants_json(args):
        emit_json(args, {"retval": res.retval, "duration": res.duration_ns},
                  sys.stderr if to_stdout else None)
    else:
        mean = " (average)" if repeat > 1 else ""
        (sys.stderr if to_stdout else sys.stdout).write(
            f"Return value: {res.retval}, duration{mean}: {res.duration_ns}ns\n")
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    prog = sub.add_parser("prog", help="inspect, dump, pin and run loaded programs (like bpftool prog)")
    verbs = prog.add_subparsers(dest="verb", metavar="VERB", required=True)
    parent = json_parent()
    for name in ("list", "show"):
        p = verbs.add_parser(name, parents=[parent], help="loaded programs (all, or the one named)")
        p.add_argument("words", nargs="*", help="id N | pinned PATH | name NAME | tag TAG")
        p.set_defaults(func=cmd_show)
    p = verbs.add_parser("dump", parents=[parent], help="a program's instructions as the kernel has them")
    p.add_argument("words", nargs="*", help="xlated (id N | pinned PATH) [opcodes]")
    p.set_defaults(func=cmd_dump)
    p = verbs.add_parser("pin", parents=[parent], help="pin a program on a bpf file system")
    p.add_argument("words", nargs="*", help="(id N | pinned PATH) PATH")
    p.set_defaults(func=cmd_pin)
    p = verbs.add_parser("run", parents=[parent],
                         help="run a program on data from a file (BPF_PROG_TEST_RUN)")
    p.add_argument("words", nargs="*", help="(id N | pinned PATH) data_in FILE [data_out FILE] [ctx_in FILE] "
                   "[ctx_out FILE] [data_size_out N] [ctx_size_out N] [repeat N]")
    p.set_defaults(func=cmd_run)
    from bpfkit.cli import load_cmds  # `prog load|loadall` live in their own module

    load_cmds.register_verbs(verbs, parent)
    from bpfkit.cli import attach_cmds  # `prog attach|detach` live in their own module

    attach_cmds.register_verbs(verbs, parent)
