"""A PyTorch + transformers implementation of COCONUT's n+1-pass training forward (the baseline).

The algorithm of the reference (facebookresearch/coconut, coconut.md section 1.3), written
here from its description: pass 0 encodes the prefix up to the first latent slot; each latent
pass computes exactly one new position from the previous position's last hidden state (after
`ln_f`) with the KV cache of the earlier passes; a final pass computes the rest. Thought
embeddings are written with one out-of-place `index_put` per pass (the "fast-fill" variant of
perf-anchors.md, i.e. a stronger baseline than the reference's per-element restacking, which
measured 16-22x slower at this size).
"""

from __future__ import annotations

import torch
from transformers import DynamicCache, GPT2Config, GPT2LMHeadModel


def torch_device():
    """(device, synchronize): CUDA when torch sees one (TF32 matmuls allowed, as JAX's fp32 default
    on a GPU), else 2 CPU threads as on this project's machine."""
    if torch.cuda.is_available():
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        return torch.device("cuda"), torch.cuda.synchronize
    torch.set_num_threads(2)
    return torch.device("cpu"), lambda: None


def torch_train_step(loss_fn, opt, sync):
    """One training step (forward, backward, AdamW) that returns once the device is done."""
    def run():
        loss_fn().backward()
        opt.step()
        opt.zero_grad()
        sync()
    return run


def make_model(vocab_size: int, n_layer: int, n_embd: int, n_head: int, n_positions: int) -> GPT2LMHeadModel:
    cfg = GPT2Config(
        vocab_size=vocab_size, n_layer=n_layer, n_embd=n_embd, n_head=n_head, n_positions=n_positions,
        bos_token_id=0, eos_token_id=0, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
        attn_implementation="sdpa",
    )
    return GPT2LMHeadModel(cfg)


def coconut_loss(model: GPT2LMHeadModel, ids, mask, labels, n_prefix: int, n_latent: int,
                 feedback: str = "index_put") -> torch.Tensor:
    """Same static layout as lrm_jax: latent slots at columns [n_prefix, n_prefix + n_latent)."""
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    embeds = model.transformer.wte(ids)
    cache = DynamicCache()
    logits = []
    # n_latent + 1 passes: the prefix, then one column per thought except the last, whose column
    # opens the final pass (each pass's last hidden state is the next column's thought).
    ranges = [(0, n_prefix)] + [(n_prefix + z, n_prefix + z + 1) for z in range(n_latent - 1)]
    ranges.append((n_prefix + n_latent - 1, ids.shape[1]))
    for p, (start, end) in enumerate(ranges):
        out = model(
            inputs_embeds=embeds[:, start:end], attention_mask=mask[:, :end],
            position_ids=positions[:, start:end], past_key_values=cache, use_cache=True,
            output_hidden_states=p < len(ranges) - 1,
        )
        cache = out.past_key_values
        logits.append(out.logits)
        if p < len(ranges) - 1:
            # The next slot's input is this pass's last hidden state (post ln_f).
            thought = out.hidden_states[-1][:, -1]
            embeds = write_thought(embeds, end, thought, feedback)
    logits = torch.cat(logits, dim=1)
    shift = logits[:, :-1].reshape(-1, logits.shape[-1])
    return torch.nn.functional.cross_entropy(shift, labels[:, 1:].reshape(-1), ignore_index=-100)


def write_thought(embeds_BxTxD, col: int, thought_BxD, feedback: str):
    """The embeddings with column `col` of every row replaced by `thought_BxD`, out of place."""
    B, T, _ = embeds_BxTxD.shape
    if feedback == "index_put":
        rows = torch.arange(B, device=embeds_BxTxD.device)
        return embeds_BxTxD.index_put((rows, torch.full_like(rows, col)), thought_BxD)
    if feedback != "restack":
        raise ValueError(f"feedback must be 'index_put' or 'restack', got {feedback!r}")
    vectors = [[embeds_BxTxD[b, t] for t in range(T)] for b in range(B)]
    for b in range(B):
        vectors[b][col] = thought_BxD[b]
    return torch.stack([torch.stack(row) for row in vectors])


def plain_loss(model: GPT2LMHeadModel, ids, mask, labels) -> torch.Tensor:
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    logits = model(input_ids=ids, attention_mask=mask, position_ids=positions).logits
    return torch.nn.functional.cross_entropy(
        logits[:, :-1].reshape(-1, logits.shape[-1]), labels[:, 1:].reshape(-1), ignore_index=-100
    )
