"""`python -m adrs` is the `adrs` command."""

import sys

from adrs.cli import main

sys.exit(main())
