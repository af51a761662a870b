"""A cache of compiled scripts, so a repeated `bpfkit trace` skips the compiler (like Python's .pyc).

Start-up is a hot path: importing and running the compiler (`bpfkit.lang`) costs more than loading and
attaching the programs it makes. An entry is keyed by everything the compiled code depends on:

- the script text, its name, the positional parameters, ``--unsafe`` and the number of CPUs;
- the compiler's own code (bpfkit's version and the size and mtime of every module the compiled form
  depends on, so an edited or upgraded bpfkit never runs stale code);
- the running kernel: its boot id (a new boot, a new kernel: new BTF ids and symbol addresses) and release.

Facts the compiler read from the system beyond that (tracepoint formats, the list of tracepoints a
wildcard matched) are recorded as *validators*: the files and a digest of their contents, checked again
on every hit. Scripts whose code depends on the run itself (``elapsed`` and ``cpid`` embed the start time
and the child's pid) or on facts the validators cannot pin down (``kaddr()`` symbols, usdt binaries)
are not cached.

The value is the `CompiledScript` as plain tuples, lists and scalars, written with `marshal` (fast, and
it cannot name arbitrary code), programs as bytecode. Decoding rebuilds only bpfkit records and
enums, and a program's instructions stay bytes (`bpfkit.trace.runtime.patch_maps` patches map fds in).
A corrupt, truncated or foreign entry is deleted and the script compiled again. Entries live in
``$XDG_CACHE_HOME/bpfkit/trace`` (default ``~/.cache/bpfkit/trace``), or ``$BPFKIT_CACHE_DIR/trace``.
"""

from __future__ import annotations

import enum
import importlib
import marshal
import os
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bpfkit._records import field_names, is_record, replace

try:  # hashlib loads OpenSSL (~2 ms of start-up); the builtin blake2 module is all a key needs
    from _blake2 import blake2b
except ImportError:  # pragma: no cover - a Python built without it
    from hashlib import blake2b

if TYPE_CHECKING:
    from bpfkit.lang.resources import CompiledScript

#: Bumped whenever the encoding below changes; part of every key.
FORMAT = 1
#: Entries kept per directory (see `ScriptCache._prune`).
MAX_ENTRIES = 256
_MAGIC = b"bpfkit-trace-cache\x00"
_SUFFIX = ".bin"
#: Builtins whose code embeds a value of this one run (see `bpfkit.lang.codegen_expr`).
_PER_RUN = re.compile(r"\b(elapsed|cpid)\b")
#: Sub-packages whose code decides the compiled form, fingerprinted into every key.
_CODE_DIRS = ("lang", "isa", "obj", "uapi")
_CODE_FILES = ("trace/cache.py", "trace/system.py")

Digest = str | None
"""A validator's digest: the blake2b of a file's contents, or None for a file that does not exist."""


def cache_dir() -> Path:
    """Where entries live: $BPFKIT_CACHE_DIR/trace, else $XDG_CACHE_HOME/bpfkit/trace, else
    ~/.cache/bpfkit/trace ($BPFKIT_CACHE_DIR is the root of all of bpfkit's caches, as for `bpfkit cc`)."""
    explicit = os.environ.get("BPFKIT_CACHE_DIR")
    if explicit:
        return Path(explicit) / "trace"
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(_home(), ".cache")
    return Path(base) / "bpfkit" / "trace"


def _home() -> str:
    """$HOME when this user owns it, else this user's home from the password database: under a sudo
    that keeps HOME, root's cache does not land in the invoking user's home."""
    home = os.path.expanduser("~")
    try:
        if os.stat(home).st_uid == os.geteuid():
            return home
        import pwd

        return pwd.getpwuid(os.geteuid()).pw_dir
    except (OSError, KeyError):
        return home


def cacheable_text(text: str) -> bool:
    """Whether the text can be cached at all: no builtin that embeds a value of this run."""
    return _PER_RUN.search(text) is None


def kernel_identity() -> str:
    """This boot of this kernel: the boot id and `uname` release and version."""
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            boot = f.read().strip()
    except OSError:
        boot = "?"
    u = os.uname()
    return f"{boot} {u.release} {u.version} {u.machine}"


def code_fingerprint() -> str:
    """bpfkit's version plus the size and mtime of every module the compiled form depends on."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    version = getattr(sys.modules.get("bpfkit"), "__version__", "?")
    parts = [version, f"{sys.version_info[:2]}"]
    for sub in _CODE_DIRS:
        try:
            entries = sorted(os.scandir(os.path.join(root, sub)), key=lambda e: e.name)
        except OSError:
            continue
        for e in entries:
            if e.name.endswith(".py"):
                st = e.stat()
                parts.append(f"{sub}/{e.name}:{st.st_size}:{st.st_mtime_ns}")
    for rel in _CODE_FILES:
        try:
            st = os.stat(os.path.join(root, rel))
        except OSError:
            continue
        parts.append(f"{rel}:{st.st_size}:{st.st_mtime_ns}")
    return "\n".join(parts)


def script_key(text: str, name: str, params: Sequence[str], *, unsafe: bool, ncpus: int,
               kernel: str | None = None, code: str | None = None) -> str:
    """The key of a script's entry: a digest of everything its compiled form depends on."""
    h = blake2b(digest_size=32)
    for part in (str(FORMAT), code if code is not None else code_fingerprint(),
                 kernel if kernel is not None else kernel_identity(), name, text, str(unsafe), str(ncpus),
                 *params):
        data = part.encode("utf-8", "surrogateescape")
        h.update(len(data).to_bytes(8, "little"))
        h.update(data)
    h.update(len(params).to_bytes(8, "little"))
    return h.hexdigest()


def file_digest(path: str) -> Digest:
    """The validator digest of `path` now."""
    try:
        with open(path, "rb") as f:
            return blake2b(f.read(), digest_size=32).hexdigest()
    except OSError:
        return None


# -- recording what the compiler asked the system -----------------------------------------------------


class Recorder:
    """Wraps the compiler's system callbacks to note which files the compiled code depends on.

    `files` are the validators to store with the entry; `cacheable` turns False when the compiler asked
    something the validators cannot pin down.
    """

    def __init__(self, tracefs_root: Callable[[], Path | None]) -> None:
        self._root = tracefs_root
        self.files: dict[str, Digest] = {}
        self.cacheable = True

    def _note(self, *parts: str) -> None:
        root = self._root()
        if root is None:
            self.cacheable = False
            return
        path = str(root.joinpath(*parts))
        if path not in self.files:
            self.files[path] = file_digest(path)

    def formats(self, lookup: Callable[[str, str], Any]) -> Callable[[str, str], Any]:
        """A `FormatLookup` that records the format file it reads."""

        def wrapped(category: str, name: str) -> Any:
            if "/" in category or "/" in name or category.startswith(".") or name.startswith("."):
                self.cacheable = False
            else:
                self._note("events", category, name, "format")
            return lookup(category, name)

        return wrapped

    def expander(self, expand: Callable[[Any], Any]) -> Callable[[Any], Any]:
        """An `Expander` that records the tracepoint list when it expands a wildcard."""

        def wrapped(ap: Any) -> Any:
            found = expand(ap)
            if found != [ap]:
                self._note("available_events")
            return found

        return wrapped

    def uncacheable(self, lookup: Callable[..., Any]) -> Callable[..., Any]:
        """A lookup whose answers the cache cannot validate: using it makes the script uncacheable."""

        def wrapped(*args: Any) -> Any:
            self.cacheable = False
            return lookup(*args)

        return wrapped


# -- encoding -------------------------------------------------------------------------------------------


class _Encoder:
    """`CompiledScript` -> marshal-able tuples. Objects are tagged lists; classes go in a table by name."""

    def __init__(self) -> None:
        self.classes: list[tuple[str, str]] = []
        self._class_index: dict[type, int] = {}
        self._sources: dict[int, int] = {}
        self.sources: list[tuple[str, str]] = []

    def _cls(self, cls: type) -> int:
        index = self._class_index.get(cls)
        if index is None:
            if not cls.__module__.startswith("bpfkit."):
                raise TypeError(f"cannot cache a {cls.__module__}.{cls.__qualname__}")
            index = self._class_index[cls] = len(self.classes)
            self.classes.append((cls.__module__, cls.__qualname__))
        return index

    def encode(self, obj: object) -> object:
        t = type(obj)
        if obj is None or t in (bool, int, str, bytes, float):
            return obj
        if isinstance(obj, enum.Enum):
            return ["e", self._cls(t), obj.value]
        if t is tuple:
            return ["t", [self.encode(x) for x in obj]]  # type: ignore[attr-defined]
        if t is list:
            return ["l", [self.encode(x) for x in obj]]  # type: ignore[attr-defined]
        if t is dict:
            return ["m", [[self.encode(k), self.encode(v)] for k, v in obj.items()]]  # type: ignore[attr-defined]
        if is_record(obj):
            value: Any = obj
            if t.__qualname__ == "ProgramSpec" and isinstance(value.insns, tuple):
                # Bytecode, not Instruction objects: the runtime loads bytes as they are, and a hit then
                # needs neither the instruction set package nor thousands of objects.
                from bpfkit.isa import encode as encode_insns

                value = replace(value, insns=encode_insns(value.insns))
            values = [self.encode(getattr(value, name)) for name in field_names(value)]
            return ["d", self._cls(t), values]
        if t.__module__ == "bpfkit.lang.source" and t.__qualname__ == "Source":
            index = self._sources.get(id(obj))
            if index is None:
                index = self._sources[id(obj)] = len(self.sources)
                self.sources.append((obj.name, obj.text))  # type: ignore[attr-defined]
            return ["s", index]
        raise TypeError(f"cannot cache a {t.__module__}.{t.__qualname__}")


class _Decoder:
    def __init__(self, classes: Sequence[tuple[str, str]], sources: Sequence[tuple[str, str]]) -> None:
        self.classes = [_resolve(m, q) for m, q in classes]
        self.fields = [field_names(c) if is_record(c) else () for c in self.classes]
        self.sources: list[Any] = []
        if sources:
            from bpfkit.lang.source import Source

            self.sources = [Source(name, text) for name, text in sources]

    def decode(self, obj: Any) -> Any:
        if type(obj) is not list:
            return obj
        tag = obj[0]
        if tag == "d":
            cls, values = self.classes[obj[1]], obj[2]
            return cls(**{name: self.decode(v) for name, v in zip(self.fields[obj[1]], values, strict=True)})
        if tag == "t":
            return tuple([self.decode(x) for x in obj[1]])
        if tag == "e":
            return self.classes[obj[1]](obj[2])
        if tag == "s":
            return self.sources[obj[1]]
        if tag == "l":
            return [self.decode(x) for x in obj[1]]
        if tag == "m":
            return {self.decode(k): self.decode(v) for k, v in obj[1]}
        raise ValueError(f"unknown tag {tag!r}")


def _resolve(module: str, qualname: str) -> type:
    if not module.startswith("bpfkit."):
        raise ValueError(f"{module} is not a bpfkit module")
    obj: Any = importlib.import_module(module)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    if not isinstance(obj, type) or not (is_record(obj) or issubclass(obj, enum.Enum)):
        raise ValueError(f"{module}.{qualname} is not a record or an enum")
    return obj


def encode(script: CompiledScript) -> bytes:
    """The marshal bytes of `script`."""
    enc = _Encoder()
    payload: Any = enc.encode(script)
    return marshal.dumps((enc.classes, enc.sources, payload))


def decode(data: bytes) -> CompiledScript:
    """The `CompiledScript` in `data` (from `encode`); ValueError and friends when it is not one."""
    classes, sources, payload = marshal.loads(data)
    script = _Decoder(classes, sources).decode(payload)
    from bpfkit.lang.resources import CompiledScript

    if not isinstance(script, CompiledScript):
        raise ValueError("the entry does not hold a compiled script")
    return script


# -- the store ------------------------------------------------------------------------------------------


def _private(st: os.stat_result) -> bool:
    """Whether a file or directory is owned by this user and writable by no one else.

    An entry is run with this process's privileges (a script's system() calls too), so one that another
    user could have written is never used: `sudo bpfkit trace` with someone else's cache directory
    would otherwise run what they put there, as root.
    """
    return st.st_uid == os.geteuid() and not st.st_mode & 0o022


class ScriptCache:
    """Entries in one directory, one file per key; every failure to read one is a miss."""

    def __init__(self, directory: Path | None = None, max_entries: int = MAX_ENTRIES) -> None:
        self.directory = directory if directory is not None else cache_dir()
        self.max_entries = max_entries

    def path(self, key: str) -> Path:
        return self.directory / (key + _SUFFIX)

    def load(self, key: str) -> CompiledScript | None:
        """The script cached under `key`, if present and its validators still hold; else None.

        An entry that cannot be decoded is removed (it would fail the same way every time).
        """
        path = self.path(key)
        try:
            with open(path, "rb") as f:
                if not (_private(os.fstat(f.fileno())) and _private(os.stat(self.directory))):
                    return None
                data = f.read()
        except OSError:
            return None
        try:
            if not data.startswith(_MAGIC):
                raise ValueError("bad magic")
            stored_key, validators, payload, check = marshal.loads(data[len(_MAGIC):])
            if stored_key != key or check != blake2b(payload, digest_size=16).digest():
                raise ValueError("damaged entry")
            for file, digest in validators:
                if file_digest(file) != digest:
                    return None  # the system changed: compile again (the new entry replaces this one)
            return decode(payload)
        except Exception:  # any damage to an entry (EOFError, TypeError, ImportError...) is a miss
            self._remove(path)
            return None

    def store(self, key: str, script: CompiledScript, validators: dict[str, Digest]) -> bool:
        """Write the entry for `key` (atomically: a reader sees the old entry or the new one). False when
        it could not be written (read-only home, full disk): caching is an optimisation only."""
        try:
            payload = encode(script)
        except (TypeError, ValueError):  # a value the encoding does not know: not cacheable
            return False
        check = blake2b(payload, digest_size=16).digest()  # marshal has no checksum of its own
        data = _MAGIC + marshal.dumps((key, sorted(validators.items()), payload, check))
        path = self.path(key)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            if not _private(os.stat(self.directory)):
                return False  # its entries would not be trusted anyway (see `_private`)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with open(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, path)
        except OSError:
            self._remove(tmp)
            return False
        self._prune()
        return True

    def _prune(self) -> None:
        """Keep at most `max_entries`: past that, remove the oldest quarter (a new bpfkit or kernel
        leaves the old entries unused for good)."""
        try:
            entries = [e for e in os.scandir(self.directory) if e.name.endswith(_SUFFIX)]
            if len(entries) <= self.max_entries:
                return
            entries.sort(key=lambda e: e.stat().st_mtime_ns)
        except OSError:
            return
        for e in entries[: len(entries) - self.max_entries * 3 // 4]:
            self._remove(Path(e.path))

    def clear(self) -> int:
        """Remove every entry; how many there were."""
        n = 0
        try:
            entries = list(self.directory.iterdir())
        except OSError:
            return 0
        for p in entries:
            if p.name.endswith(_SUFFIX):
                self._remove(p)
                n += 1
        return n

    @staticmethod
    def _remove(path: Path) -> None:
        try:
            path.unlink()
        except OSError:
            pass
