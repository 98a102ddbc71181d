"""`python -m oxsync` = the `oxsync` command."""

import sys

from oxsync.cli import main

sys.exit(main())
