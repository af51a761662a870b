"""`HostMemory.fake_args`, the quick translation of helper arguments on the JIT's trampoline, gives
exactly what `to_fake` gives, value by value, with and without resolvers."""

from __future__ import annotations

import pytest

from bpfkit.obj.spec import MapSpec
from bpfkit.uapi.enums import MapType
from bpfkit.vm import Vm
from bpfkit.vm.jit import jit_supported, runtime_for
from bpfkit.vm.jit.hostmem import HostMemory
from bpfkit.vm.jit.layout import RunBlock

U64 = (1 << 64) - 1

pytestmark = pytest.mark.skipif(jit_supported() is not None, reason=f"no JIT here: {jit_supported()}")


def synced_host() -> tuple[HostMemory, list[int]]:
    vm = Vm()
    m = vm.create_map(MapSpec(MapType.ARRAY, 4, 8, 4, name="a"))
    m.value_address(0)  # maps element 0: a region to translate
    host = runtime_for(vm.mem).host
    host.sync(RunBlock(), None, force=True)
    starts = [hr.addr for hr in host._sorted]
    ends = [hr.addr + hr.size for hr in host._sorted]
    probes = [0, 1, 4096, host.lo - 1, host.lo, host.hi, host.hi + 1, U64, m.address, *starts, *ends,
              *(e + 1 for e in ends), *(s - 1 for s in starts)]
    return host, [p & U64 for p in probes]


def test_fake_args_is_to_fake_for_every_value() -> None:
    host, probes = synced_host()
    assert host.lo <= host.hi
    for i in range(0, len(probes), 5):
        args = tuple((probes[i:i + 5] + [0] * 5)[:5])
        assert host.fake_args(args) == tuple(host.to_fake(v) for v in args)
    translated = [host.to_fake(v) for v in probes]
    assert translated != probes  # some probes are host addresses of regions


def test_fake_args_consults_resolvers_for_values_outside_the_regions() -> None:
    host, _ = synced_host()
    outside = host.hi + 0x1000
    host.resolvers.append(lambda value: 42 if value == outside else None)
    assert host.fake_args((outside, 0, 1, 2, 3)) == (42, 0, 1, 2, 3)
