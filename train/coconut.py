"""Train a coconut model: `python -m train.coconut --config configs/<name>.yaml --workdir checkpoints/<run>`."""

import sys

from train.cli import main

if __name__ == "__main__":
    sys.exit(main(method="coconut", description=__doc__, family=("multimode",)))
