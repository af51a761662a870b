#!/usr/bin/env python3
"""Generate src/bpfkit/uapi/attr.py: ctypes layouts of `union bpf_attr` and the info structs.

The running kernel's BTF (/sys/kernel/btf/vmlinux) is the source of the facts; it is read through
`bpftool -j btf dump file ...` (raw JSON dump: member names, type ids, bit offsets). Every generated
Structure is checked here, member by member, against the BTF bit offsets and sizes, so the output
cannot silently disagree with the kernel it was generated from.

The layouts start-up needs (creating maps, loading programs, attaching links and perf events) are
built when attr.py is imported; the others (`LAZY`) go to `_attr_lazy.py` beside it, which attr.py
imports on first use of one of its names (building ~100 ctypes classes is a measurable share of the
start-up of `bpfkit trace`).

Usage: python tools/gen_attr.py [--btf /sys/kernel/btf/vmlinux] [-o src/bpfkit/uapi/attr.py]
"""

from __future__ import annotations

import argparse
import ctypes
import json
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

# Commands sharing one member of union bpf_attr, keyed by the member name, or by the first field of
# an anonymous member.  Value: (class name, the bpf commands that use it).
ATTR_MEMBERS: dict[str, tuple[str, str]] = {
    "map_type": ("MapCreateAttr", "BPF_MAP_CREATE"),
    "map_fd": ("MapElemAttr", "BPF_MAP_{LOOKUP,UPDATE,DELETE}_ELEM, *_NEXT_KEY, *_AND_DELETE_ELEM, "
               "FREEZE"),
    "batch": ("MapBatchAttr", "BPF_MAP_*_BATCH"),
    "prog_type": ("ProgLoadAttr", "BPF_PROG_LOAD"),
    "pathname": ("ObjPinAttr", "BPF_OBJ_PIN, BPF_OBJ_GET"),
    "(anon-target)": ("ProgAttachAttr", "BPF_PROG_ATTACH, BPF_PROG_DETACH"),
    "test": ("ProgTestRunAttr", "BPF_PROG_TEST_RUN"),
    "(anon-id)": ("GetIdAttr", "BPF_*_GET_NEXT_ID, BPF_*_GET_FD_BY_ID"),
    "info": ("ObjInfoAttr", "BPF_OBJ_GET_INFO_BY_FD"),
    "query": ("ProgQueryAttr", "BPF_PROG_QUERY"),
    "raw_tracepoint": ("RawTracepointOpenAttr", "BPF_RAW_TRACEPOINT_OPEN"),
    "btf": ("BtfLoadAttr", "BPF_BTF_LOAD"),
    "task_fd_query": ("TaskFdQueryAttr", "BPF_TASK_FD_QUERY"),
    "link_create": ("LinkCreateAttr", "BPF_LINK_CREATE"),
    "link_update": ("LinkUpdateAttr", "BPF_LINK_UPDATE"),
    "link_detach": ("LinkDetachAttr", "BPF_LINK_DETACH"),
    "enable_stats": ("EnableStatsAttr", "BPF_ENABLE_STATS"),
    "iter_create": ("IterCreateAttr", "BPF_ITER_CREATE"),
    "prog_bind_map": ("ProgBindMapAttr", "BPF_PROG_BIND_MAP"),
    "token_create": ("TokenCreateAttr", "BPF_TOKEN_CREATE"),
    "prog_stream_read": ("ProgStreamReadAttr", "BPF_PROG_STREAM_READ_BY_FD"),
}

# Named structs emitted as they are: (C name, Python class name).
STRUCTS = [
    ("bpf_prog_info", "BpfProgInfo"),
    ("bpf_map_info", "BpfMapInfo"),
    ("bpf_btf_info", "BpfBtfInfo"),
    ("bpf_link_info", "BpfLinkInfo"),
    ("perf_event_attr", "PerfEventAttr"),
]

# Top-level layouts (and the tables of all of them) that live in the lazily imported module. Not
# ProgTestRunAttr: `bpfkit trace` runs BEGIN and END probes with BPF_PROG_TEST_RUN.
LAZY = frozenset({
    "MapBatchAttr", "ProgAttachAttr", "ProgQueryAttr", "RawTracepointOpenAttr",
    "BtfLoadAttr", "TaskFdQueryAttr", "LinkUpdateAttr", "EnableStatsAttr", "IterCreateAttr",
    "ProgBindMapAttr", "TokenCreateAttr", "ProgStreamReadAttr", "BpfProgInfo", "BpfBtfInfo", "BpfLinkInfo",
})
LAZY_MODULE = "_attr_lazy"
LAZY_TABLES = ("BpfAttr", "ATTR_COMMANDS", "BTF_SIZES")

INT_CTYPES = {
    (1, False): "ctypes.c_uint8", (1, True): "ctypes.c_int8",
    (2, False): "ctypes.c_uint16", (2, True): "ctypes.c_int16",
    (4, False): "ctypes.c_uint32", (4, True): "ctypes.c_int32",
    (8, False): "ctypes.c_uint64", (8, True): "ctypes.c_int64",
}


def camel(name: str) -> str:
    return "".join(p[:1].upper() + p[1:] for p in name.split("_") if p)


class Gen:
    def __init__(self, types: dict[int, dict[str, Any]]) -> None:
        self.types = types
        self.classes: list[str] = []  # emitted source, dependencies first
        self.checks: list[tuple[str, int, int]] = []  # (class, btf type id) for verification

    def resolve(self, tid: int) -> dict[str, Any]:
        t = self.types[tid]
        while t["kind"] in ("TYPEDEF", "CONST", "VOLATILE", "RESTRICT", "TYPE_TAG"):
            t = self.types[t["type_id"]]
        return t

    def ctype(self, tid: int, hint: str) -> str:
        t = self.resolve(tid)
        kind = t["kind"]
        if kind == "INT":
            if t["name"] == "char":
                return "ctypes.c_char"
            return INT_CTYPES[(t["size"], t.get("encoding") == "SIGNED")]
        if kind == "ENUM":
            return INT_CTYPES[(t["size"], bool(t.get("encoding") == "SIGNED"))]
        if kind == "ARRAY":
            return f"({self.ctype(t['type_id'], hint)} * {t['nr_elems']})"
        if kind in ("STRUCT", "UNION"):
            return self.emit(t, hint)
        raise SystemExit(f"unsupported BTF kind {kind} for {hint}")

    def emit(self, t: dict[str, Any], cls: str, doc: str | None = None) -> str:
        base = "ctypes.Structure" if t["kind"] == "STRUCT" else "ctypes.Union"
        fields: list[str] = []
        anon: list[str] = []
        n_anon = 0
        for m in t["members"]:
            name = m["name"]
            if name == "(anon)":
                fname = f"_anon{n_anon}"
                n_anon += 1
                anon.append(fname)
                ct = self.ctype(m["type_id"], f"{cls}Anon{n_anon - 1}")
            else:
                fname = name
                ct = self.ctype(m["type_id"], cls + camel(name))
            if m.get("bitfield_size"):
                fields.append(f"        ({fname!r}, {ct}, {m['bitfield_size']}),")
            else:
                fields.append(f"        ({fname!r}, {ct}),")
        cname = t["name"] if t["name"] != "(anon)" else "anonymous"
        kind = t["kind"].lower()
        doc = doc or f"`{kind} {cname}` ({t['size']} bytes)."
        lines = [f"class {cls}({base}):", f'    """{doc}"""', ""]
        if anon:
            lines.append(f"    _anonymous_ = {tuple(anon)!r}")
        lines.append("    _fields_ = [")
        lines.extend(fields)
        lines.append("    ]")
        self.classes.append("\n".join(lines))
        self.checks.append((cls, t["id"], t["size"]))
        return cls


def load_btf(path: str) -> dict[int, dict[str, Any]]:
    out = subprocess.run(["bpftool", "-j", "btf", "dump", "file", path], check=True, capture_output=True)
    return {t["id"]: t for t in json.loads(out.stdout)["types"]}


def find(types: dict[int, dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    for t in types.values():
        if t["kind"] == kind and t.get("name") == name:
            return t
    raise SystemExit(f"{kind} {name} not in BTF")


def attr_class_name(gen: Gen, member: dict[str, Any]) -> str:
    name = member["name"]
    if name != "(anon)":
        return ATTR_MEMBERS[name][0]
    first = gen.resolve(member["type_id"])["members"][0]
    if first["name"] == "(anon)":
        inner = gen.resolve(first["type_id"])["members"][0]["name"]
        key = "(anon-target)" if inner == "target_fd" else "(anon-id)"
        return ATTR_MEMBERS[key][0]
    return ATTR_MEMBERS[first["name"]][0]


def generate(btf_path: str) -> str:
    """The text of attr.py (see `generate_both`)."""
    return generate_both(btf_path)[0]


def generate_both(btf_path: str) -> tuple[str, str]:
    """The texts of attr.py and of `_attr_lazy.py`, checked against the BTF."""
    types = load_btf(btf_path)
    gen = Gen(types)
    attr = find(types, "UNION", "bpf_attr")
    attr_classes: list[str] = []
    owner: list[str] = []  # the top-level layout each emitted class belongs to (anonymous parts included)

    def emit_top(t: dict[str, Any], cls: str, doc: str | None = None) -> None:
        start = len(gen.classes)
        gen.emit(t, cls, doc)
        owner.extend([cls] * (len(gen.classes) - start))

    for m in attr["members"]:
        cls = attr_class_name(gen, m)
        users = {v[0]: v[1] for v in ATTR_MEMBERS.values()}[cls]
        size = gen.resolve(m["type_id"])["size"]
        emit_top(gen.resolve(m["type_id"]), cls, f"bpf_attr of {users} ({size} bytes).")
        attr_classes.append(cls)
    for cname, cls in STRUCTS:
        emit_top(find(types, "STRUCT", cname), cls)
    unknown = LAZY - set(owner)
    if unknown:
        raise SystemExit(f"LAZY names unknown layouts: {sorted(unknown)}")
    hot = [src for src, top in zip(gen.classes, owner, strict=True) if top not in LAZY]
    cold = [src for src, top in zip(gen.classes, owner, strict=True) if top in LAZY]
    lazy_names = sorted([*LAZY, *LAZY_TABLES])
    release = f"Linux {platform.release()} ({platform.machine()})"

    head = [
        f"# Generated by tools/gen_attr.py from the BTF of {release}; do not edit.",
        '"""ctypes layouts of the bpf(2) `union bpf_attr` members, the bpf_*_info structs and',
        "`perf_event_attr`.",
        "",
        "One Structure per member of `union bpf_attr` (include/uapi/linux/bpf.h), named after the commands",
        "that use it; the kernel accepts any attr size up to its own as long as bytes it does not know are",
        "zero (kernel/bpf/syscall.c, bpf_check_uarg_tail_zero), so the per-command struct is what is passed.",
        f"The layouts start-up does not need live in `{LAZY_MODULE}`, imported on first use of one of its",
        "names (use them from here).",
        '"""',
        "",
        "from __future__ import annotations",
        "",
        "import ctypes",
        "from typing import TYPE_CHECKING, Any",
        "",
        "if TYPE_CHECKING:",
        *[f"    from .{LAZY_MODULE} import {n} as {n}" for n in lazy_names],
        "",
        "",
    ]
    body = "\n\n\n".join(hot)
    tail = [
        "",
        "",
        "_LAZY = frozenset({",
        *[f"    {n!r}," for n in lazy_names],
        "})",
        f'"""The names defined in `{LAZY_MODULE}`."""',
        "",
        "",
        "def __getattr__(name: str) -> Any:",
        f'    """Import a name of `_LAZY` from `{LAZY_MODULE}` on first use."""',
        "    if name not in _LAZY:",
        '        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")',
        f"    from . import {LAZY_MODULE}",
        "",
        f"    value = getattr({LAZY_MODULE}, name)",
        "    globals()[name] = value",
        "    return value",
        "",
        "",
        "def __dir__() -> list[str]:",
        "    return sorted(set(globals()) | _LAZY)",
        "",
    ]
    src = "\n".join(head) + "\n" + body + "\n" + "\n".join(tail)

    hot_attrs = sorted(c for c in attr_classes if c not in LAZY)  # what BpfAttr and ATTR_COMMANDS name
    commands = {v[0]: v[1] for v in ATTR_MEMBERS.values()}
    lazy_head = [
        f"# Generated by tools/gen_attr.py from the BTF of {release}; do not edit.",
        '"""ctypes layouts start-up does not need, imported on first use by `bpfkit.uapi.attr` (use them',
        'from there), and the tables of every layout."""',
        "",
        "from __future__ import annotations",
        "",
        "import ctypes",
        "",
        "from .attr import (",
        *[f"    {c}," for c in hot_attrs],
        ")",
        "",
        "",
    ]
    lazy_tail = [
        "",
        "",
        "class BpfAttr(ctypes.Union):",
        f'    """`union bpf_attr` ({attr["size"]} bytes): every command\'s layout at offset 0."""',
        "",
        "    _fields_ = [",
        *[f"        ({camel_to_snake(c)!r}, {c})," for c in attr_classes],
        "    ]",
        "",
        "",
        "#: The bpf commands that use each attr layout (documentation and tests).",
        "ATTR_COMMANDS: dict[type[ctypes.Structure], str] = {",
        *[f"    {c}: {commands[c]!r}," for c in attr_classes],
        "}",
        "",
        "#: Layout sizes (bytes) as the generating kernel's BTF has them.",
        "BTF_SIZES: dict[str, int] = {",
        *[f"    {c!r}: {s}," for c, _i, s in gen.checks if not c.startswith("_") and "Anon" not in c],
        "}",
        "",
    ]
    lazy_src = "\n".join(lazy_head) + "\n" + "\n\n\n".join(cold) + "\n" + "\n".join(lazy_tail)
    verify(src, lazy_src, gen, types)
    return src, lazy_src


def camel_to_snake(name: str) -> str:
    out = ""
    for ch in name.removesuffix("Attr"):
        out += ("_" + ch.lower()) if ch.isupper() and out else ch.lower()
    return out


def verify(src: str, lazy_src: str, gen: Gen, types: dict[int, dict[str, Any]]) -> None:
    """Exec the generated modules and compare every member offset and size with BTF."""
    ns: dict[str, Any] = {}
    exec(compile(src, "attr.py", "exec"), ns)
    # The lazy module imports the hot layouts from `.attr`: run it with those names in its namespace.
    lazy_ns: dict[str, Any] = dict(ns)
    head, _, rest = lazy_src.partition("from .attr import (")
    exec(compile(head + rest.partition(")")[2], LAZY_MODULE + ".py", "exec"), lazy_ns)
    ns.update(lazy_ns)
    for cls, tid, size in gen.checks:
        c = ns[cls]
        if ctypes.sizeof(c) != size:
            raise SystemExit(f"{cls}: ctypes size {ctypes.sizeof(c)} != BTF size {size}")
        t = types[tid]
        n_anon = 0
        for m in t["members"]:
            fname = m["name"]
            if fname == "(anon)":
                fname = f"_anon{n_anon}"
                n_anon += 1
            off = getattr(c, fname).offset
            if m.get("bitfield_size"):
                continue  # ctypes reports the storage unit offset; checked by the unit test
            if off * 8 != m["bits_offset"]:
                raise SystemExit(f"{cls}.{fname}: offset {off * 8} bits != BTF {m['bits_offset']}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--btf", default="/sys/kernel/btf/vmlinux")
    ap.add_argument("-o", "--output", default=str(Path(__file__).parent.parent / "src/bpfkit/uapi/attr.py"))
    args = ap.parse_args()
    src, lazy_src = generate_both(args.btf)
    out = Path(args.output)
    out.write_text(src)
    lazy_out = out.with_name(LAZY_MODULE + ".py")
    lazy_out.write_text(lazy_src)
    print(f"wrote {out} and {lazy_out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
