"""The UAPI constant tables against the facts: linux/bpf.h and the live kernel BTF they came from."""

from __future__ import annotations

import ast
import enum
import importlib.util
import platform
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import pytest

from bpfkit import uapi
from bpfkit.uapi import (
    HELPER_NAMES,
    AttachFlags,
    AttachType,
    Cmd,
    CoreReloKind,
    Helper,
    LinkType,
    MapFlags,
    MapType,
    PerfEventOutputFlags,
    ProgLoadFlags,
    ProgType,
    RingbufHeader,
    StackFlags,
    TaskFdType,
    TestRunFlags,
    UpdateFlags,
    XdpAction,
    c_names,
    enums,
    flags,
    source_of,
)

ROOT = Path(__file__).resolve().parents[3]
ENUMS_FILE = ROOT / "src" / "bpfkit" / "uapi" / "enums.py"
HEADER = Path("/usr/include/linux/bpf.h")
LIVE_BTF = Path("/sys/kernel/btf/vmlinux")


def _classes(module: ModuleType) -> list[type[enum.Enum]]:
    objs = [getattr(module, name) for name in module.__all__]
    return [obj for obj in objs if isinstance(obj, type) and issubclass(obj, enum.Enum)]


GENERATED = _classes(enums)
HAND_WRITTEN = _classes(flags)
CLASSES = GENERATED + HAND_WRITTEN

# Generated classes whose C enum is not an enum in the 6.1 header (newer, or a #define there).
NEWER_THAN_6_1 = {"PerfEventType", "KprobeMultiFlags", "UprobeMultiFlags"}
# Hand-written flags added after 6.1 (flags.py marks each with its release).
FLAGS_AFTER_6_1 = {
    "BPF_F_XDP_DEV_BOUND_ONLY",
    "BPF_F_TEST_REG_INVARIANTS",
    "BPF_F_TOKEN_FD",
    "BPF_F_BEFORE",
    "BPF_F_AFTER",
    "BPF_F_ID",
    "BPF_F_LINK",
}


# --- known values: facts read from /usr/include/linux/bpf.h -----------------------------------------


KNOWN_VALUES: list[tuple[enum.IntEnum | enum.IntFlag, int]] = [
    (Cmd.MAP_CREATE, 0),
    (Cmd.PROG_LOAD, 5),
    (Cmd.PROG_TEST_RUN, 10),
    (Cmd.LINK_CREATE, 28),
    (MapType.HASH, 1),
    (MapType.RINGBUF, 27),
    (ProgType.SOCKET_FILTER, 1),
    (ProgType.XDP, 6),
    (AttachType.CGROUP_INET_INGRESS, 0),
    (LinkType.PERF_EVENT, 7),
    (Helper.MAP_LOOKUP_ELEM, 1),
    (Helper.TRACE_PRINTK, 6),
    (Helper.RINGBUF_OUTPUT, 130),
    (TaskFdType.URETPROBE, 5),
    (XdpAction.PASS, 2),
    (CoreReloKind.ENUMVAL_VALUE, 11),
    (UpdateFlags.ANY, 0),
    (UpdateFlags.NOEXIST, 1),
    (UpdateFlags.EXIST, 2),
    (UpdateFlags.F_LOCK, 4),
    (MapFlags.NO_PREALLOC, 1),
    (MapFlags.MMAPABLE, 1 << 10),
    (PerfEventOutputFlags.CURRENT_CPU, 0xFFFFFFFF),
    (StackFlags.USER_STACK, 1 << 8),
    (RingbufHeader.HDR_SZ, 8),
    (RingbufHeader.BUSY_BIT, 1 << 31),
    (ProgLoadFlags.SLEEPABLE, 1 << 4),
    (TestRunFlags.RUN_ON_CPU, 1),
]


@pytest.mark.parametrize(("member", "value"), KNOWN_VALUES, ids=lambda x: getattr(x, "c_name", None))
def test_known_value(member: enum.IntEnum | enum.IntFlag, value: int) -> None:
    assert member == value


def test_aliases_and_sentinels() -> None:
    assert Cmd.__members__["PROG_RUN"] is Cmd.PROG_TEST_RUN  # BPF_PROG_RUN = BPF_PROG_TEST_RUN
    assert MapType(19).name == "CGROUP_STORAGE"  # not its older alias CGROUP_STORAGE_DEPRECATED
    for cls in GENERATED:
        assert not any(name.startswith(("_", "MAX")) for name in cls.__members__), cls
    assert "__MAX_BPF_ATTACH_TYPE" not in c_names(AttachType).values()
    assert max(AttachType) == len(AttachType) - 1  # dense, with the sentinel gone


def test_helper_names() -> None:
    assert HELPER_NAMES[1] == "bpf_map_lookup_elem"
    assert HELPER_NAMES[Helper.GET_CURRENT_PID_TGID] == "bpf_get_current_pid_tgid"
    assert 0 not in HELPER_NAMES  # BPF_FUNC_unspec names no function
    assert len(HELPER_NAMES) == len(Helper) - 1
    assert all(name == "bpf_" + Helper(i).name.lower() for i, name in HELPER_NAMES.items())


def test_c_names() -> None:
    assert Cmd.PROG_LOAD.c_name == "BPF_PROG_LOAD"
    assert MapType.RINGBUF.c_name == "BPF_MAP_TYPE_RINGBUF"
    assert Helper.MAP_LOOKUP_ELEM.c_name == "BPF_FUNC_map_lookup_elem"
    assert UpdateFlags.F_LOCK.c_name == "BPF_F_LOCK"
    assert (UpdateFlags.EXIST | UpdateFlags.F_LOCK).c_name == "BPF_EXIST|BPF_F_LOCK"
    assert (MapFlags.RDONLY_PROG | MapFlags.NO_PREALLOC).c_name == "BPF_F_NO_PREALLOC|BPF_F_RDONLY_PROG"
    assert AttachFlags.LINK.c_name == "BPF_F_LINK"
    assert source_of(Helper).enum == "bpf_func_id"
    assert source_of(MapFlags).enum is None
    with pytest.raises(TypeError, match="not a UAPI constants class"):
        source_of(int)


def test_flags_shared_with_map_flags_agree() -> None:
    # BPF_F_TOKEN_FD and BPF_F_LINK are one value each in C, used by several commands.
    assert int(ProgLoadFlags.TOKEN_FD) == int(MapFlags.TOKEN_FD)
    assert int(AttachFlags.LINK) == int(MapFlags.LINK)


def test_every_class_has_a_source_and_documentation() -> None:
    assert len(GENERATED) >= 20 and len(HAND_WRITTEN) >= 4
    assert all(getattr(uapi, cls.__name__) is cls for cls in CLASSES)  # re-exported by the package
    for cls in CLASSES:
        source = source_of(cls)
        assert cls.__doc__ and "C: " in cls.__doc__, cls
        assert source.enum is None or f"enum {source.enum}" in cls.__doc__, cls


# --- every constant of the installed header, with the same value ------------------------------------


@dataclass
class HeaderFacts:
    enums: list[tuple[str | None, dict[str, int]]]  # (tag or None, members) per enum
    defines: dict[str, int]  # #define NAME <integer expression>


def _c_eval(expr: str, known: dict[str, int]) -> int:
    """Value of a C integer constant expression from the header (literals, names, | << + - ~)."""
    expr = re.sub(r"\((?:__u64|__u32)\)", "", expr)
    expr = re.sub(r"\b(0[xX][0-9a-fA-F]+|\d+)[uUlL]+\b", r"\1", expr)

    def ev(node: ast.expr) -> int:
        if isinstance(node, ast.Constant) and isinstance(node.value, int):
            return node.value
        if isinstance(node, ast.Name):
            return known[node.id]
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.Invert)):
            value = ev(node.operand)
            return -value if isinstance(node.op, ast.USub) else ~value
        if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.LShift, ast.BitOr, ast.Add)):
            left, right = ev(node.left), ev(node.right)
            if isinstance(node.op, ast.LShift):
                return left << right
            return left | right if isinstance(node.op, ast.BitOr) else left + right
        raise ValueError(f"unsupported C expression {expr!r}")

    return ev(ast.parse(expr.strip(), mode="eval").body)


def parse_header(text: str) -> HeaderFacts:
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    text = re.sub(r"//[^\n]*", "", text).replace("\\\n", " ")
    known: dict[str, int] = {}
    defines: dict[str, int] = {}
    for m in re.finditer(r"^#define\s+(BPF_\w+)\s+(\(1U << \d+\)|\d+U?)\s*$", text, re.M):
        defines[m[1]] = known[m[1]] = _c_eval(m[2], known)
    result: list[tuple[str | None, dict[str, int]]] = []
    for m in re.finditer(r"\benum\s+(\w+)?\s*\{(.*?)\}", text, re.S):
        tag, body = m[1], m[2]
        body = "\n".join(line for line in body.splitlines() if not line.strip().startswith("#"))
        members: dict[str, int] = {}
        if tag == "bpf_func_id":
            # The members come from the FN(name) or FN(name, id, ctx) list of __BPF_FUNC_MAPPER.
            mapper = re.search(r"#define ___?BPF_FUNC_MAPPER\(FN[^)]*\)(.*)", text)
            assert mapper, "no __BPF_FUNC_MAPPER in the header"
            for i, (name, number) in enumerate(re.findall(r"FN\((\w+)(?:,\s*(\d+))?", mapper[1])):
                members["BPF_FUNC_" + name] = int(number) if number else i
        else:
            next_value = 0
            for item in filter(None, (part.strip() for part in body.split(","))):
                name, _, expr = (s.strip() for s in item.partition("="))
                value = _c_eval(expr, known) if expr else next_value
                members[name] = known[name] = value
                next_value = value + 1
        result.append((tag, members))
    return HeaderFacts(result, defines)


@pytest.fixture(scope="module")
def header() -> HeaderFacts:
    if not HEADER.exists():
        pytest.skip(f"{HEADER} is not installed (linux-libc-dev)")
    return parse_header(HEADER.read_text(encoding="utf-8", errors="replace"))


def test_header_parser_sees_the_enums(header: HeaderFacts) -> None:
    tags = {tag for tag, _ in header.enums}
    assert {"bpf_cmd", "bpf_map_type", "bpf_prog_type", "bpf_attach_type", "bpf_func_id"} <= tags
    func_ids = next(members for tag, members in header.enums if tag == "bpf_func_id")
    assert func_ids["BPF_FUNC_map_lookup_elem"] == 1 and len(func_ids) > 200


def _members_by_c_name(cls: type[enum.Enum]) -> dict[str, int]:
    return {c: int(cls.__members__[name].value) for name, c in c_names(cls).items()}


def test_every_header_enum_constant_is_present(header: HeaderFacts) -> None:
    by_tag = {source_of(cls).enum: cls for cls in GENERATED if source_of(cls).enum}
    anonymous = [cls for cls in GENERATED if source_of(cls).enum is None]
    checked: set[str] = set()
    for tag, members in header.enums:
        wanted = {c: v for c, v in members.items() if not c.startswith(("__", "MAX_"))}  # no sentinels
        if tag is not None:
            classes = [by_tag[tag]] if tag in by_tag else []
        else:
            classes = [cls for cls in anonymous if wanted.keys() & _members_by_c_name(cls).keys()]
        for cls in classes:
            assert _members_by_c_name(cls).items() >= wanted.items(), (cls.__name__, tag)
            checked.add(cls.__name__)
    unchecked = {cls.__name__ for cls in GENERATED} - checked
    assert unchecked <= NEWER_THAN_6_1


def test_every_header_flag_define_is_present(header: HeaderFacts) -> None:
    ours: dict[str, int] = {}
    for cls in CLASSES:
        ours.update(_members_by_c_name(cls))
    for cls in HAND_WRITTEN:
        for c_name, value in _members_by_c_name(cls).items():
            if c_name in header.defines:
                assert header.defines[c_name] == value, c_name
            else:
                assert c_name in FLAGS_AFTER_6_1 or c_name.startswith("BPF_LOG_"), c_name
    flag_defines = {n: v for n, v in header.defines.items() if n.startswith("BPF_F_")}
    assert len(flag_defines) >= 10
    for c_name, value in flag_defines.items():
        assert ours.get(c_name) == value, c_name


# --- the committed file is what the generator makes from this kernel --------------------------------


def load_generator() -> ModuleType:
    """Import tools/gen_uapi.py, which is a script rather than a package module."""
    name = "gen_uapi"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, ROOT / "tools" / "gen_uapi.py")
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # dataclasses look the module up while the class is built
        spec.loader.exec_module(module)
    return sys.modules[name]


def test_committed_file_is_regenerated_byte_identical() -> None:
    committed = ENUMS_FILE.read_text(encoding="utf-8")
    first = committed.splitlines()[0]
    pattern = r"# Generated by tools/gen_uapi\.py from the kernel BTF \(Linux (\S+)\); do not edit\."
    found = re.fullmatch(pattern, first)
    assert found, f"bad first line: {first!r}"
    release = found[1]
    if not LIVE_BTF.exists():
        pytest.skip(f"{LIVE_BTF} is missing: the kernel has no BTF to regenerate from")
    if platform.release() != release:
        pytest.skip(f"enums.py was generated on Linux {release}, this is {platform.release()}")
    gen = load_generator()
    enums = gen.read_enums(LIVE_BTF.read_bytes())
    assert gen.generate(enums, release) == committed
    helpers = (ENUMS_FILE.parent / "_helpers.py").read_text(encoding="utf-8")
    assert gen.generate_helpers(enums, release) == helpers
    lazy = (ENUMS_FILE.parent / "_enums_lazy.py").read_text(encoding="utf-8")
    assert gen.generate_lazy(enums, release) == lazy
