"""Program contexts: what r1 points to when a run starts, and what a run gives back.

Layouts are the UAPI structs `struct xdp_md` and `struct __sk_buff` (linux/bpf.h, checked against the
running kernel's BTF). Their packet fields are 32-bit in the struct but the kernel rewrites a load of
them into a load of the real 64-bit pointer (convert_ctx_access in net/core/filter.c); the context
region's load hook does the same. Test-run conventions follow net/bpf/test_run.c: XDP frames get
XDP_PACKET_HEADROOM bytes of headroom and `xdp_md.data` in the input context is the metadata length;
skb programs see the frame from the Ethernet header (tc) or from the network header (socket filters).
"""

from __future__ import annotations

import struct

from bpfkit._records import record
from bpfkit.errors import VmError, VmMemoryError
from bpfkit.vm.memory import SLOT_SHIFT, AddressSpace, Region, RegionKind
from bpfkit.vm.runtime import Packet

XDP_PACKET_HEADROOM = 256
"""`XDP_PACKET_HEADROOM` (include/uapi/linux/bpf.h)."""
XDP_FRAME_SIZE = 4096
"""Bytes of the page an XDP test-run frame lives in (headroom + data + tailroom)."""
SKB_HEADROOM = 64
ETH_HLEN = 14

CTX_SLOT_OFFSET = 0
PACKET_SLOT_OFFSET = 1
"""Per-run regions use fixed slots just after DATA_SLOT0, so repeated runs reuse addresses."""

# struct xdp_md
XDP_MD = struct.Struct("<6I")
XDP_DATA, XDP_DATA_END, XDP_DATA_META = 0, 4, 8
XDP_INGRESS_IFINDEX, XDP_RX_QUEUE_INDEX, XDP_EGRESS_IFINDEX = 12, 16, 20

# struct __sk_buff (192 bytes)
SK_BUFF_SIZE = 192
SKB_FIELDS: dict[str, tuple[int, int]] = {
    "len": (0, 4), "pkt_type": (4, 4), "mark": (8, 4), "queue_mapping": (12, 4), "protocol": (16, 4),
    "vlan_present": (20, 4), "vlan_tci": (24, 4), "vlan_proto": (28, 4), "priority": (32, 4),
    "ingress_ifindex": (36, 4), "ifindex": (40, 4), "tc_index": (44, 4), "cb": (48, 20),
    "hash": (68, 4), "tc_classid": (72, 4), "data": (76, 4), "data_end": (80, 4), "napi_id": (84, 4),
    "family": (88, 4), "remote_ip4": (92, 4), "local_ip4": (96, 4), "remote_ip6": (100, 16),
    "local_ip6": (116, 16), "remote_port": (132, 4), "local_port": (136, 4), "data_meta": (140, 4),
    "flow_keys": (144, 8), "tstamp": (152, 8), "wire_len": (160, 4), "gso_segs": (164, 4),
    "sk": (168, 8), "gso_size": (176, 4), "tstamp_type": (180, 1), "hwtstamp": (184, 8),
}
SKB_WRITABLE = ("mark", "queue_mapping", "priority", "tc_index", "cb", "tc_classid", "tstamp")
"""Fields a tc program may write (filter.c bpf_skb_is_valid_access / tc_cls_act_is_valid_access)."""


def _ranges(names: tuple[str, ...]) -> list[tuple[int, int]]:
    return [(SKB_FIELDS[n][0], SKB_FIELDS[n][0] + SKB_FIELDS[n][1]) for n in names]


@record
class RunSetup:
    """What a context prepared: the initial r1..r5, and the packet (for LD_ABS and xdp helpers)."""

    args: tuple[int, int, int, int, int]
    packet: Packet | None = None


class Context:
    """Base of the contexts: lay out memory before a run, collect `data_out`/`ctx_out` after."""

    def setup(self, mem: AddressSpace, data_slot0: int) -> RunSetup:
        raise NotImplementedError

    def data_out(self) -> bytes:
        return b""

    def ctx_out(self) -> bytes:
        return b""


class RawMemory(Context):
    """Conformance style: r1 points to a copy of `data` (0 when there is none), r2 holds its length."""

    def __init__(self, data: bytes = b"", ctx: bytes | None = None) -> None:
        if ctx:
            raise VmError("a raw-memory run takes `data`, not `ctx`")
        self.buf = bytearray(data)
        self.region: Region | None = None

    def setup(self, mem: AddressSpace, data_slot0: int) -> RunSetup:
        if not self.buf:
            return RunSetup((0, 0, 0, 0, 0))
        self.region = mem.map_at(data_slot0 + PACKET_SLOT_OFFSET, self.buf, RegionKind.MEMORY,
                                 name="data")
        pkt = Packet(self.buf, 0, 0, len(self.buf), self.region)
        return RunSetup((self.region.base, len(self.buf), 0, 0, 0), pkt)

    def data_out(self) -> bytes:
        return bytes(self.buf)


class RawContext(Context):
    """Tracing programs: r1 points to a read-only copy of the context bytes (a tracepoint record,
    `struct pt_regs`, raw tracepoint arguments...)."""

    def __init__(self, data: bytes = b"", ctx: bytes | None = None, *, writable: bool = False) -> None:
        self.buf = bytearray(ctx or b"")
        self.writable = writable
        del data  # tracing programs have no packet

    def setup(self, mem: AddressSpace, data_slot0: int) -> RunSetup:
        if not self.buf:
            return RunSetup((0, 0, 0, 0, 0))
        buf: bytearray | bytes = self.buf if self.writable else bytes(self.buf)
        region = mem.map_at(data_slot0 + CTX_SLOT_OFFSET, buf, RegionKind.CTX, writable=self.writable,
                            name="ctx")
        return RunSetup((region.base, 0, 0, 0, 0))

    def ctx_out(self) -> bytes:
        return bytes(self.buf)


class _PacketContext(Context):
    """Shared by XDP and skb: a frame with headroom, mapped as the window [data_meta, data_end)."""

    mem: AddressSpace
    packet: Packet

    def _map_packet(self, mem: AddressSpace, data_slot0: int, frame: bytearray, meta: int, data: int,
                    end: int) -> Packet:
        self.mem = mem
        self.slot = data_slot0 + PACKET_SLOT_OFFSET
        region = mem.map_at(self.slot, memoryview(frame)[meta:end], RegionKind.PACKET, name="packet")
        self.packet = Packet(frame, meta, data, end, region)
        return self.packet

    def remap(self) -> None:
        """Re-window the packet region after a helper moved data_meta/data/data_end."""
        pkt = self.packet
        region = pkt.region
        assert isinstance(region, Region)
        self.mem.rebind(region, memoryview(pkt.frame)[pkt.meta:pkt.end])

    def address(self, offset: int) -> int:
        """The address of frame offset `offset`."""
        return (self.slot << SLOT_SHIFT) + offset - self.packet.meta


class XdpContext(_PacketContext):
    """An XDP run: r1 points to a `struct xdp_md` whose data/data_meta/data_end load as pointers."""

    def __init__(self, data: bytes = b"", ctx: bytes | None = None) -> None:
        self.input = bytes(data)
        md = bytearray(XDP_MD.size)
        if ctx:
            md[:len(ctx)] = ctx[:XDP_MD.size]
        fields = list(XDP_MD.unpack(md))
        self.meta_len = fields[0]
        if fields[2] or (ctx and fields[1] not in (0, len(data))) or self.meta_len > len(data):
            raise VmError("xdp_md in ctx: data_meta must be 0, data the metadata length and data_end "
                          "the data length")
        self.ingress_ifindex, self.rx_queue_index = fields[3], fields[4]
        self.egress_ifindex = fields[5]
        self.md = md

    def setup(self, mem: AddressSpace, data_slot0: int) -> RunSetup:
        size = max(XDP_FRAME_SIZE, XDP_PACKET_HEADROOM + len(self.input))
        frame = bytearray(size)
        start = XDP_PACKET_HEADROOM
        frame[start:start + len(self.input)] = self.input
        pkt = self._map_packet(mem, data_slot0, frame, start, start + self.meta_len,
                               start + len(self.input))
        self.md[XDP_INGRESS_IFINDEX:XDP_INGRESS_IFINDEX + 4] = self.ingress_ifindex.to_bytes(4, "little")
        region = mem.map_at(data_slot0 + CTX_SLOT_OFFSET, self.md, RegionKind.CTX, name="xdp_md",
                            load_hook=self._load, store_hook=self._store)
        return RunSetup((region.base, 0, 0, 0, 0), pkt)

    def _load(self, off: int, size: int) -> int | None:
        pkt = self.packet
        pointer = {XDP_DATA: pkt.data, XDP_DATA_END: pkt.end, XDP_DATA_META: pkt.meta}.get(off)
        if pointer is not None:
            if size != 4:
                raise VmMemoryError(f"xdp_md field at offset {off} must be read with a 4-byte load")
            return self.address(pointer)
        return None

    def _store(self, off: int, size: int, value: int) -> bool:
        raise VmMemoryError(f"xdp_md is read-only (store of {size} bytes at offset {off})")

    def data_out(self) -> bytes:
        pkt = self.packet
        return bytes(pkt.frame[pkt.meta:pkt.end])

    def ctx_out(self) -> bytes:
        pkt = self.packet
        return XDP_MD.pack(pkt.data - pkt.meta, pkt.end - pkt.meta, 0, self.ingress_ifindex,
                           self.rx_queue_index, self.egress_ifindex)


class SkbContext(_PacketContext):
    """A socket filter or tc run: r1 points to a `struct __sk_buff`.

    `l2` (tc programs) starts the data at the Ethernet header; otherwise (socket filters) at the network
    header, with the Ethernet header still in the frame and in `data_out`. `protocol` is the frame's
    EtherType as the kernel stores it (network byte order in a little-endian u32).
    """

    def __init__(self, data: bytes = b"", ctx: bytes | None = None, *, l2: bool = True) -> None:
        if len(data) < ETH_HLEN:
            raise VmError(f"an skb run needs at least {ETH_HLEN} bytes of data (an Ethernet header)")
        self.input = bytes(data)
        self.l2 = l2
        self.skb = bytearray(SK_BUFF_SIZE)
        if ctx:
            if len(ctx) > SK_BUFF_SIZE:
                raise VmError(f"__sk_buff ctx is {len(ctx)} bytes; at most {SK_BUFF_SIZE}")
            self.skb[:len(ctx)] = ctx
        self._writable = _ranges(SKB_WRITABLE)

    def setup(self, mem: AddressSpace, data_slot0: int) -> RunSetup:
        frame = bytearray(SKB_HEADROOM) + bytearray(self.input)
        start = SKB_HEADROOM if self.l2 else SKB_HEADROOM + ETH_HLEN
        pkt = self._map_packet(mem, data_slot0, frame, start, start, len(frame))
        skb = self.skb
        proto = int.from_bytes(self.input[12:14], "little")
        struct.pack_into("<I", skb, 0, pkt.end - pkt.data)
        struct.pack_into("<I", skb, 16, proto)
        if not int.from_bytes(skb[160:164], "little"):
            struct.pack_into("<I", skb, 160, len(self.input))  # wire_len
        if not int.from_bytes(skb[164:168], "little"):
            struct.pack_into("<I", skb, 164, 1)  # gso_segs
        region = mem.map_at(data_slot0 + CTX_SLOT_OFFSET, skb, RegionKind.CTX, name="__sk_buff",
                            load_hook=self._load, store_hook=self._store)
        return RunSetup((region.base, 0, 0, 0, 0), pkt)

    def _load(self, off: int, size: int) -> int | None:
        pkt = self.packet
        pointer = {76: pkt.data, 80: pkt.end, 140: pkt.meta}.get(off)
        if pointer is not None:
            if size != 4:
                raise VmMemoryError(f"__sk_buff packet field at offset {off} needs a 4-byte load")
            return self.address(pointer)
        if off == 0 and size == 4:
            return pkt.end - pkt.data
        return None

    def _store(self, off: int, size: int, value: int) -> bool:
        if any(lo <= off and off + size <= hi for lo, hi in self._writable):
            return False
        raise VmMemoryError(f"__sk_buff field at offset {off} is read-only")

    def data_out(self) -> bytes:
        pkt = self.packet
        return bytes(pkt.frame[SKB_HEADROOM:pkt.end])

    def ctx_out(self) -> bytes:
        struct.pack_into("<I", self.skb, 0, self.packet.end - self.packet.data)
        return bytes(self.skb)
