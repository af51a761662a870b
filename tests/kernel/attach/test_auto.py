"""Auto-attach by section name, end to end on the committed clang fixtures (tracepoint.o, raw_tp.o)."""

from __future__ import annotations

import ctypes
import os
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest

from bpfkit._records import replace
from bpfkit.kernel.attach.auto import AutoAttachError, attach_all, attach_program
from bpfkit.kernel.maps import Map
from bpfkit.kernel.programs import Program
from bpfkit.obj import ObjectSpec, RefKind, load_object

pytestmark = pytest.mark.kernel

OBJ = Path(__file__).resolve().parents[2] / "data" / "obj"
_libc = ctypes.CDLL(None, use_errno=True)


class Loaded:
    """A minimal collection: the object's maps created, its programs loaded with map fds patched in."""

    def __init__(self, spec: ObjectSpec) -> None:
        self.spec = spec
        self.maps: dict[str, Map] = {}
        self.programs: dict[str, Program] = {}
        try:
            for name, m in spec.maps.items():
                self.maps[name] = Map.create(replace(m, btf_key_type_id=0, btf_value_type_id=0),
                                             key=int, value=int)
            for name, p in spec.programs.items():
                code = bytearray(p.insns if isinstance(p.insns, bytes) else b"")
                for ref in p.references:
                    assert ref.kind == RefKind.MAP
                    struct.pack_into("<i", code, ref.index * 8 + 4, self.maps[ref.target].fileno())
                self.programs[name] = Program.load(replace(p, insns=bytes(code), func_info=b"",
                                                                       line_info=b""))
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        for obj in [*self.programs.values(), *self.maps.values()]:
            obj.close()


@pytest.fixture
def tracepoint_obj() -> Iterator[Loaded]:
    loaded = Loaded(load_object(OBJ / "tracepoint.o"))
    yield loaded
    loaded.close()


def test_attach_all_collection(tracepoint_obj: Loaded, no_new_links: None) -> None:
    with attach_all(tracepoint_obj) as links:
        assert [link.kind for link in links] == ["tracepoint"]
        assert links[0].target == "syscalls:sys_enter_getpid"
        calls = tracepoint_obj.maps["getpid_calls"]
        pid = os.getpid()  # a getpid(2) too: counted before `before` is read
        before = calls[pid]
        for _ in range(25):
            _libc.syscall(39)
        assert calls[pid] == before + 25  # exactly this process's calls
        assert tracepoint_obj.maps["last_nr"][0] == 39
    assert links.closed


def test_attach_all_pairs_and_skips() -> None:
    raw = Loaded(load_object(OBJ / "raw_tp.o"))
    sock = Loaded(load_object(OBJ / "socket_filter.o"))
    try:
        (name, prog), = raw.programs.items()
        pairs = [(raw.spec.programs[name].section, prog),
                 *((sock.spec.programs[n].section, p) for n, p in sock.programs.items())]
        with attach_all(pairs) as links:
            assert [link.kind for link in links] == ["raw_tracepoint"]
            assert all("socket" in why for why in links.skipped.values()) and links.skipped
            before = raw.maps["syscall_counts"][39]
            for _ in range(10):
                _libc.syscall(39)
            assert raw.maps["syscall_counts"][39] >= before + 10
    finally:
        raw.close()
        sock.close()


def test_attach_program_refuses_sections_without_target(tracepoint_obj: Loaded) -> None:
    prog = tracepoint_obj.programs["on_getpid"]
    with pytest.raises(AutoAttachError, match="xdp needs an interface"):
        attach_program(prog, "xdp")
    with pytest.raises(AutoAttachError, match="names no target"):
        attach_program(prog, "tracepoint")
