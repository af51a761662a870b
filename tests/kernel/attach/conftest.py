"""Shared pieces of the attach tests: a counter map and programs that bump one of its slots."""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator

import pytest

from bpfkit.kernel.maps import Map
from bpfkit.kernel.programs import Program
from bpfkit.obj.spec import MapSpec
from bpfkit.uapi.enums import AttachType, MapType, ProgType


def insn(opcode: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    return struct.pack("<BBhi", opcode, src << 4 | dst, off, imm)


def counter_code(map_fd: int, key: int = 0, ret: int = 0) -> bytes:
    """counts[key] += 1 (atomically); return `ret`."""
    return b"".join([
        insn(0x18, 1, 1, imm=map_fd), insn(0),           # r1 = map (lddw, BPF_PSEUDO_MAP_FD)
        insn(0x62, 10, off=-4, imm=key),                 # *(u32 *)(r10 - 4) = key
        insn(0xBF, 2, 10), insn(0x07, 2, imm=-4),        # r2 = r10 - 4
        insn(0x85, imm=1),                               # call bpf_map_lookup_elem
        insn(0x15, 0, off=2),                            # if r0 == 0 goto +2
        insn(0xB7, 1, imm=1),                            # r1 = 1
        insn(0xDB, 0, 1),                                # lock *(u64 *)(r0 + 0) += r1
        insn(0xB7, 0, imm=ret), insn(0x95),              # return ret
    ])


@pytest.fixture
def counts() -> Iterator[Map]:
    """An array of 8 u64 counters."""
    with Map.create(MapSpec(MapType.ARRAY, 4, 8, 8, name="counts"), key=int, value=int) as m:
        yield m


CounterProgram = Callable[..., Program]


@pytest.fixture
def counter_program(counts: Map) -> Iterator[CounterProgram]:
    """Load programs that bump counts[key]: ``counter_program(prog_type, key=0, ret=0, attach=...)``."""
    made: list[Program] = []

    def make(prog_type: ProgType, key: int = 0, ret: int = 0, attach: AttachType | None = None,
             **kw: object) -> Program:
        p = Program.load(counter_code(counts.fileno(), key, ret), prog_type, expected_attach_type=attach,
                         name=f"count{key}", **kw)  # type: ignore[arg-type]
        made.append(p)
        return p

    yield make
    for p in made:
        p.close()


def live_link_ids() -> set[int]:
    """Ids of every BPF link in the system (the oracle for "nothing left attached")."""
    from bpfkit.kernel import objects
    from bpfkit.uapi.enums import Cmd

    ids: set[int] = set()
    cur = 0
    while (nxt := objects.next_id(Cmd.LINK_GET_NEXT_ID, cur)) is not None:
        ids.add(nxt)
        cur = nxt
    return ids


@pytest.fixture
def our_programs(monkeypatch: pytest.MonkeyPatch) -> set[int]:
    """Ids of the programs this test loads (other processes load programs and make links too)."""
    made: set[int] = set()
    original = Program.load

    def load(*args: object, **kwargs: object) -> Program:
        p = original(*args, **kwargs)  # type: ignore[arg-type]
        made.add(p.id)
        return p

    monkeypatch.setattr(Program, "load", load)
    return made


def _link_prog(link_id: int) -> int | None:
    from bpfkit.errors import KernelError
    from bpfkit.kernel.links import Link

    try:
        with Link.from_id(link_id) as link:
            return link.info().prog_id
    except KernelError:
        return None  # gone meanwhile


@pytest.fixture
def no_new_links(our_programs: set[int]) -> Iterator[None]:
    """Fail the test if a BPF link running one of its programs is left (waiting a little: a link freed
    with its last pin or fd may go after an RCU grace period)."""
    import time

    before = live_link_ids()
    yield
    deadline = time.monotonic() + 3
    while True:
        left = {i for i in live_link_ids() - before if _link_prog(i) in our_programs}
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    assert not left, f"links left attached: {sorted(left)}"


def bpftool_link(link_id: int) -> dict[str, object]:
    """bpftool's view of link `link_id` (the oracle for `AttachedLink.info()`); skips without bpftool."""
    import json
    import shutil
    import subprocess

    if shutil.which("bpftool") is None:
        pytest.skip("bpftool is not installed")
    out = subprocess.run(["bpftool", "link", "show", "id", str(link_id), "-j"], check=True,
                         capture_output=True, text=True).stdout
    return dict(json.loads(out))
