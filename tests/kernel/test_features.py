"""Feature probes against the running kernel; the oracle is doing the thing directly."""

from __future__ import annotations

import errno

import pytest

from bpfkit.errors import KernelError, NotSupportedError, VerifierError
from bpfkit.kernel import features
from bpfkit.kernel.maps import Map
from bpfkit.kernel.programs import Program
from bpfkit.obj.spec import MapSpec
from bpfkit.uapi.enums import AttachType, Helper, MapType, ProgType

pytestmark = pytest.mark.kernel

RET_0 = bytes.fromhex("b700000000000000" "9500000000000000")


@pytest.mark.parametrize("prog_type", [ProgType.SOCKET_FILTER, ProgType.XDP, ProgType.SCHED_CLS,
                                       ProgType.TRACEPOINT, ProgType.KPROBE, ProgType.CGROUP_SKB])
def test_basic_program_types_are_supported(prog_type: ProgType) -> None:
    assert features.probe_prog_type(prog_type)
    with Program.load(RET_0, prog_type):  # the oracle: it loads
        pass


def test_probe_answers_are_cached() -> None:
    features.probe_prog_type(ProgType.XDP)
    hits = features.prog_type_probe.cache_info().hits
    features.probe_prog_type(ProgType.XDP)
    assert features.prog_type_probe.cache_info().hits == hits + 1


def test_unsupported_program_type_reason() -> None:
    unsupported = [t for t in ProgType if t and not features.probe_prog_type(t)]
    for t in unsupported:
        with pytest.raises(NotSupportedError) as ei:
            features.require_prog_type(t)
        assert t.c_name in str(ei.value) and ei.value.min_kernel == features.PROG_TYPE_MIN_KERNEL[t]
        assert features.prog_type_probe(t).reason


def test_tracing_probe_matches_a_real_fentry_load() -> None:
    target = features._vmlinux_func_id("bpf_fentry_test1")
    if not target:
        pytest.skip("no bpf_fentry_test1 in vmlinux BTF")
    try:
        Program.load(RET_0, ProgType.TRACING, expected_attach_type=AttachType.TRACE_FENTRY,
                     attach_btf_id=target).close()
        loaded = True
    except KernelError as e:
        loaded = False
        assert not isinstance(e, VerifierError)
        assert e.errno == errno.EPERM or e.errno == errno.EINVAL
    assert features.probe_tracing_programs() == loaded


@pytest.mark.parametrize("map_type", [t for t in MapType if t])
def test_map_type_probe(map_type: MapType) -> None:
    r = features.map_type_probe(map_type)
    if r.supported:
        features.require_map_type(map_type)
        return
    assert r.reason.startswith("bpf(BPF_MAP_CREATE)") or "program type" in r.reason
    with pytest.raises(NotSupportedError, match=map_type.c_name) as ei:
        features.require_map_type(map_type)
    assert ei.value.min_kernel == features.MAP_TYPE_MIN_KERNEL[map_type]


def test_map_probe_agrees_with_direct_creation() -> None:
    """Types tests/kernel/test_maps.py creates directly with their own parameters."""
    created = []
    for t, k, v, n in [(MapType.HASH, 4, 4, 1), (MapType.LPM_TRIE, 8, 4, 1), (MapType.QUEUE, 0, 4, 1),
                       (MapType.BLOOM_FILTER, 0, 4, 1), (MapType.DEVMAP, 4, 4, 1), (MapType.CPUMAP, 4, 4, 1),
                       (MapType.SOCKHASH, 4, 4, 1), (MapType.USER_RINGBUF, 0, 0, 4096)]:
        flags = 1 if t == MapType.LPM_TRIE else 0  # BPF_F_NO_PREALLOC
        try:
            Map.create(MapSpec(t, k, v, n, flags)).close()
            created.append(True)
        except KernelError:
            created.append(False)
        assert features.probe_map_type(t) == created[-1], t


def test_hash_and_ringbuf_supported_and_creatable() -> None:
    assert features.probe_map_type(MapType.HASH) and features.probe_map_type(MapType.RINGBUF)
    with Map.create(MapSpec(MapType.RINGBUF, 0, 0, 4096)):
        pass
    features.require_map_type(MapType.HASH)


@pytest.mark.parametrize(
    ("prog_type", "helper", "expected"),
    [
        (ProgType.XDP, Helper.XDP_ADJUST_HEAD, True),
        (ProgType.XDP, Helper.MAP_LOOKUP_ELEM, True),
        (ProgType.KPROBE, Helper.XDP_ADJUST_HEAD, False),  # "program of this type cannot use helper"
        (ProgType.SOCKET_FILTER, Helper.OVERRIDE_RETURN, False),
        (ProgType.SOCKET_FILTER, Helper.KTIME_GET_NS, True),
        (ProgType.TRACEPOINT, Helper.GET_CURRENT_PID_TGID, True),
        (ProgType.SCHED_CLS, Helper.SKB_STORE_BYTES, True),
        (ProgType.SOCKET_FILTER, Helper.SKB_STORE_BYTES, False),
        (ProgType.XDP, 100_000, False),  # "invalid func unknown#100000"
    ],
)
def test_probe_helper(prog_type: ProgType, helper: Helper | int, expected: bool) -> None:
    assert features.probe_helper(prog_type, helper) is expected
    if not expected:
        with pytest.raises(NotSupportedError, match=prog_type.c_name):
            features.require_helper(prog_type, helper)


def test_helper_sets_differ_between_program_types() -> None:
    """bpftool 7.1 lists every helper for every type here; the probe must not."""
    xdp = set(features.supported_helpers(ProgType.XDP))
    kprobe = set(features.supported_helpers(ProgType.KPROBE))
    assert Helper.XDP_ADJUST_HEAD in xdp and Helper.XDP_ADJUST_HEAD not in kprobe
    assert Helper.GET_CURRENT_TASK in kprobe
    assert len(xdp) < len(Helper) - 1 and len(kprobe) < len(Helper) - 1


def test_helper_probe_agrees_with_a_real_call() -> None:
    """The oracle: a program calling bpf_ktime_get_ns correctly (no arguments) loads."""
    call = bytes.fromhex("8500000005000000")  # call bpf_ktime_get_ns
    with Program.load(call + RET_0, ProgType.XDP):
        pass
    assert features.probe_helper(ProgType.XDP, Helper.KTIME_GET_NS)


def test_attach_type_probe() -> None:
    assert features.probe_attach_type(ProgType.CGROUP_SOCK_ADDR, AttachType.CGROUP_INET4_CONNECT)
    assert not features.probe_attach_type(ProgType.CGROUP_SOCK_ADDR, AttachType.CGROUP_INET_INGRESS)


def test_minimal_btf_loads() -> None:
    with features.minimal_btf() as btf:
        assert btf.fileno() > 0


def test_helper_probe_cannot_tell_for_struct_ops() -> None:
    """A STRUCT_OPS probe is refused before its call is checked: that is no evidence for the helper."""
    r = features.helper_probe(ProgType.STRUCT_OPS, Helper.MAP_LOOKUP_ELEM)
    assert not r.supported and "cannot tell" in r.reason
    # a type whose probe reaches the call still reports the helper available despite bad arguments
    assert features.helper_probe(ProgType.XDP, Helper.MAP_LOOKUP_ELEM).supported
