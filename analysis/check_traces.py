"""Checks every gold trace of a data file.

    python -m analysis.check_traces --data ../shared/data/prosqa_valid.json

Prints one line per failing record (index, reason, detail) and, on its last line, one JSON
object: records, parsed, verified, failed, failures (count per reason). Records the loader
rejects (malformed JSON fields, empty steps) count as failed with reason "load: <field>".
Exit status 0 whatever the verdicts; 2 when the file cannot be read at all.
"""

from __future__ import annotations

import argparse
import collections
import json
import sys

from lrm_jax.data.loaders import DataError, load_records
from lrm_jax.traces import TRACE_FORMATS, check_record


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True, help="COCONUT JSON, JSON lines or iCoT text file")
    p.add_argument("--format", default="auto", choices=("auto", *TRACE_FORMATS))
    p.add_argument("--quiet", action="store_true", help="print only the summary line")
    args = p.parse_args(argv)
    try:
        loaded = load_records(args.data, lenient=True)
    except DataError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    failures: collections.Counter[str] = collections.Counter()
    for err in loaded.skipped:
        reason = f"load: {err.field}" if err.field else "load"
        failures[reason] += 1
        if not args.quiet:
            print(f"record {err.index}: {reason}: {err.reason}")
    # Loaded records keep their file order; map them back to file indices for the report.
    skipped_idx = {e.index for e in loaded.skipped}
    file_idx = (i for i in range(loaded.total) if i not in skipped_idx)
    verified = 0
    for rec, idx in zip(loaded.records, file_idx):
        res = check_record(rec, args.format)
        if res.ok:
            verified += 1
            continue
        failures[res.reason] += 1
        if not args.quiet:
            where = f" step {res.step}" if res.step is not None else ""
            print(f"record {idx}:{where} {res.reason}: {res.detail}")
    summary = {
        "file": str(args.data),
        "records": loaded.total,
        "parsed": len(loaded.records),
        "verified": verified,
        "failed": loaded.total - verified,
        "verified_pct": round(100.0 * verified / max(loaded.total, 1), 2),
        "failures": dict(failures.most_common()),
    }
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
