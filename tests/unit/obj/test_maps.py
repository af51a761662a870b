"""Map definitions: the fixtures' maps as their C sources declare them, cross-checked with bpftool's
reading of the same BTF; legacy `maps`; and definitions built with clang for the rarer fields and
the errors libbpf gives."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from bpfkit.errors import ElfError
from bpfkit.obj import MapSpec, PinType, load_object
from bpfkit.uapi.enums import MapFlags, MapType

from .oracle import BPFTOOL, OBJ_DIR, OBJECTS, compile_c

T = MapType
# (type, key_size, value_size, max_entries, flags), from the map declarations in tests/data/c.
EXPECTED: dict[str, dict[str, tuple[MapType, int, int, int, int]]] = {
    "maps_btf.o": {
        "hash_map": (T.HASH, 4, 8, 128, MapFlags.NO_PREALLOC),
        "array_map": (T.ARRAY, 4, 16, 4, 0),
        "percpu_map": (T.PERCPU_ARRAY, 4, 8, 1, 0),
        "lru_map": (T.LRU_HASH, 8, 4, 16, 0),
        "queue_map": (T.QUEUE, 0, 4, 8, 0),
        "bpfkit_fixture_pinned": (T.HASH, 4, 4, 8, 0),
        "inner_a": (T.ARRAY, 4, 4, 1, 0),
        "inner_b": (T.ARRAY, 4, 4, 1, 0),
        "outer_map": (T.ARRAY_OF_MAPS, 4, 4, 3, 0),
    },
    "maps_legacy.o": {"legacy_counts": (T.ARRAY, 4, 8, 4, 0)},
    "perf_event.o": {"samples": (T.PERCPU_ARRAY, 4, 16, 1, 0)},
    "raw_tp.o": {"syscall_counts": (T.ARRAY, 4, 8, 512, 0)},
    "ringbuf.o": {"events": (T.RINGBUF, 0, 0, 4096, 0)},
    "tail_call.o": {"jump_table": (T.PROG_ARRAY, 4, 4, 2, 0)},
    "tracepoint.o": {"getpid_calls": (T.HASH, 4, 8, 1024, 0), "last_nr": (T.ARRAY, 4, 4, 1, 0)},
    "xdp.o": {"xdp_verdicts": (T.PERCPU_ARRAY, 4, 8, 4, 0)},
}


def _shape(m: MapSpec) -> tuple[MapType, int, int, int, int]:
    return (m.type, m.key_size, m.value_size, m.max_entries, m.flags)


def test_every_fixture_with_maps_is_covered() -> None:
    assert {o["object"] for o in OBJECTS if o["maps"]} == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_fixture_maps_as_declared(name: str) -> None:
    obj = load_object(OBJ_DIR / name)
    user = {n: m for n, m in obj.maps.items() if m.section in (".maps", "maps")}
    assert {n: _shape(m) for n, m in user.items()} == EXPECTED[name]


def test_map_in_map_prog_array_and_pinning() -> None:
    obj = load_object(OBJ_DIR / "maps_btf.o")
    outer = obj.maps["outer_map"]
    assert outer.inner_map is not None
    assert _shape(outer.inner_map) == (T.ARRAY, 4, 4, 1, 0)
    assert outer.inner_map.name == "outer_map.inner"
    assert outer.init_slots == ((0, "inner_a"), (1, "inner_b"))
    assert outer.btf_key_type_id == outer.btf_value_type_id == 0  # key_size given by __uint, values fds
    assert obj.maps["bpfkit_fixture_pinned"].pinning is PinType.BY_NAME
    assert obj.maps["hash_map"].pinning is PinType.NONE
    assert obj.btf is not None
    assert obj.btf.type_str(obj.maps["array_map"].btf_value_type_id) == "struct pair"
    assert obj.btf.type_str(obj.maps["lru_map"].btf_key_type_id) == "__u64"
    assert obj.maps["queue_map"].btf_key_type_id == 0
    tail = load_object(OBJ_DIR / "tail_call.o")
    assert tail.maps["jump_table"].init_slots == ((0, "tail_target"),)


def test_legacy_maps_are_read_with_a_note() -> None:
    obj = load_object(OBJ_DIR / "maps_legacy.o")
    m = obj.maps["legacy_counts"]
    assert m.section == "maps" and m.btf_key_type_id == m.btf_value_type_id == 0
    assert any("libbpf >= 1.0 refuses" in n for n in obj.notes)
    refs = obj.programs["maps_legacy"].references
    assert [r.target for r in refs] == ["legacy_counts", "legacy_counts"]


# ---------------------------------------------------------------- bpftool as a second reader of the BTF


def _bpftool_raw(path: Path) -> dict[int, dict[str, Any]]:
    if BPFTOOL is None:
        pytest.skip("bpftool is not installed")
    out = subprocess.run([BPFTOOL, "btf", "dump", "file", str(path), "format", "raw"], capture_output=True,
                         text=True, check=True).stdout
    types: dict[int, dict[str, Any]] = {}
    cur: dict[str, Any] = {}
    for line in out.splitlines():
        m = re.match(r"^\[(\d+)\] (\w+) '([^']*)'(.*)$", line)
        if m:
            cur = {"kind": m.group(2), "name": m.group(3), "members": [], "vars": [],
                   **dict(re.findall(r"(\w+)=([^\s,]+)", m.group(4)))}
            types[int(m.group(1))] = cur
            continue
        m = re.match(r"^\t'([^']*)' type_id=(\d+)", line)
        if m:
            cur["members"].append((m.group(1), int(m.group(2))))
            continue
        m = re.match(r"^\ttype_id=(\d+) offset=(\d+) size=(\d+) \(VAR '([^']*)'\)", line)
        if m:
            cur["vars"].append((m.group(4), int(m.group(1))))
    return types


@pytest.mark.parametrize("name", sorted(n for n in EXPECTED if n != "maps_legacy.o"))
def test_btf_map_fields_agree_with_bpftool(name: str) -> None:
    types = _bpftool_raw(OBJ_DIR / name)
    datasec = next(t for t in types.values() if t["kind"] == "DATASEC" and t["name"] == ".maps")
    obj = load_object(OBJ_DIR / name)
    for var_name, var_id in datasec["vars"]:
        struct_t = types[int(types[var_id]["type_id"])]
        fields: dict[str, int] = {}
        for member, tid in struct_t["members"]:
            ptr = types[tid]
            if ptr["kind"] == "PTR" and types[int(ptr["type_id"])]["kind"] == "ARRAY":
                fields[member] = int(types[int(ptr["type_id"])]["nr_elems"])
            elif member in ("key", "value"):
                fields[member + "_type"] = int(ptr["type_id"])
        m = obj.maps[var_name]
        assert int(m.type) == fields["type"]
        assert m.max_entries == fields.get("max_entries", 0)
        assert m.flags == fields.get("map_flags", 0)
        assert int(m.pinning) == fields.get("pinning", 0)
        assert m.btf_key_type_id == fields.get("key_type", 0)
        assert m.btf_value_type_id == fields.get("value_type", 0)
        if "key_size" in fields:
            assert m.key_size == fields["key_size"]


# ---------------------------------------------------------------- definitions built with clang

RARE = r"""
#include "bpfkit_helpers.h"
#define __ulong(name, val) enum { ___bpf_concat(__unique_value, __COUNTER__) = val } name
#define ___bpf_concat(a, b) ____bpf_concat(a, b)
#define ____bpf_concat(a, b) a ## b

struct {
	__uint(type, 30); /* BPF_MAP_TYPE_BLOOM_FILTER */
	__uint(max_entries, 64);
	__type(value, __u32);
	__uint(map_extra, 3);
	__uint(numa_node, 0);
} bloom SEC(".maps");

struct {
	__uint(type, 33); /* BPF_MAP_TYPE_ARENA */
	__uint(max_entries, 2);
	__uint(map_flags, 1024);
	__ulong(map_extra, 0x12345); /* clang 14 has no ENUM64: 32-bit values only */
} arena SEC(".maps");

struct inner {
	__uint(type, BPF_MAP_TYPE_HASH); __uint(max_entries, 4); __type(key, int); __type(value, int);
};
struct {
	__uint(type, BPF_MAP_TYPE_HASH_OF_MAPS);
	__uint(max_entries, 2);
	__type(key, int);
	__array(values, struct inner);
} hom SEC(".maps");

SEC("socket")
int prog(void *ctx)
{
	int k = 0;
	return bpf_map_lookup_elem(&bloom, &k) != 0 || bpf_map_lookup_elem(&hom, &k) != 0
		|| bpf_map_lookup_elem(&arena, &k) != 0;
}
char _license[] SEC("license") = "GPL";
"""


def test_rare_fields(tmp_path: Path) -> None:
    obj = load_object(compile_c(RARE, tmp_path, "rare"))
    bloom = obj.maps["bloom"]
    assert (bloom.type, bloom.key_size, bloom.value_size, bloom.max_entries, bloom.map_extra) == (
        T.BLOOM_FILTER, 0, 4, 64, 3)
    assert bloom.numa_node == 0
    arena = obj.maps["arena"]
    assert (arena.map_extra, arena.flags, arena.numa_node) == (0x12345, 1024, None)
    hom = obj.maps["hom"]
    assert hom.type is T.HASH_OF_MAPS and hom.key_size == 4 and hom.value_size == 4
    assert hom.inner_map is not None and _shape(hom.inner_map) == (T.HASH, 4, 4, 4, 0)
    assert hom.init_slots == ()


@pytest.mark.parametrize(("decl", "message"), [
    ("__uint(type, BPF_MAP_TYPE_HASH); __uint(max_entries, 1); __type(key, int); __type(value, int); "
     "__uint(colour, 3);", "unknown field 'colour'"),
    ("__uint(max_entries, 1); __type(key, int); __type(value, int);", "map type is not specified"),
    ("__uint(type, BPF_MAP_TYPE_HASH); __uint(max_entries, 1); __type(key, int); __uint(key_size, 8); "
     "__type(value, int);", "conflicting key size 4 != 8"),
    ("__uint(type, BPF_MAP_TYPE_HASH); __uint(max_entries, 1); __type(key, int); __uint(pinning, 2); "
     "__type(value, int);", "invalid pinning value 2"),
    ("__uint(type, BPF_MAP_TYPE_HASH); __uint(max_entries, 1); __type(key, int); "
     "__array(values, int (void *));", "'values' needs a map of maps or a program array"),
    ("__uint(type, BPF_MAP_TYPE_HASH); int max_entries; __type(key, int); __type(value, int);",
     "field 'max_entries': expected __uint()"),
])
def test_bad_definitions_name_the_map_and_field(tmp_path: Path, decl: str, message: str) -> None:
    src = f"""#include "bpfkit_helpers.h"
struct {{ {decl} }} bad SEC(".maps");
SEC("socket") int prog(void *ctx) {{ int k = 0; return bpf_map_lookup_elem(&bad, &k) != 0; }}
"""
    path = compile_c(src, tmp_path, "bad")
    with pytest.raises(ElfError) as info:
        load_object(path)
    text = str(info.value)
    assert text.startswith(f"{path}: section '.maps': map 'bad': ")
    assert message in text


def test_static_map_is_refused(tmp_path: Path) -> None:
    src = """#include "bpfkit_helpers.h"
static struct {
	__uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 1); __type(key, int); __type(value, int);
} quiet SEC(".maps");
SEC("socket") int prog(void *ctx) { int k = 0; return bpf_map_lookup_elem(&quiet, &k) != 0; }
"""
    with pytest.raises(ElfError, match="map 'quiet': unsupported linkage static"):
        load_object(compile_c(src, tmp_path, "static_map"))
