"""`python -m shardlite`: the same as the `shardlite` command."""

import sys

from .cli import main

sys.exit(main())
