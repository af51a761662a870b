"""Symbols of user binaries for the language's compile-time lookups (uaddr())."""

from __future__ import annotations

from bpfkit.errors import BpfkitError


def user_symbol(binary: str, name: str) -> tuple[int, int] | None:
    """(address, size) of function or object symbol `name` in `binary` (a path, or a program or library
    name found as uprobes find it), as the ELF file gives it; a global definition wins over local ones
    (`ElfImage.definition`). None when the binary or the symbol cannot be found."""
    from bpfkit.elf.symbols import read_image
    from bpfkit.kernel.attach.elfsyms import find_binary

    try:
        found = read_image(find_binary(binary)).definition(name, kinds=("func", "object"))
    except (BpfkitError, OSError):
        return None
    return None if found is None else (found.address, found.size)
