"""The VM's maps and helpers against the kernel's: the same operation sequences on a kernel map
(`bpfkit.kernel.maps.Map`) and on a VM map must give the same values and errnos, and the same programs
(map lookups, packet rewrites with checksum fix-ups) must give the same r0 and packet in both test runs."""

# Every program here is loaded in the kernel first (the oracle), then in the VM, verified by bpfkit's
# verifier too: the two verifiers must both accept it.

from __future__ import annotations

import errno
import struct
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import Any

import pytest

from bpfkit.errors import BpfkitError, KernelError
from bpfkit.isa import Builder, Instruction
from bpfkit.kernel.maps import Map
from bpfkit.kernel.programs import Program
from bpfkit.obj.spec import MapSpec
from bpfkit.uapi.enums import Helper, MapFlags, MapType, ProgType, UpdateFlags
from bpfkit.uapi.insn import PseudoSrc, Reg
from bpfkit.vm import ENGINES, Vm, VmMap

pytestmark = pytest.mark.kernel
R = Reg
U32 = 0xFFFFFFFF

Result = tuple[str, Any]
"""("ok", value bytes or None) or ("err", errno name)."""


# -- the two faces --------------------------------------------------------------------------------
def _kernel(op: Callable[[], Any]) -> Result:
    try:
        return ("ok", op())
    except KeyError:
        return ("err", "ENOENT")
    except KernelError as e:
        return ("err", errno.errorcode[e.errno or 0])


def _vm_rc(rc: int) -> Result:
    return ("ok", None) if rc >= 0 else ("err", errno.errorcode[-rc])


class KernelFace:
    def __init__(self, m: Map) -> None:
        self.m = m

    def update(self, key: bytes, value: Any, flags: int) -> Result:
        return _kernel(lambda: self.m.update(key, value, flags))

    def lookup(self, key: bytes) -> Result:
        return _kernel(lambda: bytes(self.m.lookup(key)))

    def delete(self, key: bytes) -> Result:
        return _kernel(lambda: self.m.delete(key))

    def keys(self) -> set[bytes]:
        return {bytes(k) for k in self.m.keys()}


class VmFace:
    def __init__(self, m: VmMap) -> None:
        self.m = m

    def update(self, key: bytes, value: Any, flags: int) -> Result:
        return _vm_rc(self.m.bpf_update_bytes(key, value, flags, user=True))

    def lookup(self, key: bytes) -> Result:
        value = self.m.lookup(key)
        return ("err", "ENOENT") if value is None else ("ok", bytes(value))

    def delete(self, key: bytes) -> Result:
        return _vm_rc(self.m.bpf_delete(key))

    def keys(self) -> set[bytes]:
        return set(self.m.keys())


Op = tuple[str, bytes, Any, int]


def _replay(face: Any, ops: list[Op]) -> list[Result]:
    out: list[Result] = []
    for name, key, value, flags in ops:
        if name == "update":
            out.append(face.update(key, value, flags))
        elif name == "lookup":
            out.append(face.lookup(key))
        else:
            out.append(face.delete(key))
    return out


@pytest.fixture
def pair() -> Iterator[Callable[[MapSpec], tuple[Map, VmMap]]]:
    with ExitStack() as stack:
        vm = Vm()

        def make(spec: MapSpec) -> tuple[Map, VmMap]:
            return stack.enter_context(Map.create(spec)), vm.create_map(spec)

        yield make


def lpm(prefixlen: int, *octets: int) -> bytes:
    return struct.pack("<I", prefixlen) + bytes(octets).ljust(4, b"\0")


LPM_SPEC = MapSpec(MapType.LPM_TRIE, 8, 8, 4, MapFlags.NO_PREALLOC, name="lpm")


def test_lpm_trie_sequence(pair: Callable[[MapSpec], tuple[Map, VmMap]]) -> None:
    k, v = pair(LPM_SPEC)
    val = [i.to_bytes(8, "little") for i in range(10)]
    ops: list[Op] = [
        ("update", lpm(8, 10), val[1], 0), ("update", lpm(16, 10, 1), val[2], 0),
        ("update", lpm(24, 10, 1, 2), val[3], UpdateFlags.NOEXIST),
        ("update", lpm(24, 10, 1, 2, 99), val[4], UpdateFlags.NOEXIST),  # same prefix: EEXIST
        ("update", lpm(32, 10, 1, 3, 4), val[5], UpdateFlags.EXIST),  # absent: ENOENT
        ("update", lpm(33, 10), val[5], 0),  # prefixlen past 32: EINVAL
        ("update", lpm(8, 10), val[6], 3),  # NOEXIST|EXIST: EINVAL
        ("update", lpm(8, 10), val[6], UpdateFlags.F_LOCK),
        ("lookup", lpm(32, 10, 1, 2, 3), None, 0), ("lookup", lpm(32, 10, 1, 9, 9), None, 0),
        ("lookup", lpm(32, 10, 9, 9, 9), None, 0), ("lookup", lpm(32, 11, 1, 2, 3), None, 0),
        ("lookup", lpm(16, 10, 1, 2, 3), None, 0), ("lookup", lpm(7, 10), None, 0),
        ("update", lpm(0), val[7], 0),  # a default route
        ("update", lpm(32, 1, 2, 3, 4), val[8], 0),  # a fifth element: ENOSPC
        ("lookup", lpm(32, 11, 1, 2, 3), None, 0), ("lookup", lpm(32, 10, 1, 2, 3), None, 0),
        ("update", lpm(24, 10, 1, 2), val[9], UpdateFlags.EXIST),
        ("lookup", lpm(32, 10, 1, 2, 3), None, 0),
        ("delete", lpm(16, 10, 1, 77), None, 0),  # bits past the prefix do not matter
        ("delete", lpm(16, 10, 1), None, 0), ("delete", lpm(12, 10), None, 0),
        ("delete", lpm(40, 10), None, 0), ("lookup", lpm(32, 10, 1, 9, 9), None, 0),
    ]
    kernel, vm = _replay(KernelFace(k), ops), _replay(VmFace(v), ops)
    assert vm == kernel
    assert ("err", "ENOSPC") in kernel and ("err", "EEXIST") in kernel  # the sequence reaches them
    assert VmFace(v).keys() == KernelFace(k).keys()


def test_lpm_trie_create_checks() -> None:
    for spec in (MapSpec(MapType.LPM_TRIE, 8, 8, 4, name="prealloc"),  # no BPF_F_NO_PREALLOC
                 MapSpec(MapType.LPM_TRIE, 4, 8, 4, MapFlags.NO_PREALLOC, name="nodata"),
                 MapSpec(MapType.LPM_TRIE, 4 + 257, 8, 4, MapFlags.NO_PREALLOC, name="huge")):
        with pytest.raises(KernelError) as info:
            Map.create(spec).close()
        assert info.value.errno == errno.EINVAL
        with pytest.raises(BpfkitError):
            Vm().create_map(spec)


@pytest.mark.parametrize("outer_type", [MapType.ARRAY_OF_MAPS, MapType.HASH_OF_MAPS])
def test_map_of_maps_sequence(outer_type: MapType,
                              pair: Callable[[MapSpec], tuple[Map, VmMap]]) -> None:
    inner_spec = MapSpec(MapType.ARRAY, 4, 8, 2, name="inner")
    ko, vo = pair(MapSpec(outer_type, 4, 4, 2, name="outer", inner_map=inner_spec))
    k_in = [pair(inner_spec) for _ in range(3)]
    k_bad = pair(MapSpec(MapType.ARRAY, 4, 8, 3, name="bigger"))  # max_entries differs: EINVAL
    k_hash = pair(MapSpec(MapType.HASH, 4, 8, 2, name="hash"))  # type differs: EINVAL
    key = [i.to_bytes(4, "little") for i in range(4)]

    def run(face: Any, which: int) -> list[Result]:
        inner = [p[which] for p in k_in]
        out = [face.update(key[0], inner[0], 0), face.update(key[1], inner[1], UpdateFlags.NOEXIST),
               face.update(key[0], k_bad[which], 0), face.update(key[0], k_hash[which], 0),
               face.update(key[2], inner[2], 0),  # array: E2BIG past the end; hash: E2BIG when full
               face.update(key[0], inner[2], UpdateFlags.EXIST),
               face.update(key[3], inner[2], UpdateFlags.EXIST)]
        out.append(("ok", None) if face.lookup(key[0])[0] == "ok" else face.lookup(key[0]))
        out += [face.lookup(key[3]) if outer_type is MapType.HASH_OF_MAPS else ("-", None),
                face.delete(key[1]), face.delete(key[1]), face.delete(key[3])]
        return out

    kernel, vm = run(KernelFace(ko), 0), run(VmFace(vo), 1)
    assert vm == kernel
    assert ("err", "EINVAL") in kernel


def test_map_of_maps_lookup_in_programs() -> None:
    """outer[1] -> inner; inner[0] -> value: a program doing the nested lookup returns the value."""
    inner_spec = MapSpec(MapType.ARRAY, 4, 8, 2, name="inner")
    outer_spec = MapSpec(MapType.HASH_OF_MAPS, 4, 4, 4, name="outer", inner_map=inner_spec)

    def prog(outer_fd: int, key: int) -> list[Instruction]:
        b = Builder()
        b.st(4, R.R10, -4, key).ld_imm64(R.R1, outer_fd, PseudoSrc.MAP_FD).mov(R.R2, R.R10).add(R.R2, -4)
        b.call(Helper.MAP_LOOKUP_ELEM).jmp("jeq", R.R0, 0, "miss_outer")
        b.st(4, R.R10, -8, 0).mov(R.R1, R.R0).mov(R.R2, R.R10).add(R.R2, -8)
        b.call(Helper.MAP_LOOKUP_ELEM).jmp("jeq", R.R0, 0, "miss_inner")
        b.ldx(8, R.R0, R.R0, 0).exit()
        b.label("miss_outer").mov(R.R0, 1000).exit().label("miss_inner").mov(R.R0, 2000).exit()
        return b.build()

    vm = Vm()
    with Map.create(outer_spec) as ko, Map.create(inner_spec) as ki:
        vo, vi = vm.create_map(outer_spec), vm.create_map(inner_spec)
        for m in (ki, vi):
            m.update((0).to_bytes(4, "little"), (4242).to_bytes(8, "little"))
        ko.update((1).to_bytes(4, "little"), ki)
        vo.update((1).to_bytes(4, "little"), vi)
        for key in (1, 2):
            with Program.load(prog(ko.fileno(), key), ProgType.SOCKET_FILTER) as p:
                expected = p.test_run(bytes(64)).retval
            for engine in ("fast", "interp"):
                got = vm.load(prog(vo.fd, key), prog_type=ProgType.SOCKET_FILTER).test_run(
                    bytes(64), engine=engine).retval
                assert got & U32 == expected, (key, engine)
        assert expected == 1000


def test_lpm_lookup_in_programs() -> None:
    vm = Vm()
    with Map.create(LPM_SPEC) as k:
        _lpm_lookups(vm, k, vm.create_map(LPM_SPEC))


def _lpm_lookups(vm: Vm, k: Map, v: VmMap) -> None:
    for m in (k, v):
        m.update(lpm(8, 10), (8).to_bytes(8, "little"))
        m.update(lpm(24, 10, 1, 2), (24).to_bytes(8, "little"))

    def prog(fd: int, addr: bytes) -> list[Instruction]:
        b = Builder()
        b.st(4, R.R10, -8, 32).st(4, R.R10, -4, int.from_bytes(addr, "little", signed=True))
        b.ld_imm64(R.R1, fd, PseudoSrc.MAP_FD).mov(R.R2, R.R10).add(R.R2, -8)
        b.call(Helper.MAP_LOOKUP_ELEM).jmp("jeq", R.R0, 0, "miss").ldx(8, R.R0, R.R0, 0).exit()
        b.label("miss").mov(R.R0, 99).exit()
        return b.build()

    seen = []
    for addr in (bytes([10, 1, 2, 3]), bytes([10, 7, 7, 7]), bytes([11, 1, 2, 3])):
        with Program.load(prog(k.fileno(), addr), ProgType.SOCKET_FILTER) as p:
            expected = p.test_run(bytes(64)).retval
        got = vm.load(prog(v.fd, addr), prog_type=ProgType.SOCKET_FILTER).test_run(bytes(64))
        assert got.retval & U32 == expected
        seen.append(expected)
    assert seen == [24, 8, 99]


def test_hash_and_array_flags(pair: Callable[[MapSpec], tuple[Map, VmMap]]) -> None:
    key = [i.to_bytes(4, "little") for i in range(4)]
    v8 = (7).to_bytes(8, "little")
    for spec in (MapSpec(MapType.HASH, 4, 8, 2, name="h"), MapSpec(MapType.ARRAY, 4, 8, 2, name="a"),
                 MapSpec(MapType.LRU_HASH, 4, 8, 2, name="lru")):
        k, v = pair(spec)
        ops: list[Op] = [
            ("update", key[0], v8, UpdateFlags.EXIST), ("update", key[0], v8, UpdateFlags.NOEXIST),
            ("update", key[0], v8, UpdateFlags.NOEXIST), ("update", key[1], v8, 0),
            ("update", key[2], v8, 0), ("update", key[1], v8, 3), ("update", key[1], v8, 8),
            ("lookup", key[2], None, 0), ("lookup", key[0], None, 0), ("delete", key[1], None, 0),
            ("delete", key[1], None, 0), ("delete", key[3], None, 0)]
        assert _replay(VmFace(v), ops) == _replay(KernelFace(k), ops), spec.type.name


def test_bloom_filter(pair: Callable[[MapSpec], tuple[Map, VmMap]]) -> None:
    k, v = pair(MapSpec(MapType.BLOOM_FILTER, 0, 8, 16, name="bloom"))
    values = [i.to_bytes(8, "little") for i in (1, 2, 3)]
    for value in values[:2]:
        k.push(value)
        v.update(b"", value)
    with pytest.raises(KernelError) as info:
        k.push(values[2], UpdateFlags.NOEXIST)
    assert -v.push(values[2], UpdateFlags.NOEXIST) == info.value.errno == errno.EINVAL  # type: ignore[attr-defined]
    assert [k.peek_value(x) for x in values] == [v.peek_value(x) for x in values] == [True, True, False]  # type: ignore[attr-defined]


def test_stack_trace_create_checks() -> None:
    for spec, ok in ((MapSpec(MapType.STACK_TRACE, 4, 8 * 127, 8, name="st"), True),
                     (MapSpec(MapType.STACK_TRACE, 4, 12, 8, name="odd"), False),
                     (MapSpec(MapType.STACK_TRACE, 8, 64, 8, name="key8"), False)):
        if ok:
            Map.create(spec).close()
            Vm().create_map(spec)
            continue
        with pytest.raises(KernelError):
            Map.create(spec).close()
        with pytest.raises(BpfkitError):
            Vm().create_map(spec)


@pytest.mark.parametrize("map_type", [MapType.ARRAY, MapType.PERCPU_ARRAY])
@pytest.mark.parametrize(("key_size", "value_size", "max_entries"), [
    (4, 8, 1), (4, 0, 1), (4, 8, 0), (8, 8, 1), (0, 8, 1),
    (4, 32761, 1), (4, 32768, 1), (4, 32769, 1), (4, 1 << 31, 1)])
def test_array_create_checks(map_type: MapType, key_size: int, value_size: int, max_entries: int) -> None:
    """array_map_alloc_check: both accept, or both refuse (with the kernel's errno in the VM's message).
    value_size 1 << 31 is refused (E2BIG) before anything is allocated, in both."""
    spec = MapSpec(map_type, key_size, value_size, max_entries, name="a")
    try:
        Map.create(spec).close()
        kernel: str | None = None
    except KernelError as e:
        kernel = errno.errorcode[e.errno or 0]
    if kernel is None:
        Vm().create_map(spec)
        return
    with pytest.raises(BpfkitError, match=kernel):
        Vm().create_map(spec)


# -- checksum helpers -----------------------------------------------------------------------------
def _ipv4_udp() -> bytes:
    payload = b"hello, checksum!"
    ip = bytearray(struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + 8 + len(payload), 0x1234, 0, 64, 17, 0,
                               bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2])))
    s = sum(struct.unpack("!10H", ip))
    s = (s & 0xFFFF) + (s >> 16)
    ip[10:12] = struct.pack("!H", ~((s & 0xFFFF) + (s >> 16)) & 0xFFFF)
    udp = struct.pack("!HHHH", 1234, 53, 8 + len(payload), 0xBEEF)  # arbitrary (non-zero) checksum
    return b"\x02" * 6 + b"\x04" * 6 + b"\x08\x00" + bytes(ip) + udp + payload


NEW_DADDR = bytes([192, 168, 7, 9])


def _rewrite(l4_flags: int, ttl_by_diff: bool) -> list[Instruction]:
    """Rewrite the destination address with skb_store_bytes and fix both checksums; with
    `ttl_by_diff`, also set TTL/protocol's word and fix the IP checksum from bpf_csum_diff."""
    b = Builder()
    b.mov(R.R6, R.R1)
    b.mov(R.R1, R.R6).mov(R.R2, 30).mov(R.R3, R.R10).add(R.R3, -8).mov(R.R4, 4)
    b.call(Helper.SKB_LOAD_BYTES)  # old daddr at fp-8
    b.st(4, R.R10, -4, int.from_bytes(NEW_DADDR, "little", signed=True))
    b.mov(R.R1, R.R6).mov(R.R2, 30).mov(R.R3, R.R10).add(R.R3, -4).mov(R.R4, 4).mov(R.R5, 0)
    b.call(Helper.SKB_STORE_BYTES).mov(R.R7, R.R0)
    b.ldx(4, R.R8, R.R10, -8).ldx(4, R.R9, R.R10, -4)
    b.mov(R.R1, R.R6).mov(R.R2, 24).mov(R.R3, R.R8).mov(R.R4, R.R9).mov(R.R5, 4)
    b.call(Helper.L3_CSUM_REPLACE).add(R.R7, R.R0)
    b.mov(R.R1, R.R6).mov(R.R2, 40).mov(R.R3, R.R8).mov(R.R4, R.R9).mov(R.R5, l4_flags | 4)
    b.call(Helper.L4_CSUM_REPLACE).add(R.R7, R.R0)
    if ttl_by_diff:
        b.mov(R.R1, R.R6).mov(R.R2, 22).mov(R.R3, R.R10).add(R.R3, -16).mov(R.R4, 2)
        b.call(Helper.SKB_LOAD_BYTES).add(R.R7, R.R0)  # TTL and protocol at fp-16
        b.st(2, R.R10, -14, 0).ldx(4, R.R1, R.R10, -16).stx(4, R.R10, -20, R.R1).st(1, R.R10, -20, 3)
        b.mov(R.R1, R.R10).add(R.R1, -16).mov(R.R2, 4).mov(R.R3, R.R10).add(R.R3, -20).mov(R.R4, 4)
        b.mov(R.R5, 0).call(Helper.CSUM_DIFF).mov(R.R9, R.R0)
        b.mov(R.R1, R.R6).mov(R.R2, 22).mov(R.R3, R.R10).add(R.R3, -20).mov(R.R4, 1).mov(R.R5, 0)
        b.call(Helper.SKB_STORE_BYTES).add(R.R7, R.R0)  # TTL = 3
        b.mov(R.R1, R.R6).mov(R.R2, 24).mov(R.R3, 0).mov(R.R4, R.R9).mov(R.R5, 0)
        b.call(Helper.L3_CSUM_REPLACE).add(R.R7, R.R0)
        b.jmp("jne", R.R7, 0, "fail").mov(R.R0, R.R9).exit().label("fail")
    b.mov(R.R0, R.R7).exit()
    return b.build()


def _both(insns: list[Instruction], data: bytes) -> tuple[tuple[int, bytes], list[tuple[int, bytes]]]:
    with Program.load(insns, ProgType.SCHED_CLS) as p:
        r = p.test_run(data)
        kernel = (r.retval, r.data_out)
    vm = Vm()
    prog = vm.load(insns, prog_type=ProgType.SCHED_CLS)
    got = []
    for engine in ENGINES:
        out = prog.test_run(data, engine=engine)
        got.append((out.retval & U32, out.data_out))
    return kernel, got


@pytest.mark.parametrize("l4_flags", [0, 0x10, 0x30])
def test_rewrite_address_and_checksums(l4_flags: int) -> None:
    data = _ipv4_udp()
    kernel, vm = _both(_rewrite(l4_flags, ttl_by_diff=False), data)
    assert kernel[0] == 0 and kernel[1] != data and kernel[1][30:34] == NEW_DADDR
    assert all(got == kernel for got in vm)


def _ip_checksum_ok(frame: bytes) -> bool:
    words = struct.unpack("!10H", frame[14:34])
    s = sum(words)
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return bool(s == 0xFFFF)


def test_csum_diff_fixes_the_ip_checksum() -> None:
    data = _ipv4_udp()
    kernel, vm = _both(_rewrite(0x10, ttl_by_diff=True), data)
    assert kernel[1][22] == 3 and _ip_checksum_ok(kernel[1])
    assert all(got == kernel for got in vm)


@pytest.mark.parametrize(("offset", "old", "new", "flags"), [
    (25, 0, 0, 2), (24, 0, 0, 0x100), (24, 0, 0, 3), (24, 1, 5, 0), (24, 0x1234, 0x4321, 2),
    (0x10000, 0, 0, 2), (200, 0, 0, 2), (42, 0, 0x1234, 0x12), (40, 0, 0x1234, 0x32), (40, 1, 2, 0x80 | 4),
])
def test_csum_replace_errnos(offset: int, old: int, new: int, flags: int) -> None:
    """Each helper's return value and packet for bad offsets, sizes and flags."""
    data = _ipv4_udp()
    for helper in (Helper.L3_CSUM_REPLACE, Helper.L4_CSUM_REPLACE):
        b = Builder().mov(R.R2, offset).mov(R.R3, old).mov(R.R4, new).mov(R.R5, flags).call(helper).exit()
        kernel, vm = _both(b.build(), data)
        assert all(got == kernel for got in vm), (helper.name, kernel, vm)


@pytest.mark.parametrize(("from_size", "to_size", "seed"), [(4, 4, 0), (0, 8, 0), (8, 0, 0), (0, 0, 77),
                                                            (4, 8, 0x12345678), (3, 4, 0), (4, 1, 9),
                                                            (16, 16, U32), (2, 6, 1)])
def test_csum_diff_values(from_size: int, to_size: int, seed: int) -> None:
    b = Builder()
    for off in range(8, 41, 8):
        b.ld_imm64(R.R1, 0x0123456789ABCDEF * off & (1 << 64) - 1).stx(8, R.R10, -off, R.R1)
    b.mov(R.R1, R.R10).add(R.R1, -40).mov(R.R2, min(from_size, 16)).mov(R.R3, R.R10).add(R.R3, -16)
    b.mov(R.R4, to_size).mov(R.R5, seed).call(Helper.CSUM_DIFF).exit()
    kernel, vm = _both(b.build(), _ipv4_udp())
    assert all(got == kernel for got in vm), (kernel, vm)


# -- formatted output -----------------------------------------------------------------------------
FORMATS = [
    (b"%d|%5u|%-4x|%08llx|%%", [U32, 42, 0xAB, 0x1234]),
    (b"%ld %lld %lu %i %X", [1 << 63, (1 << 64) - 5, 7, 0x80000000, 0xBEEF]),
    (b"[%c%c] %llu", [ord("o"), ord("k"), 1 << 40]),
    (b"a rather long format that will not fit %d", [12345]),
]


@pytest.mark.parametrize(("fmt", "args"), FORMATS)
@pytest.mark.parametrize("out_size", [32, 5])
def test_snprintf_like_the_kernel(fmt: bytes, args: list[int], out_size: int) -> None:
    """bpf_snprintf's text (exported into the packet) and its return value."""
    spec = MapSpec(MapType.ARRAY, 4, 64, 1, MapFlags.RDONLY_PROG, name="fmt",
                   contents=((bytes(4), fmt.ljust(64, b"\0")),), freeze=True)

    def prog(fd: int) -> list[Instruction]:
        b = Builder().mov(R.R6, R.R1)
        for i in range(4):
            b.st(8, R.R10, -32 + 8 * i, 0)  # the output buffer, zeroed
        for i, a in enumerate(args):
            b.ld_imm64(R.R1, a).stx(8, R.R10, -80 + 8 * i, R.R1)
        b.mov(R.R1, R.R10).add(R.R1, -32).mov(R.R2, out_size)
        b.ld_imm64(R.R3, fd, PseudoSrc.MAP_VALUE).mov(R.R4, R.R10).add(R.R4, -80).mov(R.R5, 8 * len(args))
        b.call(Helper.SNPRINTF).mov(R.R7, R.R0)
        b.mov(R.R1, R.R6).mov(R.R2, 14).mov(R.R3, R.R10).add(R.R3, -32).mov(R.R4, 32).mov(R.R5, 0)
        b.call(Helper.SKB_STORE_BYTES).mov(R.R0, R.R7).exit()
        return b.build()

    data = bytes(14 + 40)
    with Map.create(spec) as k, Program.load(prog(k.fileno()), ProgType.SCHED_CLS) as p:
        r = p.test_run(data)
        kernel = (r.retval, r.data_out)
    vm = Vm()
    v = vm.create_map(spec)
    loaded = vm.load(prog(v.fd), prog_type=ProgType.SCHED_CLS)
    for engine in ENGINES:
        out = loaded.test_run(data, engine=engine)
        assert (out.retval & U32, out.data_out) == kernel, (engine, kernel[1][14:46], out.data_out[14:46])
    assert kernel[1][14:14 + min(out_size, 32)].count(b"\0") >= 1


# -- keyless maps from programs -------------------------------------------------------------------
@pytest.mark.parametrize("map_type", [MapType.QUEUE, MapType.STACK, MapType.BLOOM_FILTER])
def test_push_pop_peek_from_programs(map_type: MapType) -> None:
    """Push 1..4 (past capacity for queue/stack; with BPF_EXIST, NOEXIST), then pop/peek:
    every helper's return and the value read, packed into the packet."""
    spec = MapSpec(map_type, 0, 8, 2, name="q")

    def prog(fd: int) -> list[Instruction]:
        b = Builder().mov(R.R6, R.R1)
        calls = [(Helper.MAP_PUSH_ELEM, 1, 0), (Helper.MAP_PUSH_ELEM, 2, 0), (Helper.MAP_PUSH_ELEM, 3, 0),
                 (Helper.MAP_PUSH_ELEM, 3, 2), (Helper.MAP_PUSH_ELEM, 4, 1), (Helper.MAP_PEEK_ELEM, 2, 0),
                 (Helper.MAP_PEEK_ELEM, 9, 0), (Helper.MAP_POP_ELEM, 0, 0), (Helper.MAP_POP_ELEM, 0, 0)]
        if map_type is MapType.BLOOM_FILTER:  # the verifier refuses pop on a bloom filter
            calls = [c for c in calls if c[0] != Helper.MAP_POP_ELEM]
        for i, (helper, value, flags) in enumerate(calls):
            b.st(8, R.R10, -8, value).ld_imm64(R.R1, fd, PseudoSrc.MAP_FD).mov(R.R2, R.R10).add(R.R2, -8)
            if helper == Helper.MAP_PUSH_ELEM:
                b.mov(R.R3, flags)
            b.call(helper).stx(8, R.R10, -16 - 16 * i, R.R0)
            b.ldx(8, R.R1, R.R10, -8).stx(8, R.R10, -24 - 16 * i, R.R1)
        b.mov(R.R1, R.R6).mov(R.R2, 14).mov(R.R3, R.R10).add(R.R3, -16 * len(calls) - 8)
        b.mov(R.R4, 16 * len(calls)).mov(R.R5, 0).call(Helper.SKB_STORE_BYTES).exit()
        return b.build()

    data = bytes(14 + 16 * 9)
    with Map.create(spec) as k:
        try:
            p = Program.load(prog(k.fileno()), ProgType.SCHED_CLS)
        except KernelError as e:
            pytest.fail(f"the kernel refused the program: {e}")
        with p:
            r = p.test_run(data)
            kernel = (r.retval, r.data_out)
    vm = Vm()
    loaded = vm.load(prog(vm.create_map(spec).fd), prog_type=ProgType.SCHED_CLS)
    for engine in ENGINES:
        out = loaded.test_run(data, engine=engine)
        assert (out.retval & U32, out.data_out) == kernel, engine


@pytest.mark.parametrize("map_type", [MapType.PERCPU_ARRAY, MapType.PERCPU_HASH, MapType.LRU_PERCPU_HASH])
def test_per_cpu_values(map_type: MapType) -> None:
    """User space reads and writes one value per possible CPU (the VM is made with as many)."""
    spec = MapSpec(map_type, 4, 8, 4, name="pc")
    with Map.create(spec) as k:
        vm = Vm(ncpus=k.ncpus)
        v = vm.create_map(spec)
        values = [(i * 11).to_bytes(8, "little") for i in range(k.ncpus)]
        key = (1).to_bytes(4, "little")
        k.update(key, values)
        v.update(key, values)
        assert [bytes(x) for x in k.lookup(key)] == v.lookup(key) == values
        faces = (KernelFace(k), VmFace(v))
        results = [[f.update(key, values, UpdateFlags.NOEXIST), f.delete(key), f.delete(key)] for f in faces]
        assert results[0] == results[1]


# -- stacks ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(("helper", "arg", "flags"), [
    (Helper.GET_STACKID, None, 0), (Helper.GET_STACKID, None, 1 << 12), (Helper.GET_STACK, 32, 0),
    (Helper.GET_STACK, 12, 0), (Helper.GET_STACK, 32, 1 << 12),
])
def test_stack_helpers_outcomes(helper: Helper, arg: int | None, flags: int) -> None:
    """The kernel's stacks are real and the VM's synthetic, so what must agree is the outcome: an id or
    a length (>= 0) versus which errno."""
    spec = MapSpec(MapType.STACK_TRACE, 4, 8 * 16, 16, name="st")

    def prog(fd: int) -> list[Instruction]:
        b = Builder()
        if helper == Helper.GET_STACKID:
            b.ld_imm64(R.R2, fd, PseudoSrc.MAP_FD).mov(R.R3, flags)
        else:
            b.mov(R.R2, R.R10).add(R.R2, -32).mov(R.R3, arg or 0).mov(R.R4, flags)
        return b.call(helper).exit().build()

    def outcome(rc: int) -> str:
        rc &= U32
        return "ok" if rc < 1 << 31 else errno.errorcode[(1 << 32) - rc]

    with Map.create(spec) as k, Program.load(prog(k.fileno()), ProgType.RAW_TRACEPOINT) as p:
        kernel = outcome(p.test_run(ctx_in=bytes(8), repeat=0, ctx_out_size=0).retval)
    vm = Vm()
    loaded = vm.load(prog(vm.create_map(spec).fd), prog_type=ProgType.RAW_TRACEPOINT)
    assert [outcome(loaded.test_run(ctx=bytes(8), engine=e).retval) for e in ENGINES] == [kernel] * 3


@pytest.mark.parametrize("fmt", [b"%s|%pI4|%pi4|[%s]", b"%pI6|%pi6|%5s|%-6s|"])
def test_snprintf_strings_and_addresses(fmt: bytes) -> None:
    """%s and the %pI4/%pi4/%pI6/%pi6 address formats read memory the program points to; an
    unreadable string comes out empty."""
    spec = MapSpec(MapType.ARRAY, 4, 64, 1, MapFlags.RDONLY_PROG, name="fmt",
                   contents=((bytes(4), fmt.ljust(64, b"\0")),), freeze=True)

    def prog(fd: int) -> list[Instruction]:
        b = Builder().mov(R.R6, R.R1)
        for i in range(8):
            b.st(8, R.R10, -64 + 8 * i, 0)  # the output buffer, zeroed
        b.ld_imm64(R.R1, int.from_bytes(b"hello\0\0\0", "little")).stx(8, R.R10, -72, R.R1)
        b.ld_imm64(R.R1, int.from_bytes(bytes([10, 0, 12, 255, 0, 0, 0, 0]), "little"))
        b.stx(8, R.R10, -80, R.R1)
        b.ld_imm64(R.R1, int.from_bytes(bytes.fromhex("20010db8000000ff"), "little")).stx(8, R.R10, -96, R.R1)
        b.ld_imm64(R.R1, int.from_bytes(bytes.fromhex("0000000000000001"), "little")).stx(8, R.R10, -88, R.R1)
        ptrs = [-72, -80, -80, 0] if fmt.startswith(b"%s") else [-96, -96, -72, -72]
        for i, off in enumerate(ptrs):
            if off:
                b.mov(R.R1, R.R10).add(R.R1, off)
            else:
                b.mov(R.R1, 8)  # not a readable address
            b.stx(8, R.R10, -128 + 8 * i, R.R1)
        b.mov(R.R1, R.R10).add(R.R1, -64).mov(R.R2, 64)
        b.ld_imm64(R.R3, fd, PseudoSrc.MAP_VALUE).mov(R.R4, R.R10).add(R.R4, -128).mov(R.R5, 32)
        b.call(Helper.SNPRINTF).mov(R.R7, R.R0)
        b.mov(R.R1, R.R6).mov(R.R2, 14).mov(R.R3, R.R10).add(R.R3, -64).mov(R.R4, 64).mov(R.R5, 0)
        b.call(Helper.SKB_STORE_BYTES).mov(R.R0, R.R7).exit()
        return b.build()

    data = bytes(14 + 64)
    with Map.create(spec) as k, Program.load(prog(k.fileno()), ProgType.SCHED_CLS) as p:
        r = p.test_run(data)
        kernel = (r.retval, r.data_out)
    vm = Vm()
    loaded = vm.load(prog(vm.create_map(spec).fd), prog_type=ProgType.SCHED_CLS)
    for engine in ENGINES:
        out = loaded.test_run(data, engine=engine)
        assert (out.retval & U32, out.data_out) == kernel, (engine, kernel[1][14:], out.data_out[14:])


# -- cgroup storage -------------------------------------------------------------------------------
@pytest.mark.parametrize("map_type", [MapType.CGROUP_STORAGE, MapType.PERCPU_CGROUP_STORAGE])
def test_cgroup_storage_per_test_run(map_type: MapType) -> None:
    """A cgroup_skb program bumps its storage and copies the count to an array: a test run of 3
    repeats sees one storage (3), a second test run fresh storage (3 again); user space sees none."""
    storage_spec = MapSpec(map_type, 16, 8, 0, name="cs")
    out_spec = MapSpec(MapType.ARRAY, 4, 8, 1, name="out")

    def prog(storage_fd: int, out_fd: int) -> list[Instruction]:
        b = Builder().ld_imm64(R.R1, storage_fd, PseudoSrc.MAP_FD).mov(R.R2, 0)
        b.call(Helper.GET_LOCAL_STORAGE).ldx(8, R.R1, R.R0, 0).add(R.R1, 1).stx(8, R.R0, 0, R.R1)
        b.stx(8, R.R10, -8, R.R1).st(4, R.R10, -12, 0).ld_imm64(R.R1, out_fd, PseudoSrc.MAP_FD)
        b.mov(R.R2, R.R10).add(R.R2, -12).mov(R.R3, R.R10).add(R.R3, -8).mov(R.R4, 0)
        b.call(Helper.MAP_UPDATE_ELEM).mov(R.R0, 1).exit()
        return b.build()

    data = _ipv4_udp()[14:]
    key = bytes(16)
    with Map.create(storage_spec) as ks, Map.create(out_spec) as ko, \
            Program.load(prog(ks.fileno(), ko.fileno()), ProgType.CGROUP_SKB) as p:
        kernel = []
        for _ in range(2):
            kernel.append((p.test_run(data, repeat=3).retval, bytes(ko.lookup(bytes(4)))))
        value: Any = [bytes(8)] * ks.ncpus if map_type is MapType.PERCPU_CGROUP_STORAGE else bytes(8)
        kernel_user = [KernelFace(ks).lookup(key), KernelFace(ks).update(key, value, 0),
                       KernelFace(ks).update(key, value, UpdateFlags.NOEXIST)]
    vm = Vm()
    vs, vo = vm.create_map(storage_spec), vm.create_map(out_spec)
    loaded = vm.load(prog(vs.fd, vo.fd), prog_type=ProgType.CGROUP_SKB)
    for engine in ENGINES:
        got = []
        for _ in range(2):
            got.append((loaded.test_run(data, repeat=3, engine=engine).retval & U32, vo.lookup(bytes(4))))
        assert got == kernel, engine
    assert kernel[0][1] == (3).to_bytes(8, "little")
    assert [VmFace(vs).lookup(key), VmFace(vs).update(key, value, 0),
            VmFace(vs).update(key, value, UpdateFlags.NOEXIST)] == kernel_user
    assert kernel_user[0] == ("err", "ENOENT")
