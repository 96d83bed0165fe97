"""``python -m tg``: the same command line as the ``tg`` console script."""

import sys

from tg.cli import main

sys.exit(main())
