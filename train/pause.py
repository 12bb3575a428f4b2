"""Train a Pause-token baseline (learned <pause> embeddings in the thought slots): `python -m train.pause --config configs/<name>.yaml --workdir checkpoints/<run>`."""

import sys

from train.cli import main

if __name__ == "__main__":
    sys.exit(main(method="pause", description=__doc__))
