"""Train a No-CoT baseline: `python -m train.nocot --config configs/<name>.yaml --workdir checkpoints/<run>`."""

import sys

from train.cli import main

if __name__ == "__main__":
    sys.exit(main(method="nocot", description=__doc__))
