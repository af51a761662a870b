"""What `bpfkit obj show` and `bpfkit objdump` print: pure functions over an `ObjectSpec`.

`summarize` gives a JSON-able dict (programs, maps, globals, externs, relocations); `format_summary`
renders it as aligned tables; `objdump` disassembles each linked program with its source lines from
line_info interleaved, the way `llvm-objdump -S` does.
"""

from __future__ import annotations

from typing import Any

from bpfkit.errors import AsmError
from bpfkit.isa import LD_IMM64, decode
from bpfkit.isa.disasm import format_insn

from .object import ObjectSpec
from .spec import MapSpec, ProgramSpec, Reference, RefKind


def _type_str(obj: ObjectSpec, type_id: int) -> str | None:
    if not type_id or obj.btf is None:
        return None
    try:
        return obj.btf.type_str(type_id)
    except Exception:  # a display nicety must not fail the listing
        return f"[{type_id}]"


def _map(obj: ObjectSpec, m: MapSpec) -> dict[str, Any]:
    out: dict[str, Any] = {
        "name": m.name,
        "type": m.type.name.lower(),
        "key_size": m.key_size,
        "value_size": m.value_size,
        "max_entries": m.max_entries,
        "flags": m.flags,
        "key_type": _type_str(obj, m.btf_key_type_id),
        "value_type": _type_str(obj, m.btf_value_type_id),
        "section": m.section,
    }
    if m.pinning:
        out["pinning"] = m.pinning.name.lower()
    if m.numa_node is not None:
        out["numa_node"] = m.numa_node
    if m.map_extra:
        out["map_extra"] = m.map_extra
    if m.inner_map is not None:
        out["inner_map"] = _map(obj, m.inner_map)
    if m.init_slots:
        out["init"] = [{"slot": s, "value": name} for s, name in m.init_slots]
    if m.freeze:
        out["frozen"] = True
    return out


def _reference(r: Reference) -> str:
    if r.kind is RefKind.MAP_VALUE:
        return f"{r.target}+{r.offset}"
    return r.target


def summarize(obj: ObjectSpec) -> dict[str, Any]:
    """A JSON-able description of the object: the data behind `bpfkit obj show`."""
    programs = []
    relocations = []
    for p in obj.programs.values():
        programs.append({
            "name": p.name,
            "section": p.section,
            "type": p.type.name.lower(),
            "attach_type": None if p.expected_attach_type is None else p.expected_attach_type.name.lower(),
            "attach_to": p.attach_to or None,
            "flags": p.flags,
            "insns": len(p.insns) // 8 if isinstance(p.insns, bytes) else sum(i.width for i in p.insns),
            "subprograms": [{"name": s.name, "index": s.index} for s in p.subprograms[1:]],
            "core_relocations": len(p.core_relos),
        })
        for r in p.references:
            relocations.append({"program": p.name, "insn": r.index, "kind": r.kind.value,
                                "target": r.target, "offset": r.offset, "symbol": r.symbol})
    return {
        "file": obj.path,
        "license": obj.license,
        "kern_version": obj.kern_version,
        "programs": programs,
        "maps": [_map(obj, m) for m in obj.maps.values()],
        "globals": [{"name": v.name, "section": v.section, "offset": v.offset, "size": v.size,
                     "type": _type_str(obj, v.type_id), "readonly": v.readonly, "static": v.static}
                    for v in obj.variables.values()],
        "externs": [{"name": e.name, "kind": e.kind.value, "type": _type_str(obj, e.type_id),
                     "weak": e.weak, **({"offset": e.offset, "size": e.size}
                                        if e.kind.value == "kconfig" else {"typeless": e.typeless})}
                    for e in obj.externs.values()],
        "relocations": relocations,
        "notes": list(obj.notes),
    }


def _table(rows: list[list[str]], indent: str = "  ") -> list[str]:
    if not rows:
        return []
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return [indent + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]


def format_summary(s: dict[str, Any]) -> str:
    """`summarize`'s dict as text for people: one aligned table per kind of thing."""
    lines = [f"{s['file']}: license {s['license']!r}" + (f", kernel version 0x{s['kern_version']:x}"
                                                         if s["kern_version"] else "")]
    lines.append(f"programs ({len(s['programs'])}):")
    rows = [["NAME", "SECTION", "TYPE", "ATTACH", "INSNS", "SUBPROGRAMS"]]
    for p in s["programs"]:
        rows.append([p["name"], p["section"], p["type"], p["attach_type"] or "-", str(p["insns"]),
                     ", ".join(x["name"] for x in p["subprograms"]) or "-"])
    lines += _table(rows)
    if s["maps"]:
        lines.append(f"maps ({len(s['maps'])}):")
        rows = [["NAME", "TYPE", "KEY", "VALUE", "MAX", "FLAGS", "NOTES"]]
        for m in s["maps"]:
            notes = []
            if m.get("pinning"):
                notes.append(f"pinned {m['pinning']}")
            if m.get("inner_map"):
                notes.append(f"inner {m['inner_map']['type']}")
            if m.get("init"):
                notes.append("init " + ",".join(f"[{i['slot']}]={i['value']}" for i in m["init"]))
            if m.get("frozen"):
                notes.append("frozen")
            key = f"{m['key_size']}" + (f" ({m['key_type']})" if m["key_type"] else "")
            value = f"{m['value_size']}" + (f" ({m['value_type']})" if m["value_type"] else "")
            rows.append([m["name"], m["type"], key, value, str(m["max_entries"]), f"0x{m['flags']:x}",
                         "; ".join(notes)])
        lines += _table(rows)
    if s["globals"]:
        lines.append(f"globals ({len(s['globals'])}):")
        rows = [["NAME", "SECTION", "OFFSET", "SIZE", "TYPE"]]
        rows += [[g["name"], g["section"], str(g["offset"]), str(g["size"]), g["type"] or "?"]
                 for g in s["globals"]]
        lines += _table(rows)
    if s["externs"]:
        lines.append(f"externs ({len(s['externs'])}):")
        rows = [["NAME", "KIND", "TYPE", "WEAK"]]
        rows += [[e["name"], e["kind"], e["type"] or "void", "weak" if e["weak"] else ""]
                 for e in s["externs"]]
        lines += _table(rows)
    if s["relocations"]:
        lines.append(f"relocations ({len(s['relocations'])}):")
        rows = [["PROGRAM", "INSN", "KIND", "TARGET", "SYMBOL"]]
        rows += [[r["program"], str(r["insn"]), r["kind"],
                  r["target"] + (f"+{r['offset']}" if r["kind"] == "map_value" else ""), r["symbol"]]
                 for r in s["relocations"]]
        lines += _table(rows)
    lines += [f"note: {n}" for n in s["notes"]]
    return "\n".join(lines) + "\n"


def _insn_bytes(p: ProgramSpec) -> bytes:
    if isinstance(p.insns, bytes):
        return p.insns
    from bpfkit.isa import encode

    return encode(p.insns, check=False)


def objdump(obj: ObjectSpec, *, alu32: bool = False, program: str | None = None) -> str:
    """Each linked program disassembled in llvm-objdump's syntax, source lines from line_info shown as
    `; text` before the first instruction they cover, subprogram labels as `<name>:`, and what the
    loader will patch as a trailing comment (`; map counts`)."""
    out: list[str] = []
    for p in obj.programs.values():
        if program is not None and p.name != program:
            continue
        code = _insn_bytes(p)
        out.append(f"{obj.path}: program {p.name} (section {p.section}, type {p.type.name.lower()})")
        subs = {s.index: s.name for s in p.subprograms}
        lines = {ln.index: ln for ln in p.lines}
        refs = {r.index: r for r in p.references}
        last_line: tuple[str, int] | None = None
        slot = 0
        nslots = len(code) // 8
        while slot < nslots:
            width = 2 if code[slot * 8] == LD_IMM64 and slot + 1 < nslots else 1
            raw = code[slot * 8 : (slot + width) * 8]
            if slot in subs:
                out.append("")
                out.append(f"{slot * 8:016x} <{subs[slot]}>:")
            src = lines.get(slot)
            if src is not None and src.line and (src.file, src.line) != last_line:
                out.append(f"; {src.text.strip()}" if src.text else f"; {src.file}:{src.line}")
                last_line = (src.file, src.line)
            try:
                text = format_insn(decode(raw, check=False)[0], pc=slot, labels=subs, alu32=alu32,
                                   helper_names=True)
            except AsmError:
                text = "<invalid>"
            ref = refs.get(slot)
            if ref is not None:
                text += f"\t; {ref.kind.value} {_reference(ref)}"
            out.append(f"{slot:8d}:\t{raw.hex(' ')}\t{text}")
            slot += width
        out.append("")
    return "\n".join(out)
