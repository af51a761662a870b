"""BPF iterators in the running kernel: an iter/bpf_map program that writes every map's id."""

from __future__ import annotations

import errno
import os
import struct
from collections.abc import Iterator

import pytest

from bpfkit.errors import KernelError
from bpfkit.kernel import objects
from bpfkit.kernel.attach.iter import attach_iter, iter_target_id
from bpfkit.kernel.attach.tracing import _vmlinux
from bpfkit.kernel.maps import Map
from bpfkit.kernel.programs import Program
from bpfkit.uapi.enums import AttachType, Cmd, LinkType, ProgType

from .conftest import insn  # type: ignore[import-not-found]

pytestmark = pytest.mark.kernel


def map_ids() -> set[int]:
    ids, cur = set(), 0
    while (nxt := objects.next_id(Cmd.MAP_GET_NEXT_ID, cur)) is not None:
        ids.add(nxt)
        cur = nxt
    return ids


def map_id_writer() -> bytes:
    """For each map: bpf_seq_write(ctx->meta->seq, &map->id, 4)."""
    id_off = _vmlinux().find("bpf_map").member("id").byte_offset
    return b"".join([
        insn(0x79, 6, 1, 0),            # r6 = ctx->meta
        insn(0x79, 7, 1, 8),            # r7 = ctx->map
        insn(0x15, 7, off=7),           # if r7 == 0 goto out
        insn(0x61, 2, 7, id_off),       # r2 = map->id
        insn(0x63, 10, 2, -4),          # *(u32 *)(r10 - 4) = r2
        insn(0x79, 1, 6, 0),            # r1 = meta->seq
        insn(0xBF, 2, 10), insn(0x07, 2, imm=-4),  # r2 = r10 - 4
        insn(0xB7, 3, imm=4),           # r3 = 4
        insn(0x85, imm=127),            # call bpf_seq_write
        insn(0xB7, 0, imm=0), insn(0x95),  # out: return 0
    ])


@pytest.fixture
def iter_prog() -> Iterator[Program]:
    try:
        prog = Program.load(map_id_writer(), ProgType.TRACING, expected_attach_type=AttachType.TRACE_ITER,
                            attach_btf_id=iter_target_id("bpf_map"), name="map_ids")
    except KernelError as e:
        if e.errno != errno.EPERM:
            raise
        pytest.skip(f"iterator (TRACING) programs are refused here: {e}")
    with prog:
        yield prog


def test_bpf_map_iterator_lists_map_ids(counts: Map, iter_prog: Program, no_new_links: None) -> None:
    before = map_ids()
    with attach_iter(iter_prog, target="bpf_map") as link:
        out = link.read()
        again = link.read()  # every read runs the iterator afresh
        info = link.info()
    after = map_ids()
    ids = [v for (v,) in struct.iter_unpack("<I", out)]
    assert counts.id in ids
    assert ids == sorted(ids)  # the kernel walks its map idr in id order
    assert before & after <= set(ids)  # every map alive throughout was listed
    assert set(ids) <= before | after | set(struct.unpack(f"<{len(again) // 4}I", again))
    assert info.type == LinkType.ITER and info.target["target_name"] == "bpf_map"


def test_pinned_iterator_reads_like_a_file(counts: Map, iter_prog: Program, no_new_links: None) -> None:
    path = f"/sys/fs/bpf/bpfkit_iter_{os.getpid()}"
    with attach_iter(iter_prog, target="bpf_map") as link:
        link.pin(path)
        try:
            with open(path, "rb") as f:
                data = f.read()
            assert counts.id in [v for (v,) in struct.iter_unpack("<I", data)]
        finally:
            link.unpin()
    assert not os.path.exists(path)
