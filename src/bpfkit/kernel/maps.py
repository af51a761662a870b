"""`Map`: a kernel BPF map with a dict-like interface.

``m[k] = v``, ``m[k]``, ``del m[k]``, ``k in m``, ``len(m)``, iteration over keys (BPF_MAP_GET_NEXT_KEY),
``items()``, update flags, batch operations (`bpfkit.kernel.mapbatch`), push/pop/peek for queues, stacks
and bloom filters, freeze, pin. Keys and values are bytes unless the map is given key/value types
(see `bpfkit.kernel.codec`); per-CPU values are lists with one entry per possible CPU.

Iterating a hash map while it changes is what the kernel makes it: when the current key is deleted,
BPF_MAP_GET_NEXT_KEY restarts from the first key.
"""

from __future__ import annotations

import ctypes
import errno as _errno
import os
from collections.abc import Iterator
from typing import Any

from bpfkit._records import record
from bpfkit.errors import BpfkitError, KernelError
from bpfkit.kernel import objects
from bpfkit.kernel.codec import Codec, CodecError, PerCpuCodec, TypeSpec, make_codec
from bpfkit.kernel.cpus import possible_cpus
from bpfkit.kernel.diagnose import bpf_error
from bpfkit.kernel.fd import Fd, FdOwner
from bpfkit.kernel.syscall import Syscalls, current
from bpfkit.obj.spec import MapSpec
from bpfkit.uapi.attr import BpfMapInfo, MapCreateAttr, MapElemAttr
from bpfkit.uapi.enums import Cmd, MapFlags, MapType, UpdateFlags

PERCPU_TYPES = frozenset({MapType.PERCPU_HASH, MapType.PERCPU_ARRAY, MapType.LRU_PERCPU_HASH,
                          MapType.PERCPU_CGROUP_STORAGE})
"""Map types whose values have one slot per possible CPU."""

ARRAY_TYPES = frozenset({MapType.ARRAY, MapType.PERCPU_ARRAY, MapType.PROG_ARRAY, MapType.PERF_EVENT_ARRAY,
                         MapType.CGROUP_ARRAY, MapType.ARRAY_OF_MAPS, MapType.DEVMAP, MapType.CPUMAP,
                         MapType.XSKMAP, MapType.SOCKMAP, MapType.REUSEPORT_SOCKARRAY})
"""Map types indexed 0..max_entries-1 (`len()` is max_entries)."""

KEYLESS_TYPES = frozenset({MapType.QUEUE, MapType.STACK, MapType.BLOOM_FILTER, MapType.RINGBUF,
                           MapType.USER_RINGBUF, MapType.ARENA})
"""Map types without keys (key_size 0): no dict interface."""

FD_VALUE_TYPES = frozenset({MapType.PROG_ARRAY, MapType.PERF_EVENT_ARRAY, MapType.CGROUP_ARRAY,
                            MapType.ARRAY_OF_MAPS, MapType.HASH_OF_MAPS, MapType.SOCKMAP, MapType.SOCKHASH,
                            MapType.XSKMAP, MapType.REUSEPORT_SOCKARRAY})
"""Map types whose values are written as fds (and read back as object ids, where readable)."""


class MapOperationError(BpfkitError, TypeError):
    """The operation does not apply to this map type (e.g. ``len()`` of a queue)."""


@record
class MapInfo:
    """What the kernel says about a map (BPF_OBJ_GET_INFO_BY_FD, struct bpf_map_info)."""

    id: int
    type: MapType | int
    name: str
    key_size: int
    value_size: int
    max_entries: int
    flags: int
    ifindex: int
    btf_id: int
    btf_key_type_id: int
    btf_value_type_id: int
    btf_vmlinux_value_type_id: int
    map_extra: int
    netns_dev: int
    netns_ino: int


def _map_type(value: int) -> MapType | int:
    try:
        return MapType(value)
    except ValueError:
        return value


def _buf(data: bytes) -> ctypes.Array[ctypes.c_char]:
    return ctypes.create_string_buffer(data)


def _fileno(obj: Any) -> int:
    return int(obj.fileno()) if hasattr(obj, "fileno") else int(obj)


class Map(FdOwner):
    """A kernel map. Make one with `create`, `from_pinned`, `from_id` or `from_fd`; close it when done."""

    def __init__(self, fd: Fd, info: MapInfo, *, key: TypeSpec = None, value: TypeSpec = None,
                 name: str | None = None) -> None:
        self._fd = fd
        self.type = info.type
        self.key_size = info.key_size
        self.value_size = info.value_size
        self.max_entries = info.max_entries
        self.flags = info.flags
        self.name = name if name is not None else info.name
        self._id = info.id or None
        self.is_percpu = self.type in PERCPU_TYPES
        label = f"map {self.name!r}" if self.name else "map"
        self.key_codec: Codec = make_codec(key, self.key_size, f"{label} key")
        inner = make_codec(value, self.value_size, f"{label} value")
        self.ncpus = possible_cpus() if self.is_percpu else 1
        self.value_codec: Codec = (PerCpuCodec(inner, self.value_size, self.ncpus, f"{label} value")
                                   if self.is_percpu else inner)
        self._vbuf_size = self.value_codec.size

    # --- making maps -------------------------------------------------------------------------------------

    @classmethod
    def create(cls, spec: MapSpec, *, key: TypeSpec = None, value: TypeSpec = None,
               inner_map: Any = None, btf: Any = None, sys: Syscalls | None = None) -> Map:
        """Create a map from `spec` (BPF_MAP_CREATE).

        `inner_map` (a Map or fd) overrides ``spec.inner_map`` as the template of a map-of-maps; `btf`
        (a BTF handle or fd) is the object the spec's ``btf_*`` type ids refer to.
        Minimum kernel: 3.19 (hash, array); each map type has its own.
        """
        sys = sys or current()
        flags = spec.flags | (MapFlags.NUMA_NODE if spec.numa_node is not None else 0)
        attr = MapCreateAttr(
            map_type=spec.type, key_size=spec.key_size, value_size=spec.value_size,
            max_entries=spec.max_entries, map_flags=flags, numa_node=spec.numa_node or 0,
            map_name=objects.kernel_name(spec.name), map_ifindex=spec.ifindex,
            btf_key_type_id=spec.btf_key_type_id, btf_value_type_id=spec.btf_value_type_id,
            btf_vmlinux_value_type_id=spec.btf_vmlinux_value_type_id, map_extra=spec.map_extra,
        )
        if btf is not None:
            attr.btf_fd = _fileno(btf)
        template: Map | None = None
        try:
            if inner_map is not None:
                attr.inner_map_fd = _fileno(inner_map)
            elif spec.inner_map is not None:
                template = cls.create(spec.inner_map, sys=sys)
                attr.inner_map_fd = template.fileno()
            elif spec.type in (MapType.ARRAY_OF_MAPS, MapType.HASH_OF_MAPS):
                raise CodecError(f"map {spec.name!r}: a map of maps needs an inner map (spec.inner_map)")
            fd = Fd(sys.bpf(Cmd.MAP_CREATE, attr), f"map {spec.name!r}", sys)
        except KernelError as e:
            raise bpf_error(Cmd.MAP_CREATE, e.errno or 0, attr, f"map {spec.name!r}" if spec.name else None) \
                from None
        finally:
            if template is not None:
                template.close()
        info = MapInfo(0, spec.type, spec.name, spec.key_size, spec.value_size, spec.max_entries, flags,
                       spec.ifindex, 0, spec.btf_key_type_id, spec.btf_value_type_id,
                       spec.btf_vmlinux_value_type_id, spec.map_extra, 0, 0)
        try:
            m = cls(fd, info, key=key, value=value)
        except BaseException:
            fd.close()
            raise
        try:
            for k, v in spec.contents:
                m.update(k, v)
            if spec.freeze:
                m.freeze()
        except BaseException:
            m.close()
            raise
        return m

    @classmethod
    def from_fd(cls, fd: Fd | int, *, key: TypeSpec = None, value: TypeSpec = None) -> Map:
        """Wrap a map fd (taking ownership of it), learning type and sizes from the kernel."""
        owned = fd if isinstance(fd, Fd) else Fd(fd, "map")
        try:
            info = read_info(owned)
            return cls(owned, info, key=key, value=value)
        except BaseException:
            owned.close()
            raise

    @classmethod
    def from_pinned(cls, path: str | os.PathLike[str], *, readonly: bool = False, key: TypeSpec = None,
                    value: TypeSpec = None) -> Map:
        """Open the map pinned at `path` on a bpf file system."""
        return cls.from_fd(objects.get_pinned(path, "map", readonly=readonly), key=key, value=value)

    @classmethod
    def from_id(cls, map_id: int, *, key: TypeSpec = None, value: TypeSpec = None) -> Map:
        """Open the map with kernel id `map_id` (needs CAP_SYS_ADMIN)."""
        return cls.from_fd(objects.fd_by_id(Cmd.MAP_GET_FD_BY_ID, map_id, "map"), key=key, value=value)

    # --- ownership -----------------------------------------------------------------------------------------

    def __repr__(self) -> str:
        t = self.type.name if isinstance(self.type, MapType) else self.type
        return f"<Map {self.name!r} {t} key={self.key_size} value={self.value_size} max={self.max_entries}>"

    # --- raw element commands ------------------------------------------------------------------------------

    def _elem(self, cmd: Cmd, key: bytes | None, value: ctypes.Array[ctypes.c_char] | None,
              flags: int = 0) -> None:
        kbuf = _buf(key) if key is not None else None
        attr = MapElemAttr(map_fd=self._fd.fileno(), flags=flags)
        if kbuf is not None:
            attr.key = ctypes.addressof(kbuf)
        if value is not None:
            attr.value = ctypes.addressof(value)
        try:
            self._fd.syscalls.bpf(cmd, attr)
        except KernelError as e:
            raise _named(e, cmd, self.name) from None

    def _key(self, key: Any) -> bytes:
        return self.key_codec.encode(key)

    def _value(self, value: Any) -> bytes:
        if self.type in FD_VALUE_TYPES and hasattr(value, "fileno"):
            value = value.fileno()
        return self.value_codec.encode(value)

    # --- element operations -------------------------------------------------------------------------------

    def lookup(self, key: Any, *, flags: int = 0) -> Any:
        """The value stored at `key`; raises KeyError when there is none. `flags`: BPF_F_LOCK."""
        self._need_keys("lookup")
        vbuf = ctypes.create_string_buffer(self._vbuf_size)
        try:
            self._elem(Cmd.MAP_LOOKUP_ELEM, self._key(key), vbuf, flags)
        except KernelError as e:
            if e.errno == _errno.ENOENT:
                raise KeyError(key) from None
            raise
        return self.value_codec.decode(vbuf.raw)

    def get(self, key: Any, default: Any = None) -> Any:
        try:
            return self.lookup(key)
        except KeyError:
            return default

    def update(self, key: Any, value: Any, flags: int = UpdateFlags.ANY) -> None:
        """Store `value` at `key`. `flags`: UpdateFlags.ANY, NOEXIST (create only), EXIST (replace only),
        F_LOCK (take the value's bpf_spin_lock)."""
        self._need_keys("update")
        self._elem(Cmd.MAP_UPDATE_ELEM, self._key(key), _buf(self._value(value)), flags)

    def delete(self, key: Any) -> None:
        """Delete `key`; raises KeyError when it is not there."""
        self._need_keys("delete")
        try:
            self._elem(Cmd.MAP_DELETE_ELEM, self._key(key), None)
        except KernelError as e:
            if e.errno == _errno.ENOENT:
                raise KeyError(key) from None
            raise

    def lookup_and_delete(self, key: Any, *, flags: int = 0) -> Any:
        """Remove `key` and return its value (hash maps: Linux 5.14). KeyError when not there."""
        self._need_keys("lookup_and_delete")
        vbuf = ctypes.create_string_buffer(self._vbuf_size)
        try:
            self._elem(Cmd.MAP_LOOKUP_AND_DELETE_ELEM, self._key(key), vbuf, flags)
        except KernelError as e:
            if e.errno == _errno.ENOENT:
                raise KeyError(key) from None
            raise
        return self.value_codec.decode(vbuf.raw)

    def next_key(self, key: Any = None) -> Any:
        """The key after `key` (the first key when `key` is None), or None after the last one."""
        self._need_keys("next_key")
        nbuf = ctypes.create_string_buffer(self.key_size)
        kbuf = _buf(self._key(key)) if key is not None else None
        attr = MapElemAttr(map_fd=self._fd.fileno())
        if kbuf is not None:
            attr.key = ctypes.addressof(kbuf)
        attr.next_key = ctypes.addressof(nbuf)
        try:
            self._fd.syscalls.bpf(Cmd.MAP_GET_NEXT_KEY, attr)
        except KernelError as e:
            if e.errno == _errno.ENOENT:
                return None
            raise _named(e, Cmd.MAP_GET_NEXT_KEY, self.name) from None
        return self.key_codec.decode(nbuf.raw)

    def _raw_keys(self) -> Iterator[bytes]:
        """Keys as bytes, following BPF_MAP_GET_NEXT_KEY."""
        fd = self._fd.fileno()
        sys = self._fd.syscalls
        prev = ctypes.create_string_buffer(self.key_size)
        nxt = ctypes.create_string_buffer(self.key_size)
        attr = MapElemAttr(map_fd=fd)
        attr.next_key = ctypes.addressof(nxt)
        while True:
            try:
                sys.bpf(Cmd.MAP_GET_NEXT_KEY, attr)
            except KernelError as e:
                if e.errno == _errno.ENOENT:
                    return
                raise _named(e, Cmd.MAP_GET_NEXT_KEY, self.name) from None
            raw = nxt.raw
            yield raw
            ctypes.memmove(prev, raw, self.key_size)
            attr.key = ctypes.addressof(prev)

    def keys(self) -> Iterator[Any]:
        """Iterate over the keys."""
        self._need_keys("iteration")
        decode = self.key_codec.decode
        for raw in self._raw_keys():
            yield decode(raw)

    def __iter__(self) -> Iterator[Any]:
        return self.keys()

    def items(self) -> Iterator[tuple[Any, Any]]:
        """Iterate over (key, value); keys deleted meanwhile are skipped."""
        self._need_keys("iteration")
        vbuf = ctypes.create_string_buffer(self._vbuf_size)
        decode_k, decode_v = self.key_codec.decode, self.value_codec.decode
        for raw in self._raw_keys():
            try:
                self._elem(Cmd.MAP_LOOKUP_ELEM, raw, vbuf)
            except KernelError as e:
                if e.errno == _errno.ENOENT:
                    continue
                raise
            yield decode_k(raw), decode_v(vbuf.raw)

    def values(self) -> Iterator[Any]:
        for _k, v in self.items():
            yield v

    def __getitem__(self, key: Any) -> Any:
        return self.lookup(key)

    def __setitem__(self, key: Any, value: Any) -> None:
        self.update(key, value)

    def __delitem__(self, key: Any) -> None:
        self.delete(key)

    def __contains__(self, key: Any) -> bool:
        if self.type == MapType.BLOOM_FILTER:
            return self.peek_value(key)
        try:
            self.lookup(key)
        except KeyError:
            return False
        return True

    def __len__(self) -> int:
        if self.type in ARRAY_TYPES:
            return self.max_entries
        self._need_keys("len()")
        return sum(1 for _ in self._raw_keys())

    def __bool__(self) -> bool:
        return True

    def _need_keys(self, op: str) -> None:
        if self.type in KEYLESS_TYPES:
            t = self.type.name if isinstance(self.type, MapType) else self.type
            raise MapOperationError(f"map {self.name!r}: {op} does not apply to a {t} map (it has no keys)")

    # --- queue, stack, bloom filter ----------------------------------------------------------------------

    def push(self, value: Any, flags: int = UpdateFlags.ANY) -> None:
        """Add `value` to a queue, stack or bloom filter. With UpdateFlags.EXIST a full queue/stack drops
        its oldest element. Minimum kernel: 4.20 (queue, stack), 5.16 (bloom filter)."""
        self._elem(Cmd.MAP_UPDATE_ELEM, None, _buf(self._value(value)), flags)

    def pop(self) -> Any:
        """Remove and return the next element of a queue or stack; KeyError when empty."""
        vbuf = ctypes.create_string_buffer(self._vbuf_size)
        try:
            self._elem(Cmd.MAP_LOOKUP_AND_DELETE_ELEM, None, vbuf)
        except KernelError as e:
            if e.errno == _errno.ENOENT:
                raise KeyError(f"map {self.name!r} is empty") from None
            raise
        return self.value_codec.decode(vbuf.raw)

    def peek(self) -> Any:
        """The next element of a queue or stack, left in place; KeyError when empty."""
        vbuf = ctypes.create_string_buffer(self._vbuf_size)
        try:
            self._elem(Cmd.MAP_LOOKUP_ELEM, None, vbuf)
        except KernelError as e:
            if e.errno == _errno.ENOENT:
                raise KeyError(f"map {self.name!r} is empty") from None
            raise
        return self.value_codec.decode(vbuf.raw)

    def peek_value(self, value: Any) -> bool:
        """Bloom filter membership: False means certainly absent, True means probably present."""
        try:
            self._elem(Cmd.MAP_LOOKUP_ELEM, None, _buf(self._value(value)))
        except KernelError as e:
            if e.errno == _errno.ENOENT:
                return False
            raise
        return True

    # --- whole-map operations ------------------------------------------------------------------------------

    def freeze(self) -> None:
        """Make the map read-only from user space, for good (BPF_MAP_FREEZE). Minimum kernel: 5.2."""
        attr = MapElemAttr(map_fd=self._fd.fileno())
        try:
            self._fd.syscalls.bpf(Cmd.MAP_FREEZE, attr)
        except KernelError as e:
            raise _named(e, Cmd.MAP_FREEZE, self.name) from None

    def pin(self, path: str | os.PathLike[str]) -> None:
        """Pin the map at `path` on a bpf file system; remove the file (os.unlink) to unpin."""
        objects.pin(self._fd, path)

    def info(self) -> MapInfo:
        """The kernel's view of the map (id, type, sizes, flags, BTF ids)."""
        return read_info(self._fd)

    @property
    def id(self) -> int:
        """The map's kernel id."""
        if self._id is None:
            self._id = self.info().id
        return self._id

    # Batch operations live in bpfkit.kernel.mapbatch; bound here for the dict-like API.
    def lookup_batch(self, batch_size: int = 256) -> list[tuple[Any, Any]]:
        """All (key, value) pairs, read `batch_size` at a time (BPF_MAP_LOOKUP_BATCH, Linux 5.6)."""
        from bpfkit.kernel.mapbatch import lookup_batch

        return lookup_batch(self, batch_size, delete=False)

    def lookup_and_delete_batch(self, batch_size: int = 256) -> list[tuple[Any, Any]]:
        """Remove and return all (key, value) pairs (BPF_MAP_LOOKUP_AND_DELETE_BATCH, Linux 5.6)."""
        from bpfkit.kernel.mapbatch import lookup_batch

        return lookup_batch(self, batch_size, delete=True)

    def update_batch(self, items: Any, flags: int = UpdateFlags.ANY) -> int:
        """Store many (key, value) pairs (a mapping or pairs) in one call; returns the count."""
        from bpfkit.kernel.mapbatch import update_batch

        return update_batch(self, items, flags)

    def delete_batch(self, keys: Any) -> int:
        """Delete many keys in one call; returns the count. KeyError when one is missing."""
        from bpfkit.kernel.mapbatch import delete_batch

        return delete_batch(self, keys)


def read_info(fd: Fd) -> MapInfo:
    """Read struct bpf_map_info for map `fd`."""
    try:
        raw = objects.info_by_fd(fd, BpfMapInfo())
    except KernelError as e:
        raise bpf_error(Cmd.OBJ_GET_INFO_BY_FD, e.errno or 0, None, fd.what) from None
    return MapInfo(
        id=raw.id, type=_map_type(raw.type), name=objects.c_string(raw.name), key_size=raw.key_size,
        value_size=raw.value_size, max_entries=raw.max_entries, flags=raw.map_flags, ifindex=raw.ifindex,
        btf_id=raw.btf_id, btf_key_type_id=raw.btf_key_type_id, btf_value_type_id=raw.btf_value_type_id,
        btf_vmlinux_value_type_id=raw.btf_vmlinux_value_type_id, map_extra=raw.map_extra,
        netns_dev=raw.netns_dev, netns_ino=raw.netns_ino,
    )


def _named(e: KernelError, cmd: Cmd, name: str) -> KernelError:
    """`e` again, with the map's name in its message."""
    return bpf_error(cmd, e.errno or 0, None, f"map {name!r}" if name else None)
