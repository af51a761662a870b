"""Finding the executable or library a uprobe goes in: `find_binary` (a path, or a name looked up in a
process's mappings, the library directories and PATH). It asks the running system, so it lives here;
reading the file (symbols, segments, sections) is the pure `bpfkit.elf.symbols`, re-exported below for
the attach code.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

from bpfkit.elf.symbols import ElfImage as ElfImage
from bpfkit.elf.symbols import ElfSymbol as ElfSymbol
from bpfkit.elf.symbols import Segment as Segment
from bpfkit.elf.symbols import SymbolSection as SymbolSection
from bpfkit.elf.symbols import _read as _read  # benchmarks/bench_attach.py clears its cache
from bpfkit.elf.symbols import read_image as read_image
from bpfkit.errors import ElfError

LIBRARY_DIRS = ("/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib/aarch64-linux-gnu",
                "/usr/lib/aarch64-linux-gnu", "/lib64", "/usr/lib64", "/lib", "/usr/lib", "/usr/local/lib")
"""Where `find_binary` looks for a bare library name (after LD_LIBRARY_PATH)."""


def _maps_paths(pid: int) -> Iterator[str]:
    try:
        with open(f"/proc/{pid}/maps") as f:
            for line in f:
                parts = line.split(None, 5)
                if len(parts) == 6 and parts[5].startswith("/"):
                    yield parts[5].rstrip("\n")
    except OSError:
        return


def is_elf_file(path: str | Path) -> bool:
    """A regular ELF file (not a linker script such as /usr/lib/x86_64-linux-gnu/libc.so)."""
    try:
        with open(path, "rb") as f:
            return f.read(4) == b"\x7fELF"
    except OSError:
        return False


def find_binary(name: str, pid: int | None = None) -> str:
    """The path of executable or library `name`: a path is taken as it is; a bare name is looked up in
    the process `pid`'s mappings (``libc`` matches ``libc.so.6``), LD_LIBRARY_PATH, the library
    directories, then PATH."""
    if "/" in name:
        if not os.path.isfile(name):
            raise ElfError(f"{name}: no such file")
        return os.path.realpath(name)
    if pid is not None:
        for path in _maps_paths(pid):
            base = os.path.basename(path)
            if base == name or base.startswith(name + ".") or base.startswith(name + "-"):
                return path
    dirs = [d for d in os.environ.get("LD_LIBRARY_PATH", "").split(":") if d] + list(LIBRARY_DIRS)
    candidates = [name] if ".so" in name else [name, f"{name}.so", f"lib{name}.so"]
    for d in dirs:
        for c in candidates:
            p = Path(d) / c
            if is_elf_file(p):
                return os.path.realpath(p)
        if ".so" not in name:
            try:
                for entry in sorted(os.listdir(d)):
                    if entry.startswith((f"{name}.so.", f"lib{name}.so.")) and is_elf_file(Path(d) / entry):
                        return os.path.realpath(Path(d) / entry)
            except OSError:
                continue
    exe = shutil.which(name)
    if exe:
        return os.path.realpath(exe)
    raise ElfError(f"cannot find {name!r} (not a path, library or program on PATH)")
