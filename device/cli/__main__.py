"""`python -m safehouse.device.cli` runs the `safehouse` command (as the console script does)."""

import sys

from safehouse.device.cli.main import main

sys.exit(main())
