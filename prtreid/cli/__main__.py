"""``python -m prtreid.cli``."""

import sys

from prtreid.cli import main

sys.exit(main())
