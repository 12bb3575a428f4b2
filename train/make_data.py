"""Generates a task's records as COCONUT JSON.

    python -m train.make_data --task prosqa --n 2000 --seed 0 --out data/prosqa_train.json \
        --set min_nodes=8 --set max_nodes=12

`--set` overrides the generator's difficulty knobs (see lrm_jax/data/generators/).
"""

from __future__ import annotations

import argparse
import sys

from lrm_jax.config import ConfigError, load
from lrm_jax.data.generators import GENERATORS
from lrm_jax.data.loaders import save_records


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--task", required=True, choices=sorted(GENERATORS))
    p.add_argument("--n", type=int, required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True)
    p.add_argument("--config", help="YAML file of generator knobs")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = p.parse_args(argv)
    cls, generate = GENERATORS[args.task]
    try:
        cfg = load(cls, args.config, args.set)
    except (ConfigError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    records = generate(cfg, args.n, args.seed)
    path = save_records(records, args.out)
    print(f"wrote {len(records)} {args.task} records to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
