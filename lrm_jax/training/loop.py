"""The trainer shared by every model family: `run(cfg, workdir)`.

- Curriculum: stage = (method.first_epoch + epoch) // epochs_per_stage; every stage uses the
  same static layout, so the train step compiles once for the whole run (`compiles` is logged),
  or once per question width with `data.question_buckets` (each batch then holds one width).
- The step is a pure `jax.jit` function of (state, batch) with the state donated; batches and
  state are placed on a ("data", "fsdp") mesh.
- Resumes from the latest checkpoint automatically (parameters, optimizer state, epoch, data
  iterator position), so a crash loses at most the steps since the last checkpoint. SIGTERM
  (pod preemption) and `train.time_limit_minutes` save and return cleanly. A NaN/Inf loss raises
  `FloatingPointError` without saving, leaving the last good checkpoint.
- Metrics go to `metrics.jsonl` and TensorBoard; a progress bar shows loss, accuracy, tokens/s
  and the stage; validation accuracy comes from batched greedy generation.
"""

from __future__ import annotations

import dataclasses
import math
import signal
import time
from pathlib import Path

import jax
import numpy as np
import optax
from flax import nnx
from tqdm import tqdm

from lrm_jax.config import CODI_METHODS, CURRICULUM_METHODS, RunConfig
from lrm_jax.data.codi_layout import encode_codi
from lrm_jax.data.layout import encode_example, encode_multimode, question_buckets, sample_stage
from lrm_jax.data.pipeline import bucketed_pipeline, record_pipeline
from lrm_jax.sharding import batch_sharding, check_batch_size, global_batch, make_mesh, param_sharding
from lrm_jax.training.checkpoint import Checkpointer, write_run_files
from lrm_jax.training.distill import codi_loss
from lrm_jax.training.evaluate import mode_accuracies
from lrm_jax.training.logger import MetricsLogger
from lrm_jax.training.microbatch import chunked_value_and_grad
from lrm_jax.training.objective import lm_loss
from lrm_jax.training.setup import RunInputs, initial_model, resolve
from lrm_jax.training.state import TrainState, init_state, make_optimizer, reset_optimizer, trainable_labels


@dataclasses.dataclass
class RunResult:
    step: int
    epoch: int
    stopped: str  # "finished", "max_steps", "time_limit", "sigterm"
    val_acc: float | None
    compiles: int
    workdir: Path


def stage_of(cfg: RunConfig, epoch: int) -> int:
    """The curriculum stage of `epoch`; 0 throughout for methods without a curriculum, so their
    logs and progress bars do not show a stage that changes nothing."""
    if cfg.method.name not in CURRICULUM_METHODS:
        return 0
    return (cfg.method.first_epoch + epoch) // cfg.method.epochs_per_stage


def _resets(cfg: RunConfig, epoch: int) -> bool:
    """Optimizer reset at the start of `epoch`: curriculum methods only (the reference's CoT
    and No-CoT configs never reset)."""
    m = cfg.method
    if m.name not in CURRICULUM_METHODS or m.reset_optimizer == "never":
        return False
    return m.reset_optimizer == "epoch" or stage_of(cfg, epoch) != stage_of(cfg, epoch - 1)


def eval_thoughts(cfg: RunConfig, stage: int) -> int:
    m = cfg.method
    if m.name not in CURRICULUM_METHODS + CODI_METHODS:
        return 0
    if m.eval_thoughts >= 0:
        return m.eval_thoughts
    if m.name in CODI_METHODS:
        return m.num_latent
    return min(stage, m.max_latent_stage) * m.c_thought


def _encoder(inputs: RunInputs, stage: int, epoch: int, layout=None):
    cfg, tok, layout = inputs.cfg, inputs.tokenizer, layout or inputs.layout
    m = cfg.method

    def encode(item):
        index, rec = item
        # Seeded by (seed, epoch, record): identical on resume and on every host.
        rng = np.random.default_rng([cfg.train.seed, epoch, index]) if m.uniform_prob > 0 else None
        if m.name in CODI_METHODS:
            ids, mask, loss, distill = encode_codi(rec, tok, layout, multimode=m.name == "codi_multimode",
                                                   drop_last_step=m.drop_last_step)
            return {"ids": ids, "mask": mask, "loss_mask": loss, "distill": distill}
        s = sample_stage(rec, stage, m.uniform_prob, rng)
        if m.name == "multimode":
            ids, mask, loss = encode_multimode(rec, tok, layout, s, m.pad_latent_to_max)
        else:
            ids, mask, loss, _ = encode_example(rec, tok, layout, m.name, s, m.pad_latent_to_max)
        return {"ids": ids, "mask": mask, "loss_mask": loss}

    return encode


def make_train_step(
    graphdef, tx, method_cfg, layout, state_sharding, data_sharding, counter, micro_batches=1, dropout_seed=None
):
    """The jitted step. With `dropout_seed`, the model's dropout draws from a key made of that
    seed and the step number, so a resumed run draws what the uninterrupted one would."""

    def step(state: TrainState, batch):
        counter[0] += 1  # runs only while tracing: counts compilations

        def loss_fn(params, rows, dropout_key=None):
            model = nnx.merge(graphdef, params)
            if method_cfg.name in CODI_METHODS:
                return codi_loss(model, rows, layout, method_cfg, dropout_key)
            # A bucket's rows are narrower in the question only: read them with its width.
            rows_layout = layout.with_length(rows["ids"].shape[-1])
            return lm_loss(model, rows, method_cfg.name, rows_layout, method_cfg.mode_weights, dropout_key)

        key = None if dropout_seed is None else jax.random.fold_in(jax.random.key(dropout_seed), state.step)
        (_, metrics), grads = chunked_value_and_grad(loss_fn, state.params, batch, micro_batches, key)
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        metrics["grad_norm"] = optax.tree.norm(grads)
        return TrainState(params, opt_state, state.step + 1), metrics

    return jax.jit(
        step, donate_argnums=0, in_shardings=(state_sharding, data_sharding),
        out_shardings=(state_sharding, None),
    )


class _Stopper:
    """Turns SIGTERM into a flag the loop checks between steps."""

    def __init__(self):
        self.requested = False
        self._old = None

    def __enter__(self):
        try:
            self._old = signal.signal(signal.SIGTERM, self._handle)
        except ValueError:  # not the main thread
            self._old = None
        return self

    def _handle(self, signum, frame):
        self.requested = True

    def __exit__(self, *exc):
        if self._old is not None:
            signal.signal(signal.SIGTERM, self._old)


def run(
    cfg: RunConfig,
    workdir: str | Path,
    *,
    progress: bool = True,
    inputs: RunInputs | None = None,
    on_step=None,
) -> RunResult:
    """Trains (or resumes) the run in `workdir`. `on_step(step)` is called after each step."""
    workdir = Path(workdir)
    if inputs is None:
        inputs = resolve(cfg)
    else:  # reuse resolved data; the rest of the config is the caller's
        inputs = dataclasses.replace(inputs, cfg=dataclasses.replace(cfg, model=inputs.cfg.model))
    cfg, layout, tok = inputs.cfg, inputs.layout, inputs.tokenizer
    t = cfg.train
    mesh = make_mesh(cfg.mesh)
    check_batch_size(t.batch_size, mesh, t.micro_batches)
    local_batch = t.batch_size // jax.process_count()
    buckets = _Buckets(inputs) if cfg.data.question_buckets else None
    notes = list(inputs.notes)
    if buckets is None:
        steps_per_epoch = (len(inputs.train) // jax.process_count()) // local_batch
    else:
        steps_per_epoch = int(sum(buckets.counts // t.batch_size))
        notes.append(buckets.note(t.batch_size))
    if steps_per_epoch == 0:
        where = " in any question-width bucket" if buckets else ""
        raise ValueError(f"{len(inputs.train)} training records cannot fill one batch of {t.batch_size}{where}")
    # The schedule restarts with each optimizer reset, so its horizon is one reset period.
    m = cfg.method
    curriculum_resets = m.name in CURRICULUM_METHODS and m.reset_optimizer != "never"
    epochs_per_period = (1 if m.reset_optimizer == "epoch" else m.epochs_per_stage) if curriculum_resets else t.num_epochs
    model, init_note = initial_model(cfg, tok)
    graphdef, params = nnx.split(model, nnx.Param)
    tx = make_optimizer(t, total_steps=steps_per_epoch * epochs_per_period // t.grad_accum,
                        trainable=trainable_labels(params, cfg.model))
    data_sharding = batch_sharding(mesh)
    abstract = jax.eval_shape(lambda p: init_state(p, tx), params)
    state_sharding = param_sharding(abstract, mesh)
    state = jax.jit(lambda p: init_state(p, tx), out_shardings=state_sharding)(params)
    # Jitted like the init so the reset state has identical types: no retrace of the step.
    reset = jax.jit(lambda s: reset_optimizer(s, tx), out_shardings=state_sharding, donate_argnums=0)

    ckpt = Checkpointer(workdir, keep=t.keep_checkpoints)
    start_epoch, iter_state, resumed = 0, None, False
    if ckpt.latest_step() is not None:
        state, meta = ckpt.restore(abstract, shardings=state_sharding)
        start_epoch, iter_state, resumed = meta["epoch"], meta.get("iterator"), True
    write_run_files(workdir, cfg, tok)
    logger = MetricsLogger(workdir)
    for note in notes + [init_note] + ([f"resumed at step {int(state.step)}, epoch {start_epoch}"] if resumed else []):
        print(note)
        logger.log(int(state.step), "info", note=note)

    counter = [0]
    train_step = make_train_step(
        graphdef, tx, cfg.method, layout, state_sharding, data_sharding, counter, t.micro_batches,
        dropout_seed=t.seed if cfg.model.dropout > 0 else None,
    )
    source = list(enumerate(inputs.train))
    step = int(state.step)
    # time_limit_minutes counts this invocation's time (a resumed run gets the limit afresh).
    t0, stopped, val_acc = time.time(), "finished", None
    bar = tqdm(total=steps_per_epoch * t.num_epochs, initial=step, disable=not progress or jax.process_index() != 0, dynamic_ncols=True)
    with _Stopper() as stopper:
        epoch = start_epoch
        while epoch < t.num_epochs:
            stage = stage_of(cfg, epoch)
            if iter_state is None and epoch > 0 and _resets(cfg, epoch):
                state = reset(state)
            if buckets is None:
                it = iter(record_pipeline(source, seed=t.seed + epoch, batch_size=local_batch,
                                          transform=_encoder(inputs, stage, epoch), num_epochs=1))
            else:
                it = iter(buckets.pipeline(source, stage, epoch))
            if iter_state is not None:
                it.set_state(iter_state)
                iter_state = None
            pending = None  # the previous step's metrics, fetched after dispatching the next
            reporter = _Reporter(logger, bar, stage, t.log_every, counter)
            for batch in it:
                state, metrics = train_step(state, global_batch(batch, data_sharding))
                step += 1
                if pending is not None:
                    reporter.report(*pending)
                pending = (step, metrics)
                bar.update(1)
                if on_step is not None:
                    on_step(step)
                elapsed = time.time() - t0
                reason = None
                if stopper.requested:
                    reason = "sigterm"
                elif t.max_steps and step >= t.max_steps:
                    reason = "max_steps"
                elif t.time_limit_minutes and elapsed > 60 * t.time_limit_minutes:
                    reason = "time_limit"
                if reason or step % t.checkpoint_every_steps == 0:
                    _check_finite(pending)
                    ckpt.save(step, state, {"epoch": epoch, "iterator": it.get_state(), "stage": stage, "method": cfg.method.name})
                if reason:
                    stopped = reason
                    break
            if pending is not None:
                _check_finite(pending)
            if stopped != "finished":
                break
            epoch += 1
            ckpt.save(step, state, {"epoch": epoch, "iterator": None, "stage": stage, "method": cfg.method.name})
            if epoch % t.eval_every_epochs == 0 or epoch == t.num_epochs:
                val_acc = _evaluate(graphdef, state.params, inputs, stage, data_sharding, logger, step, epoch)
                bar.set_postfix_str(f"stage {stage} val_acc {val_acc:.3f}")
    if stopped == "time_limit" and t.eval_every_epochs <= t.num_epochs:
        # A run that validates as it trains also scores what the time limit leaves behind: the
        # saved state is newer than its last epoch's score (runs that never validate, such as
        # the demo's, score themselves).
        val_acc = _evaluate(graphdef, state.params, inputs, stage, data_sharding, logger, step, epoch)
    bar.close()
    ckpt.close()
    logger.log(step, "info", stopped=stopped, compiles=counter[0])
    logger.close()
    return RunResult(step, epoch, stopped, val_acc, counter[0], workdir)


class _Buckets:
    """`data.question_buckets`: the width each training record is padded to, and its batches."""

    def __init__(self, inputs: RunInputs):
        d = inputs.cfg.data
        self.inputs = inputs
        self.widths = (*d.question_buckets, d.max_question_len)
        self.layouts = [dataclasses.replace(inputs.layout, max_question_len=w) for w in self.widths]
        self.bucket_of = question_buckets(inputs.train, inputs.tokenizer, self.widths)
        self.counts = np.bincount(self.bucket_of, minlength=len(self.widths))

    def note(self, batch_size: int) -> str:
        return (f"question buckets (width: records) {', '.join(f'{w}: {n}' for w, n in zip(self.widths, self.counts))}; "
                f"each epoch leaves out each bucket's remainder below the batch of {batch_size} "
                f"({int(sum(self.counts % batch_size))} records, a different draw every epoch)")

    def pipeline(self, source, stage: int, epoch: int):
        encoders = [_encoder(self.inputs, stage, epoch, layout) for layout in self.layouts]
        t = self.inputs.cfg.train
        return bucketed_pipeline(source, self.bucket_of, seed=t.seed + epoch, batch_size=t.batch_size,
                                 transform=lambda bucket, item: encoders[bucket](item))


def _check_finite(pending) -> None:
    step, metrics = pending
    loss = float(metrics["loss"])
    if not math.isfinite(loss):
        raise FloatingPointError(
            f"loss is {loss} at step {step}; stopping without saving (the last checkpoint is intact). "
            "Try a lower train.lr or train.clip_norm > 0."
        )


class _Reporter:
    """Logs every `log_every` steps; tokens/s over the steps since the last log line."""

    def __init__(self, logger, bar, stage, log_every, counter):
        self.logger, self.bar, self.stage, self.every, self.counter = logger, bar, stage, log_every, counter
        self.tokens, self.since = 0.0, time.time()

    def report(self, step, metrics) -> None:
        _check_finite((step, metrics))
        self.tokens += float(metrics["tokens"])
        if step % self.every:
            return
        m = {k: float(v) for k, v in metrics.items()}
        now = time.time()
        tok_s = self.tokens / max(now - self.since, 1e-9)
        self.tokens, self.since = 0.0, now
        self.logger.log(step, "train", stage=self.stage, tokens_per_s=tok_s, compiles=self.counter[0], **m)
        self.bar.set_postfix_str(f"stage {self.stage} loss {m['loss']:.3f} acc {m['token_acc']:.3f} {tok_s:,.0f} tok/s")


def _evaluate(graphdef, params, inputs: RunInputs, stage, sharding, logger, step, epoch) -> float:
    """Generation accuracy in each of the family's modes (the first mode's is returned)."""
    cfg = inputs.cfg
    records = inputs.valid[: cfg.train.eval_limit] if cfg.train.eval_limit else inputs.valid
    k = eval_thoughts(cfg, stage)
    by_mode = mode_accuracies(graphdef, params, records, inputs.tokenizer, inputs.layout, cfg.method.name, k,
                              batch_size=cfg.train.eval_batch_size, max_new_tokens=cfg.train.max_new_tokens, sharding=sharding)
    accs = {f"accuracy_{name}" if name else "accuracy": a for name, a in by_mode.items()}
    logger.log(step, "valid", epoch=epoch, stage=stage, thoughts=k, n=len(records), **accs)
    return next(iter(accs.values()))
