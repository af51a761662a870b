"""Finding a C compiler that targets BPF: an explicit path, ``$BPFKIT_CLANG``, a system clang, or zig cc.

clang must have the BPF back end (checked once per binary by compiling an empty unit with
``-target bpf``; the verdict is cached on disk under the binary's identity). ``zig cc`` (the ``ziglang``
package, an optional extra) is clang too, with ``-target bpfel-freestanding``.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from bpfkit._records import record
from bpfkit.cc.cache import cache_dir
from bpfkit.errors import BpfkitError

CLANG_NAMES = ("clang", *(f"clang-{v}" for v in range(21, 13, -1)))


class CompilerNotFoundError(BpfkitError):
    """No usable BPF C compiler; the message says what was tried and how to get one."""


@record
class Compiler:
    """A compiler able to emit BPF: `argv` runs it (before the flags), `target` selects BPF, `identity`
    names the exact binary (path, size, mtime) for cache keys, `kind` is ``clang`` or ``zig``."""

    argv: tuple[str, ...]
    target: tuple[str, ...]
    identity: str
    kind: str

    def __str__(self) -> str:
        return " ".join(self.argv)


def _identity(path: str) -> str:
    st = os.stat(path)
    return f"{os.path.realpath(path)}:{st.st_size}:{st.st_mtime_ns}"


def _probe_file() -> Path:
    return cache_dir() / "compilers.json"


def _load_verdicts() -> dict[str, bool]:
    try:
        data = json.loads(_probe_file().read_text())
        return {str(k): bool(v) for k, v in data.items()} if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _save_verdict(identity: str, ok: bool) -> None:
    verdicts = _load_verdicts()
    verdicts[identity] = ok
    path = _probe_file()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(verdicts))
        os.replace(tmp, path)
    except OSError:
        pass  # the cache is an optimisation


def _targets_bpf(compiler: Compiler) -> bool:
    verdicts = _load_verdicts()
    if compiler.identity in verdicts:
        return verdicts[compiler.identity]
    try:
        # In a scratch directory: zig cc writes "-.o" into the working directory for stdin input
        # whatever -o says, and a check must not leave files behind.
        with tempfile.TemporaryDirectory(prefix="bpfkit-cc-check-") as scratch:
            r = subprocess.run([*compiler.argv, *compiler.target, "-x", "c", "-c", "-", "-o",
                                os.path.join(scratch, "probe.o")],
                               input=b"int bpfkit_probe;\n", capture_output=True, timeout=60, cwd=scratch)
        ok = r.returncode == 0
    except (OSError, subprocess.SubprocessError):
        ok = False
    _save_verdict(compiler.identity, ok)
    return ok


def clang_at(path: str) -> Compiler:
    """A `Compiler` for the clang binary `path` (not checked)."""
    return Compiler((path,), ("-target", "bpf"), _identity(path), "clang")


def zig_compiler() -> Compiler | None:
    """``zig cc`` from the ``ziglang`` package, if installed."""
    spec = importlib.util.find_spec("ziglang")
    if spec is None or not spec.submodule_search_locations:
        return None
    pkg = Path(next(iter(spec.submodule_search_locations)))
    exe = pkg / "zig"
    if not exe.exists():
        return None
    return Compiler((str(exe), "cc"), ("-target", "bpfel-freestanding"), _identity(str(exe)), "zig")


def _explicit(name: str) -> Compiler:
    if name == "zig":
        z = zig_compiler()
        if z is None:
            raise CompilerNotFoundError("compiler 'zig' asked for, but the ziglang package is not "
                                        "installed (pip install 'bpfkit[zig]' or pip install ziglang)")
        return z
    path = shutil.which(name) or (name if os.path.isfile(name) else None)
    if path is None:
        raise CompilerNotFoundError(f"compiler {name!r} not found")
    return clang_at(path)


def find_compiler(compiler: str | None = None) -> Compiler:
    """The compiler to use: `compiler` (a path, a name on $PATH, or ``zig``), else $BPFKIT_CLANG, else the
    first system clang with the BPF back end, else zig cc. Raises `CompilerNotFoundError`."""
    wanted = compiler or os.environ.get("BPFKIT_CLANG")
    if wanted:
        c = _explicit(wanted)
        if not _targets_bpf(c):
            raise CompilerNotFoundError(f"{c} cannot compile for BPF (no BPF back end?)")
        return c
    tried = []
    for name in CLANG_NAMES:
        path = shutil.which(name)
        if path is None:
            continue
        c = clang_at(path)
        if _targets_bpf(c):
            return c
        tried.append(f"{path} (no BPF target)")
    z = zig_compiler()
    if z is not None and _targets_bpf(z):
        return z
    tried.append("zig cc (ziglang not installed)" if z is None else "zig cc (failed)")
    raise CompilerNotFoundError("no C compiler for BPF found; tried " + ", ".join(tried or ["clang"])
                                + ". Install clang (apt install clang) or pip install ziglang, or set "
                                "BPFKIT_CLANG")


__all__ = ["Compiler", "CompilerNotFoundError", "clang_at", "find_compiler", "zig_compiler"]
