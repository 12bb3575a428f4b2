"""Train a CoT baseline: `python -m train.cot --config configs/<name>.yaml --workdir checkpoints/<run>`."""

import sys

from train.cli import main

if __name__ == "__main__":
    sys.exit(main(method="cot", description=__doc__))
