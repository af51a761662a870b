"""Map commands against the fake: the exact attr bytes each command packs, and the dict-like API.

Offsets are the UAPI's (include/uapi/linux/bpf.h, union bpf_attr), written out here rather than read from
the ctypes classes, so a wrong layout fails these tests.
"""

from __future__ import annotations

import ctypes
import errno
import struct
import sys
from collections.abc import Iterator

import pytest

from bpfkit.errors import KernelError
from bpfkit.kernel import maps as maps_mod
from bpfkit.kernel.codec import CodecError
from bpfkit.kernel.fake import FakeSyscalls, read_user, write_user
from bpfkit.kernel.maps import Map, MapOperationError
from bpfkit.kernel.syscall import override
from bpfkit.obj.spec import MapSpec
from bpfkit.uapi.attr import BpfMapInfo, MapBatchAttr, MapElemAttr, ObjInfoAttr, ObjPinAttr
from bpfkit.uapi.enums import Cmd, MapFlags, MapType, UpdateFlags

NE = "<" if sys.byteorder == "little" else ">"


class HashKernel:
    """A fake kernel holding one hash map: enough semantics to drive Map's logic."""

    def __init__(self, fake: FakeSyscalls, key_size: int = 4, value_size: int = 4,
                 map_type: MapType = MapType.HASH, max_entries: int = 8) -> None:
        self.data: dict[bytes, bytes] = {}
        self.ks, self.vs, self.type, self.max = key_size, value_size, map_type, max_entries
        fake.on(Cmd.MAP_LOOKUP_ELEM, self.lookup)
        fake.on(Cmd.MAP_UPDATE_ELEM, self.update)
        fake.on(Cmd.MAP_DELETE_ELEM, self.delete)
        fake.on(Cmd.MAP_GET_NEXT_KEY, self.next_key)
        fake.on(Cmd.MAP_LOOKUP_BATCH, self.lookup_batch)
        fake.on(Cmd.OBJ_GET_INFO_BY_FD, self.info)
        self.vsize = value_size

    def lookup(self, a: ctypes.Structure) -> int:
        assert isinstance(a, MapElemAttr)
        k = read_user(a.key, self.ks)
        if k not in self.data:
            return -errno.ENOENT
        write_user(a.value, self.data[k])
        return 0

    def update(self, a: ctypes.Structure) -> int:
        assert isinstance(a, MapElemAttr)
        k = read_user(a.key, self.ks)
        if a.flags == UpdateFlags.NOEXIST and k in self.data:
            return -errno.EEXIST
        if a.flags == UpdateFlags.EXIST and k not in self.data:
            return -errno.ENOENT
        if k not in self.data and len(self.data) >= self.max:
            return -errno.E2BIG
        self.data[k] = read_user(a.value, self.vsize)
        return 0

    def delete(self, a: ctypes.Structure) -> int:
        assert isinstance(a, MapElemAttr)
        return 0 if self.data.pop(read_user(a.key, self.ks), None) is not None else -errno.ENOENT

    def next_key(self, a: ctypes.Structure) -> int:
        assert isinstance(a, MapElemAttr)
        keys = list(self.data)
        if a.key:
            k = read_user(a.key, self.ks)
            i = keys.index(k) + 1 if k in keys else 0
        else:
            i = 0
        if i >= len(keys):
            return -errno.ENOENT
        write_user(a.next_key, keys[i])
        return 0

    def lookup_batch(self, a: ctypes.Structure) -> int:
        assert isinstance(a, MapBatchAttr)
        start = struct.unpack(NE + "I", read_user(a.in_batch, 4))[0] if a.in_batch else 0
        items = list(self.data.items())[start:start + a.count]
        for i, (k, v) in enumerate(items):
            write_user(a.keys + i * self.ks, k)
            write_user(a.values + i * self.vsize, v)
        a.count = len(items)
        write_user(a.out_batch, struct.pack(NE + "I", start + len(items)))
        return -errno.ENOENT if start + len(items) >= len(self.data) else 0

    def info(self, a: ctypes.Structure) -> int:
        assert isinstance(a, ObjInfoAttr)
        info = BpfMapInfo(type=self.type, id=77, key_size=self.ks, value_size=self.vs,
                          max_entries=self.max, name=b"pinned")
        write_user(a.info, bytes(info)[: a.info_len])
        return 0


@pytest.fixture
def fake() -> Iterator[FakeSyscalls]:
    f = FakeSyscalls()
    with override(f):
        yield f
    assert not f.open_fds, "a test left fake fds open"


def test_create_packs_bpf_attr(fake: FakeSyscalls) -> None:
    spec = MapSpec(MapType.LRU_HASH, 8, 16, 1024, MapFlags.NO_COMMON_LRU, "counts", numa_node=1,
                   map_extra=0x1234, btf_key_type_id=3, btf_value_type_id=4)
    with Map.create(spec, btf=55) as m:
        assert (m.type, m.key_size, m.value_size, m.max_entries, m.name) == (MapType.LRU_HASH, 8, 16, 1024,
                                                                             "counts")
    raw = fake.bpf_calls(Cmd.MAP_CREATE)[0].attr
    assert len(raw) == 96
    assert struct.unpack_from("<7I", raw, 0) == (9, 8, 16, 1024, 0x2 | 0x4, 0, 1)
    assert raw[28:44] == b"counts".ljust(16, b"\0")
    assert struct.unpack_from("<5I", raw, 44) == (0, 55, 3, 4, 0)  # ifindex, btf_fd, key id, value id
    assert struct.unpack_from("<Q", raw, 64) == (0x1234,)


def test_name_is_sanitised_and_truncated(fake: FakeSyscalls) -> None:
    with Map.create(MapSpec(MapType.ARRAY, 4, 4, 1, name="my-long.map/name_xyz")) as m:
        assert m.name == "my-long.map/name_xyz"  # bpfkit keeps the full name
    assert fake.bpf_calls(Cmd.MAP_CREATE)[0].attr[28:44] == b"my_long.map_nam\0"


def test_map_of_maps_creates_and_closes_a_template(fake: FakeSyscalls) -> None:
    inner = MapSpec(MapType.ARRAY, 4, 8, 2, name="inner")
    with Map.create(MapSpec(MapType.HASH_OF_MAPS, 4, 4, 4, name="outer", inner_map=inner)):
        pass
    creates = fake.bpf_calls(Cmd.MAP_CREATE)
    assert struct.unpack_from("<4I", creates[0].attr) == (2, 4, 8, 2)
    template_fd = 1000
    assert struct.unpack_from("<I", creates[1].attr, 20) == (template_fd,)
    closes = [c.args[0] for c in fake.calls if c.name == "close"]
    assert closes[0] == template_fd  # closed right after the outer map was made


def test_map_of_maps_without_inner_is_refused(fake: FakeSyscalls) -> None:
    with pytest.raises(CodecError, match="needs an inner map"):
        Map.create(MapSpec(MapType.ARRAY_OF_MAPS, 4, 4, 4, name="oops"))
    assert not fake.bpf_calls()


def test_create_failure_names_the_map(fake: FakeSyscalls) -> None:
    fake.fail(Cmd.MAP_CREATE, errno.EINVAL)
    with pytest.raises(KernelError) as ei:
        Map.create(MapSpec(MapType.HASH, 0, 4, 1, name="bad"))
    assert str(ei.value) == ("bpf(BPF_MAP_CREATE): EINVAL (Invalid argument): map 'bad': "
                             "key_size must not be 0 for BPF_MAP_TYPE_HASH")


def test_update_lookup_delete_pack_attr(fake: FakeSyscalls) -> None:
    kernel = HashKernel(fake)
    with Map.create(MapSpec(MapType.HASH, 4, 4, 8, name="h"), key=int, value="I") as m:
        m[7] = 99
        up = fake.bpf_calls(Cmd.MAP_UPDATE_ELEM)[-1].attr
        assert len(up) == 32
        fd, key_ptr, value_ptr, flags = struct.unpack_from("<I4xQQQ", up)
        assert fd == m.fileno() and key_ptr and value_ptr and flags == UpdateFlags.ANY
        assert kernel.data == {struct.pack(NE + "I", 7): struct.pack(NE + "I", 99)}
        assert m[7] == 99 and m.get(8) is None and m.get(8, -1) == -1
        assert 7 in m and 8 not in m
        m.update(7, 100, UpdateFlags.EXIST)
        assert struct.unpack_from("<Q", fake.bpf_calls(Cmd.MAP_UPDATE_ELEM)[-1].attr, 24) == (2,)
        with pytest.raises(KernelError) as ei:
            m.update(7, 1, UpdateFlags.NOEXIST)
        assert ei.value.errno == errno.EEXIST and "map 'h'" in str(ei.value)
        del m[7]
        with pytest.raises(KeyError):
            del m[7]
        with pytest.raises(KeyError):
            m[7]


def test_iteration_items_len(fake: FakeSyscalls) -> None:
    HashKernel(fake)
    with Map.create(MapSpec(MapType.HASH, 4, 4, 8), key=int, value=int) as m:
        for i in range(5):
            m[i] = i * i
        assert list(m) == [0, 1, 2, 3, 4]
        assert dict(m.items()) == {i: i * i for i in range(5)}
        assert list(m.values()) == [0, 1, 4, 9, 16]
        assert len(m) == 5
        assert m.next_key() == 0 and m.next_key(3) == 4 and m.next_key(4) is None
        first = fake.bpf_calls(Cmd.MAP_GET_NEXT_KEY)[0].attr
        assert struct.unpack_from("<Q", first, 8) == (0,)  # no key: start from the first


def test_lookup_batch_follows_the_cursor(fake: FakeSyscalls) -> None:
    HashKernel(fake, max_entries=16)
    with Map.create(MapSpec(MapType.HASH, 4, 4, 16), key=int, value=int) as m:
        for i in range(7):
            m[i] = 100 + i
        assert m.lookup_batch(batch_size=3) == [(i, 100 + i) for i in range(7)]
    calls = fake.bpf_calls(Cmd.MAP_LOOKUP_BATCH)
    assert len(calls) == 3
    in_batch, out_batch, keys, values, count, _fd = struct.unpack_from("<QQQQII", calls[0].attr)
    assert in_batch == 0 and out_batch and keys and values and count == 3
    assert struct.unpack_from("<Q", calls[1].attr)[0] != 0  # later calls pass the cursor back


def test_update_and_delete_batch_pack_keys_and_values(fake: FakeSyscalls) -> None:
    seen: dict[str, bytes] = {}

    def update(a: ctypes.Structure) -> int:
        assert isinstance(a, MapBatchAttr)
        seen["keys"], seen["values"] = read_user(a.keys, a.count * 4), read_user(a.values, a.count * 4)
        return 0

    def delete(a: ctypes.Structure) -> int:
        assert isinstance(a, MapBatchAttr)
        a.count = 1
        return -errno.ENOENT

    fake.on(Cmd.MAP_UPDATE_BATCH, update)
    fake.on(Cmd.MAP_DELETE_BATCH, delete)
    with Map.create(MapSpec(MapType.HASH, 4, 4, 8), key="I", value="I") as m:
        assert m.update_batch({1: 10, 2: 20}, UpdateFlags.NOEXIST) == 2
        assert seen == {"keys": struct.pack("=II", 1, 2), "values": struct.pack("=II", 10, 20)}
        raw = fake.bpf_calls(Cmd.MAP_UPDATE_BATCH)[0].attr
        assert struct.unpack_from("<IIQ", raw, 32) == (2, m.fileno(), UpdateFlags.NOEXIST)
        with pytest.raises(KeyError) as ei:
            m.delete_batch([1, 5, 6])
        assert ei.value.args == (5,)  # the kernel stopped at the second key


def test_percpu_values_are_lists(fake: FakeSyscalls, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(maps_mod, "possible_cpus", lambda: 3)
    kernel = HashKernel(fake, value_size=4, map_type=MapType.PERCPU_HASH)
    kernel.vsize = 24  # 3 CPUs x round_up(4, 8)
    with Map.create(MapSpec(MapType.PERCPU_HASH, 4, 4, 8), key=int, value=int) as m:
        assert m.is_percpu and m.ncpus == 3
        m[1] = [5, 6, 7]
        padded = b"".join(struct.pack(NE + "I4x", v) for v in (5, 6, 7))
        assert kernel.data[struct.pack(NE + "I", 1)] == padded
        assert m[1] == [5, 6, 7]
        with pytest.raises(CodecError, match="3 entries"):
            m[2] = [1]


def test_queue_push_pop_peek_use_null_key(fake: FakeSyscalls) -> None:
    stored: list[bytes] = []

    def push(a: ctypes.Structure) -> int:
        assert isinstance(a, MapElemAttr) and a.key == 0
        stored.append(read_user(a.value, 4))
        return 0

    def pop(a: ctypes.Structure) -> int:
        assert isinstance(a, MapElemAttr) and a.key == 0
        if not stored:
            return -errno.ENOENT
        write_user(a.value, stored.pop(0))
        return 0

    def peek(a: ctypes.Structure) -> int:
        assert isinstance(a, MapElemAttr)
        write_user(a.value, stored[0])
        return 0

    fake.on(Cmd.MAP_UPDATE_ELEM, push)
    fake.on(Cmd.MAP_LOOKUP_AND_DELETE_ELEM, pop)
    fake.on(Cmd.MAP_LOOKUP_ELEM, peek)
    with Map.create(MapSpec(MapType.QUEUE, 0, 4, 4), value=int) as q:
        q.push(1)
        q.push(2, UpdateFlags.EXIST)
        assert struct.unpack_from("<Q", fake.bpf_calls(Cmd.MAP_UPDATE_ELEM)[-1].attr, 24) == (2,)
        assert q.peek() == 1 and q.pop() == 1 and q.pop() == 2
        with pytest.raises(KeyError, match="empty"):
            q.pop()
        with pytest.raises(MapOperationError, match="does not apply to a QUEUE map"):
            len(q)
        with pytest.raises(MapOperationError):
            q[0] = 1


def test_array_len_is_max_entries(fake: FakeSyscalls) -> None:
    with Map.create(MapSpec(MapType.ARRAY, 4, 4, 42)) as m:
        assert len(m) == 42
    assert not fake.bpf_calls(Cmd.MAP_GET_NEXT_KEY)


def test_freeze_pin_and_from_pinned(fake: FakeSyscalls) -> None:
    HashKernel(fake)
    paths: list[bytes] = []

    def obj(a: ctypes.Structure) -> int:
        assert isinstance(a, ObjPinAttr)
        paths.append(ctypes.string_at(a.pathname))
        return 0 if not paths[-1].endswith(b"get") else fake.new_fd()

    fake.on(Cmd.OBJ_PIN, obj)
    fake.on(Cmd.OBJ_GET, obj)
    with Map.create(MapSpec(MapType.HASH, 4, 4, 8, name="m")) as m:
        m.freeze()
        assert struct.unpack_from("<I", fake.bpf_calls(Cmd.MAP_FREEZE)[0].attr) == (m.fileno(),)
        m.pin("/sys/fs/bpf/m")
        pin = fake.bpf_calls(Cmd.OBJ_PIN)[0].attr
        assert struct.unpack_from("<QII", pin)[1:] == (m.fileno(), 0)
    with Map.from_pinned("/sys/fs/bpf/get", readonly=True) as p:
        assert (p.type, p.key_size, p.max_entries, p.name, p.id) == (MapType.HASH, 4, 8, "pinned", 77)
    assert paths == [b"/sys/fs/bpf/m", b"/sys/fs/bpf/get"]
    get = fake.bpf_calls(Cmd.OBJ_GET)[0].attr
    assert struct.unpack_from("<I", get, 12) == (MapFlags.RDONLY,)  # file_flags
    info = fake.bpf_calls(Cmd.OBJ_GET_INFO_BY_FD)[0].attr
    assert struct.unpack_from("<II", info)[1] == ctypes.sizeof(BpfMapInfo)


def test_from_id_packs_id(fake: FakeSyscalls) -> None:
    HashKernel(fake)
    with Map.from_id(77):
        pass
    assert struct.unpack_from("<I", fake.bpf_calls(Cmd.MAP_GET_FD_BY_ID)[0].attr) == (77,)


def test_from_pinned_error_names_path(fake: FakeSyscalls, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("bpfkit.kernel.mounts.fstype_of", lambda path, table=None: "bpf")
    fake.fail(Cmd.OBJ_GET, errno.ENOENT)
    with pytest.raises(KernelError, match="/sys/fs/bpf/none: no object is pinned"):
        Map.from_pinned("/sys/fs/bpf/none")


def test_pin_error_outside_bpffs_says_so(fake: FakeSyscalls, tmp_path: object,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("bpfkit.kernel.mounts.fstype_of", lambda path, table=None: "ext4")
    fake.fail(Cmd.OBJ_PIN, errno.EPERM)
    with Map.create(MapSpec(MapType.ARRAY, 4, 4, 1)) as m, pytest.raises(KernelError) as ei:
        m.pin(f"{tmp_path}/pin")
    assert f"{tmp_path} is on ext4, not on a bpf file system" in str(ei.value)


def test_wrong_key_size_is_a_codec_error(fake: FakeSyscalls) -> None:
    HashKernel(fake)
    with Map.create(MapSpec(MapType.HASH, 4, 4, 8, name="h")) as m:
        with pytest.raises(CodecError, match="map 'h' key must be 4 bytes, got 2"):
            m[b"ab"] = b"abcd"
        with pytest.raises(CodecError, match="map 'h' value must be 4 bytes"):
            m[b"abcd"] = b"a"
    with pytest.raises(CodecError, match="map value type 'I' is 4 bytes but the map value is 8 bytes"):
        Map.create(MapSpec(MapType.HASH, 4, 8, 8), value="I")
    # the fd made before the type check failed was closed (the fixture checks open_fds)
