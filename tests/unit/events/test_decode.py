"""Typed decoding of records: struct formats, ctypes, and BTF types compared with ctypes as the oracle."""

from __future__ import annotations

import ctypes

import pytest

from bpfkit.btf import Array, BtfBuilder, Enum, EnumValue, Int, Member, Ptr, Struct, Typedef, load_btf
from bpfkit.btf.spec import Spec
from bpfkit.events import DecodeError, btf_decoder, ctypes_decoder, struct_decoder
from bpfkit.uapi.btf import IntEncoding


class Event(ctypes.Structure):
    _fields_ = [("pid", ctypes.c_uint32), ("delta", ctypes.c_int32), ("comm", ctypes.c_char * 8),
                ("ts", ctypes.c_uint64), ("flags", ctypes.c_uint8, 3), ("level", ctypes.c_int8, 4),
                ("state", ctypes.c_uint32), ("vals", ctypes.c_uint16 * 3), ("ptr", ctypes.c_void_p)]


def event_bytes() -> bytes:
    e = Event(pid=4242, delta=-7, comm=b"python", ts=2**40 + 3, flags=5, level=-3, state=2,
              vals=(ctypes.c_uint16 * 3)(1, 2, 65535), ptr=0xFFFF888000001000)
    return bytes(e)


def event_spec() -> Spec:
    b = BtfBuilder()
    u32 = b.add(Int("unsigned int", 4))
    s32 = b.add(Int("int", 4, IntEncoding.SIGNED))
    char = b.add(Int("char", 1, IntEncoding.SIGNED | IntEncoding.CHAR))
    u64 = b.add(Int("unsigned long long", 8))
    u8 = b.add(Int("unsigned char", 1))
    s8 = b.add(Int("signed char", 1, IntEncoding.SIGNED))
    u16 = b.add(Int("unsigned short", 2))
    comm = b.add(Array(char, u32, 8))
    state = b.add(Enum("state", 4, (EnumValue("IDLE", 0), EnumValue("RUNNING", 1), EnumValue("DONE", 2))))
    vals = b.add(Array(u16, u32, 3))
    void_ptr = b.add(Ptr(0))
    pid_t = b.add(Typedef("pid_t", u32))
    off = {name: getattr(Event, name).offset * 8 for name, *_ in Event._fields_}
    b.add(Struct("event", ctypes.sizeof(Event), (
        Member("pid", pid_t, off["pid"]), Member("delta", s32, off["delta"]),
        Member("comm", comm, off["comm"]),
        Member("ts", u64, off["ts"]), Member("flags", u8, off["flags"], 3),
        Member("level", s8, off["flags"] + 3, 4), Member("state", state, off["state"]),
        Member("vals", vals, off["vals"]), Member("ptr", void_ptr, off["ptr"]),
    )))
    return load_btf(b.marshal())


def test_struct_decoder_shapes() -> None:
    data = event_bytes()
    assert struct_decoder("I")(data) == 4242
    assert struct_decoder("Ii")(data) == (4242, -7)
    assert struct_decoder("Ii", ["pid", "delta"])(memoryview(data)) == {"pid": 4242, "delta": -7}


def test_struct_decoder_errors() -> None:
    with pytest.raises(DecodeError, match="too short"):
        struct_decoder("Q")(b"abc")
    with pytest.raises(DecodeError, match="bad struct format"):
        struct_decoder("Z")
    with pytest.raises(DecodeError, match="2 fields but 1 names"):
        struct_decoder("II", ["a"])


def test_ctypes_decoder_copies_and_checks_size() -> None:
    data = event_bytes()
    e = ctypes_decoder(Event)(memoryview(data + b"pad"))
    assert (e.pid, e.delta, e.comm, e.level) == (4242, -7, b"python", -3)
    with pytest.raises(DecodeError, match="Event"):
        ctypes_decoder(Event)(data[:10])


def test_btf_decoder_matches_ctypes() -> None:
    spec = event_spec()
    data = event_bytes()
    e = Event.from_buffer_copy(data)
    got = btf_decoder(spec, "event")(memoryview(data))
    assert got == {"pid": e.pid, "delta": e.delta, "comm": e.comm, "ts": e.ts, "flags": e.flags,
                   "level": e.level, "state": "DONE", "vals": list(e.vals), "ptr": e.ptr}
    assert btf_decoder(spec, "event", enum_names=False)(data)["state"] == 2


def test_btf_decoder_errors() -> None:
    spec = event_spec()
    with pytest.raises(DecodeError, match="too short for BTF type 'struct event'"):
        btf_decoder(spec, "event")(b"\0" * 8)
    with pytest.raises(DecodeError, match="no BTF type named 'nope'"):
        btf_decoder(spec, "nope")
