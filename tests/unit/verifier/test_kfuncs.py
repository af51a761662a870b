"""kfunc calls, kernel objects (PTR_TO_BTF_ID) and BTF-typed contexts against a small hand-made target
BTF, so the rules are tested without the running kernel's (tests/data/verifier/cases/ checks them
against the real one, and against the kernel)."""

from __future__ import annotations

import pytest

from bpfkit.btf import load_btf, marshal
from bpfkit.btf.types import Array, Func, FuncProto, Int, Member, Param, Ptr, Struct, Union
from bpfkit.errors import VerificationError
from bpfkit.isa import assemble
from bpfkit.uapi.btf import IntEncoding
from bpfkit.uapi.enums import AttachType, ProgType
from bpfkit.vm.verifier import verify

# ids: 1 int, 2 char, 3 struct node, 4 node *, 5 char[8], 6 union u, 7 void(void), 8 rcu_lock,
# 9 rcu_unlock, 10 void *, 11 void *(void *), 12 cast_to_kern_ctx, 13 bpf_ctx_convert,
# 14 int(struct node *, int), 15 traced_fn
TYPES = [
    Int("int", 4, IntEncoding.SIGNED),
    Int("char", 1, IntEncoding.SIGNED),
    Struct("node", 48, (Member("a", 1, 0), Member("b", 1, 32), Member("next", 4, 64),
                        Member("name", 5, 128), Member("u", 6, 192), Member("flags", 1, 320, 3))),
    Ptr(3),
    Array(2, 1, 8),
    Union("u", 8, (Member("x", 1, 0), Member("p", 4, 0))),
    FuncProto(0, ()),
    Func("bpf_rcu_read_lock", 7),
    Func("bpf_rcu_read_unlock", 7),
    Ptr(0),
    FuncProto(10, (Param("obj", 10),)),
    Func("bpf_cast_to_kern_ctx", 11),
    Struct("bpf_ctx_convert", 96, (Member("BPF_PROG_TYPE_XDP_prog", 3, 0),
                                   Member("BPF_PROG_TYPE_XDP_kern", 3, 384))),
    FuncProto(1, (Param("n", 4), Param("k", 1))),
    Func("traced_fn", 14),
]
BTF = load_btf(marshal(TYPES))
CAST = "call kfunc(12)\n"


def _xdp(text: str, **kw: object) -> None:
    verify(assemble(text), prog_type=ProgType.XDP, btf=BTF, **kw)  # type: ignore[arg-type]


def _refused(text: str, fragment: str, **kw: object) -> None:
    with pytest.raises(VerificationError) as info:
        _xdp(text, **kw)
    assert fragment in info.value.report.message


def test_kernel_object_reads() -> None:
    _xdp(CAST + "r1 = *(u32 *)(r0 + 4)\nr2 = *(u64 *)(r0 + 8)\nr3 = *(u32 *)(r2 + 0)\n"
                "r4 = *(u8 *)(r0 + 19)\nr5 = *(u64 *)(r0 + 24)\nr0 = 0\nexit")


@pytest.mark.parametrize(("text", "fragment"), [
    ("r1 = *(u32 *)(r0 + 8)", "cannot access ptr member next with moff 8"),
    ("r1 = *(u64 *)(r0 + 48)", "access beyond struct node"),
    ("r1 = *(u64 *)(r0 - 8)", "invalid negative access"),
    ("r1 = *(u32 *)(r0 + 32)", "doesn't have field at offset 32"),
    ("r1 = *(u64 *)(r0 + 20)", "access beyond the end of member name"),
    ("r1 = 0\n*(u32 *)(r0 + 0) = r1", "only read is supported"),
    ("r1 = *(u64 *)(r0 + 16)\nr0 = *(u8 *)(r1 + 0)", "invalid mem access 'scalar'"),
])
def test_kernel_object_refusals(text: str, fragment: str) -> None:
    _refused(CAST + text + "\nr0 = 0\nexit", fragment)


def test_pointer_loaded_from_member_is_typed_and_untrusted() -> None:
    with pytest.raises(VerificationError) as info:
        _xdp(CAST + "r1 = *(u64 *)(r0 + 8)\nr2 = *(u64 *)(r1 + 48)\nr0 = 0\nexit")
    report = info.value.report
    assert "beyond struct node" in report.message
    regs = dict(report.registers)
    assert regs["R0"] == "trusted_ptr_node()" and regs["R1"] == "untrusted_ptr_node()"


def test_union_of_several_members_lets_reads_run_past_a_member() -> None:
    _xdp(CAST + "r1 = *(u32 *)(r0 + 26)\nr0 = 0\nexit")  # half of u.x and 2 more bytes of union u
    _refused(CAST + "r1 = *(u32 *)(r0 + 2)\nr0 = 0\nexit", "access beyond the end of member a")


def test_kfunc_by_btf_id_and_rcu() -> None:
    _xdp("call kfunc(8)\ncall kfunc(9)\nr0 = 0\nexit")
    _refused("call kfunc(8)\nr0 = 0\nexit", "bpf_rcu_read_lock-ed region")
    _refused("call kfunc(9)\nr0 = 0\nexit", "unmatched rcu read unlock")
    _refused("call kfunc(1)\nr0 = 0\nexit", "is not a function")
    _refused("call kfunc(15)\nr0 = 0\nexit", "does not know the rules of kfunc traced_fn")
    _refused("call kfunc(8)\ncall kfunc(9)\nr0 = 0\nexit", "non-GPL", license="MIT")
    _refused("call kfunc(8)\ncall kfunc(9)\nr0 = 0\nexit", "JIT is required", jit=False)


def test_kfunc_by_name_before_the_loader_patches_it() -> None:
    insns = assemble("call kfunc(0)\ncall kfunc(0)\nr0 = 0\nexit")
    verify(insns, prog_type=ProgType.XDP, btf=BTF,
           kernel_refs={0: "bpf_rcu_read_lock", 1: "bpf_rcu_read_unlock"})


def test_kfunc_without_btf_says_what_to_pass() -> None:
    with pytest.raises(VerificationError) as info:
        verify(assemble("call kfunc(8)\nr0 = 0\nexit"), prog_type=ProgType.XDP)
    assert "needs the kernel's BTF" in info.value.report.message and "btf=" in info.value.report.hint


def test_typeless_ksym_is_an_unknown_number() -> None:
    """A typeless __ksym's lddw holds an address only the loader knows: not the 0 compiled in."""
    text = "r1 = 0 ll\nr0 = 0\nif r1 != 0 goto +1\nexit\nr0 = *(u8 *)(r10 - 1)\nexit"
    verify(assemble(text), prog_type=ProgType.XDP)  # a constant 0: the read is dead
    with pytest.raises(VerificationError, match="invalid read from stack"):
        verify(assemble(text), prog_type=ProgType.XDP, kernel_refs={0: "_stext"})


def test_fentry_context_from_the_target_prototype() -> None:
    kw = {"prog_type": ProgType.TRACING, "btf": BTF, "attach_to": "traced_fn"}
    verify(assemble("r2 = *(u64 *)(r1 + 0)\nr2 = *(u32 *)(r2 + 4)\nr3 = *(u32 *)(r1 + 8)\nr0 = 0\nexit"),
           expected_attach_type=AttachType.TRACE_FENTRY, **kw)  # type: ignore[arg-type]
    verify(assemble("r2 = *(u64 *)(r1 + 16)\nr0 = 0\nexit"),
           expected_attach_type=AttachType.TRACE_FEXIT, **kw)  # type: ignore[arg-type]
    for text, fragment in [("r2 = *(u64 *)(r1 + 16)\nr0 = 0", "3-th argument"),
                           ("r2 = *(u32 *)(r1 + 0)\nr0 = 0", "invalid bpf_context access"),
                           ("r0 = 1", "should have been in [0, 0]")]:
        with pytest.raises(VerificationError) as info:
            verify(assemble(text + "\nexit"), expected_attach_type=AttachType.TRACE_FENTRY,
                   **kw)  # type: ignore[arg-type]
        assert fragment in info.value.report.message

