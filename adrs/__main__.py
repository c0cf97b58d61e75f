"""`python -m adrs` is the `adrs` command."""

import sys

from adrs.cli.main import main

sys.exit(main())
