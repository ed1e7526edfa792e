"""``python -m workers`` is the ``dualwrite`` command."""

import sys

from workers.cli import main

sys.exit(main())
