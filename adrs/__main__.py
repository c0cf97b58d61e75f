"""`python -m adrs` is the `adrs` command."""

import sys

from adrs.cli.entry import main

sys.exit(main())
