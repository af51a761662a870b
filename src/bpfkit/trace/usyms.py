"""Symbols of user binaries for the language's compile-time lookups (uaddr())."""

from __future__ import annotations

from bpfkit.errors import BpfkitError


def user_symbol(binary: str, name: str) -> tuple[int, int] | None:
    """(address, size) of function or object symbol `name` in `binary` (a path, or a program or library
    name found as uprobes find it), as the ELF file gives it; a global definition wins over local ones.
    None when the binary or the symbol cannot be found."""
    from bpfkit.elf.symbols import read_image
    from bpfkit.kernel.attach.elfsyms import find_binary

    try:
        path = find_binary(binary)
        image = read_image(path)
        found = [s for table in image.symtabs for s in table.symbols(path)
                 if s.name.split("@", 1)[0] == name]
    except (BpfkitError, OSError):
        return None
    if not found:
        return None
    best = min(found, key=lambda s: s.binding not in (1, 2))  # STB_GLOBAL, STB_WEAK first
    return best.address, best.size
