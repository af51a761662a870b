"""The reserved names of the language: keywords, builtins, functions and type names.

Facts taken from the bpftrace reference (man bpftrace, 0.17 and later): which identifiers are builtins,
which may be called, and which name types in casts. Later passes attach types and meaning to them; the
parser needs only the names.
"""

from __future__ import annotations

import re

#: Statement and expression keywords (cannot be used as identifiers in code).
KEYWORDS = frozenset({
    "if", "else", "while", "for", "unroll", "return", "break", "continue", "let",
    "sizeof", "offsetof", "true", "false",
})

#: Builtin variables (besides ``argN``/``sargN`` and the positional ``$N``/``$#``).
BUILTINS = frozenset({
    "pid", "tid", "uid", "gid", "nsecs", "elapsed", "numaid", "cpu", "ncpus", "comm", "kstack",
    "ustack", "retval", "func", "probe", "curtask", "rand", "cgroup", "cpid", "ctx", "args",
    "username", "jiffies", "usermode",
})

_ARGN = re.compile(r"s?arg[0-9]+\Z")

#: Map aggregation functions: their result can only be stored in a map.
MAP_FUNCTIONS = frozenset({"count", "sum", "avg", "min", "max", "stats", "hist", "lhist"})

#: Every callable function, including the map functions and builtins that take arguments.
FUNCTIONS = MAP_FUNCTIONS | frozenset({
    "printf", "print", "time", "strftime", "str", "buf", "join", "ksym", "usym", "kaddr", "uaddr",
    "kptr", "uptr", "ntop", "pton", "macaddr", "cgroup_path", "cgroupid", "path", "exit", "signal",
    "system", "cat", "strncmp", "strcontains", "strerror", "bswap", "errorf", "warnf", "debugf",
    "override", "reg", "skboutput", "unwatch", "percpu_kaddr", "delete", "clear", "zero", "has_key",
    "len", "kstack", "ustack", "nsecs",
})

#: Fixed-size integer type names usable in casts and declarations.
INT_TYPES = frozenset({"bool", "uint8", "uint16", "uint32", "uint64", "int8", "int16", "int32", "int64"})
#: Types that take an optional ``[N]`` size: ``string[16]``.
SIZED_TYPES = frozenset({"string", "inet", "buffer"})
#: Other builtin type names.
OTHER_TYPES = frozenset({"void"})
#: Every type name that is not a C struct/union/enum or a typedef.
TYPE_NAMES = INT_TYPES | SIZED_TYPES | OTHER_TYPES

#: C aggregate keywords that start a type: ``struct task_struct``.
RECORD_KEYWORDS = frozenset({"struct", "union", "enum"})


def is_builtin(name: str) -> bool:
    """Whether an identifier names a builtin variable (``pid``, ``arg3``, ``sarg0``...)."""
    return name in BUILTINS or _ARGN.match(name) is not None


def is_function(name: str) -> bool:
    """Whether an identifier names a function that may be called."""
    return name in FUNCTIONS
