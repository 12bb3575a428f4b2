"""TFDS builder (array_record files, no TensorFlow) for any of our record files.

    path = build_tfds({"train": "data/prosqa_train.json", "valid": "..."}, "data/tfds", "prosqa")
    sources = load_tfds(path)            # split -> random-access source of Records

Each example stores `question`, `steps`, `answer`, and `record_json` (the full record as JSON,
so graph fields and templates survive). `tfds` shuffles examples by key when it writes, so keys
are the record's index in its file and `load_tfds` restores file order.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Mapping

import numpy as np

from lrm_jax.data.loaders import load_records, parse_record
from lrm_jax.data.records import Record


def _builder_class():
    import tensorflow_datasets as tfds

    class LrmRecords(tfds.core.GeneratorBasedBuilder):
        VERSION = tfds.core.Version("1.0.0")

        def __init__(self, *, split_files: Mapping[str, str], name_suffix: str, **kwargs):
            self._split_files = dict(split_files)
            self.name = f"lrm_records_{name_suffix}"
            super().__init__(file_format="array_record", **kwargs)

        def _info(self):
            # DatasetInfo directly: dataset_info_from_configs wants a package directory.
            return tfds.core.DatasetInfo(
                builder=self,
                description="lrm-jax reasoning records (COCONUT schema)",
                features=tfds.features.FeaturesDict(
                    {
                        "index": np.int64,
                        "question": tfds.features.Text(),
                        "steps": tfds.features.Sequence(tfds.features.Text()),
                        "answer": tfds.features.Text(),
                        "record_json": tfds.features.Text(),
                    }
                ),
            )

        def _split_generators(self, dl_manager):
            return {split: self._generate_examples(path) for split, path in self._split_files.items()}

        def _generate_examples(self, path):
            for i, rec in enumerate(load_records(path).records):
                yield i, {
                    "index": i,
                    "question": rec.question,
                    "steps": list(rec.steps),
                    "answer": rec.answer,
                    "record_json": json.dumps(rec.to_json()),
                }

    return LrmRecords


def build_tfds(split_files: Mapping[str, str | Path], data_dir: str | Path, name: str) -> Path:
    """Writes array_record TFDS files for each split; returns the dataset directory."""
    cls = _builder_class()
    builder = cls(
        split_files={k: str(v) for k, v in split_files.items()},
        name_suffix=name,
        data_dir=str(data_dir),
    )
    builder.download_and_prepare()
    return Path(builder.data_dir)


class RecordSource:
    """Random access to Records over a TFDS split, in file order."""

    def __init__(self, tfds_source):
        self._src = tfds_source
        order = np.empty(len(tfds_source), np.int64)
        for pos in range(len(tfds_source)):
            order[int(tfds_source[pos]["index"])] = pos
        self._order = order

    def __len__(self) -> int:
        return len(self._src)

    def __getitem__(self, i: int) -> Record:
        ex = self._src[int(self._order[i])]
        raw = ex["record_json"]
        obj = json.loads(raw.decode() if isinstance(raw, bytes) else raw)
        return parse_record(obj, "tfds", int(i))


def load_tfds(dataset_dir: str | Path) -> dict[str, RecordSource]:
    import tensorflow_datasets as tfds

    builder = tfds.builder_from_directory(str(dataset_dir))
    sources = builder.as_data_source()
    return {split: RecordSource(src) for split, src in sources.items()}
