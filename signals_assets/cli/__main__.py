"""`python -m signals_assets.cli`: the same as the `signals` command."""

import sys

from signals_assets.cli.main import main

sys.exit(main())
