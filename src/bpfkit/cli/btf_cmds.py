"""`bpfkit btf dump`: print BTF as C (`format c`, a vmlinux.h) or as bpftool's raw listing.

    bpfkit btf dump file /sys/kernel/btf/vmlinux format c > vmlinux.h
    bpfkit btf dump file /sys/kernel/btf/nf_tables            (split BTF: vmlinux is the base)
    bpfkit btf dump id 42 format raw                          (a BTF object loaded in the kernel)

The words after the source are bpftool's (`format c|raw`). Split BTF (a kernel module's) needs its
base: `--base PATH`, or, for files under /sys/kernel/btf and kernel objects, vmlinux automatically.
"""

from __future__ import annotations

import argparse
import ctypes
import io
import os
import struct
import sys
from collections.abc import Iterable
from typing import Any

from elftools.common.exceptions import ELFError
from elftools.elf.elffile import ELFFile

from bpfkit.btf import (
    Array,
    Composite,
    Datasec,
    DeclTag,
    EnumBase,
    Float,
    Func,
    FuncProto,
    Fwd,
    Int,
    Spec,
    Type,
    Var,
    dump_raw,
    load_btf,
)
from bpfkit.btf.cdump import dump_c
from bpfkit.cli.output import UsageError, emit_json, json_parent, wants_json
from bpfkit.elf import is_elf
from bpfkit.errors import BtfError, ElfError
from bpfkit.uapi.btf import FuncLinkage, IntEncoding, VarLinkage

VMLINUX = "/sys/kernel/btf/vmlinux"
_FORMATS = ("c", "raw")
_FLAGS = {"-j": "json", "--json": "json", "-p": "pretty", "--pretty": "pretty"}


def _options(words: list[str]) -> dict[str, str]:
    """bpftool-style trailing words: `format c|raw`; `-B/--base PATH`, `-j` and `-p` are taken there too."""
    opts: dict[str, str] = {}
    i = 0
    while i < len(words):
        flag = _FLAGS.get(words[i])
        if flag is not None:
            opts[flag] = "yes"
            i += 1
            continue
        key = {"-B": "base", "--base": "base"}.get(words[i], words[i])
        if key not in ("format", "base"):
            raise UsageError(f"unknown word {key!r} (expected: format c|raw)")
        if i + 1 >= len(words):
            raise UsageError(f"{words[i]!r} needs a value" + (": c or raw" if key == "format" else ""))
        value = words[i + 1]
        if key == "format" and value not in _FORMATS:
            raise UsageError(f"unknown format {value!r} (expected: c or raw)")
        opts[key] = value
        i += 2
    return opts


def _elf_btf(data: bytes, path: str) -> bytes:
    """The .BTF section of an ELF file (a BPF object, or a vmlinux image of any machine)."""
    try:
        section = ELFFile(io.BytesIO(data)).get_section_by_name(".BTF")
        raw = None if section is None else bytes(section.data())
    except (ELFError, ValueError, KeyError, OSError, struct.error) as e:
        raise ElfError(f"malformed ELF file: {e}", where=path) from None
    if raw is None:
        raise BtfError("the ELF file has no .BTF section (compile with clang -g)", where=path)
    return raw


def _load_file(path: str, base_path: str | None) -> Spec:
    base = load_btf(base_path) if base_path else None
    if base is None and os.path.dirname(os.path.abspath(path)) == os.path.dirname(VMLINUX) \
            and os.path.abspath(path) != VMLINUX:
        base = load_btf(VMLINUX)  # a module's BTF in sysfs builds on vmlinux
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise BtfError(f"cannot read the file: {e.strerror}", where=path) from None
    where = path
    if is_elf(data):
        data = _elf_btf(data, path)
        where = f"{path}: .BTF"
    try:
        return load_btf(data, base)
    except BtfError as e:
        at = f" offset {e.offset}" if e.offset is not None else ""
        hint = " (split BTF? name its base with -B)" if base is None and "empty string" in e.message else ""
        raise BtfError(e.message + hint, e.offset, where=f"{where}:{at}") from None


def kernel_btf_bytes(btf_id: int) -> tuple[bytes, str, bool]:
    """The raw BTF of kernel object `btf_id`, its name and whether it is kernel BTF.

    Minimum kernel: 5.0 (BPF_BTF_GET_FD_BY_ID and bpf_btf_info); names from 5.11.
    """
    from bpfkit.kernel.objects import c_string, fd_by_id, info_by_fd
    from bpfkit.uapi.attr import BpfBtfInfo
    from bpfkit.uapi.enums import Cmd

    with fd_by_id(Cmd.BTF_GET_FD_BY_ID, btf_id, "BTF") as fd:
        size_info = info_by_fd(fd, BpfBtfInfo())
        data = ctypes.create_string_buffer(size_info.btf_size)
        name = ctypes.create_string_buffer(256)
        info = BpfBtfInfo(btf=ctypes.addressof(data), btf_size=size_info.btf_size,
                          name=ctypes.addressof(name), name_len=len(name))
        info_by_fd(fd, info)
        return data.raw[: info.btf_size], c_string(name.raw), bool(info.kernel_btf)


def _load_id(btf_id: int, base_path: str | None) -> Spec:
    data, name, kernel_btf = kernel_btf_bytes(btf_id)
    base = None
    if base_path:
        base = load_btf(base_path)
    elif kernel_btf and name != "vmlinux":
        base = load_btf(VMLINUX)  # a module's BTF is split BTF on top of vmlinux's
    return load_btf(data, base)


_ENCODINGS = {IntEncoding.NONE: "(none)", IntEncoding.SIGNED: "SIGNED", IntEncoding.CHAR: "CHAR",
              IntEncoding.BOOL: "BOOL"}
_LINKAGES = {FuncLinkage.STATIC: "static", FuncLinkage.GLOBAL: "global", FuncLinkage.EXTERN: "extern",
             VarLinkage.STATIC: "static", VarLinkage.GLOBAL_ALLOCATED: "global",
             VarLinkage.GLOBAL_EXTERN: "extern"}


def _anon(name: str) -> str:
    return name or "(anon)"


def raw_json(t: Type) -> dict[str, Any]:
    """One type as bpftool's `-j btf dump` writes it (the raw listing's fields, as JSON)."""
    d: dict[str, Any] = {"id": t.id, "kind": t.kind.name, "name": _anon(getattr(t, "name", ""))}
    if isinstance(t, Int):
        d.update(size=t.size, bits_offset=t.offset, nr_bits=t.bits,
                 encoding=_ENCODINGS.get(t.encoding, "UNKN"))
    elif isinstance(t, Composite):
        members = []
        for m in t.members:
            member: dict[str, Any] = {"name": _anon(m.name), "type_id": m.type_id,
                                      "bits_offset": m.bit_offset}
            if m.bitfield_size:
                member["bitfield_size"] = m.bitfield_size
            members.append(member)
        d.update(size=t.size, vlen=len(t.members), members=members)
    elif isinstance(t, EnumBase):
        d.update(encoding="SIGNED" if t.signed else "UNSIGNED", size=t.size, vlen=len(t.values),
                 values=[{"name": v.name, "val": v.value} for v in t.values])
    elif isinstance(t, Array):
        d.update(type_id=t.type_id, index_type_id=t.index_type_id, nr_elems=t.nelems)
    elif isinstance(t, Fwd):
        d["fwd_kind"] = "union" if t.union else "struct"
    elif isinstance(t, (Func, Var)):
        d.update(type_id=t.type_id, linkage=_LINKAGES[t.linkage])
    elif isinstance(t, FuncProto):
        params = [{"name": _anon(p.name), "type_id": p.type_id} for p in t.params]
        if t.variadic:
            params.append({"name": "(anon)", "type_id": 0})
        d.update(ret_type_id=t.return_type_id, vlen=len(params), params=params)
    elif isinstance(t, Datasec):
        d.update(size=t.size, vlen=len(t.vars),
                 vars=[{"type_id": v.type_id, "offset": v.offset, "size": v.size} for v in t.vars])
    elif isinstance(t, Float):
        d["size"] = t.size
    elif isinstance(t, DeclTag):
        d.update(type_id=t.type_id, component_idx=t.component_idx)
    else:  # PTR, TYPEDEF, VOLATILE, CONST, RESTRICT, TYPE_TAG
        d["type_id"] = t.type_id  # type: ignore[attr-defined]
    return d


def _write(lines: Iterable[str]) -> None:
    out = sys.stdout
    for line in lines:
        out.write(line)
        out.write("\n")


def cmd_dump(args: argparse.Namespace) -> int:
    opts = _options(args.words)
    base = opts.get("base", args.base)
    for flag in ("json", "pretty"):
        if flag in opts:
            setattr(args, flag, True)
    if args.source == "file":
        spec = _load_file(args.target, base)
    else:
        try:
            btf_id = int(args.target, 0)
        except ValueError:
            raise UsageError(f"BTF id must be a number, not {args.target!r}") from None
        spec = _load_id(btf_id, base)
    c_format = opts.get("format", "raw") == "c"
    if wants_json(args):
        if c_format:
            raise UsageError("JSON output for the C dump is not supported (use format raw)")
        emit_json(args, {"types": [raw_json(t) for t in spec.types()]})
    elif c_format:
        sys.stdout.write(dump_c(spec))
    else:
        _write(dump_raw(spec))
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    btf = sub.add_parser("btf", help="inspect BTF type information")
    verbs = btf.add_subparsers(dest="verb", metavar="VERB")
    p = verbs.add_parser("dump", parents=[json_parent()],
                         help="print BTF as C (format c) or as a raw type listing (format raw)",
                         description="Print the types of a BTF blob: 'format c' writes a C header "
                         "(vmlinux.h) that clang compiles, 'format raw' (the default) lists each type "
                         "as bpftool does.")
    p.add_argument("source", choices=("file", "id"), help="read a BTF or ELF file, or a kernel BTF object")
    p.add_argument("target", help="the file's path, or the BTF object's id")
    p.add_argument("words", nargs=argparse.REMAINDER, metavar="format {c,raw}",
                   help="output format (default: raw)")
    p.add_argument("-B", "--base", help="base BTF of split BTF (default: vmlinux for module BTF in sysfs)")
    p.set_defaults(func=cmd_dump)
    from bpfkit.cli.link_cmds import add_btf_list  # `btf list`: kernel BTF objects (kernel layer)

    add_btf_list(verbs)

    def usage(_args: argparse.Namespace) -> int:
        btf.print_help(sys.stderr)
        return 2

    btf.set_defaults(func=usage)
