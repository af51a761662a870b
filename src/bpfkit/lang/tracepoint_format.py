"""Parse tracefs event format files (``events/<category>/<name>/format``) into typed fields.

Pure parsing: the caller reads the file and passes its text. Each ``field:`` line gives a C declaration,
an offset, a size and signedness (the layout of the tracepoint's record, which is the context a
BPF_PROG_TYPE_TRACEPOINT program receives). Fields named ``common_*`` are the shared header.
"""

from __future__ import annotations

import re

from bpfkit._records import record
from bpfkit.errors import ParseError

_FIELD = re.compile(r"\s*field:(?P<decl>[^;]*);\s*offset:(?P<off>\d+);\s*size:(?P<size>\d+);"
                    r"\s*signed:(?P<signed>-?\d+);")
_ARRAY = re.compile(r"^(?P<base>.*?)\s*\b(?P<name>\w+)\s*\[(?P<len>[^\]]*)\]$")


@record
class TracepointField:
    """One field of a tracepoint record.

    `ctype` is the C type as written without the name (``const char *``, ``char[16]``); `array` is the
    element count of a fixed array (None otherwise); `data_loc` marks ``__data_loc`` fields, whose u32
    value holds the offset (low 16 bits) and length (high 16 bits) of data stored later in the record.
    """

    name: str
    ctype: str
    offset: int
    size: int
    signed: bool
    array: int | None = None
    data_loc: bool = False

    @property
    def is_pointer(self) -> bool:
        return self.ctype.rstrip().endswith("*")

    @property
    def is_string(self) -> bool:
        """A ``char`` array or ``__data_loc char[]``: bpftrace shows these as strings."""
        base = self.ctype.split("[")[0].replace("const", "").replace("unsigned", "").strip()
        return (self.array is not None or self.data_loc) and base == "char"

    def declaration(self) -> str:
        """The field as ``bpftrace -lv`` shows it: ``const char * filename``."""
        if self.data_loc:
            return f"__data_loc {self.ctype} {self.name}"
        if self.array is not None:
            base = self.ctype.split("[")[0].strip()
            return f"{base} {self.name}[{self.array}]"
        return f"{self.ctype} {self.name}"


@record
class TracepointFormat:
    """The record layout of one tracepoint."""

    category: str
    name: str
    id: int
    fields: tuple[TracepointField, ...]

    def field(self, name: str) -> TracepointField | None:
        for f in self.fields:
            if f.name == name:
                return f
        return None

    @property
    def args(self) -> tuple[TracepointField, ...]:
        """The fields bpftrace exposes as ``args``: all but the common header."""
        return tuple(f for f in self.fields if not f.name.startswith("common_"))


def parse_field_decl(decl: str) -> tuple[str, str, int | None, bool]:
    """Split a C field declaration into (type, name, array length or None, is __data_loc)."""
    decl = " ".join(decl.split())
    data_loc = decl.startswith("__data_loc ")
    if data_loc:
        decl = decl[len("__data_loc "):]
    m = _ARRAY.match(decl)
    if m is not None:  # "char comm[16]"
        length = m["len"].strip()
        count = int(length, 0) if length.isdigit() or length.startswith("0x") else 0
        return f"{m['base']}[{length}]", m["name"], count, data_loc
    parts = re.match(r"^(?P<type>.*?)\s*(?P<name>\w+)$", decl)
    if parts is None or not parts["type"]:
        raise ParseError(f"cannot read field declaration {decl!r}")
    return parts["type"], parts["name"], None, data_loc


def parse_format(text: str, category: str = "", name: str = "") -> TracepointFormat:
    """Parse the text of a format file; `category` names the event for messages and the result."""
    event_name = name
    event_id = 0
    fields: list[TracepointField] = []
    for lineno, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if stripped.startswith("name:") and not event_name:
            event_name = stripped[5:].strip()
        elif stripped.startswith("ID:"):
            try:
                event_id = int(stripped[3:].strip())
            except ValueError:
                raise ParseError(f"{category}:{name} format line {lineno}: bad ID {stripped!r}") from None
        elif stripped.startswith("field:"):
            m = _FIELD.match(line)
            if m is None:
                raise ParseError(f"{category}:{name} format line {lineno}: cannot read {stripped!r}")
            try:
                ctype, fname, array, data_loc = parse_field_decl(m["decl"])
            except ParseError as e:
                raise ParseError(f"{category}:{name} format line {lineno}: {e}") from None
            fields.append(TracepointField(fname, ctype, int(m["off"]), int(m["size"]), m["signed"] == "1",
                                          array, data_loc))
    return TracepointFormat(category, event_name, event_id, tuple(fields))
