"""Batch map operations: many elements per bpf(2) call (BPF_MAP_*_BATCH). Minimum kernel: 5.6.

The batch cursor (`in_batch`/`out_batch`) is opaque: hash maps store a bucket index (u32), array maps a
key, so its buffer is max(key_size, 4) bytes (kernel/bpf/hashtab.c, __htab_map_lookup_and_delete_batch;
kernel/bpf/syscall.c, generic_map_lookup_batch).
"""

from __future__ import annotations

import ctypes
import errno as _errno
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from bpfkit.errors import KernelError
from bpfkit.kernel.diagnose import bpf_error
from bpfkit.uapi.attr import MapBatchAttr
from bpfkit.uapi.enums import Cmd

if TYPE_CHECKING:
    from bpfkit.kernel.maps import Map

# Give up growing the batch after this many elements (a hash bucket larger than this is pathological).
_MAX_BATCH = 1 << 20


def _fail(m: Map, cmd: Cmd, e: KernelError) -> KernelError:
    return bpf_error(cmd, e.errno or 0, None, f"map {m.name!r}" if m.name else None)


def lookup_batch(m: Map, batch_size: int, *, delete: bool) -> list[tuple[Any, Any]]:
    """All (key, value) pairs of `m` read in batches; with `delete`, removed as they are read."""
    m._need_keys("batch lookup")
    if batch_size <= 0:
        raise ValueError("batch_size must be positive")
    cmd = Cmd.MAP_LOOKUP_AND_DELETE_BATCH if delete else Cmd.MAP_LOOKUP_BATCH
    ksize, vsize = m.key_size, m.value_codec.size
    token = max(ksize, 4)
    cursor_in = ctypes.create_string_buffer(token)
    cursor_out = ctypes.create_string_buffer(token)
    out: list[tuple[Any, Any]] = []
    decode_k, decode_v = m.key_codec.decode, m.value_codec.decode
    first = True
    sys = m.fd.syscalls
    while True:
        keys = ctypes.create_string_buffer(batch_size * ksize)
        values = ctypes.create_string_buffer(batch_size * vsize)
        attr = MapBatchAttr(map_fd=m.fileno(), count=batch_size, keys=ctypes.addressof(keys),
                            values=ctypes.addressof(values), out_batch=ctypes.addressof(cursor_out))
        if not first:
            attr.in_batch = ctypes.addressof(cursor_in)
        done = False
        try:
            sys.bpf(cmd, attr)
        except KernelError as e:
            if e.errno == _errno.ENOENT:
                done = True  # the last (possibly empty) batch
            elif e.errno == _errno.ENOSPC and batch_size < _MAX_BATCH:
                batch_size *= 2  # a hash bucket holds more elements than fit: retry bigger
                continue
            else:
                raise _fail(m, cmd, e) from None
        kraw, vraw = keys.raw, values.raw
        for i in range(attr.count):
            out.append((decode_k(kraw[i * ksize:(i + 1) * ksize]), decode_v(vraw[i * vsize:(i + 1) * vsize])))
        if done:
            return out
        ctypes.memmove(cursor_in, cursor_out, token)
        first = False


def update_batch(m: Map, items: Mapping[Any, Any] | Iterable[tuple[Any, Any]], flags: int) -> int:
    """Store all (key, value) pairs in one call; returns how many the kernel stored."""
    m._need_keys("batch update")
    pairs = list(items.items()) if isinstance(items, Mapping) else list(items)
    if not pairs:
        return 0
    kdata = b"".join(m._key(k) for k, _ in pairs)
    vdata = b"".join(m._value(v) for _, v in pairs)
    keys, values = ctypes.create_string_buffer(kdata), ctypes.create_string_buffer(vdata)
    attr = MapBatchAttr(map_fd=m.fileno(), count=len(pairs), keys=ctypes.addressof(keys),
                        values=ctypes.addressof(values), elem_flags=flags)
    try:
        m.fd.syscalls.bpf(Cmd.MAP_UPDATE_BATCH, attr)
    except KernelError as e:
        what = f"map {m.name!r}, {attr.count} of {len(pairs)} elements stored before the failure"
        raise bpf_error(Cmd.MAP_UPDATE_BATCH, e.errno or 0, None, what) from None
    return int(attr.count)


def delete_batch(m: Map, keys: Iterable[Any]) -> int:
    """Delete all `keys` in one call; KeyError (after deleting the ones before it) when one is missing."""
    m._need_keys("batch delete")
    klist = list(keys)
    if not klist:
        return 0
    buf = ctypes.create_string_buffer(b"".join(m._key(k) for k in klist))
    attr = MapBatchAttr(map_fd=m.fileno(), count=len(klist), keys=ctypes.addressof(buf))
    try:
        m.fd.syscalls.bpf(Cmd.MAP_DELETE_BATCH, attr)
    except KernelError as e:
        if e.errno == _errno.ENOENT and attr.count < len(klist):
            raise KeyError(klist[attr.count]) from None
        raise _fail(m, Cmd.MAP_DELETE_BATCH, e) from None
    return int(attr.count)
