"""The compiled-script cache: encoding round trips (checked by running both scripts in the VM), hits,
misses, invalidation by key and by validators, corrupt entries, and what makes a script uncacheable."""

from __future__ import annotations

import hashlib
import importlib.util
import marshal
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from bpfkit._records import replace
from bpfkit.isa import encode as encode_insns
from bpfkit.lang import ast
from bpfkit.lang.codegen import Options, compile_script
from bpfkit.lang.resources import CompiledScript, PrintfEvent
from bpfkit.lang.tracepoint_format import TracepointFormat, parse_format
from bpfkit.trace import cache
from bpfkit.trace.cache import Recorder, ScriptCache, cacheable_text, decode, encode, script_key


def _load_trace_vm() -> ModuleType:
    # The VM runner of the language tests, by path (tests/ is not a package).
    path = Path(__file__).resolve().parents[1] / "lang" / "trace_vm.py"
    spec = importlib.util.spec_from_file_location("_bpfkit_test_trace_vm", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


trace_vm = _load_trace_vm()

FORMAT = """name: sys_enter_openat
ID: 1
format:
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;
\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;

\tfield:int __syscall_nr;\toffset:8;\tsize:4;\tsigned:1;
\tfield:int dfd;\toffset:16;\tsize:8;\tsigned:0;
\tfield:short delta;\toffset:24;\tsize:2;\tsigned:1;
"""


def formats(category: str, name: str) -> TracepointFormat | None:
    if (category, name) != ("syscalls", "sys_enter_openat"):
        return None
    return parse_format(FORMAT, category, name)


SCRIPTS = {
    "printf": r'BEGIN { printf("%s %d %x\n", "a", -3, 255); exit(); }',
    "maps": r'BEGIN { @c["x"] = count(); @s = sum(5); @h = hist(100); @l = lhist(3, 0, 10, 1);'
            r' @a[1, "b"] = 2; $v = 4; if ($v > 3) { @m = max($v) } exit(); }',
    "join_time_end": r'BEGIN { @x = 1; exit(); } END { printf("end %d\n", @x); clear(@x); }',
    "tracepoint": r'tracepoint:syscalls:sys_enter_openat /args->dfd != 7/ '
                  r'{ printf("%d %d\n", args->dfd, args->delta); exit(); }',
}


def ctx(provider: str) -> bytes | None:
    if provider != "tracepoint":
        return None
    record = bytearray(32)
    record[16:24] = (5).to_bytes(8, "little")
    record[24:26] = (-2).to_bytes(2, "little", signed=True)
    return bytes(record)


def _same(a: bytes, b: bytes) -> bool:
    # marshal's bytes depend on reference counts (its FLAG_REF), so compare what they hold.
    return bool(marshal.loads(a) == marshal.loads(b))


def _compile(text: str) -> CompiledScript:
    return compile_script(text, formats, options=Options(ncpus=2))


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_a_decoded_script_runs_like_the_compiled_one(name: str) -> None:
    script = _compile(SCRIPTS[name])
    data = encode(script)
    back = decode(data)
    assert isinstance(back, CompiledScript)
    assert _same(encode(back), data)  # nothing lost or added
    for mine, theirs in zip(back.probes, script.probes, strict=True):
        assert isinstance(mine.program.insns, bytes)  # bytecode: a hit does not build Instruction objects
        assert isinstance(theirs.program.insns, tuple)
        assert mine.program.insns == encode_insns(theirs.program.insns)
        assert replace(mine.program, insns=b"") == replace(theirs.program, insns=b"")
        assert mine.map_refs == theirs.map_refs and mine.attach == theirs.attach
    assert back.maps == script.maps and back.events_map == script.events_map
    assert trace_vm.run_compiled(back, ctx) == trace_vm.run_compiled(script, ctx)
    assert trace_vm.run_compiled(back, ctx).strip()  # the scripts print something: the check means something


def test_spans_survive_with_their_source() -> None:
    text = 'BEGIN {\n  printf("%d\\n", 1);\n}'
    script = compile_script(text, formats, name="t.bt", options=Options())
    back = decode(encode(script))
    event = back.events[0]
    assert isinstance(event, PrintfEvent) and event.span is not None
    assert (event.span.source.name, event.span.line) == ("t.bt", 2)
    assert event.span.text == 'printf("%d\\n", 1)'
    probe = back.probes[0]
    assert probe.attach.span.source is event.span.source  # one Source object, shared as before
    assert probe.span_at(0) is not None


def test_decode_refuses_what_is_not_a_compiled_script() -> None:
    with pytest.raises(ValueError):
        decode(marshal.dumps(([], [], ["t", [1, 2]])))
    with pytest.raises(ValueError, match="not a bpfkit module"):
        decode(marshal.dumps(([("os", "system")], [], ["d", 0, []])))
    with pytest.raises(ValueError, match="not a record or an enum"):
        decode(marshal.dumps(([("bpfkit.trace.cache", "ScriptCache")], [], ["d", 0, []])))


def test_encode_refuses_foreign_objects() -> None:
    script = _compile(SCRIPTS["printf"])
    bad = replace(script, events=(object(),))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="cannot cache"):
        encode(bad)
    assert not ScriptCache(Path("/nonexistent/never/written")).store("k", bad, {})


# -- the store ---------------------------------------------------------------------------------------


def _key(text: str, **kw: object) -> str:
    args: dict[str, object] = {"unsafe": False, "ncpus": 2, "kernel": "boot k", "code": "code 1"}
    args.update(kw)
    params = args.pop("params", ())
    name = args.pop("name", "stdin")
    return script_key(text, name, params, **args)  # type: ignore[arg-type]


def test_store_then_hit(tmp_path: Path) -> None:
    store = ScriptCache(tmp_path / "c")
    script = _compile(SCRIPTS["maps"])
    key = _key(SCRIPTS["maps"])
    assert store.load(key) is None  # a miss: nothing there yet
    assert store.store(key, script, {})
    hit = store.load(key)
    assert hit is not None and _same(encode(hit), encode(script))
    assert oct(os.stat(tmp_path / "c").st_mode & 0o777) == oct(0o700)
    assert [p.name for p in (tmp_path / "c").iterdir()] == [key + ".bin"]  # no temporary file left


def test_every_input_is_in_the_key() -> None:
    text = SCRIPTS["printf"]
    base = _key(text)
    assert _key(text) == base
    variants = [_key(text + " "), _key(text, name="x.bt"), _key(text, params=("1",)), _key(text, unsafe=True),
                _key(text, ncpus=4), _key(text, kernel="boot 2"), _key(text, code="code 2"),
                _key(text, params=("1", "2")), _key(text, params=("12",))]
    assert len({base, *variants}) == len(variants) + 1


def test_the_default_key_names_this_kernel_and_this_code() -> None:
    assert cache.kernel_identity() == cache.kernel_identity()
    assert os.uname().release in cache.kernel_identity()
    code = cache.code_fingerprint()
    assert "lang/codegen.py:" in code and "isa/" in code and "trace/cache.py:" in code
    assert script_key("x", "stdin", (), unsafe=False, ncpus=1) == _key("x", ncpus=1, kernel=None, code=None)


def test_the_cache_dir_follows_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("BPFKIT_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert cache.cache_dir() == tmp_path / "bpfkit" / "trace"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache.cache_dir() == tmp_path / "home" / ".cache" / "bpfkit" / "trace"
    monkeypatch.setenv("BPFKIT_CACHE_DIR", str(tmp_path / "explicit"))
    assert cache.cache_dir() == tmp_path / "explicit" / "trace"


def test_a_changed_validator_is_a_miss(tmp_path: Path) -> None:
    fmt = tmp_path / "format"
    fmt.write_text(FORMAT)
    store = ScriptCache(tmp_path / "c")
    script = _compile(SCRIPTS["tracepoint"])
    key = _key(SCRIPTS["tracepoint"])
    store.store(key, script, {str(fmt): cache.file_digest(str(fmt))})
    assert store.load(key) is not None
    fmt.write_text(FORMAT.replace("delta", "other"))
    assert store.load(key) is None
    fmt.write_text(FORMAT)
    assert store.load(key) is not None  # the entry was kept: the system changed, not the entry
    fmt.unlink()
    assert store.load(key) is None
    # A file recorded as absent must stay absent.
    store.store(key, script, {str(fmt): None})
    assert store.load(key) is not None
    fmt.write_text(FORMAT)
    assert store.load(key) is None


def _fields(entry: bytes) -> list[Any]:
    return list(marshal.loads(entry[len(cache._MAGIC):]))


def _with(entry: bytes, index: int, value: object) -> bytes:
    fields = _fields(entry)
    fields[index] = value
    return cache._MAGIC + marshal.dumps(tuple(fields))


def _foreign(entry: bytes) -> bytes:
    payload = marshal.dumps(([("os", "system")], [], ["d", 0, []]))
    entry = _with(entry, 2, payload)
    return _with(entry, 3, hashlib.blake2b(payload, digest_size=16).digest())


CORRUPTIONS: dict[str, Callable[[bytes], bytes]] = {
    "empty": lambda d: b"",
    "truncated": lambda d: d[: len(d) // 2],
    "bad magic": lambda d: b"X" + d[1:],
    "garbage": lambda d: cache._MAGIC + b"\xff\x00garbage",
    "flipped byte": lambda d: d[:-40] + bytes([d[-40] ^ 0x01]) + d[-39:],
    "other key": lambda d: _with(d, 0, "nope"),
    "old layout": lambda d: cache._MAGIC + marshal.dumps(tuple(_fields(d)[:3])),
    "foreign class": _foreign,
}


@pytest.mark.parametrize("how", sorted(CORRUPTIONS))
def test_a_corrupt_entry_is_a_miss_and_is_removed(tmp_path: Path, how: str) -> None:
    store = ScriptCache(tmp_path)
    script = _compile(SCRIPTS["printf"])
    key = _key(SCRIPTS["printf"])
    store.store(key, script, {})
    path = store.path(key)
    path.write_bytes(CORRUPTIONS[how](path.read_bytes()))
    assert store.load(key) is None
    assert not path.exists()
    assert store.store(key, script, {}) and store.load(key) is not None  # repaired by the next store


def test_an_unwritable_directory_is_not_an_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    store = ScriptCache(tmp_path / "file" / "sub")
    assert not store.store("k", _compile(SCRIPTS["printf"]), {})
    assert store.load("k") is None


def test_clear_removes_entries(tmp_path: Path) -> None:
    store = ScriptCache(tmp_path)
    store.store("a", _compile(SCRIPTS["printf"]), {})
    store.store("b", _compile(SCRIPTS["printf"]), {})
    assert store.clear() == 2
    assert store.load("a") is None and list(tmp_path.iterdir()) == []


# -- what may be cached ------------------------------------------------------------------------------


def test_scripts_using_per_run_values_are_not_cacheable() -> None:
    assert cacheable_text(SCRIPTS["printf"])
    assert not cacheable_text('BEGIN { printf("%d\\n", elapsed); }')
    assert not cacheable_text("tracepoint:a:b /pid == cpid/ { }")
    assert cacheable_text('BEGIN { printf("elapsed_ms cpids\\n"); }')  # words, not the builtins


def test_the_recorder_notes_formats_and_expansions(tmp_path: Path) -> None:
    events = tmp_path / "events" / "syscalls" / "sys_enter_openat"
    events.mkdir(parents=True)
    (events / "format").write_text(FORMAT)
    (tmp_path / "available_events").write_text("syscalls:sys_enter_openat\n")
    rec = Recorder(lambda: tmp_path)
    ap = ast.AttachPoint("tracepoint", "tracepoint:syscalls:sys_enter_open*", "syscalls", "sys_enter_open*")

    def expand(a: ast.AttachPoint) -> list[ast.AttachPoint]:
        if "*" not in a.func:
            return [a]
        return [replace(a, func="sys_enter_openat", raw="tracepoint:syscalls:sys_enter_openat")]

    script = compile_script("tracepoint:syscalls:sys_enter_open* { printf(\"%d\\n\", args->dfd); }",
                            rec.formats(formats), options=Options(), expand=rec.expander(expand))
    assert script.probes[0].attach.func == "sys_enter_openat"
    assert rec.cacheable
    listing = str(tmp_path / "available_events")
    assert rec.files == {str(events / "format"): cache.file_digest(str(events / "format")),
                         listing: cache.file_digest(listing)}
    assert rec.expander(expand)(ap) != [ap]
    rec2 = Recorder(lambda: tmp_path)
    rec2.expander(expand)(replace(ap, func="sys_enter_openat"))
    assert rec2.files == {}  # no wildcard: the tracepoint list was not consulted


def test_the_recorder_refuses_lookups_it_cannot_validate(tmp_path: Path) -> None:
    rec = Recorder(lambda: tmp_path)
    lookup = rec.uncacheable(lambda name: 0xFFFF0000)
    assert rec.cacheable
    assert lookup("jiffies") == 0xFFFF0000
    assert not rec.cacheable
    no_tracefs = Recorder(lambda: None)
    no_tracefs.formats(formats)("syscalls", "sys_enter_openat")
    assert not no_tracefs.cacheable


def test_a_cache_hit_does_not_import_the_compiler(tmp_path: Path) -> None:
    # The point of the cache: on a hit, loading the script needs the data classes, not the compiler
    # nor the instruction set package.
    store = ScriptCache(tmp_path)
    script = _compile(SCRIPTS["tracepoint"])
    store.store("k", script, {})
    code = f"""
import sys
from pathlib import Path
from bpfkit.trace.cache import ScriptCache
script = ScriptCache(Path({str(tmp_path)!r})).load("k")
assert script is not None and script.probes[0].attach.provider == "tracepoint"
print(" ".join(sorted(m for m in sys.modules if m.startswith(("bpfkit.lang", "bpfkit.isa")))))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    loaded = set(out.split())
    assert "bpfkit.lang.resources" in loaded
    assert not loaded & {"bpfkit.lang.parser", "bpfkit.lang.lexer", "bpfkit.lang.semantic",
                         "bpfkit.lang.codegen", "bpfkit.lang.ast", "bpfkit.isa"}


def test_bytecode_programs_get_their_map_fds_like_instruction_programs() -> None:
    from bpfkit.trace.runtime import patch_maps

    script = _compile(SCRIPTS["maps"])
    back = decode(encode(script))
    for mine, theirs in zip(back.probes, script.probes, strict=True):
        assert mine.map_refs  # the check below patches something
        fds = {name: 100 + i for i, name in enumerate(sorted({n for _, n in theirs.map_refs}))}
        as_insns = patch_maps(theirs, fds)
        assert isinstance(as_insns, tuple)
        assert patch_maps(mine, fds) == encode_insns(as_insns)


def test_entries_others_could_write_are_not_used(tmp_path: Path) -> None:
    # An entry runs with this process's privileges (system() included): a group- or world-writable
    # entry or directory may hold what another user put there.
    store = ScriptCache(tmp_path / "c")
    script = _compile(SCRIPTS["printf"])
    assert store.store("k", script, {})
    assert oct(store.path("k").stat().st_mode & 0o777) == oct(0o600)
    store.path("k").chmod(0o622)
    assert store.load("k") is None
    store.path("k").chmod(0o600)
    assert store.load("k") is not None
    (tmp_path / "c").chmod(0o777)
    assert store.load("k") is None
    assert not store.store("k2", script, {})
    (tmp_path / "c").chmod(0o700)
    assert store.load("k") is not None


def test_old_entries_are_pruned(tmp_path: Path) -> None:
    store = ScriptCache(tmp_path, max_entries=8)
    script = _compile(SCRIPTS["printf"])
    for i in range(8):
        assert store.store(f"k{i}", script, {})
        os.utime(store.path(f"k{i}"), ns=(i * 10**9, i * 10**9))  # k0 is the oldest
    assert len(list(tmp_path.iterdir())) == 8
    assert store.store("new", script, {})  # the ninth: down to three quarters, the oldest go first
    left = sorted(p.name.removesuffix(".bin") for p in tmp_path.iterdir())
    assert left == ["k3", "k4", "k5", "k6", "k7", "new"]
    assert store.load("new") is not None
