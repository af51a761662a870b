"""The running kernel's vmlinux.h from `dump_c`, checked against bpftool, clang and the kernel.

- bpftool 7.1 (`bpftool btf dump file /sys/kernel/btf/vmlinux format c`) is the reference for the set
  of types, their members and the forward declarations, and here even for the order and spelling:
  the two headers differ only where bpftool's gets the layout wrong (enum sizes, va_list).
- clang is the judge of layout: it compiles the header for BPF and the BTF it emits must give every
  struct and union the size, member offsets and bitfields of the kernel's BTF.
- A CO-RE program (task_struct, sk_buff, enum and type relocations) compiles against the header, to
  the same code as against bpftool's, and the kernel loads it (through bpftool, that is libbpf).

Only the load test needs root; the others need /sys/kernel/btf/vmlinux and the tools they name.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
from collections import Counter
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile

from bpfkit.btf import Composite, EnumBase, Spec, load_btf
from bpfkit.btf.cdump import dump_c

VMLINUX = Path("/sys/kernel/btf/vmlinux")
BPFTOOL = shutil.which("bpftool") or ("/usr/sbin/bpftool" if Path("/usr/sbin/bpftool").exists() else None)
CLANG = shutil.which("clang") or ("/usr/bin/clang" if Path("/usr/bin/clang").exists() else None)

needs_btf = pytest.mark.skipif(not os.access(VMLINUX, os.R_OK), reason=f"no readable {VMLINUX}")
needs_bpftool = pytest.mark.skipif(BPFTOOL is None, reason="bpftool is not installed")
needs_clang = pytest.mark.skipif(CLANG is None, reason="clang is not installed")

# Where our header differs from bpftool 7.1's on purpose (bpftool's line -> ours): enums whose size is
# not int's get a mode attribute, and va_list is spelled as the BTF describes it (x86-64's
# `struct __va_list_tag [1]`), not as the BPF target's 8-byte builtin.
ENUM_MODE = re.compile(r"^\} __attribute__\(\(mode\((byte|HI|SI|word)\)\)\);$")
LAYOUT_FIXES = {"typedef __builtin_va_list va_list;": "typedef struct __va_list_tag va_list[1];"}

PROGRAM = r"""
#include "vmlinux.h"

#define SEC(name) __attribute__((section(name), used))
/* helper ids: the order of __BPF_FUNC_MAPPER in include/uapi/linux/bpf.h */
static long (*bpf_probe_read_kernel)(void *dst, __u32 size, const void *src) = (void *)113;
static __u64 (*bpf_get_current_task)(void) = (void *)35;
#define CORE_READ(dst, src) \
	bpf_probe_read_kernel(&(dst), sizeof(dst), __builtin_preserve_access_index(&(src)))

SEC("raw_tp/sys_enter")
int task_fields(struct bpf_raw_tracepoint_args *ctx)
{
	struct task_struct *task = (void *)bpf_get_current_task();
	int pid = 0;
	u64 vruntime = 0;
	char comm[16];

	CORE_READ(pid, task->pid);
	CORE_READ(vruntime, task->se.vruntime);
	CORE_READ(comm, task->comm);
	if (!__builtin_preserve_field_info(task->pid, 2))	/* BPF_FIELD_EXISTS */
		return 1;
	return pid + comm[0] + (int)vruntime +
		__builtin_preserve_enum_value(*(typeof(enum bpf_map_type) *)BPF_MAP_TYPE_HASH, 1);
}

SEC("raw_tp/netif_receive_skb")
int skb_fields(struct bpf_raw_tracepoint_args *ctx)
{
	struct sk_buff *skb = (struct sk_buff *)ctx->args[0];
	unsigned int len = 0;
	__u16 protocol = 0;

	CORE_READ(len, skb->len);
	CORE_READ(protocol, skb->protocol);
	return len + protocol + __builtin_preserve_type_info(*(struct sk_buff *)0, 1);	/* BPF_TYPE_SIZE */
}

char _license[] SEC("license") = "GPL";
"""


@pytest.fixture(scope="module")
def spec() -> Spec:
    if not os.access(VMLINUX, os.R_OK):
        pytest.skip(f"no readable {VMLINUX}")
    return load_btf(VMLINUX)


@pytest.fixture(scope="module")
def ours(spec: Spec) -> str:
    return dump_c(spec)


@pytest.fixture(scope="module")
def theirs() -> str:
    if BPFTOOL is None:
        pytest.skip("bpftool is not installed")
    if not os.access(VMLINUX, os.R_OK):
        pytest.skip(f"no readable {VMLINUX}")
    run = subprocess.run([BPFTOOL, "btf", "dump", "file", str(VMLINUX), "format", "c"],
                         capture_output=True, text=True, check=True)
    return run.stdout


def _as_bpftool_writes_it(header: str) -> str:
    """`header` with our layout fixes turned back into bpftool 7.1's spelling."""
    lines = []
    for line in header.split("\n"):
        if ENUM_MODE.match(line):
            line = "};"
        for theirs, ours in LAYOUT_FIXES.items():
            if line == ours:
                line = theirs
        lines.append(line)
    return "\n".join(lines)


Key = tuple[str, str, str]


def _definitions(header: str) -> dict[Key, list[str]]:
    """Top-level blocks keyed by (first line, first member, last line), e.g. ('struct list_head {',
    '\tstruct list_head *next;', '};') or ('typedef struct {', '\tint counter;', '} atomic_t;'), with
    the lines between (members, enumerators, padding)."""
    body = header.split("#endif\n\n", 1)[1].rsplit("#ifndef BPF_NO_PRESERVE_ACCESS_INDEX", 1)[0]
    defs: dict[Key, list[str]] = {}
    for block in body.strip("\n").split("\n\n"):
        lines = block.split("\n")
        key = (lines[0], lines[1] if len(lines) > 2 else "", lines[-1])
        assert key not in defs, f"defined twice: {key}"
        defs[key] = lines[1:-1]
    return defs


def _kinds(defs: dict[Key, list[str]]) -> dict[str, int]:
    """How many struct/union/enum definitions and forward declarations, and typedefs."""
    counts: dict[str, int] = {}
    for first, _member, _last in defs:
        m = re.match(r"(struct|union|enum|typedef)\b.*?(;|\{)$", first)
        if m is None:
            kind = "other"
        elif m.group(1) == "typedef":
            kind = "typedef"
        else:
            kind = f"{m.group(1)} {'forward' if m.group(2) == ';' else 'definition'}"
        counts[kind] = counts.get(kind, 0) + 1
    return counts


@needs_btf
@needs_bpftool
def test_same_types_members_and_forward_declarations_as_bpftool(ours: str, theirs: str) -> None:
    mine = _definitions(_as_bpftool_writes_it(ours))
    ref = _definitions(theirs)
    assert set(mine) - set(ref) == set(), "types only in ours"
    assert set(ref) - set(mine) == set(), "types only in bpftool's"
    differing = [key for key in ref if mine[key] != ref[key]]
    assert differing == [], "member lists differ"
    assert _kinds(mine) == _kinds(ref)
    assert _kinds(ref)["struct definition"] > 5000  # the parse found the header's types


@needs_btf
@needs_bpftool
def test_same_text_as_bpftool_but_for_layout_fixes(ours: str, theirs: str) -> None:
    assert _as_bpftool_writes_it(ours) == theirs
    fixes = [line for line in ours.split("\n") if ENUM_MODE.match(line) or line in LAYOUT_FIXES.values()]
    assert len(ours.split("\n")) == len(theirs.split("\n"))
    assert len(fixes) < 100


def _compile(src_dir: Path, header: str, *extra: str) -> Path:
    assert CLANG is not None
    (src_dir / "vmlinux.h").write_text(header)
    (src_dir / "prog.c").write_text(PROGRAM)
    obj = src_dir / "prog.o"
    run = subprocess.run([CLANG, "-target", "bpf", "-O2", "-g", *extra, "-c", "prog.c", "-o", "prog.o"],
                         cwd=src_dir, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    return obj


def _sections(obj: Path) -> dict[str, bytes]:
    elf = ELFFile(io.BytesIO(obj.read_bytes()))
    return {s.name: bytes(s.data()) for s in elf.iter_sections()
            if not s.name.startswith((".debug", ".rel.debug"))}


@needs_btf
@needs_clang
def test_clang_compiles_a_core_program_against_it(ours: str, tmp_path: Path) -> None:
    sections = _sections(_compile(tmp_path, ours, "-Wall", "-Werror"))
    assert sections["raw_tp/sys_enter"] and sections["raw_tp/netif_receive_skb"]
    assert ".BTF.ext" in sections  # where the CO-RE relocations are


@needs_btf
@needs_clang
@needs_bpftool
def test_same_object_as_with_bpftools_header(ours: str, theirs: str, tmp_path: Path) -> None:
    mine = _sections(_compile(tmp_path, ours))
    ref = _sections(_compile(tmp_path, theirs))  # same directory and file names: same debug strings
    assert mine.keys() == ref.keys()
    for name in ("raw_tp/sys_enter", "raw_tp/netif_receive_skb", ".BTF", ".BTF.ext", ".rel.BTF.ext"):
        assert mine[name] == ref[name], name


def _layouts(spec: Spec) -> dict[tuple[str, str], tuple[int, list[tuple[str, int, int]]]]:
    seen: dict[tuple[str, str], list[Composite]] = {}
    for t in spec.types():
        if isinstance(t, Composite) and t.name:
            seen.setdefault((type(t).__name__, t.name), []).append(t)
    return {key: (ts[0].size, [(m.name, m.bit_offset, m.bitfield_size) for m in ts[0].members])
            for key, ts in seen.items() if len(ts) == 1}


@needs_btf
@needs_clang
@pytest.mark.slow
def test_clang_lays_out_every_struct_as_the_kernel_btf_says(spec: Spec, ours: str, tmp_path: Path) -> None:
    """A global of every struct and union makes clang emit its BTF: sizes, member offsets and bitfield
    sizes must be the kernel's, for all of them (bpftool 7.1's header gets ~36 of them wrong)."""
    assert CLANG is not None
    (tmp_path / "vmlinux.h").write_text(ours)
    defined = re.findall(r"^(struct|union) (\w+) \{", ours, re.M)
    uses = "\n".join(f"{kind} {name} __use{i};" for i, (kind, name) in enumerate(defined))
    (tmp_path / "all.c").write_text(f'#include "vmlinux.h"\n{uses}\n')
    run = subprocess.run([CLANG, "-target", "bpf", "-g", "-c", "all.c", "-o", "all.o"], cwd=tmp_path,
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-3000:]
    section = ELFFile(io.BytesIO((tmp_path / "all.o").read_bytes())).get_section_by_name(".BTF")
    got = _layouts(load_btf(bytes(section.data())))
    want = _layouts(spec)
    tags = Counter(t.name for t in spec.types() if isinstance(t, (Composite, EnumBase)) and t.name)
    checked = [key for key in want if tags[key[1]] == 1]  # not renamed ___N
    wrong = [key for key in checked if got.get(key) != want[key]]
    assert len(checked) > 5000
    assert wrong == []


@needs_btf
@needs_clang
@needs_bpftool
@pytest.mark.kernel
def test_the_kernel_loads_a_core_program_built_against_it(ours: str, tmp_path: Path) -> None:
    assert BPFTOOL is not None
    obj = _compile(tmp_path, ours)
    pin_dir = Path(f"/sys/fs/bpf/bpfkit_vmlinux_h_{os.getpid()}")
    try:
        run = subprocess.run([BPFTOOL, "prog", "loadall", str(obj), str(pin_dir)], capture_output=True,
                             text=True)
        assert run.returncode == 0, run.stderr[-3000:]
        assert sorted(p.name for p in pin_dir.iterdir()) == ["skb_fields", "task_fields"]
    finally:
        if pin_dir.exists():
            for pin in pin_dir.iterdir():
                pin.unlink()
            pin_dir.rmdir()


@needs_btf
@pytest.mark.kernel
def test_dump_by_id_reads_the_kernel_btf_object(ours: str, capsys: pytest.CaptureFixture[str]) -> None:
    from bpfkit.cli.btf_cmds import kernel_btf_bytes
    from bpfkit.cli.main import main
    from bpfkit.kernel.objects import next_id
    from bpfkit.uapi.enums import Cmd

    btf_id = next_id(Cmd.BTF_GET_NEXT_ID)
    while btf_id is not None:
        data, name, kernel = kernel_btf_bytes(btf_id)
        if name == "vmlinux":
            assert kernel and data == VMLINUX.read_bytes()
            break
        btf_id = next_id(Cmd.BTF_GET_NEXT_ID, btf_id)
    assert btf_id is not None, "no BTF object named vmlinux"
    assert main(["btf", "dump", "id", str(btf_id), "format", "c"]) == 0
    assert capsys.readouterr().out == ours
    assert main(["btf", "dump", "id", "999999999"]) == 1
    assert "BTF_GET_FD_BY_ID" in capsys.readouterr().err


@needs_btf
@needs_bpftool
def test_raw_json_matches_bpftool(capsys: pytest.CaptureFixture[str]) -> None:
    """`-j btf dump file vmlinux` gives bpftool's JSON, but for bpftool 7.1's sign-extension of unsigned
    32-bit enum values of 2**31 and up (4294967295 printed as 18446744073709551615)."""
    import json

    from bpfkit.cli.main import main

    assert BPFTOOL is not None
    assert main(["btf", "dump", "file", str(VMLINUX), "-j"]) == 0
    ours = json.loads(capsys.readouterr().out)["types"]
    theirs = json.loads(subprocess.run([BPFTOOL, "-j", "btf", "dump", "file", str(VMLINUX)],
                                       capture_output=True, text=True, check=True).stdout)["types"]
    assert len(ours) == len(theirs) > 100000
    for t in theirs:
        if t["kind"] == "ENUM" and t["encoding"] == "UNSIGNED":
            for v in t["values"]:
                if v["val"] >= 1 << 32:
                    v["val"] -= (1 << 64) - (1 << 32)
    assert [a for a, b in zip(ours, theirs, strict=True) if a != b] == []
