"""Two processes on localhost (jax.distributed, CPU collectives) train and write one checkpoint."""

import os
import socket
import subprocess
import sys

import numpy as np
import pytest

from tests.test_trainer import TINY


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_process_training_writes_one_consistent_checkpoint(tmp_path):
    port = free_port()
    workdir = tmp_path / "run"
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=1", JAX_PLATFORMS="cpu")
    overrides = [a for o in TINY + ["train.num_epochs=1", "method.name=cot"] for a in ("--set", o)]
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "train.cot", "--workdir", str(workdir), "--no-progress",
             "--coordinator", f"127.0.0.1:{port}", "--num-processes", "2", "--process-id", str(i),
             *overrides],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        for i in range(2)
    ]
    outputs = []
    for p in procs:
        try:
            out, _ = p.communicate(timeout=240)
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            pytest.fail("multi-host run timed out")
        outputs.append(out)
    for p, out in zip(procs, outputs):
        assert p.returncode == 0, out[-3000:]
    assert "finished at step 2" in outputs[0], outputs[0][-2000:]
    from lrm_jax.training.checkpoint import Checkpointer, load_params

    assert Checkpointer(workdir).latest_step() == 2
    model = load_params(workdir)
    assert np.isfinite(np.asarray(model.wte.embedding[...])).all()
