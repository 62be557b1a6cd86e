"""Train a model: ``python train.py fit --config configs/<name>.yaml``.

The same as ``python -m avsr.train``; see :mod:`avsr.train` for the options.
"""

import sys

from avsr.tmp import run_folder

if __name__ == "__main__":
    with run_folder():  # before Lightning's import, which imports ONNX Runtime: its .ses file goes in the folder
        from avsr.train import main

        sys.exit(main())
