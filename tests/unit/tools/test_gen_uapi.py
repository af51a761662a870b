"""tools/gen_uapi.py: its BTF reader on hand-built blobs, and the code it generates from them."""

from __future__ import annotations

import importlib.util
import struct
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[3]

# BTF kinds (linux/btf.h).
INT, PTR, ARRAY, STRUCT, ENUM, FUNC_PROTO, VAR, DATASEC, FLOAT, DECL_TAG, TYPE_TAG, ENUM64 = (
    1, 2, 3, 4, 6, 13, 14, 15, 16, 17, 18, 19,
)  # fmt: skip


def load_generator() -> ModuleType:
    """Import tools/gen_uapi.py, which is a script rather than a package module."""
    name = "gen_uapi"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, ROOT / "tools" / "gen_uapi.py")
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # dataclasses look the module up while the class is built
        spec.loader.exec_module(module)
    return sys.modules[name]


gen = load_generator()


class BtfBuilder:
    """Builds a raw BTF blob type by type, the way the kernel lays it out."""

    def __init__(self, order: str = "<") -> None:
        self.order = order
        self.strings = bytearray(b"\0")
        self.types = bytearray()

    def name(self, text: str) -> int:
        if not text:
            return 0
        offset = len(self.strings)
        self.strings += text.encode() + b"\0"
        return offset

    def add(
        self, kind: int, name: str = "", vlen: int = 0, size: int = 0, extra: bytes = b"", kflag: int = 0
    ) -> None:
        info = kflag << 31 | kind << 24 | vlen
        self.types += struct.pack(self.order + "3I", self.name(name), info, size) + extra

    def enum(self, name: str, members: list[tuple[str, int]], *, signed: bool = False) -> None:
        fmt = self.order + ("Ii" if signed else "II")
        extra = b"".join(struct.pack(fmt, self.name(n), v) for n, v in members)
        self.add(ENUM, name, len(members), 4, extra, int(signed))

    def enum64(self, name: str, members: list[tuple[str, int]], *, signed: bool = False) -> None:
        extra = b"".join(
            struct.pack(self.order + "3I", self.name(n), v & 0xFFFFFFFF, (v >> 32) & 0xFFFFFFFF)
            for n, v in members
        )
        self.add(ENUM64, name, len(members), 8, extra, int(signed))

    def blob(self) -> bytes:
        header = struct.pack(
            self.order + "HBBIIIII", 0xEB9F, 1, 0, 24, 0, len(self.types), len(self.types), len(self.strings)
        )
        return header + bytes(self.types) + bytes(self.strings)


def every_kind() -> BtfBuilder:
    """A blob holding one type of each kind the reader must step over, around three enums."""
    b = BtfBuilder()
    b.add(INT, "int", size=4, extra=struct.pack("<I", 32))  # 1
    b.add(PTR, size=1)  # 2
    b.add(ARRAY, extra=struct.pack("<3I", 1, 1, 16))  # 3
    b.add(
        STRUCT, "pair", 2, 8, struct.pack("<3I", b.name("a"), 1, 0) + struct.pack("<3I", b.name("b"), 1, 32)
    )
    b.enum("colour", [("RED", 0), ("GREEN", 1), ("BLUE", 7)])  # 5
    b.add(FUNC_PROTO, vlen=1, size=1, extra=struct.pack("<2I", 0, 1))  # 6
    b.add(VAR, "v", size=1, extra=struct.pack("<I", 1))  # 7
    b.add(DATASEC, ".data", 1, 4, struct.pack("<3I", 7, 0, 4))  # 8
    b.enum("", [("NEG", -1), ("POS", 5)], signed=True)  # 9
    b.add(FLOAT, "double", size=8)  # 10
    b.add(DECL_TAG, "tag", size=4, extra=struct.pack("<i", -1))  # 11
    b.add(TYPE_TAG, "user", size=1)  # 12
    b.enum64("big", [("HUGE", 1 << 40), ("TOP", (1 << 64) - 1)])  # 13
    b.enum64("", [("MINUS_TWO", -2)], signed=True)  # 14
    return b


EXPECTED_ENUMS = [
    (5, "colour", (("RED", 0), ("GREEN", 1), ("BLUE", 7))),
    (9, "", (("NEG", -1), ("POS", 5))),
    (13, "big", (("HUGE", 1 << 40), ("TOP", (1 << 64) - 1))),
    (14, "", (("MINUS_TWO", -2),)),
]


def as_tuples(enums: list[Any]) -> list[tuple[int, str, tuple[tuple[str, int], ...]]]:
    return [(e.type_id, e.name, e.members) for e in enums]


def test_reader_finds_enums_among_every_kind() -> None:
    assert as_tuples(gen.read_enums(every_kind().blob())) == EXPECTED_ENUMS


def test_reader_reads_big_endian_btf() -> None:
    b = BtfBuilder(">")
    b.add(INT, "int", size=4, extra=struct.pack(">I", 32))
    b.enum("e", [("A", 1), ("B", 0x01020304)])
    b.enum64("", [("C", 1 << 33)])
    assert as_tuples(gen.read_enums(b.blob())) == [
        (2, "e", (("A", 1), ("B", 0x01020304))),
        (3, "", (("C", 1 << 33),)),
    ]


def _with_header(blob: bytes, **fields: int) -> bytes:
    names = ["hdr_len", "type_off", "type_len", "str_off", "str_len"]
    values = list(struct.unpack_from("<5I", blob, 4))
    for key, value in fields.items():
        values[names.index(key)] = value
    return blob[:4] + struct.pack("<5I", *values) + blob[24:]


@pytest.mark.parametrize(
    ("mangle", "message"),
    [
        (lambda blob: blob[:10], "too short"),
        (lambda blob: b"\x00\x00" + blob[2:], "bad magic"),
        (lambda blob: blob[:-4], "points past the end"),
        (lambda blob: _with_header(blob, hdr_len=8), "points past the end"),
        (lambda blob: _with_header(blob, type_len=40), r"type 3 at offset 36 is truncated"),
        (lambda blob: _with_header(blob, type_len=30), r"type 2 \(kind 3, vlen 0\) runs past"),
    ],
)
def test_reader_rejects_malformed_headers(mangle: Any, message: str) -> None:
    b = BtfBuilder()
    b.add(PTR, size=0)
    b.add(ARRAY, extra=struct.pack("<3I", 1, 1, 4))
    b.add(PTR, size=0)
    with pytest.raises(gen.BtfFormatError, match=message):
        gen.read_enums(mangle(b.blob()))


def test_reader_rejects_unknown_kind_and_bad_string_offsets() -> None:
    b = BtfBuilder()
    b.add(PTR, size=0)
    b.add(25)
    with pytest.raises(gen.BtfFormatError, match="type 2 at offset 12 has unknown kind 25"):
        gen.read_enums(b.blob())
    b = BtfBuilder()
    b.types += struct.pack("<3I", 9999, ENUM << 24, 4)
    with pytest.raises(gen.BtfFormatError, match="string offset 9999 is outside"):
        gen.read_enums(b.blob())


# --- generation ------------------------------------------------------------------------------------


def minimal_kernel(b: BtfBuilder) -> BtfBuilder:
    """The six enums every kernel with BTF has, a few members each, with sentinels and odd names."""
    b.enum(
        "bpf_cmd",
        [("BPF_MAP_CREATE", 0), ("BPF_PROG_TEST_RUN", 10), ("BPF_PROG_RUN", 10), ("__MAX_BPF_CMD", 11)],
    )
    b.enum(
        "bpf_map_type",
        [
            ("BPF_MAP_TYPE_UNSPEC", 0),
            ("BPF_MAP_TYPE_2LEVEL", 1),  # not an identifier
            ("BPF_MAP_TYPE_CGROUP_STORAGE_DEPRECATED", 19),
            ("BPF_MAP_TYPE_REUSEPORT_SOCKARRAY", 20),
            ("BPF_MAP_TYPE_CGROUP_STORAGE", 19),
        ],
    )
    b.enum("bpf_prog_type", [("BPF_PROG_TYPE_XDP", 6)])
    b.enum("bpf_attach_type", [("BPF_CGROUP_INET_INGRESS", 0), ("__MAX_BPF_ATTACH_TYPE", 1)])
    b.enum("bpf_link_type", [("BPF_LINK_TYPE_UNSPEC", 0), ("MAX_BPF_LINK_TYPE", 1)])
    b.enum("bpf_func_id", [("BPF_FUNC_unspec", 0), ("BPF_FUNC_map_lookup_elem", 1), ("__BPF_FUNC_MAX_ID", 2)])
    return b


def run_generated(text: str) -> dict[str, Any]:
    namespace: dict[str, Any] = {"__name__": "bpfkit.uapi._generated_for_test", "__package__": "bpfkit.uapi"}
    exec(compile(text, "<generated>", "exec"), namespace)
    return namespace


def test_generate_from_a_minimal_kernel(capsys: pytest.CaptureFixture[str]) -> None:
    b = minimal_kernel(every_kind())
    b.enum("", [("BPF_ANY", 0), ("BPF_NOEXIST", 1), ("BPF_F_LOCK", 4)])
    b.enum64("", [("BPF_F_INDEX_MASK", 0xFFFFFFFF), ("BPF_F_CURRENT_CPU", 0xFFFFFFFF)])
    text = gen.generate(gen.read_enums(b.blob()), "9.9.9-test")
    assert text.splitlines()[0] == (
        "# Generated by tools/gen_uapi.py from the kernel BTF (Linux 9.9.9-test); do not edit."
    )
    ns = run_generated(text)
    assert "Helper" not in ns and "HELPER_NAMES" not in ns  # generated apart, imported on first use
    helpers = run_generated(gen.generate_helpers(gen.read_enums(b.blob()), "9.9.9-test"))
    assert set(helpers["__all__"]) == {"Helper", "HELPER_NAMES"}
    assert {n for n, m in ns["_LAZY"].items() if m == "_helpers"} == {"Helper", "HELPER_NAMES"}
    # Only the classes start-up needs are built at import; the others come from `_enums_lazy`.
    lazy = run_generated(gen.generate_lazy(gen.read_enums(b.blob()), "9.9.9-test"))
    assert {"LinkType", "PerfEventOutputFlags"} <= set(lazy["__all__"]) == {
        n for n, m in ns["_LAZY"].items() if m == "_enums_lazy"}
    assert "LinkType" not in ns and "PerfEventOutputFlags" not in ns
    cmd, helper, update = ns["Cmd"], helpers["Helper"], ns["UpdateFlags"]
    assert list(cmd.__members__) == ["MAP_CREATE", "PROG_TEST_RUN", "PROG_RUN"]
    assert cmd.PROG_RUN is cmd.PROG_TEST_RUN and cmd.PROG_TEST_RUN.c_name == "BPF_PROG_TEST_RUN"
    map_type = ns["MapType"]
    assert list(map_type.__members__) == [
        "UNSPEC",
        "CGROUP_STORAGE",
        "CGROUP_STORAGE_DEPRECATED",
        "REUSEPORT_SOCKARRAY",
    ]
    assert map_type(19).name == "CGROUP_STORAGE"  # the deprecated spelling is the alias
    assert list(ns["AttachType"].__members__) == ["CGROUP_INET_INGRESS"]
    assert list(lazy["LinkType"].__members__) == ["UNSPEC"]
    assert helper.MAP_LOOKUP_ELEM == 1 and helper.MAP_LOOKUP_ELEM.c_name == "BPF_FUNC_map_lookup_elem"
    assert helpers["HELPER_NAMES"] == {1: "bpf_map_lookup_elem"}
    assert (update.NOEXIST | update.F_LOCK) == 5 and update.F_LOCK.c_name == "BPF_F_LOCK"
    assert lazy["PerfEventOutputFlags"].CURRENT_CPU == 0xFFFFFFFF
    assert ns["KERNEL_RELEASE"] == "9.9.9-test"
    assert "StatsType" not in ns and "StatsType" not in ns["__all__"]
    assert set(ns["__all__"]) == {name for name in ns if not name.startswith("_") and name[0].isupper()} - {
        "CEnum",
        "CFlag",
        "TYPE_CHECKING",
        "Any",
    } | set(ns["_LAZY"])
    err = capsys.readouterr().err
    assert "StatsType skipped" in err
    assert "BPF_MAP_TYPE_2LEVEL" in err and "__MAX_BPF_CMD" in err and "MAX_BPF_LINK_TYPE" in err


def test_generate_needs_the_core_enums() -> None:
    b = BtfBuilder()
    b.enum("bpf_cmd", [("BPF_MAP_CREATE", 0)])
    with pytest.raises(gen.BtfFormatError, match="MapType: no enum bpf_map_type in the BTF"):
        gen.generate(gen.read_enums(b.blob()), "x")


def test_generate_rejects_members_outside_the_prefix() -> None:
    b = minimal_kernel(BtfBuilder())
    b.enum("bpf_stats_type", [("BPF_STATS_RUN_TIME", 0), ("RUN_TIME_TOO", 1)])
    with pytest.raises(
        gen.BtfFormatError, match="StatsType: member RUN_TIME_TOO does not start with BPF_STATS_"
    ):
        gen.generate(gen.read_enums(b.blob()), "x")


def test_generate_rejects_ambiguous_anonymous_enums() -> None:
    b = minimal_kernel(BtfBuilder())
    b.enum("", [("BPF_ANY", 0)])
    b.enum("", [("BPF_ANY", 0), ("BPF_EXIST", 2)])
    with pytest.raises(gen.BtfFormatError, match="UpdateFlags: BPF_ANY matches different enums"):
        gen.generate(gen.read_enums(b.blob()), "x")


def test_main_writes_the_file_and_reports_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    btf = tmp_path / "vmlinux"
    btf.write_bytes(minimal_kernel(BtfBuilder()).blob())
    out = tmp_path / "enums.py"
    assert gen.main([str(btf), "--release", "1.2.3", "-o", str(out)]) == 0
    assert out.read_text().startswith("# Generated by tools/gen_uapi.py from the kernel BTF (Linux 1.2.3)")
    helpers = (tmp_path / "_helpers.py").read_text()
    assert helpers.startswith("# Generated by tools/gen_uapi.py") and "class Helper(CEnum)" in helpers
    btf.write_bytes(b"not btf at all, not btf at all")
    assert gen.main([str(btf), "-o", str(out)]) == 1
    assert "bad magic" in capsys.readouterr().err
    assert gen.main([str(tmp_path / "missing"), "-o", str(out)]) == 1
    assert "No such file" in capsys.readouterr().err
