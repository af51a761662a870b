"""``bpftrace -l`` for probes in user binaries: ``uprobe:BINARY:FUNC`` and ``usdt:BINARY:[PROVIDER:]NAME``.

The binary part may be a path (shell wildcards allowed) or a program or library name found as uprobes
find it; the last part is a wildcard pattern. Lines are sorted and unique, as bpftrace prints them:
``uprobe:/path:function`` for each function symbol, ``usdt:/path:provider:name`` for each USDT probe.
"""

from __future__ import annotations

import fnmatch
import glob
import os

from bpfkit.errors import BpfkitError

#: Provider spellings of -l patterns for user binaries, and the name bpftrace prints for each.
USER_PROVIDERS = {"uprobe": "uprobe", "u": "uprobe", "uretprobe": "uretprobe", "ur": "uretprobe",
                  "usdt": "usdt", "U": "usdt"}
_WILD = "*?["


def is_user_pattern(pattern: str | None) -> bool:
    """Whether -l `pattern` lists probes of a user binary."""
    return bool(pattern) and pattern.split(":", 1)[0] in USER_PROVIDERS  # type: ignore[union-attr]


def _binaries(spec: str) -> list[str]:
    """The files `spec` names, as bpftrace prints them."""
    from bpfkit.kernel.attach.elfsyms import LIBRARY_DIRS, find_binary, is_elf_file

    if any(c in spec for c in _WILD):
        return sorted(p for p in glob.glob(spec)
                      if os.path.isfile(p) and os.access(p, os.X_OK) and is_elf_file(p))
    if "/" in spec:
        if not os.path.isfile(spec):
            raise BpfkitError(f"uprobe target file '{spec}' does not exist or is not executable")
        return [spec]
    found = find_binary(spec)
    for d in LIBRARY_DIRS:  # the library directory's spelling of the path (/lib/... not /usr/lib/...)
        candidate = os.path.join(d, os.path.basename(found))
        if os.path.exists(candidate) and os.path.samefile(candidate, found):
            return [candidate]
    return [found]


def debug_file(path: str) -> str | None:
    """The separate debug-symbol file of `path` (``/usr/lib/debug/.build-id/ab/cdef....debug``, found by
    the GNU build id note), or None."""
    from bpfkit.elf.symbols import read_image
    from bpfkit.kernel.attach.elfsyms import is_elf_file

    note = read_image(path).sections.get(".note.gnu.build-id")
    if note is None:
        return None
    _addr, offset, size = note
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            raw = f.read(size)
    except OSError:
        return None
    if len(raw) < 16:
        return None
    namesz, descsz = int.from_bytes(raw[0:4], "little"), int.from_bytes(raw[4:8], "little")
    start = 12 + (namesz + 3) // 4 * 4
    build_id = raw[start:start + descsz].hex()
    if len(build_id) < 4:
        return None
    candidate = f"/usr/lib/debug/.build-id/{build_id[:2]}/{build_id[2:]}.debug"
    return candidate if is_elf_file(candidate) else None


def _function_names(path: str) -> set[str]:
    """The function symbols of `path`, with those of its debug file (as bpftrace lists them)."""
    from bpfkit.elf.symbols import read_image

    names: set[str] = set()
    for i, file in enumerate((path, debug_file(path))):
        if file is None:
            continue
        try:  # names as the string tables spell them: a debug file's carry their versions (@@GLIBC_2.2.5)
            names.update(s.name for table in read_image(file).symtabs for s in table.symbols(file)
                         if s.kind == "func" and ".part." not in s.name)  # bpftrace hides partial inlines
        except (BpfkitError, OSError):
            if i == 0:
                raise
    return names


def list_user_probes(pattern: str) -> list[str]:
    """The probes matching `pattern` (see the module docstring); BpfkitError for a missing binary."""
    provider, _, rest = pattern.partition(":")
    kind = USER_PROVIDERS[provider]
    binary, _, what = rest.partition(":")
    what = what or "*"
    out: set[str] = set()
    for path in _binaries(binary):
        if kind == "usdt":
            from bpfkit.kernel.attach.usdt import read_usdt_probes

            for p in read_usdt_probes(path):
                full = f"{p.provider}:{p.name}"
                if fnmatch.fnmatchcase(full, what) or (":" not in what and fnmatch.fnmatchcase(p.name, what)):
                    out.add(f"usdt:{path}:{full}")
        else:
            out.update(f"{kind}:{path}:{name}" for name in _function_names(path)
                       if fnmatch.fnmatchcase(name, what))
    return sorted(out)
