"""Training entry point: ``python train.py fit --config configs/<name>.yaml``.

The LightningCLI, model and data module arrive with the model issue (#4); until then this
script says so instead of pretending to train.
"""

import sys

if __name__ == "__main__":
    sys.exit("train.py: training is not available yet (the AV model and Lightning CLI land with issue #4); "
             "for now use `avsr lip-roi` to prepare mouth crops")
