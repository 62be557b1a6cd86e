"""``python -m avsr.cli``: the ``avsr`` command."""

import sys

from avsr.cli import main

sys.exit(main())
