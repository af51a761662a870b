#!/usr/bin/env python3
"""Build bpfkit's BPF C test fixtures, write their manifest, and verify them against the kernel.

The sources are tests/data/c/*.c; they include only the project's own headers in that
folder. Each is compiled with Debian's clang 14:

    clang -O2 -g -target bpf -mcpu=vN -fdebug-compilation-dir=. -c X.c -o ../obj/X[.vN].o

from inside tests/data/c, so no absolute path ends up in the objects and a rebuild is
byte-identical. Sources built for several CPU versions get a ".vN" suffix. The table
below says what every fixture covers and what loading and test-running it must give;
the manifest (tests/data/obj/MANIFEST.json) is that table joined with facts read from
the objects (sections, programs, maps, externs, hashes).

Usage:
    tools/build_fixtures.py            rebuild all objects and MANIFEST.json
    tools/build_fixtures.py --check    rebuild into a temporary folder; fail if any object
                                       differs from the committed one
    tools/build_fixtures.py --verify   (root) load every object with `bpftool prog loadall`
                                       (libbpf), run BPF_PROG_TEST_RUN as the table says,
                                       compare with the table, remove every pin
"""

from __future__ import annotations

import argparse
import ctypes
import glob
import hashlib
import json
import os
import platform
import shutil
import struct
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from elftools.elf.constants import SH_FLAGS
from elftools.elf.elffile import ELFFile
from elftools.elf.sections import SymbolTableSection

ROOT = Path(__file__).resolve().parent.parent
SRC_DIR = ROOT / "tests" / "data" / "c"
OBJ_DIR = ROOT / "tests" / "data" / "obj"
MANIFEST = OBJ_DIR / "MANIFEST.json"
CLANG = os.environ.get("BPFKIT_CLANG", "clang")
CLANG_MAJOR = 14
BPFFS = Path("/sys/fs/bpf")
PIN_PREFIX = "bpfkit_fixture_"
EM_BPF = 247

ALL_CPUS = ("v1", "v2", "v3")


@dataclass(frozen=True, slots=True)
class Run:
    """One BPF_PROG_TEST_RUN: input (a named test packet or a context) and the expected retval."""

    retval: int
    data_in: str | None = None  # a key of PACKETS
    ctx_in_hex: str | None = None  # raw context bytes, for program types that take no packet


@dataclass(frozen=True, slots=True)
class Prog:
    """Expectations for one program (keyed by function name in Fixture.programs)."""

    runs: tuple[Run, ...] = ()
    note: str = ""  # how to exercise it when it cannot be test-run


@dataclass(frozen=True, slots=True)
class Fixture:
    """One C source: the CPU versions to build, what it covers, the programs it defines."""

    covers: str
    programs: dict[str, Prog]
    cpus: tuple[str, ...] = ("v3",)
    # None: libbpf (bpftool prog loadall) loads it. Otherwise the reason it is refused and a
    # substring of libbpf's output that proves that reason.
    refusal: tuple[str, str] | None = None
    # set for objects that must never be given to the kernel on this project's machines
    never_load: str | None = None
    # verify with `pinmaps`: a prog array loses its entries when its last user reference
    # goes, i.e. when bpftool exits, unless the map is pinned
    keep_maps: bool = False


UDP4 = Run(0, data_in="udp4")
RAW_TP_CTX = "00" * 16  # raw_tp test runs: two zero u64 arguments

FIXTURES: dict[str, Fixture] = {
    # ---- instruction coverage (disassembler, VM), self-checking ----
    "alu64": Fixture(
        "every 64-bit ALU op, register and immediate forms (sub imm by inline asm)",
        {"alu64": Prog((UDP4,))},
        ALL_CPUS,
    ),
    "alu32": Fixture(
        "every 32-bit ALU op (w registers at v3; masked 64-bit ops at v1/v2), zero extension",
        {"alu32": Prog((UDP4,))},
        ALL_CPUS,
    ),
    "jumps": Fixture(
        "all conditional jumps, unsigned and signed, reg and imm, JMP and JMP32 (v3), ja",
        {"jumps": Prog((UDP4,))},
        ALL_CPUS,
    ),
    "mem": Fixture(
        "LDX/STX of u8/u16/u32/u64, negative offsets off a non-frame pointer, sign extension",
        {"mem": Prog((UDP4,))},
        ALL_CPUS,
    ),
    "atomics": Fixture(
        "BPF_ATOMIC add/and/or/xor with and without fetch, xchg, cmpxchg, 64 and 32-bit",
        {"atomics": Prog((UDP4,))},
    ),
    "xadd": Fixture(
        "the pre-v3 atomic: add without fetch (XADD), 64 and 32-bit",
        {"xadd": Prog((UDP4,))},
        ALL_CPUS,
    ),
    "lddw": Fixture(
        "64-bit immediate loads: large constants, and lddw of small values by inline asm",
        {"lddw": Prog((UDP4,))},
        ALL_CPUS,
    ),
    "bswap": Fixture(
        "byte swaps: be16/32/64 from __builtin_bswap*, le16/32/64 by inline asm",
        {"bswap": Prog((UDP4,))},
        ALL_CPUS,
    ),
    "ld_abs": Fixture(
        "LD_ABS and LD_IND byte/half/word in a socket filter; out-of-bounds load returns 0",
        {"ld_abs": Prog((UDP4,)), "ld_abs_oob": Prog((UDP4,))},
        ALL_CPUS,
    ),
    "loops": Fixture(
        "bounded loops (back edges), nested loop, early exit, bpf_loop + BPF_PSEUDO_FUNC lddw",
        {"loops": Prog((UDP4,))},
        ALL_CPUS,
    ),
    "subprogs": Fixture(
        "static and global bpf-to-bpf calls (5 args, 3 deep, stack pointer arg), helper calls",
        {"subprogs": Prog((UDP4,))},
        ALL_CPUS,
    ),
    # ---- ELF object loading: one concern per file ----
    "maps_btf": Fixture(
        "BTF-defined maps: hash+NO_PREALLOC, array, percpu array, LRU, queue, pinned by name, "
        "array of maps with initial values",
        {"maps_btf": Prog((UDP4, UDP4))},
    ),
    "maps_legacy": Fixture(
        'legacy SEC("maps") struct bpf_map_def',
        {"maps_legacy": Prog((UDP4,))},
        refusal=(
            'libbpf >= 1.0 rejects legacy SEC("maps") map definitions',
            "legacy map definitions in 'maps' section are not supported",
        ),
    ),
    "tail_call": Fixture(
        "PROG_ARRAY filled from the BTF values initialiser, bpf_tail_call hit and miss",
        {"tail_caller": Prog((UDP4,)), "tail_target": Prog((UDP4,))},
        keep_maps=True,
    ),
    "global_data": Fixture(
        "global variables in .data, .bss, .rodata, .rodata.str1.1, .data.foo, .rodata.foo",
        {"global_data": Prog((UDP4, UDP4))},
    ),
    "rodata_config": Fixture(
        "const volatile .rodata configuration set before load (defaults return 0; "
        "cfg_enabled=1, cfg_value=1234 returns 1234)",
        {"rodata_config": Prog((UDP4,))},
    ),
    "kconfig": Fixture(
        ".kconfig externs: LINUX_KERNEL_VERSION, CONFIG_HZ, bool, string, weak missing option",
        {"kconfig": Prog((UDP4,))},
    ),
    "ksym_kfunc": Fixture(
        "typed __ksym kfunc externs (BPF_PSEUDO_KFUNC_CALL), CO-RE read of the kernel sk_buff",
        {"ksym_kfunc": Prog((UDP4,))},
    ),
    "ksym_percpu": Fixture(
        "typed __ksym per-CPU variable (lddw BPF_PSEUDO_BTF_ID), bpf_this_cpu_ptr/per_cpu_ptr",
        {"ksym_percpu": Prog((UDP4,))},
        refusal=(
            "this kernel cannot find per-CPU variable addresses (CONFIG_KALLSYMS_ALL is not set)",
            "failed to find the address for kernel symbol 'bpf_prog_active'",
        ),
    ),
    "ksym_typeless": Fixture(
        "typeless __ksym externs resolved from /proc/kallsyms into a plain lddw",
        {"ksym_typeless": Prog((UDP4,))},
    ),
    "license_version": Fixture(
        "license and version sections; GPL-only helper allowed",
        {"license_version": Prog((Run(0, ctx_in_hex=RAW_TP_CTX),))},
    ),
    "license_proprietary": Fixture(
        "non-GPL license calling a GPL-only helper",
        {"license_proprietary": Prog()},
        refusal=(
            "the kernel refuses GPL-only helpers to non-GPL programs (EINVAL)",
            "cannot call GPL-restricted function from non-GPL compatible program",
        ),
    ),
    "ringbuf": Fixture(
        "ring buffer map: reserve+submit, reserve+discard, output, query",
        {"ringbuf": Prog((UDP4,))},
    ),
    "tracepoint": Fixture(
        "tracepoint program on syscalls/sys_enter_getpid, hash map per tgid",
        {"on_getpid": Prog(note="attach, call getpid() N times, getpid_calls[tgid] == N")},
    ),
    "raw_tp": Fixture(
        "raw tracepoint program on sys_enter (u64 argument context)",
        {"raw_tp_sys_enter": Prog((Run(0, ctx_in_hex="00" * 8 + "2700000000000000"),))},
    ),
    "xdp": Fixture(
        "XDP with direct packet access and bounds checks",
        {"xdp_filter": Prog((Run(1, data_in="udp4"), Run(2, data_in="arp")))},
    ),
    "tc": Fixture(
        "tc classifier: __sk_buff fields, direct packet access, skb->mark write",
        {"tc_classify": Prog((Run(2, data_in="udp4"), Run(0, data_in="arp")))},
    ),
    "socket_filter": Fixture(
        "socket filter: __sk_buff fields, bpf_skb_load_bytes, return = bytes to keep",
        {"socket_filter": Prog((Run(46, data_in="udp4"), Run(0, data_in="arp")))},
    ),
    "cgroup_skb": Fixture(
        "cgroup_skb ingress and egress programs (allow = 1, drop = 0)",
        {
            "count_ingress": Prog((Run(1, data_in="udp4"),)),
            "drop_egress": Prog((Run(0, data_in="udp4"), Run(1, data_in="arp"))),
        },
    ),
    "perf_event": Fixture(
        "perf_event program reading bpf_perf_event_data",
        {"on_sample": Prog(note="attach to a sampling perf event; samples[0].count grows")},
    ),
    "iter": Fixture(
        "task iterator (iter/task) with bpf_seq_printf and CO-RE context types",
        {"dump_task": Prog(note="link + iterator fd; read() yields 'tgid pid' lines")},
    ),
    "fentry": Fixture(
        "fentry and fexit tracing programs on bpf_fentry_test1",
        {"on_entry": Prog(), "on_exit": Prog()},
        refusal=(
            "this kernel refuses tracing (fentry/fexit) programs with EPERM",
            "Operation not permitted",
        ),
    ),
    "lsm": Fixture(
        "BPF LSM program on file_open (parse/compile only)",
        {"allow_file_open": Prog()},
        refusal=("this kernel refuses LSM programs with EPERM", ""),
        never_load="project rule: never load an LSM program",
    ),
    "core_task": Fixture(
        "CO-RE field relocations through a reordered ___local flavour of task_struct",
        {"core_task": Prog((Run(0, ctx_in_hex=RAW_TP_CTX),))},
    ),
    "core_field_info": Fixture(
        "CO-RE field exists/size/signed/offset/lshift/rshift incl. bitfield and missing member",
        {"core_field_info": Prog((UDP4,))},
    ),
    "core_type_enum": Fixture(
        "CO-RE type exists/size, type id local/target, enum value exists/value",
        {"core_type_enum": Prog((UDP4,))},
    ),
}


@dataclass(frozen=True, slots=True)
class SectionKind:
    """How a section name prefix maps to a program type (names as in enum bpf_prog_type)."""

    prefix: str
    prog_type: str
    attach_type: str | None = None
    exact: bool = False


SECTION_KINDS: tuple[SectionKind, ...] = (
    SectionKind("socket", "socket_filter", exact=True),
    SectionKind("xdp", "xdp", exact=True),
    SectionKind("tc", "sched_cls", exact=True),
    SectionKind("tracepoint/", "tracepoint"),
    SectionKind("raw_tp/", "raw_tracepoint"),
    SectionKind("perf_event", "perf_event", exact=True),
    SectionKind("cgroup_skb/ingress", "cgroup_skb", "cgroup_inet_ingress", exact=True),
    SectionKind("cgroup_skb/egress", "cgroup_skb", "cgroup_inet_egress", exact=True),
    SectionKind("iter/", "tracing", "trace_iter"),
    SectionKind("fentry/", "tracing", "trace_fentry"),
    SectionKind("fexit/", "tracing", "trace_fexit"),
    SectionKind("lsm/", "lsm", "lsm_mac"),
)


def section_kind(section: str) -> SectionKind:
    """The program type of a section name; KeyError for a name this table does not know."""
    for kind in SECTION_KINDS:
        if section == kind.prefix if kind.exact else section.startswith(kind.prefix):
            return kind
    raise KeyError(section)


# ---------------------------------------------------------------------------------------
# test packets (the fixtures' comments describe their results against these)


def _checksum(data: bytes) -> int:
    """The Internet checksum (RFC 1071) of data."""
    if len(data) % 2:
        data += b"\0"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def udp4_packet() -> bytes:
    """60 bytes: Ethernet, IPv4 10.0.0.1 -> 10.0.0.2, UDP 1234 -> 5678, "bpfkit fixture pkt"."""
    payload = b"bpfkit fixture pkt"
    udp = struct.pack("!HHHH", 1234, 5678, 8 + len(payload), 0) + payload
    ip = bytearray(
        struct.pack(
            "!BBHHHBBH4s4s",
            0x45,
            0,
            20 + len(udp),
            0x1234,
            0x4000,
            64,
            17,
            0,
            bytes([10, 0, 0, 1]),
            bytes([10, 0, 0, 2]),
        )
    )
    struct.pack_into("!H", ip, 10, _checksum(bytes(ip)))
    eth = bytes.fromhex("020000000002020000000001") + struct.pack("!H", 0x0800)
    return eth + bytes(ip) + udp


def arp_packet() -> bytes:
    """60 bytes: Ethernet broadcast, ARP request who-has 10.0.0.2 tell 10.0.0.1, zero padding."""
    mac = bytes.fromhex("020000000001")
    arp = struct.pack(
        "!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 1, mac, bytes([10, 0, 0, 1]), bytes(6), bytes([10, 0, 0, 2])
    )
    frame = b"\xff" * 6 + mac + struct.pack("!H", 0x0806) + arp
    return frame + bytes(60 - len(frame))


PACKETS: dict[str, bytes] = {"udp4": udp4_packet(), "arp": arp_packet()}


# ---------------------------------------------------------------------------------------
# building


def object_name(name: str, fixture: Fixture, cpu: str) -> str:
    """tests/data/obj file name of fixture `name` built for `cpu`."""
    return f"{name}.o" if len(fixture.cpus) == 1 else f"{name}.{cpu}.o"


def compile_command(source: str, cpu: str, output: str) -> list[str]:
    """The clang command line, to be run in SRC_DIR."""
    return [
        CLANG,
        "-O2",
        "-g",
        "-target",
        "bpf",
        f"-mcpu={cpu}",
        "-fdebug-compilation-dir=.",
        "-c",
        source,
        "-o",
        output,
    ]


def clang_version() -> str:
    """First line of `clang --version`; exits if clang is missing or not the pinned major."""
    try:
        out = subprocess.run([CLANG, "--version"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError) as exc:
        sys.exit(f"build_fixtures: cannot run {CLANG}: {exc}")
    first = out.splitlines()[0].strip()
    if f"clang version {CLANG_MAJOR}." not in first:
        sys.exit(f"build_fixtures: need clang {CLANG_MAJOR} for byte-identical fixtures, got: {first}")
    return first


def build_all(out_dir: Path) -> dict[str, tuple[str, Fixture, str]]:
    """Compile every fixture into out_dir; returns object name -> (fixture name, fixture, cpu)."""
    sources = sorted(p.stem for p in SRC_DIR.glob("*.c"))
    unknown = sorted(set(sources) - set(FIXTURES))
    missing = sorted(set(FIXTURES) - set(sources))
    if unknown or missing:
        sys.exit(
            f"build_fixtures: sources without a table entry: {unknown}; entries without a source: {missing}"
        )
    built: dict[str, tuple[str, Fixture, str]] = {}
    for name, fixture in FIXTURES.items():
        for cpu in fixture.cpus:
            obj = object_name(name, fixture, cpu)
            cmd = compile_command(f"{name}.c", cpu, str(out_dir / obj))
            proc = subprocess.run(cmd, cwd=SRC_DIR, capture_output=True, text=True)
            if proc.returncode != 0 or proc.stderr.strip():
                sys.exit(f"build_fixtures: {' '.join(cmd)} failed or warned:\n{proc.stderr}")
            built[obj] = (name, fixture, cpu)
    return built


@dataclass(frozen=True, slots=True)
class ElfFacts:
    """What the manifest records from one object."""

    programs: dict[str, str]  # function name -> section name
    maps: list[str]
    externs: list[str]
    data_sections: list[str]


def read_elf(path: Path) -> ElfFacts:
    """Programs, maps, externs and global-data sections of a BPF object."""
    with path.open("rb") as f:
        elf = ELFFile(f)
        if elf["e_machine"] != "EM_BPF":
            sys.exit(f"build_fixtures: {path.name} is not an EM_BPF object")
        sections = list(elf.iter_sections())
        programs: dict[str, str] = {}
        maps: list[str] = []
        externs: list[str] = []
        symtab = elf.get_section_by_name(".symtab")
        if not isinstance(symtab, SymbolTableSection):
            sys.exit(f"build_fixtures: {path.name} has no symbol table")
        for sym in symtab.iter_symbols():
            shndx = sym["st_shndx"]
            bind = sym["st_info"]["bind"]
            kind = sym["st_info"]["type"]
            if shndx == "SHN_UNDEF":
                if sym.name:
                    externs.append(sym.name)
                continue
            if not isinstance(shndx, int):
                continue
            sec = sections[shndx]
            if (
                kind == "STT_FUNC"
                and bind == "STB_GLOBAL"
                and sec["sh_flags"] & SH_FLAGS.SHF_EXECINSTR
                and sec.name != ".text"
            ):
                programs[sym.name] = sec.name
            elif kind == "STT_OBJECT" and sec.name in (".maps", "maps"):
                maps.append(sym.name)
        data_sections = [
            s.name
            for s in sections
            if s.name.startswith((".data", ".bss", ".rodata")) and s["sh_type"] != "SHT_REL"
        ]
    return ElfFacts(programs, sorted(maps), sorted(externs), data_sections)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def objdump_args(cpu: str) -> list[str]:
    """llvm-objdump arguments whose text a disassembler should reproduce for this CPU.

    LLVM 14 decodes 32-bit loads as `wN = *(u32 *)` and 32-bit atomics at all only with
    the alu32 feature, which -mcpu=v3 implies.
    """
    return ["-d", "--mattr=+alu32"] if cpu == "v3" else ["-d"]


def manifest_entry(
    obj: str, name: str, fixture: Fixture, cpu: str, facts: ElfFacts, digest: str
) -> dict[str, Any]:
    """One object's record; exits if the table and the object disagree on the programs."""
    if set(facts.programs) != set(fixture.programs):
        sys.exit(
            f"build_fixtures: {obj}: programs in the object {sorted(facts.programs)} "
            f"differ from the table {sorted(fixture.programs)}"
        )
    programs = []
    for fn, prog in fixture.programs.items():
        section = facts.programs[fn]
        try:
            kind = section_kind(section)
        except KeyError:
            sys.exit(f"build_fixtures: {obj}: section {section!r} has no program type in SECTION_KINDS")
        programs.append(
            {
                "name": fn,
                "section": section,
                "prog_type": kind.prog_type,
                "attach_type": kind.attach_type,
                "expect_load": fixture.refusal is None,
                "test_run": [
                    {
                        k: v
                        for k, v in (
                            ("data_in", r.data_in),
                            ("ctx_in_hex", r.ctx_in_hex),
                            ("retval", r.retval),
                        )
                        if v is not None
                    }
                    for r in prog.runs
                ],
                "note": prog.note or None,
            }
        )
    return {
        "object": obj,
        "source": f"{name}.c",
        "cpu": cpu,
        "sha256": digest,
        "source_sha256": sha256(SRC_DIR / f"{name}.c"),
        "covers": fixture.covers,
        "expect_load": fixture.refusal is None,
        "refusal": fixture.refusal[0] if fixture.refusal else None,
        "never_load": fixture.never_load,
        "objdump_args": objdump_args(cpu),
        "programs": programs,
        "maps": facts.maps,
        "externs": facts.externs,
        "data_sections": facts.data_sections,
    }


def write_manifest(built: dict[str, tuple[str, Fixture, str]], compiler: str) -> None:
    """Write MANIFEST.json for the objects now in OBJ_DIR."""
    objects = []
    for obj in sorted(built):
        name, fixture, cpu = built[obj]
        path = OBJ_DIR / obj
        objects.append(manifest_entry(obj, name, fixture, cpu, read_elf(path), sha256(path)))
    manifest = {
        "about": "BPF C fixtures built by tools/build_fixtures.py; edit the table there, not this file",
        "compiler": compiler,
        "command": " ".join(compile_command("{source}", "{cpu}", "../obj/{object}"))
        + "  (run in tests/data/c)",
        "headers": {p.name: sha256(p) for p in sorted(SRC_DIR.glob("*.h"))},
        "test_run_convention": "retval 0 = every check passed; otherwise the failing source line",
        "test_run_packets": "socket_filter and cgroup_skb test runs see the packet from the IPv4 header on "
        "(the kernel's test runner pulls the Ethernet header); sched_cls and xdp see the whole frame",
        "objdump": "llvm-objdump (LLVM 14) with each object's objdump_args; LLVM 14 has no BPF_MOD, "
        "BPF_JSET or BPF_ST, so no fixture contains them",
        "packets": {k: v.hex() for k, v in PACKETS.items()},
        "objects": objects,
    }
    MANIFEST.write_text(json.dumps(manifest, indent=1) + "\n")


def cmd_build() -> int:
    compiler = clang_version()
    print(f"building with {compiler}")
    OBJ_DIR.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        built = build_all(Path(tmp))
        for old in OBJ_DIR.glob("*.o"):
            old.unlink()
        for obj in built:
            shutil.copyfile(Path(tmp) / obj, OBJ_DIR / obj)
    write_manifest(built, compiler)
    total = sum((OBJ_DIR / o).stat().st_size for o in built)
    print(f"{len(built)} objects, {total} bytes, manifest {MANIFEST.relative_to(ROOT)}")
    return 0


def cmd_check() -> int:
    compiler = clang_version()
    manifest = json.loads(MANIFEST.read_text())
    if manifest["compiler"] != compiler:
        print(f"note: committed objects were built by {manifest['compiler']}, this is {compiler}")
    with tempfile.TemporaryDirectory() as tmp:
        built = build_all(Path(tmp))
        differ = [
            o
            for o in sorted(built)
            if not (OBJ_DIR / o).exists() or sha256(Path(tmp) / o) != sha256(OBJ_DIR / o)
        ]
    stale = sorted({p.name for p in OBJ_DIR.glob("*.o")} - set(built))
    for o in differ:
        print(f"DIFFERS  {o}")
    for o in stale:
        print(f"STALE    {o} (no source builds it)")
    print(f"{len(built) - len(differ)} identical, {len(differ)} differ, {len(stale)} stale")
    return 1 if differ or stale else 0


# ---------------------------------------------------------------------------------------
# verification against the kernel (root): libbpf loads through bpftool, test runs via bpf(2)

_BPF_OBJ_GET = 7
_BPF_PROG_TEST_RUN = 10
_NR_BPF = {"x86_64": 321, "aarch64": 280}


class _Bpf:
    """The two bpf(2) commands the verifier needs, through libc's syscall()."""

    def __init__(self) -> None:
        self.nr = _NR_BPF[platform.machine()]
        self.libc = ctypes.CDLL(None, use_errno=True)

    def _call(self, cmd: int, attr: bytes) -> int:
        buf = ctypes.create_string_buffer(attr, 128)
        ret = int(self.libc.syscall(self.nr, cmd, buf, 128))
        if ret < 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))
        self.last = buf.raw
        return ret

    def obj_get(self, path: str) -> int:
        cpath = ctypes.create_string_buffer(path.encode())
        return self._call(_BPF_OBJ_GET, struct.pack("=QII", ctypes.addressof(cpath), 0, 0))

    def test_run(self, fd: int, data: bytes | None, ctx: bytes | None) -> int:
        dbuf = ctypes.create_string_buffer(data or b"\0", max(len(data or b""), 1))
        cbuf = ctypes.create_string_buffer(ctx or b"\0", max(len(ctx or b""), 1))
        attr = struct.pack(
            "=IIIIQQIIIIQQIII",
            fd,
            0,
            len(data) if data else 0,
            0,
            ctypes.addressof(dbuf) if data else 0,
            0,
            0,
            0,  # repeat 0 (= once; raw_tp accepts only 0), duration
            len(ctx) if ctx else 0,
            0,
            ctypes.addressof(cbuf) if ctx else 0,
            0,
            0,
            0,
            0,
        )
        self._call(_BPF_PROG_TEST_RUN, attr)
        return int(struct.unpack_from("=I", self.last, 4)[0])


def _remove_pins() -> None:
    for path in glob.glob(str(BPFFS / f"{PIN_PREFIX}*")):
        if os.path.isdir(path):
            shutil.rmtree(path)
        else:
            os.unlink(path)


def cmd_verify() -> int:
    if os.geteuid() != 0:
        print("verify needs root (bpf(2) and bpffs)")
        return 2
    manifest = json.loads(MANIFEST.read_text())
    mounted_here = False
    if not os.path.ismount(BPFFS):
        subprocess.run(["mount", "-t", "bpf", "bpf", str(BPFFS)], check=True)
        mounted_here = True
    bpf = _Bpf()
    failures: list[str] = []
    _remove_pins()
    try:
        for entry in manifest["objects"]:
            obj = entry["object"]
            if entry["never_load"]:
                print(f"SKIP   {obj}: {entry['never_load']}")
                continue
            pin_dir = BPFFS / (PIN_PREFIX + obj.removesuffix(".o").replace(".", "_"))
            fixture = FIXTURES[entry["source"].removesuffix(".c")]
            command = ["bpftool", "prog", "loadall", str(OBJ_DIR / obj), str(pin_dir)]
            if fixture.keep_maps:
                command += ["pinmaps", f"{pin_dir}_maps"]
            proc = subprocess.run(
                command,
                capture_output=True,
                text=True,
            )
            loaded = proc.returncode == 0
            if loaded != entry["expect_load"]:
                failures.append(
                    f"{obj}: expected load={entry['expect_load']}, got {loaded}: {proc.stderr.strip()[-400:]}"
                )
                print(f"FAIL   {obj}: load={loaded}")
                _remove_pins()
                continue
            if not loaded:
                want = fixture.refusal[1] if fixture.refusal else ""
                if want not in proc.stderr:
                    failures.append(f"{obj}: refused, but not with {want!r}: {proc.stderr.strip()[-400:]}")
                    print(f"FAIL   {obj}: refused for another reason")
                else:
                    print(f"OK     {obj}: refused as expected ({want})")
                continue
            results = []
            for prog in entry["programs"]:
                fd = bpf.obj_get(str(pin_dir / prog["name"]))
                try:
                    for run in prog["test_run"]:
                        data = PACKETS[run["data_in"]] if "data_in" in run else None
                        ctx = bytes.fromhex(run["ctx_in_hex"]) if "ctx_in_hex" in run else None
                        got = bpf.test_run(fd, data, ctx)
                        results.append(f"{prog['name']}={got}")
                        if got != run["retval"]:
                            failures.append(f"{obj}: {prog['name']} with {run} returned {got}")
                finally:
                    os.close(fd)
            print(f"OK     {obj}: loaded" + (f"; runs {' '.join(results)}" if results else ""))
            _remove_pins()
    finally:
        _remove_pins()
        if mounted_here:
            subprocess.run(["umount", str(BPFFS)], check=False)
    left = glob.glob(str(BPFFS / f"{PIN_PREFIX}*"))
    if left:
        failures.append(f"pins left behind: {left}")
    for f in failures:
        print("FAILURE", f)
    print(f"{len(manifest['objects'])} objects, {len(failures)} failures")
    return 1 if failures else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--check", action="store_true", help="rebuild and compare with the committed objects")
    group.add_argument("--verify", action="store_true", help="load and test-run every object (root)")
    args = parser.parse_args(argv)
    if args.check:
        return cmd_check()
    if args.verify:
        return cmd_verify()
    return cmd_build()


if __name__ == "__main__":
    sys.exit(main())
