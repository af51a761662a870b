"""`python -m bpfkit` runs the command line."""

import sys

from bpfkit.cli.main import main

sys.exit(main())
