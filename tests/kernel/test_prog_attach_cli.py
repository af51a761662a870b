"""`bpfkit prog attach|detach` on the real kernel: the pinned link shows in `bpfkit link list -j`, the
program runs on its hook, and removing the pin detaches it.

Network attachments go only to a veth pair this test makes (its peer in a namespace it makes and
deletes); cgroup ones to a cgroup it makes and removes.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from bpfkit.cli.main import main
from bpfkit.errors import KernelError
from bpfkit.isa import Builder
from bpfkit.kernel.maps import Map
from bpfkit.kernel.programs import Program
from bpfkit.obj.spec import MapSpec
from bpfkit.uapi.enums import AttachType, Helper, MapType, ProgType
from bpfkit.uapi.insn import AtomicOp, PseudoSrc, Reg

pytestmark = pytest.mark.kernel


def counter(map_fd: int, ret: int) -> list[object]:
    """counts[0] += 1; return `ret` (built with bpfkit's ISA builder)."""
    b = Builder()
    b.ld_imm64(Reg.R1, map_fd, PseudoSrc.MAP_FD)
    b.st(4, Reg.R10, -4, 0)
    b.mov(Reg.R2, Reg.R10).add(Reg.R2, -4)
    b.call(Helper.MAP_LOOKUP_ELEM)
    b.jmp("jeq", Reg.R0, 0, "out")
    b.mov(Reg.R1, 1)
    b.atomic(8, AtomicOp.ADD, Reg.R0, 0, Reg.R1)
    b.label("out")
    b.mov(Reg.R0, ret)
    b.exit()
    return list(b.build())


@pytest.fixture
def counts() -> Iterator[Map]:
    with Map.create(MapSpec(MapType.ARRAY, 4, 8, 1, name="counts"), key=int, value=int) as m:
        yield m


@pytest.fixture
def pins() -> Iterator[Path]:
    """A fresh directory on /sys/fs/bpf, removed with whatever is left in it."""
    d = Path(f"/sys/fs/bpf/bpfkit-attach-{os.getpid()}")
    if not Path("/sys/fs/bpf").is_dir():
        pytest.skip("no bpf file system at /sys/fs/bpf")
    d.mkdir()
    try:
        yield d
    finally:
        for p in d.iterdir():
            p.unlink()
        d.rmdir()


PinnedProgram = Callable[..., tuple[Program, str]]


@pytest.fixture
def pinned_counter(counts: Map, pins: Path) -> Iterator[PinnedProgram]:
    """Load a counter program of a type and pin it: (the program, its pin path)."""
    made: list[Program] = []

    def make(prog_type: ProgType, ret: int = 0, attach: AttachType | None = None) -> tuple[Program, str]:
        p = Program.load(counter(counts.fileno(), ret), prog_type, expected_attach_type=attach,
                         name="cli_cnt")
        made.append(p)
        path = str(pins / f"prog{len(made)}")
        p.pin(path)
        return p, path

    yield make
    for p in made:
        p.close()


def cli_json(capsys: pytest.CaptureFixture[str], *words: str) -> object:
    capsys.readouterr()
    code = main([*words, "-j"])
    out = capsys.readouterr()
    assert code == 0, out.err
    return json.loads(out.out) if out.out.strip() else None


def links_of(capsys: pytest.CaptureFixture[str], prog: Program) -> list[dict[str, object]]:
    listed = cli_json(capsys, "link", "list")
    assert isinstance(listed, list)
    return [rec for rec in listed if rec["prog_id"] == prog.id]


def attach_and_check(capsys: pytest.CaptureFixture[str], prog: Program, prog_pin: str, link_pin: str,
                     words: list[str], link_type: str, counts: Map, fire: Callable[[], None]) -> None:
    """attach with pin -> listed and counting; rm the pin -> gone and not counting."""
    rec = cli_json(capsys, "prog", "attach", "pinned", prog_pin, *words, "pin", link_pin)
    assert isinstance(rec, dict) and rec["pinned"] == link_pin
    (listed,) = links_of(capsys, prog)
    assert listed["id"] == rec["id"] and listed["type"] == link_type
    before = counts[0]
    fire()
    during = counts[0]
    assert during > before
    os.unlink(link_pin)
    assert links_of(capsys, prog) == []  # the pin held the last reference: the link is gone
    # The kernel frees the link in deferred work: runs already under way may still count for a moment.
    deadline = time.monotonic() + 5
    while True:
        settled = counts[0]
        fire()
        if counts[0] == settled:
            break
        assert time.monotonic() < deadline, "the program still runs after its link pin was removed"
        time.sleep(0.1)


def test_tracepoint_link(capsys: pytest.CaptureFixture[str], pinned_counter: PinnedProgram, counts: Map,
                         pins: Path) -> None:
    prog, path = pinned_counter(ProgType.TRACEPOINT)
    attach_and_check(capsys, prog, path, str(pins / "tp"), ["tracepoint", "syscalls:sys_enter_getppid"],
                     "perf_event", counts, lambda: [os.getppid() for _ in range(5)] and None)


def test_raw_tracepoint_link(capsys: pytest.CaptureFixture[str], pinned_counter: PinnedProgram, counts: Map,
                             pins: Path) -> None:
    prog, path = pinned_counter(ProgType.RAW_TRACEPOINT)
    attach_and_check(capsys, prog, path, str(pins / "raw"), ["raw_tracepoint", "sys_enter"],
                     "raw_tracepoint", counts, lambda: [os.getppid() for _ in range(5)] and None)


def test_uprobe_link(capsys: pytest.CaptureFixture[str], pinned_counter: PinnedProgram, counts: Map,
                     pins: Path) -> None:
    prog, path = pinned_counter(ProgType.KPROBE)
    # libc by name (found as bpfkit's uprobes find libraries); os.getppid() calls libc's getppid.
    attach_and_check(capsys, prog, path, str(pins / "up"), ["uprobe", "libc:getppid"], "perf_event", counts,
                     lambda: [os.getppid() for _ in range(5)] and None)


def test_cgroup_link(capsys: pytest.CaptureFixture[str], pinned_counter: PinnedProgram, counts: Map,
                     pins: Path) -> None:
    from bpfkit.kernel.attach.cgroup import find_cgroup2

    try:
        root = find_cgroup2()
    except KernelError as e:
        pytest.skip(str(e))
    cg = root / f"bpfkit-attach-{os.getpid()}"
    cg.mkdir()
    try:
        prog, path = pinned_counter(ProgType.CGROUP_SKB, ret=1, attach=AttachType.CGROUP_INET_EGRESS)
        sender = ("import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
                  "for _ in range(5): s.sendto(b'x', ('127.0.0.1', 9))")

        def fire() -> None:  # a process in the cgroup sends 5 datagrams
            subprocess.run(["sh", "-c", f'echo $$ > {cg}/cgroup.procs && exec "$0" -c "$1"',
                            sys.executable, sender], check=True)

        attach_and_check(capsys, prog, path, str(pins / "cg"), ["cgroup_inet_egress", str(cg)], "cgroup",
                         counts, fire)
    finally:
        cg.rmdir()


@dataclass(frozen=True)
class Veth:
    name: str
    netns: str
    peer_addr: str


@pytest.fixture
def veth() -> Iterator[Veth]:
    """A veth pair made for this test: one end here, the other in a network namespace of its own."""
    if shutil.which("ip") is None:
        pytest.skip("needs iproute2's ip")
    pid = os.getpid()
    ns, a, b = f"bpfkit-att-{pid}", f"bka{pid % 100000}a", f"bka{pid % 100000}b"
    net = f"198.19.{pid % 250}"

    def ip(*args: str) -> None:
        subprocess.run(["ip", *args], check=True, capture_output=True)

    ip("netns", "add", ns)
    try:
        ip("link", "add", a, "type", "veth", "peer", "name", b, "netns", ns)
        ip("addr", "add", f"{net}.1/24", "dev", a)
        ip("link", "set", a, "up")
        ip("-n", ns, "addr", "add", f"{net}.2/24", "dev", b)
        ip("-n", ns, "link", "set", b, "up")
        yield Veth(a, ns, f"{net}.2")
    finally:
        subprocess.run(["ip", "link", "del", a], capture_output=True)
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        assert not os.path.exists(f"/run/netns/{ns}"), "test namespace left behind"


def send_from_peer(veth: Veth) -> None:
    """Datagrams from the namespace to this end: in through `veth.name` (after ARP both ways)."""
    here = veth.peer_addr.rsplit(".", 1)[0] + ".1"
    code = ("import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
            f"for _ in range(5): s.sendto(b'bpfkit', ('{here}', 9))")
    subprocess.run(["ip", "netns", "exec", veth.netns, sys.executable, "-c", code], check=True,
                   capture_output=True)


def test_xdp_link(capsys: pytest.CaptureFixture[str], pinned_counter: PinnedProgram, counts: Map,
                  pins: Path, veth: Veth) -> None:
    prog, path = pinned_counter(ProgType.XDP, ret=2)  # XDP_PASS

    attach_and_check(capsys, prog, path, str(pins / "xdp"), ["xdp", "dev", veth.name], "xdp", counts,
                     lambda: send_from_peer(veth))


@pytest.mark.parametrize("direction", ["ingress", "egress"])
def test_tcx_link(capsys: pytest.CaptureFixture[str], pinned_counter: PinnedProgram, counts: Map,
                  pins: Path, veth: Veth, direction: str) -> None:
    prog, path = pinned_counter(ProgType.SCHED_CLS, ret=-1)  # TCX_NEXT

    attach_and_check(capsys, prog, path, str(pins / "tcx"), [f"tcx_{direction}", "dev", veth.name], "tcx",
                     counts, lambda: send_from_peer(veth))


def test_sk_msg_verdict_attach_and_detach(capsys: pytest.CaptureFixture[str], pins: Path) -> None:
    """bpftool's map attach types: attached to a sockmap (no link), detached by `prog detach`; a second
    detach finds nothing attached (the kernel's answer is the oracle)."""
    b = Builder()
    b.mov(Reg.R0, 1).exit()  # SK_PASS
    with Map.create(MapSpec(MapType.SOCKMAP, 4, 4, 2, name="sockmap")) as sockmap, \
            Program.load(list(b.build()), ProgType.SK_MSG, name="cli_skmsg") as prog:
        prog_pin, map_pin = str(pins / "skmsg"), str(pins / "sockmap")
        prog.pin(prog_pin)
        sockmap.pin(map_pin)
        ref = ["pinned", prog_pin, "sk_msg_verdict", "pinned", map_pin]
        assert main(["prog", "attach", *ref]) == 0
        assert main(["prog", "detach", *ref]) == 0
        assert main(["prog", "detach", *ref]) == 1
        assert "not attached as sk_msg_verdict" in capsys.readouterr().err


def test_attach_failure_leaves_no_pin(capsys: pytest.CaptureFixture[str], pinned_counter: PinnedProgram,
                                      pins: Path) -> None:
    prog, path = pinned_counter(ProgType.TRACEPOINT)
    link_pin = pins / "bad"
    words = ["tracepoint", "nosuchcat:nosuchtp", "pin", str(link_pin)]
    assert main(["prog", "attach", "pinned", path, *words]) == 1
    assert "nosuchcat" in capsys.readouterr().err
    assert not link_pin.exists() and links_of(capsys, prog) == []
    # A pin path that exists already: the link is made, the pin fails (EEXIST), nothing stays attached.
    prog.pin(link_pin)
    words = ["tracepoint", "syscalls:sys_enter_getppid", "pin", str(link_pin)]
    assert main(["prog", "attach", "pinned", path, *words]) == 1
    assert "EEXIST" in capsys.readouterr().err
    assert links_of(capsys, prog) == []


def test_flow_dissector_attach_and_detach_in_a_test_netns(capsys: pytest.CaptureFixture[str], pins: Path,
                                                          veth: Veth) -> None:
    """flow_dissector attaches to the caller's network namespace: the commands run in a thread that
    joined the test's namespace, so the host's flow dissection is never touched."""
    import ctypes
    import threading

    b = Builder()
    b.mov(Reg.R0, 0).exit()  # BPF_OK
    codes: list[int] = []
    with Program.load(list(b.build()), ProgType.FLOW_DISSECTOR, name="cli_flow") as prog:
        prog_pin = str(pins / "flow")
        prog.pin(prog_pin)

        def in_netns() -> None:
            libc = ctypes.CDLL(None, use_errno=True)
            fd = os.open(f"/run/netns/{veth.netns}", os.O_RDONLY | os.O_CLOEXEC)
            try:
                if libc.setns(fd, 0x40000000) != 0:  # CLONE_NEWNET
                    raise OSError(ctypes.get_errno(), "setns")
            finally:
                os.close(fd)
            for verb in ("attach", "detach", "detach"):
                codes.append(main(["prog", verb, "pinned", prog_pin, "flow_dissector"]))

        t = threading.Thread(target=in_netns)
        t.start()
        t.join()
    assert codes == [0, 0, 1], capsys.readouterr().err
    assert "not attached as flow_dissector" in capsys.readouterr().err
