"""The PyTorch baseline of benchmarks/train_step.py computes what our COCONUT step computes.

A speed ratio only means something when both sides do the same work: the torch n+1-pass loss,
with either way of writing a thought, must equal our scan-based loss on the same weights and
batch, and so must the gradient of the embedding table (it carries the thoughts' gradients).
"""

import jax
import numpy as np
import pytest
from flax import nnx

from lrm_jax.data.layout import Layout
from lrm_jax.model.hf_io import load_hf_gpt2
from lrm_jax.training.objective import lm_loss


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    torch = pytest.importorskip("torch", reason="torch (extra 'hf') is needed for the baseline check")
    from benchmarks.torch_coconut import make_model

    torch.manual_seed(0)
    tm = make_model(vocab_size=53, n_layer=2, n_embd=32, n_head=4, n_positions=32)
    with torch.no_grad():  # GPT-2's init scale (0.02) leaves the thoughts almost without effect
        for w in tm.parameters():
            if w.dim() == 2:
                w.mul_(10.0)
    d = tmp_path_factory.mktemp("bench_gpt2")
    tm.save_pretrained(d)
    ours = load_hf_gpt2(d)
    tm = tm.double()

    layout = Layout(max_question_len=8, max_latent_stage=3, c_thought=1, max_rest_len=6)
    P, Z, T = layout.n_prefix, layout.n_latent, layout.length
    rng = np.random.default_rng(1)
    ids = rng.integers(3, 53, (3, T)).astype(np.int32)
    mask = np.zeros((3, T), np.int32)
    loss_mask = np.zeros((3, T), np.float32)
    for b, (q, a) in enumerate([(8, 5), (3, 2), (5, 4)]):  # left padding and ragged answers
        mask[b, P - 1 - q : P + Z + 1 + a] = 1
        loss_mask[b, P + Z : P + Z + a] = 1
    batch = {"ids": ids, "mask": mask, "loss_mask": loss_mask}
    graphdef, params = nnx.split(ours, nnx.Param)
    ours_loss, ours_grads = jax.jit(jax.value_and_grad(
        lambda p: lm_loss(nnx.merge(graphdef, p), batch, "coconut", layout)[0]))(params)
    return torch, tm, layout, batch, float(ours_loss), np.asarray(ours_grads["wte"]["embedding"])


@pytest.mark.parametrize("feedback", ["index_put", "restack"])
def test_torch_n_plus_1_pass_loss_and_grads_equal_ours(setup, feedback):
    torch, tm, layout, batch, ours_loss, ours_wte_grad = setup
    from benchmarks.torch_coconut import coconut_loss, plain_loss

    ids = torch.tensor(batch["ids"], dtype=torch.long)
    mask = torch.tensor(batch["mask"], dtype=torch.long)
    labels = ids.clone()
    labels[torch.tensor(np.roll(batch["loss_mask"], 1, axis=1)) == 0] = -100
    tm.zero_grad()
    loss = coconut_loss(tm, ids, mask, labels, layout.n_prefix, layout.n_latent, feedback)
    loss.backward()

    np.testing.assert_allclose(loss.item(), ours_loss, rtol=1e-5)
    np.testing.assert_allclose(tm.transformer.wte.weight.grad.numpy(), ours_wte_grad, atol=1e-5)
    # The thoughts matter in this batch: without them (a plain pass) the loss differs.
    with torch.no_grad():
        assert abs(plain_loss(tm, ids, mask, labels).item() - loss.item()) > 1e-2
