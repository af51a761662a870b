"""bpfkit: eBPF for Python, from bytecode to one-liners, in the Linux kernel or without one."""

__version__ = "0.1.0"
