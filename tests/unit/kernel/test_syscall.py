"""The syscall choke point: numbers, the fake, override, and the errors it raises."""

from __future__ import annotations

import ctypes
import errno

import pytest

from bpfkit.errors import KernelError
from bpfkit.kernel import diagnose, syscall
from bpfkit.kernel.fake import Call, FakeSyscalls, read_user, write_user
from bpfkit.uapi.attr import MapCreateAttr, ObjPinAttr, PerfEventAttr
from bpfkit.uapi.enums import Cmd


def test_syscall_numbers_per_architecture() -> None:
    assert syscall.SYSCALL_NUMBERS["x86_64"] == {"bpf": 321, "perf_event_open": 298}
    assert syscall.SYSCALL_NUMBERS["aarch64"] == {"bpf": 280, "perf_event_open": 241}
    assert syscall.LinuxSyscalls("aarch64")._nr_bpf == 280
    assert syscall.LinuxSyscalls("x86_64")._nr_bpf == 321


def test_unknown_architecture_is_a_clear_error() -> None:
    with pytest.raises(KernelError, match=r"bpf.*riscv128") as ei:
        syscall.LinuxSyscalls("riscv128")
    assert ei.value.errno == errno.ENOSYS


def test_cmd_name() -> None:
    assert syscall.cmd_name(Cmd.MAP_CREATE) == "BPF_MAP_CREATE"
    assert syscall.cmd_name(5) == "BPF_PROG_LOAD"
    assert syscall.cmd_name(999) == "BPF_CMD_999"


def test_override_installs_and_restores() -> None:
    real = syscall.current()
    fake = FakeSyscalls()
    with syscall.override(fake) as installed:
        assert installed is fake
        assert syscall.current() is fake
    assert syscall.current() is real


def test_fake_records_exact_attr_bytes_and_size() -> None:
    fake = FakeSyscalls()
    attr = MapCreateAttr(map_type=1, key_size=4, value_size=8, max_entries=16)
    fd = fake.bpf(Cmd.MAP_CREATE, attr)
    assert fd == 1000 and fd in fake.open_fds
    (call,) = fake.bpf_calls(Cmd.MAP_CREATE)
    assert call.attr == bytes(attr) and len(call.attr) == ctypes.sizeof(MapCreateAttr) == 96
    assert call.args == (96,)
    assert call.cmd_name == "BPF_MAP_CREATE"
    assert fake.bpf(Cmd.MAP_FREEZE, attr) == 0  # not an fd command
    fake.close(fd)
    assert fd not in fake.open_fds
    assert fake.calls[-1] == Call("close", None, b"", (fd,))


def test_fake_handler_errors_become_kernel_errors() -> None:
    fake = FakeSyscalls()
    fake.fail(Cmd.MAP_CREATE, errno.E2BIG)
    with pytest.raises(KernelError) as ei:
        fake.bpf(Cmd.MAP_CREATE, MapCreateAttr())
    assert ei.value.errno == errno.E2BIG
    assert ei.value.syscall == "bpf(BPF_MAP_CREATE)"
    assert "max_entries is too large" in str(ei.value)


def test_fake_handler_sees_user_memory() -> None:
    fake = FakeSyscalls()
    seen: list[bytes] = []

    def pin(attr: ctypes.Structure) -> int:
        assert isinstance(attr, ObjPinAttr)
        seen.append(ctypes.string_at(attr.pathname))
        return 0

    fake.on(Cmd.OBJ_PIN, pin)
    buf = ctypes.create_string_buffer(b"/sys/fs/bpf/x")
    fake.bpf(Cmd.OBJ_PIN, ObjPinAttr(pathname=ctypes.addressof(buf), bpf_fd=3))
    assert seen == [b"/sys/fs/bpf/x"]
    out = ctypes.create_string_buffer(4)
    write_user(ctypes.addressof(out), b"abcd")
    assert read_user(ctypes.addressof(out), 4) == b"abcd"
    assert read_user(0, 0) == b""


def test_perf_event_open_and_mount_are_recorded() -> None:
    fake = FakeSyscalls()
    attr = PerfEventAttr(type=1, config=9)
    fd = fake.perf_event_open(attr, -1, 0)
    assert fake.calls[-1].name == "perf_event_open" and fake.calls[-1].attr == bytes(attr)
    fake.close(fd)
    fake.mount("bpf", "/sys/fs/bpf", "bpf")
    assert fake.calls[-1].args == ("bpf", "/sys/fs/bpf", "bpf", 0, None)


class TestHints:
    def test_eperm_without_capabilities_names_caps_and_sysctl(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(diagnose, "effective_capabilities", lambda: 0)
        monkeypatch.setattr(diagnose, "_sysctl", lambda name: "2")
        e = diagnose.bpf_error(Cmd.MAP_CREATE, errno.EPERM)
        text = str(e)
        assert text.startswith("bpf(BPF_MAP_CREATE): EPERM")
        assert "CAP_BPF" in text and "CAP_SYS_ADMIN" in text
        assert "kernel.unprivileged_bpf_disabled=2" in text

    def test_eperm_with_capabilities_blames_policy(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(diagnose, "effective_capabilities", lambda: 1 << diagnose.CAP_SYS_ADMIN)
        text = str(diagnose.bpf_error(Cmd.PROG_LOAD, errno.EPERM))
        assert "refused although the process has CAP_SYS_ADMIN" in text

    @pytest.mark.parametrize(
        ("cmd", "err", "needle"),
        [
            (Cmd.MAP_CREATE, errno.EINVAL, "map_flags is not valid"),
            (Cmd.MAP_CREATE, errno.E2BIG, "max_entries is too large"),
            (Cmd.MAP_UPDATE_ELEM, errno.E2BIG, "the map is full"),
            (Cmd.MAP_UPDATE_ELEM, errno.EEXIST, "BPF_NOEXIST"),
            (Cmd.MAP_UPDATE_ELEM, errno.EPERM, "frozen"),
            (Cmd.MAP_LOOKUP_ELEM, errno.ENOENT, "no such key"),
            (Cmd.PROG_LOAD, errno.E2BIG, "too many instructions"),
            (Cmd.PROG_LOAD, errno.EINVAL, "expected_attach_type"),
            (Cmd.LINK_CREATE, errno.E2BIG, "does not know"),
            (Cmd.OBJ_GET, errno.ENOENT, "no object is pinned"),
            (Cmd.OBJ_PIN, errno.EINVAL, "mount -t bpf"),
            (Cmd.MAP_FREEZE, errno.EBUSY, "frozen"),
            (Cmd.PROG_TEST_RUN, errno.EINVAL, "cannot be test-run"),
            (Cmd.MAP_LOOKUP_ELEM, diagnose.ENOTSUPP, "not supported"),
        ],
    )
    def test_errno_hints(self, cmd: Cmd, err: int, needle: str) -> None:
        e = diagnose.bpf_error(cmd, err)
        assert e.errno == err
        assert needle in str(e)
        assert str(e).startswith(f"bpf({cmd.c_name}): ")

    def test_object_named_in_message(self) -> None:
        e = diagnose.bpf_error(Cmd.MAP_UPDATE_ELEM, errno.E2BIG, None, "map 'counts'")
        assert "map 'counts': the map is full" in str(e)

    def test_mount_error(self) -> None:
        e = diagnose.mount_error(errno.EPERM, "tracefs", "/sys/kernel/tracing")
        assert "mount -t tracefs tracefs /sys/kernel/tracing" in str(e)
        assert e.syscall == "mount(tracefs on /sys/kernel/tracing)"

    def test_perf_event_error(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(diagnose, "effective_capabilities", lambda: 0)
        monkeypatch.setattr(diagnose, "_sysctl", lambda name: "3")
        e = diagnose.perf_event_error(errno.EACCES, PerfEventAttr(type=2))
        assert e.syscall == "perf_event_open(type 2)"
        assert "CAP_PERFMON" in str(e) and "perf_event_paranoid=3" in str(e)


@pytest.mark.parametrize(
    ("spec", "needle"),
    [
        (dict(map_type=2, key_size=8, value_size=4, max_entries=1), "must be 4 for BPF_MAP_TYPE_ARRAY"),
        (dict(map_type=22, key_size=4, value_size=4, max_entries=1), "must be 0 for BPF_MAP_TYPE_QUEUE"),
        (dict(map_type=1, key_size=0, value_size=4, max_entries=1), "key_size must not be 0"),
        (dict(map_type=1, key_size=4, value_size=0, max_entries=1), "value_size must not be 0"),
        (dict(map_type=1, key_size=4, value_size=4, max_entries=0), "max_entries must not be 0"),
        (dict(map_type=27, max_entries=1000), "power of 2 multiple of the page size"),
        (dict(map_type=27, value_size=4, max_entries=4096), "value_size must be 0"),
        (dict(map_type=3, key_size=4, value_size=8, max_entries=1), "value_size must be 4 (an fd)"),
        (dict(map_type=11, key_size=8, value_size=4, max_entries=1), "BPF_F_NO_PREALLOC"),
        (dict(map_type=11, key_size=4, value_size=4, max_entries=1, map_flags=1), "1..256 data bytes"),
        (dict(map_type=29, key_size=4, value_size=4, map_flags=1), "need BTF"),
        (dict(map_type=19, key_size=16, value_size=8, max_entries=5), "max_entries must be 0"),
        (dict(map_type=12, key_size=4, value_size=4, max_entries=1), "inner_map_fd"),
        (dict(map_type=4000, key_size=4), "map_type 4000 is unknown"),
    ],
)
def test_map_create_einval_names_the_field(spec: dict[str, int], needle: str) -> None:
    attr = MapCreateAttr(**spec)
    assert needle in str(diagnose.bpf_error(Cmd.MAP_CREATE, errno.EINVAL, attr))


def test_map_create_einval_generic_when_attr_looks_right() -> None:
    attr = MapCreateAttr(map_type=1, key_size=4, value_size=4, max_entries=1, map_flags=1 << 30)
    assert "map_flags is not valid" in str(diagnose.bpf_error(Cmd.MAP_CREATE, errno.EINVAL, attr))
