#!/usr/bin/env python3
"""Generate `src/bpfkit/uapi/enums.py` (and `_helpers.py`, `_enums_lazy.py`, its lazily imported parts)
from the kernel's BTF.

The running kernel's BTF (`/sys/kernel/btf/vmlinux`) holds every UAPI enum of `linux/bpf.h`, named or
anonymous, with its values, so it is a more complete source than the installed headers. This script
carries its own small BTF reader (header, string section, and just enough of each type kind to step
over it) because it must run before, and independently of, `bpfkit.btf`. See --help for usage.

Rules for member names: the C name minus the table's prefix, uppercased (`BPF_FUNC_map_lookup_elem`
becomes `Helper.MAP_LOOKUP_ELEM`). Dropped, and listed on stderr: the sentinels that count members
(names starting with `__` or `MAX_`, e.g. `__MAX_BPF_CMD`, `__BPF_FUNC_MAX_ID`) and names that would
not be Python identifiers (e.g. starting with a digit). A member that does not start with the prefix
is an error, so a new kernel cannot slip in a misnamed constant silently.
"""

from __future__ import annotations

import argparse
import platform
import struct
import sys
import textwrap
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_BTF = Path("/sys/kernel/btf/vmlinux")
DEFAULT_OUTPUT = ROOT / "src" / "bpfkit" / "uapi" / "enums.py"

# --- a minimal BTF reader (facts from the kernel's Documentation/bpf/btf.rst and linux/btf.h) ---

BTF_MAGIC = 0xEB9F
KIND_ENUM = 6
KIND_ENUM64 = 19
# Bytes following the 12-byte `struct btf_type` for each kind: (fixed, per vlen item).
_KIND_EXTRA: dict[int, tuple[int, int]] = {
    # PTR, FWD, TYPEDEF, VOLATILE, CONST, RESTRICT, FUNC, FLOAT, TYPE_TAG: nothing follows.
    **dict.fromkeys((2, 7, 8, 9, 10, 11, 12, 16, 18), (0, 0)),
    1: (4, 0),  # INT: encoding word
    3: (12, 0),  # ARRAY: struct btf_array
    4: (0, 12),  # STRUCT: struct btf_member
    5: (0, 12),  # UNION
    6: (0, 8),  # ENUM: struct btf_enum
    13: (0, 8),  # FUNC_PROTO: struct btf_param
    14: (4, 0),  # VAR: linkage word
    15: (0, 12),  # DATASEC: struct btf_var_secinfo
    17: (4, 0),  # DECL_TAG: component_idx
    19: (0, 12),  # ENUM64: struct btf_enum64
}


class BtfFormatError(ValueError):
    """The input is not BTF this reader understands; the message says where."""


@dataclass(frozen=True, slots=True)
class BtfEnum:
    """One ENUM or ENUM64 type: its name ("" if anonymous) and members in declaration order."""

    type_id: int
    name: str
    members: tuple[tuple[str, int], ...]


def read_enums(data: bytes) -> list[BtfEnum]:
    """Every ENUM and ENUM64 type of a raw BTF blob, in type-id order."""
    if len(data) < 24:
        raise BtfFormatError(f"{len(data)} bytes is too short for a BTF header")
    if struct.unpack_from("<H", data)[0] == BTF_MAGIC:
        end = "<"
    elif struct.unpack_from(">H", data)[0] == BTF_MAGIC:
        end = ">"
    else:
        raise BtfFormatError(f"bad magic {data[:2].hex()} (want BTF magic 0x{BTF_MAGIC:x})")
    hdr_len, type_off, type_len, str_off, str_len = struct.unpack_from(end + "5I", data, 4)
    types = data[hdr_len + type_off : hdr_len + type_off + type_len]
    strings = data[hdr_len + str_off : hdr_len + str_off + str_len]
    if hdr_len < 24 or len(types) != type_len or len(strings) != str_len:
        raise BtfFormatError(f"header (hdr_len={hdr_len}) points past the end of the {len(data)} bytes")

    def name_at(off: int) -> str:
        nul = strings.find(b"\0", off)
        if off >= len(strings) or nul < 0:
            raise BtfFormatError(f"string offset {off} is outside the {len(strings)}-byte string section")
        return strings[off:nul].decode("utf-8", "replace")

    enums: list[BtfEnum] = []
    pos, type_id = 0, 1  # type id 0 is void and is not stored
    while pos < len(types):
        if pos + 12 > len(types):
            raise BtfFormatError(f"type {type_id} at offset {pos} is truncated")
        name_off, info, _size = struct.unpack_from(end + "3I", types, pos)
        kind, vlen, signed = (info >> 24) & 0x1F, info & 0xFFFF, info >> 31  # kind_flag: signed enum
        if kind not in _KIND_EXTRA:
            raise BtfFormatError(f"type {type_id} at offset {pos} has unknown kind {kind}")
        fixed, per_item = _KIND_EXTRA[kind]
        item, pos = pos + 12, pos + 12 + fixed + per_item * vlen
        if pos > len(types):
            raise BtfFormatError(f"type {type_id} (kind {kind}, vlen {vlen}) runs past the type section")
        if kind in (KIND_ENUM, KIND_ENUM64):
            members = []
            for _ in range(vlen):
                if kind == KIND_ENUM:
                    m_name, value = struct.unpack_from(end + ("Ii" if signed else "II"), types, item)
                else:
                    m_name, lo, hi = struct.unpack_from(end + "3I", types, item)
                    value = hi << 32 | lo
                    value -= (1 << 64) if signed and value >> 63 else 0
                members.append((name_at(m_name), value))
                item += per_item
            enums.append(BtfEnum(type_id, name_at(name_off), tuple(members)))
        type_id += 1
    return enums


# --- what to generate -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Table:
    """One generated class: which BTF enum it mirrors and how its member names are made."""

    cls: str
    doc: str
    prefix: str
    enum: str | None = None  # the C enum tag; None for an anonymous enum found by `member`
    member: str = ""  # a C member name that identifies an anonymous enum
    flag: bool = False  # IntFlag rather than IntEnum
    required: bool = False  # every kernel with BTF has it; missing means the input is wrong
    lowercase: bool = False  # C names are lowercase after the prefix


# fmt: off
TABLES = (
    Table("Cmd", "The commands of the bpf(2) syscall.", "BPF_", "bpf_cmd", required=True),
    Table("MapType", "Map types (`bpf_attr.map_type`).", "BPF_MAP_TYPE_", "bpf_map_type", required=True),
    Table("ProgType", "Program types (`bpf_attr.prog_type`).", "BPF_PROG_TYPE_", "bpf_prog_type",
          required=True),
    Table("AttachType", "Attach types (`expected_attach_type`, `attach_type`).", "BPF_", "bpf_attach_type",
          required=True),
    Table("LinkType", "Kinds of BPF link.", "BPF_LINK_TYPE_", "bpf_link_type", required=True),
    Table("Helper", "Helper function ids: the imm of a helper call instruction.", "BPF_FUNC_", "bpf_func_id",
          required=True, lowercase=True),
    Table("StatsType", "Statistics for BPF_ENABLE_STATS.", "BPF_STATS_", "bpf_stats_type"),
    Table("PerfEventType", "Kinds of perf event behind a perf_event link.", "BPF_PERF_EVENT_",
          "bpf_perf_event_type"),
    Table("TaskFdType", "Kinds of fd reported by BPF_TASK_FD_QUERY.", "BPF_FD_TYPE_", "bpf_task_fd_type"),
    Table("CgroupIterOrder", "Walk orders of the cgroup iterator.", "BPF_CGROUP_ITER_",
          "bpf_cgroup_iter_order"),
    Table("StackBuildIdStatus", "Status of a `bpf_stack_build_id` entry.", "BPF_STACK_BUILD_ID_",
          "bpf_stack_build_id_status"),
    Table("CoreReloKind", "CO-RE relocation kinds of .BTF.ext.", "BPF_CORE_", "bpf_core_relo_kind"),
    Table("RetCode", "Return codes of LWT and flow dissector programs.", "BPF_", "bpf_ret_code"),
    Table("XdpAction", "Return codes of XDP programs.", "XDP_", "xdp_action"),
    Table("SkAction", "Return codes of socket programs (sk_reuseport, sk_lookup).", "SK_", "sk_action"),
    Table("AdjRoomMode", "Modes of bpf_skb_adjust_room.", "BPF_ADJ_ROOM_", "bpf_adj_room_mode"),
    Table("HdrStartOff", "Offsets of bpf_skb_load_bytes_relative.", "BPF_HDR_START_", "bpf_hdr_start_off"),
    Table("LwtEncapMode", "Encapsulations of bpf_lwt_push_encap.", "BPF_LWT_ENCAP_", "bpf_lwt_encap_mode"),
    Table("UpdateFlags", "Flags of BPF_MAP_UPDATE_ELEM and bpf_map_update_elem.", "BPF_", member="BPF_ANY",
          flag=True),
    Table("MapFlags", "Flags of BPF_MAP_CREATE (`map_flags`).", "BPF_F_", member="BPF_F_NO_PREALLOC",
          flag=True),
    Table("KprobeMultiFlags", "Flags of kprobe_multi links.", "BPF_F_KPROBE_MULTI_",
          member="BPF_F_KPROBE_MULTI_RETURN", flag=True),
    Table("UprobeMultiFlags", "Flags of uprobe_multi links.", "BPF_F_UPROBE_MULTI_",
          member="BPF_F_UPROBE_MULTI_RETURN", flag=True),
    Table("PerfEventOutputFlags", "Flags of bpf_perf_event_output/read: a cpu index or CURRENT_CPU.",
          "BPF_F_", member="BPF_F_CURRENT_CPU"),  # masks and an alias, not bits: an IntEnum
    Table("StackFlags", "Flags of bpf_get_stackid and bpf_get_stack.", "BPF_F_", member="BPF_F_USER_STACK",
          flag=True),
    Table("RedirectFlags", "Flags of bpf_redirect and bpf_redirect_map.", "BPF_F_", member="BPF_F_INGRESS",
          flag=True),
    Table("RingbufFlags", "Flags of bpf_ringbuf_output/submit/discard.", "BPF_RB_", member="BPF_RB_NO_WAKEUP",
          flag=True),
    Table("RingbufQuery", "Questions for bpf_ringbuf_query.", "BPF_RB_", member="BPF_RB_AVAIL_DATA"),
    Table("RingbufHeader", "The ring buffer record header: its size and length-word bits.", "BPF_RINGBUF_",
          member="BPF_RINGBUF_BUSY_BIT"),
)
# fmt: on


def find(enums: list[BtfEnum], table: Table) -> BtfEnum | None:
    """The BTF enum a table mirrors; an error if the choice is ambiguous."""
    if table.enum is not None:
        found = [e for e in enums if e.name == table.enum]
    else:
        found = [e for e in enums if not e.name and any(n == table.member for n, _ in e.members)]
    if len({e.members for e in found}) > 1:
        ids = ", ".join(str(e.type_id) for e in found)
        raise BtfFormatError(f"{table.cls}: {table.enum or table.member} matches different enums (ids {ids})")
    return found[0] if found else None


def render_class(table: Table, btf_enum: BtfEnum, dropped: list[str]) -> list[str]:
    """The source lines of one class."""
    where = f"enum {table.enum}" if table.enum else f"anonymous enum holding {table.member}"
    tag = f'"{table.enum}"' if table.enum else "None"
    lower = ", lowercase=True" if table.lowercase else ""
    lines = [
        "",
        "",
        f'@c_source({tag}, "{table.prefix}"{lower})',
        f"class {table.cls}({'CFlag' if table.flag else 'CEnum'}):",
        f'    """{table.doc}',
        "",
        f"    C: {where}, names {table.prefix}*.",
        '    """',
        "",
    ]
    # The canonical member of a value (what .name shows) is the first; put `*_DEPRECATED` aliases after
    # the name that replaced them (BPF_MAP_TYPE_CGROUP_STORAGE_DEPRECATED = BPF_MAP_TYPE_CGROUP_STORAGE).
    first = {value: i for i, (_, value) in reversed(list(enumerate(btf_enum.members)))}
    members = sorted(btf_enum.members, key=lambda m: (first[m[1]], m[0].endswith("_DEPRECATED")))
    seen: set[str] = set()
    for c_name, value in members:
        if c_name.startswith(("__", "MAX_")):  # MAX_BPF_LINK_TYPE in the 6.1 header
            dropped.append(c_name)
            continue
        if not c_name.startswith(table.prefix):
            raise BtfFormatError(f"{table.cls}: member {c_name} does not start with {table.prefix}")
        name = c_name[len(table.prefix) :].upper()
        if not name.isidentifier():
            dropped.append(c_name)
            continue
        if name in seen:
            raise BtfFormatError(f"{table.cls}: two members are named {name}")
        seen.add(name)
        hexa = table.flag or abs(value) > 0xFFFF  # bits and masks read better in hex, as ruff formats it
        literal = f"{'-' * (value < 0)}0x{abs(value):X}" if hexa else str(value)
        lines.append(f"    {name} = {literal}  # {c_name}")
    return lines


#: Classes generated into enums.py itself, built at import: what creating a map, loading a program and
#: reading a ring buffer name (the start-up of `bpfkit trace`). The others are built on first use, each
#: class costing start-up time whether or not it is ever named: `Helper` (200+ members) in `_helpers.py`,
#: the rest in `_enums_lazy.py`.
EAGER = ("Cmd", "MapType", "ProgType", "AttachType", "StatsType", "UpdateFlags", "MapFlags", "RingbufHeader")
HELPERS = ("Helper",)
HELPERS_MODULE = "_helpers"
LAZY_MODULE = "_enums_lazy"


def _bases(classes: Iterable[str]) -> str:
    """The base classes (CEnum, CFlag) that the given generated classes use, for an import line."""
    flags = {t.cls for t in TABLES if t.flag}
    names = {"CFlag" if c in flags else "CEnum" for c in classes}
    return ", ".join(sorted(names))


def _header(release: str) -> str:
    return f"# Generated by tools/gen_uapi.py from the kernel BTF (Linux {release}); do not edit."


def _render(enums: list[BtfEnum], quiet: bool = False) -> tuple[list[str], dict[str, list[str]]]:
    """The classes found in the BTF, in table order, and each one's source lines; notes on stderr
    about what was skipped unless `quiet`."""
    classes: list[str] = []
    bodies: dict[str, list[str]] = {}
    dropped: list[str] = []
    for table in TABLES:
        btf_enum = find(enums, table)
        if btf_enum is None:
            if table.required:
                raise BtfFormatError(f"{table.cls}: no enum {table.enum or table.member} in the BTF")
            if not quiet:
                print(f"gen_uapi: note: {table.cls} skipped, not in this kernel's BTF", file=sys.stderr)
            continue
        classes.append(table.cls)
        bodies[table.cls] = render_class(table, btf_enum, dropped)
    if dropped and not quiet:
        print(f"gen_uapi: note: dropped sentinels/non-identifiers: {', '.join(dropped)}", file=sys.stderr)
    return classes, bodies


def _module_of(cls: str) -> str | None:
    """The lazily imported module a generated class lives in; None for enums.py itself."""
    if cls in EAGER:
        return None
    return HELPERS_MODULE if cls in HELPERS else LAZY_MODULE


def generate(enums: list[BtfEnum], release: str) -> str:
    """The text of enums.py for the given BTF enums and kernel release (`generate_helpers` and
    `generate_lazy` make the modules its lazy names come from)."""
    classes, bodies = _render(enums)
    names = ["HELPER_NAMES", "KERNEL_RELEASE", *sorted(classes)]
    lazy = {"HELPER_NAMES": HELPERS_MODULE}
    lazy.update(sorted((c, m) for c in classes if (m := _module_of(c)) is not None))
    head = [
        _header(release),
        '"""UAPI enums of linux/bpf.h, read from the kernel\'s BTF.',
        "",
        "Member names are the C names minus the class's prefix; `member.c_name` gives the C name back.",
        "Regenerate with `python tools/gen_uapi.py` on a newer kernel to pick up new constants.",
        *textwrap.wrap(f"Only {', '.join(f'`{c}`' for c in classes if c in EAGER)} are built at import; "
                       f"`Helper` (200+ members) lives in `{HELPERS_MODULE}` and the others in "
                       f"`{LAZY_MODULE}`, "
                       "imported on first use (start-up is a hot path).", width=105),
        '"""',
        "",
        "from __future__ import annotations",
        "",
        "import importlib",
        "from typing import TYPE_CHECKING, Any",
        "",
        f"from ._cenum import {_bases(c for c in classes if c in EAGER)}, c_source",
        "",
        "if TYPE_CHECKING:",
        *(f"    from .{m} import {n} as {n}"
          for n, m in sorted(lazy.items(), key=lambda nm: (nm[1], not nm[0].isupper(), nm[0]))),
        "",
        "__all__ = [",
        *(f'    "{n}",' for n in names),
        "]",
        "",
        f'KERNEL_RELEASE = "{release}"',
        '"""`uname -r` of the kernel whose BTF these tables come from."""',
    ]
    body = [line for c in classes if c in EAGER for line in bodies[c]]
    tail = [
        "",
        "",
        "_LAZY = {",
        *(f'    "{n}": "{m}",' for n, m in lazy.items()),
        "}",
        '"""The names built on first use, and the module each lives in."""',
        "",
        "",
        "def __getattr__(name: str) -> Any:",
        '    """Import a name of `_LAZY` from its module on first use."""',
        "    module = _LAZY.get(name)",
        "    if module is None:",
        '        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")',
        '    value = getattr(importlib.import_module(f"{__package__}.{module}"), name)',
        "    globals()[name] = value",
        "    return value",
        "",
        "",
        "def __dir__() -> list[str]:",
        "    return sorted(set(globals()) | set(_LAZY))",
        "",
    ]
    return "\n".join(head + body + tail)


def _lazy_module(enums: list[BtfEnum], release: str, module: str, doc: list[str], extra: list[str],
                 extra_names: list[str]) -> str:
    classes, bodies = _render(enums, quiet=True)
    mine = [c for c in classes if _module_of(c) == module]
    head = [
        _header(release),
        *doc,
        "",
        "from __future__ import annotations",
        "",
        f"from ._cenum import {_bases(mine)}, c_source",
        "",
        "__all__ = [",
        *(f'    "{n}",' for n in [*extra_names, *sorted(mine)]),
        "]",
    ]
    body = [line for c in mine for line in bodies[c]]
    return "\n".join(head + body + extra)


def generate_helpers(enums: list[BtfEnum], release: str) -> str:
    """The text of `_helpers.py`: `Helper`, imported on first use by enums.py, and HELPER_NAMES."""
    doc = ['"""The large UAPI enums of linux/bpf.h, imported on first use by `bpfkit.uapi.enums` (use them',
           'from there)."""']
    extra = [
        "",
        "",
        'HELPER_NAMES: dict[int, str] = {int(h): "bpf_" + h.name.lower() for h in Helper if h}',
        '"""Helper id -> C function name (`1: "bpf_map_lookup_elem"`); id 0 (unspec) is not a function."""',
        "",
    ]
    return _lazy_module(enums, release, HELPERS_MODULE, doc, extra, ["HELPER_NAMES"])


def generate_lazy(enums: list[BtfEnum], release: str) -> str:
    """The text of `_enums_lazy.py`: the other classes enums.py imports on first use."""
    doc = ['"""UAPI enums of linux/bpf.h that start-up does not need, imported on first use by',
           '`bpfkit.uapi.enums` (use them from there)."""']
    return _lazy_module(enums, release, LAZY_MODULE, doc, [""], [])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Generate src/bpfkit/uapi/enums.py (and _helpers.py, "
                                     "_enums_lazy.py beside it) from the kernel's BTF.")
    parser.add_argument("btf", nargs="?", type=Path, default=DEFAULT_BTF, help="default: %(default)s")
    parser.add_argument("--release", help="kernel release to record (default: uname -r)")
    parser.add_argument("--output", "-o", default=str(DEFAULT_OUTPUT),
                        help="output file (the lazy modules are written beside it), or - for all on stdout")
    args = parser.parse_args(argv)
    try:
        enums = read_enums(args.btf.read_bytes())
        release = args.release or platform.release()
        text = generate(enums, release)
        helpers = generate_helpers(enums, release)
        lazy = generate_lazy(enums, release)
    except (OSError, BtfFormatError) as exc:
        print(f"gen_uapi: error: {args.btf}: {exc}", file=sys.stderr)
        return 1
    if args.output == "-":
        sys.stdout.write(text + "\n" + helpers + "\n" + lazy)
    else:
        out = Path(args.output)
        out.write_text(text, encoding="utf-8")
        out.with_name(HELPERS_MODULE + ".py").write_text(helpers, encoding="utf-8")
        out.with_name(LAZY_MODULE + ".py").write_text(lazy, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
