"""Compile BPF C to an object: `compile(source) -> ObjectSpec`, `compile_to_file(source, output)`.

Every compile gets ``-O2 -g`` (BTF and line info), the BPF target, ``-D__TARGET_ARCH_<arch>``, bpfkit's
include directory (``bpfkit_helpers.h``, ``bpfkit_bcc.h``, ``bpf/bpf_helpers.h``-style shims) and the
directory of the running kernel's ``vmlinux.h``. Objects are cached under the cache directory by a hash
of the source, the local headers it includes, the flags, the compiler binary and the headers, so a
second compile of the same program is a file lookup.
"""

from __future__ import annotations

import hashlib
import os
import platform
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from bpfkit._records import record
from bpfkit.cc.cache import cache_dir, write_atomic
from bpfkit.cc.diagnostics import Diagnostic, parse_diagnostics
from bpfkit.cc.headers import INCLUDE_DIR, btf_hash, bundled_header_hash, vmlinux_include_dir
from bpfkit.cc.toolchain import Compiler, find_compiler
from bpfkit.errors import CompileError
from bpfkit.obj import ObjectSpec, load_object

TEXT_NAME = "<text>"
_INCLUDE = re.compile(rb'^[ \t]*#[ \t]*include[ \t]*"([^"]+)"', re.M)
_ARCH = {"x86_64": "x86", "aarch64": "arm64", "arm64": "arm64", "s390x": "s390", "ppc64le": "powerpc",
         "riscv64": "riscv", "loongarch64": "loongarch"}


@record
class CompileResult:
    """Where the object is (`path`), whether it came from the cache, the compiler's warnings."""

    path: Path
    cached: bool
    warnings: tuple[Diagnostic, ...]
    compiler: Compiler


def _read_source(source: str | os.PathLike[str]) -> tuple[bytes, Path | None]:
    if isinstance(source, os.PathLike):
        path = Path(source)
        try:
            return path.read_bytes(), path.resolve()
        except OSError as e:
            raise CompileError(f"{path}: cannot read: {e.strerror}") from None
    return source.encode(), None


def _include_dirs(cflags: Sequence[str]) -> list[Path]:
    dirs: list[Path] = []
    it = iter(cflags)
    for flag in it:
        if flag == "-I":
            nxt = next(it, None)
            if nxt is not None:
                dirs.append(Path(nxt))
        elif flag.startswith("-I"):
            dirs.append(Path(flag[2:]))
    return dirs


def _local_headers(data: bytes, base: Path, dirs: list[Path]) -> list[tuple[str, bytes]]:
    """(path, bytes) of the quoted includes `data` reaches through local files (for the cache key)."""
    seen: dict[str, bytes] = {}
    todo = [(data, base)]
    while todo:
        text, here = todo.pop()
        for m in _INCLUDE.finditer(text):
            name = m.group(1).decode(errors="replace")
            for d in (here, *dirs):
                p = (d / name).resolve()
                if p.is_file():
                    key = str(p)
                    if key not in seen:
                        seen[key] = p.read_bytes()
                        todo.append((seen[key], p.parent))
                    break
    return sorted(seen.items())


def target_arch() -> str:
    """The ``__TARGET_ARCH_*`` name of this machine (x86, arm64...)."""
    machine = platform.machine()
    return _ARCH.get(machine, machine)


def base_flags(compiler: Compiler) -> list[str]:
    """The flags every compile gets (before the caller's cflags)."""
    return [*compiler.target, "-O2", "-g", f"-D__TARGET_ARCH_{target_arch()}", "-D__BPFKIT__",
            "-I", str(INCLUDE_DIR), "-I", str(vmlinux_include_dir()), "-fno-color-diagnostics",
            "-Wno-unused-command-line-argument"]


def _key(data: bytes, path: Path | None, cflags: Sequence[str], compiler: Compiler) -> str:
    h = hashlib.sha256()
    for part in (b"bpfkit-cc-2", data, str(path or TEXT_NAME).encode(), "\0".join(cflags).encode(),
                 compiler.identity.encode(), bundled_header_hash().encode(), btf_hash().encode()):
        h.update(len(part).to_bytes(8, "little") + part)
    base = path.parent if path is not None else Path.cwd()
    for name, content in _local_headers(data, base, _include_dirs(cflags)):
        h.update(name.encode() + b"\0" + hashlib.sha256(content).digest())
    return h.hexdigest()[:40]


def _line_reader() -> Callable[[str, int], str | None]:
    files: dict[str, list[str]] = {}

    def read(file: str, line: int) -> str | None:
        if file not in files:
            try:
                files[file] = Path(file).read_text(errors="replace").splitlines()
            except OSError:
                files[file] = []
        lines = files[file]
        return lines[line - 1] if 0 < line <= len(lines) else None

    return read


def _text_file(data: bytes, name: str) -> Path:
    """Text source `data` as a file in the cache (content-addressed), so that clang records each line's
    text in the line info (it cannot for stdin) and quoted includes resolve as for a file."""
    base = os.path.basename(name) if name != TEXT_NAME else "text.c"
    if not base.endswith(".c"):
        base += ".c"
    path = cache_dir() / "src" / hashlib.sha256(data).hexdigest()[:24] / base
    if not path.is_file() or path.read_bytes() != data:
        write_atomic(path, data)
    return path


def compile_to_file(source: str | os.PathLike[str], output: str | os.PathLike[str] | None = None, *,
                    cflags: Sequence[str] = (), compiler: str | Compiler | None = None,
                    cache: bool = True, name: str | None = None) -> CompileResult:
    """Compile `source` (C text, or a path as a `Path`) to a BPF object, at `output` if given (else the
    cached object's path). `name` is what diagnostics call a text source (default ``<text>``).
    Raises `CompileError` with each error as ``file:line:col`` plus the source line,
    `CompilerNotFoundError` when there is no BPF compiler."""
    data, path = _read_source(source)
    comp = compiler if isinstance(compiler, Compiler) else find_compiler(compiler)
    flags = [*base_flags(comp), *cflags]
    shown = name or TEXT_NAME
    src = path if path is not None else _text_file(data, shown)
    if path is None:
        # Quoted includes of text resolve from the cwd. (The line info keeps the cached file's real
        # name: clang reads each line's text back by that name, so remapping it loses the text.)
        flags += ["-iquote", str(Path.cwd())]
    key = _key(data, path, flags, comp)
    cached = cache_dir() / "objects" / f"{key}.o"
    hit = cache and cached.is_file()
    warnings: tuple[Diagnostic, ...] = ()
    if not hit:
        rename = {} if path is not None else {str(src): shown}
        with tempfile.TemporaryDirectory(prefix="bpfkit-cc-") as tmp:
            out = Path(tmp) / "out.o"
            argv = [*comp.argv, *flags, "-x", "c", "-c", str(src), "-o", str(out)]
            try:
                r = subprocess.run(argv, capture_output=True)
            except OSError as e:
                raise CompileError(f"cannot run {comp}: {e.strerror}") from None
            stderr = r.stderr.decode(errors="replace")
            diags = parse_diagnostics(stderr, _line_reader(), rename)
            if r.returncode != 0 or not out.is_file():
                errors = [d for d in diags if d.severity != "warning"]
                raise CompileError(errors or [stderr.strip() or f"{comp} failed ({r.returncode})"])
            warnings = tuple(d for d in diags if d.severity == "warning")
            obj = out.read_bytes()
        if not cache and output is not None:
            write_atomic(Path(output), obj)
            return CompileResult(Path(output), False, warnings, comp)
        write_atomic(cached, obj)
    if output is None:
        return CompileResult(cached, hit, warnings, comp)
    Path(output).parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(cached, output)
    return CompileResult(Path(output), hit, warnings, comp)


def compile(source: str | os.PathLike[str], *, cflags: Sequence[str] = (),
            compiler: str | Compiler | None = None, cache: bool = True,
            name: str | None = None) -> ObjectSpec:
    """Compile BPF C `source` (text, or a `Path`) and return the object's spec (see `compile_to_file`)."""
    if not cache:
        with tempfile.TemporaryDirectory(prefix="bpfkit-cc-") as tmp:
            res = compile_to_file(source, Path(tmp) / "prog.o", cflags=cflags, compiler=compiler, cache=False,
                                  name=name)
            return load_object(res.path.read_bytes())
    res = compile_to_file(source, cflags=cflags, compiler=compiler, cache=True, name=name)
    return load_object(res.path)


__all__ = ["CompileResult", "base_flags", "compile", "compile_to_file", "target_arch"]
