"""`bpfkit.kernel.btf`: BTF objects loaded into the kernel (BPF_BTF_LOAD), by id, and their info."""

from __future__ import annotations

from pathlib import Path

import pytest

from bpfkit.btf import Int, Member, Struct, marshal
from bpfkit.errors import KernelError
from bpfkit.kernel import introspect
from bpfkit.kernel.btf import BtfHandle, probe_btf_kind, vmlinux_spec
from bpfkit.obj import load_object
from bpfkit.uapi.btf import Kind

pytestmark = pytest.mark.kernel
OBJ = Path(__file__).resolve().parents[1] / "data" / "obj"


def test_load_an_objects_btf_and_reopen_it_by_id() -> None:
    spec = load_object(OBJ / "global_data.o").btf
    assert spec is not None
    with BtfHandle.load(spec) as h:
        info = h.info()
        assert info.id > 0 and not info.kernel_btf and info.size == len(spec.data)
        with BtfHandle.from_id(info.id) as again:
            assert again.info().id == info.id
    assert h.closed


def test_refused_btf_names_the_kernels_reason() -> None:
    blob = marshal([Int("int", 4), Struct("s", 4, (Member("a", 1, 64),))])  # member past the end
    with pytest.raises(KernelError, match="refused the BTF") as info:
        BtfHandle.load(blob, sanitize=False)
    assert "exceeds" in str(info.value) or "size" in str(info.value), str(info.value)


def test_kernel_knows_every_kind_it_is_probed_for() -> None:
    # Linux 6.18 knows every BTF kind bpfkit can write
    assert all(probe_btf_kind(k) for k in (Kind.FLOAT, Kind.DECL_TAG, Kind.TYPE_TAG, Kind.ENUM64,
                                           Kind.DATASEC, Kind.FUNC))


def test_vmlinux_spec_is_cached_and_the_kernel_btf_has_its_size() -> None:
    assert vmlinux_spec() is vmlinux_spec()
    for btf_id in introspect.ids(introspect.Kind.BTF):
        with BtfHandle.from_id(btf_id) as h:
            info = h.info()
        if info.kernel_btf and info.name == "vmlinux":
            assert info.size == len(vmlinux_spec().data)
            return
    pytest.fail("no vmlinux BTF object among the kernel's BTF ids")
