"""A trained run loaded for analysis: `--ckpt DIR` is all it needs.

The run directory holds the resolved config, the tokenizer and Orbax checkpoints
(lrm_jax/training/checkpoint.py); from them we rebuild the model, the static layout and the
family's prompting mode. Errors name the directory and what is missing or wrong.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import jax
from flax import nnx

from lrm_jax.config import CODI_METHODS, RunConfig
from lrm_jax.data.layout import Layout
from lrm_jax.tokenizer import Tokenizer
from lrm_jax.training.checkpoint import CHECKPOINT_DIR, CheckpointError, load_params, read_run_files
from lrm_jax.training.evaluate import Mode, modes_of
from lrm_jax.training.setup import make_layout


class StudyError(ValueError):
    """Bad input to a study: the message names the file, record or field."""


@dataclasses.dataclass
class LoadedRun:
    path: Path
    cfg: RunConfig
    tokenizer: Tokenizer
    graphdef: nnx.GraphDef
    params: nnx.State
    layout: Layout
    mode: Mode  # the family's main mode (latent for multi-mode models)

    @property
    def family(self) -> str:
        return self.cfg.method.name

    @property
    def latent(self) -> bool:
        return self.mode.latent

    @property
    def n_thoughts(self) -> int:
        """Thought slots of a full run (6 for the paper's COCONUT and CODI)."""
        return self.layout.n_latent

    @property
    def family_label(self) -> str:
        return {"coconut": "COCONUT", "codi": "CODI", "cot": "CoT", "nocot": "No-CoT", "pause": "Pause",
                "multimode": "multi-mode COCONUT", "codi_multimode": "multi-mode CODI"}[self.family]

    @property
    def is_codi(self) -> bool:
        return self.family in CODI_METHODS

    def replicate(self, sharding) -> "LoadedRun":
        """Parameters copied to every device of the sharding's mesh (rows are split over it)."""
        if sharding is not None:
            rep = jax.sharding.NamedSharding(sharding.mesh, jax.sharding.PartitionSpec())
            self.params = jax.device_put(self.params, rep)
        return self


def load_run(ckpt: str | Path, *, need_latent: bool = False, study: str = "this study") -> LoadedRun:
    path = Path(ckpt)
    if not path.exists():
        raise StudyError(f"--ckpt {path}: no such directory")
    try:
        cfg, tok = read_run_files(path)
    except CheckpointError as e:
        raise StudyError(f"--ckpt {path}: {e}") from None
    if not (path / CHECKPOINT_DIR).exists() or not any((path / CHECKPOINT_DIR).iterdir()):
        raise StudyError(f"--ckpt {path}: the run has config.yaml but no saved checkpoint yet ({CHECKPOINT_DIR}/ is empty)")
    mode = modes_of(cfg.method.name)[0]
    if need_latent and not mode.latent:
        raise StudyError(
            f"--ckpt {path}: {study} needs a latent reasoning model (coconut, codi or a multi-mode "
            f"model); this checkpoint is a {cfg.method.name!r} model"
        )
    graphdef, params = nnx.split(load_params(path), nnx.Param)
    return LoadedRun(path, cfg, tok, graphdef, params, make_layout(cfg), mode)
