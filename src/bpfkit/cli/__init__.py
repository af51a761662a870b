"""The `bpfkit` command line."""
