"""Train a CODI model: `python -m train.codi --config configs/<name>.yaml --workdir checkpoints/<run>`.

`--set method.name=codi_multimode` trains the multi-mode control (latent, verbal and direct).
"""

import sys

from train.cli import main

if __name__ == "__main__":
    sys.exit(main(method="codi", description=__doc__.splitlines()[0], family=("codi_multimode",)))
