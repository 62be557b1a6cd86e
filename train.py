"""Train a model: ``python train.py fit --config configs/<name>.yaml``.

The same as ``python -m avsr.train``; see :mod:`avsr.train` for the options.
"""

import sys

from avsr.train import main

if __name__ == "__main__":
    sys.exit(main())
