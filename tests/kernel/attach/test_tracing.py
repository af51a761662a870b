"""fentry/fexit/fmod_ret and LSM links in the running kernel: skipped, with the kernel's refusal, where
tracing or LSM programs do not load. The LSM program only counts and allows (returns 0)."""

from __future__ import annotations

import ctypes
import os

import pytest

from bpfkit.kernel import features
from bpfkit.kernel.attach.tracing import attach_lsm, attach_tracing, tracing_target_id
from bpfkit.kernel.maps import Map
from bpfkit.uapi.enums import AttachType, LinkType, ProgType

pytestmark = pytest.mark.kernel

_libc = ctypes.CDLL(None, use_errno=True)


def need(prog_type: ProgType) -> None:
    r = features.prog_type_probe(prog_type)
    if not r.supported:
        pytest.skip(f"{prog_type.name} programs are refused here: {r.reason}")


@pytest.mark.parametrize("attach_type", [AttachType.TRACE_FENTRY, AttachType.TRACE_FEXIT])
def test_fentry_fexit_count_getpid(counts: Map, counter_program, no_new_links: None,
                                   attach_type: AttachType) -> None:
    need(ProgType.TRACING)
    func = "__x64_sys_getpid"
    prog = counter_program(ProgType.TRACING, attach=attach_type,
                           attach_btf_id=tracing_target_id(attach_type, func))
    with attach_tracing(prog, target=func) as link:
        for _ in range(10):
            _libc.syscall(39)
        assert counts[0] >= 10
        info = link.info()
        assert info.type == LinkType.TRACING
        assert info.target["attach_type"] == attach_type.name.lower()
    before = counts[0]
    _libc.syscall(39)
    assert counts[0] == before


def test_fmod_ret_runs_on_test_function(counts: Map, counter_program, no_new_links: None) -> None:
    """fmod_ret on bpf_modify_return_test, which BPF_PROG_TEST_RUN of the program itself calls."""
    need(ProgType.TRACING)
    target = "bpf_modify_return_test"
    prog = counter_program(ProgType.TRACING, attach=AttachType.MODIFY_RETURN,
                           attach_btf_id=tracing_target_id(AttachType.MODIFY_RETURN, target))
    with attach_tracing(prog, target=target):
        prog.test_run()
        assert counts[0] >= 1


def test_lsm_counts_file_opens(counts: Map, counter_program, no_new_links: None) -> None:
    need(ProgType.LSM)
    prog = counter_program(ProgType.LSM, ret=0, attach=AttachType.LSM_MAC,  # 0: allow
                           attach_btf_id=tracing_target_id(AttachType.LSM_MAC, "file_open"))
    with attach_lsm(prog, target="file_open"):
        for _ in range(3):
            os.close(os.open("/dev/null", os.O_RDONLY))
        assert counts[0] >= 3
