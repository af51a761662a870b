"""bpfkit: eBPF for Python, from bytecode to one-liners, in the Linux kernel or without one."""

__version__ = "0.1.0"


def __getattr__(name: str) -> object:
    """`bpfkit.BPF` (the BCC-style API) loads on first use, so `import bpfkit` stays cheap."""
    if name == "BPF":
        from bpfkit.cc.bcc import BPF

        return BPF
    raise AttributeError(f"module 'bpfkit' has no attribute {name!r}")
