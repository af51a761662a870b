"""`python -m bpfkit` runs the command line."""

from bpfkit.cli.main import entry

entry()
