r"""Trains a CV, SV or Sup encoder: config -> pmap train loop -> orbax checkpoints.

  python -m cvrl.train --config=configs/cv.py[:paper|:demo] --workdir=runs/cv \
      [--config.num_train_steps=N] [--config.data.root=DIR]

One binary for one CPU, one GPU, or many accelerators across hosts (pass
--distributed; see launch/). Restarting with the same --workdir resumes from
its latest checkpoint. SIGTERM / Ctrl-C save a checkpoint before exiting. A
NaN loss stops the run without overwriting the last good checkpoint.

Workdir: config.json, checkpoints/<step>/ (model, optimiser, normalisation,
input-pipeline position), metrics.jsonl, metrics.png (updated at every
checkpoint), tensorboard/ (event files).
"""

from __future__ import annotations

import functools
import pathlib
import signal
import time
from typing import Any, Optional

from absl import app
from absl import flags
from absl import logging
import flax
from flax.training import train_state
import jax
import jax.numpy as jnp
import ml_collections
from ml_collections import config_flags
import numpy as np
import optax
import tqdm

from cvrl import checkpoints
from cvrl import cli
from cvrl import losses
from cvrl import metric_writers
from cvrl import models
from cvrl.data import pipeline
from cvrl.data import prepare as prepare_lib

AXIS = 'batch'


class TrainState(train_state.TrainState):
  batch_stats: Any


class TrainingError(cli.UserError):
  """The run cannot go on (NaN loss); the message says why."""


# ----------------------------------------------------------------------------
# Pure pieces: optimiser, state, step.


def create_optimizer(config: ml_collections.ConfigDict,
                     num_steps: int) -> optax.GradientTransformation:
  opt = config.optimizer
  if opt.schedule == 'constant':
    schedule = optax.constant_schedule(opt.learning_rate)
    if opt.warmup_steps:
      schedule = optax.linear_schedule(0.0, opt.learning_rate, opt.warmup_steps)
      schedule = optax.join_schedules(
          [schedule, optax.constant_schedule(opt.learning_rate)],
          [opt.warmup_steps])
  elif opt.schedule == 'cosine':
    schedule = optax.warmup_cosine_decay_schedule(
        0.0, opt.learning_rate, opt.warmup_steps, max(num_steps, 1))
  else:
    raise ValueError(f'config.optimizer.schedule={opt.schedule!r}: '
                     "'constant' or 'cosine'")
  if opt.name == 'adam':
    return optax.adam(schedule)
  if opt.name == 'adamw':
    return optax.adamw(schedule, weight_decay=opt.weight_decay)
  if opt.name == 'sgd':
    return optax.sgd(schedule, momentum=0.9)
  raise ValueError(f"config.optimizer.name={opt.name!r}: 'adam', 'adamw' or 'sgd'")


def create_train_state(rng: jax.Array, config: ml_collections.ConfigDict,
                       model: models.Encoder) -> TrainState:
  shape = (1,) + models.input_shape(config)
  variables = model.init({'params': rng}, jnp.zeros(shape), train=False)
  return TrainState.create(
      apply_fn=model.apply, params=variables['params'],
      batch_stats=variables['batch_stats'],
      tx=create_optimizer(config, config.num_train_steps))


def initial_state(config: ml_collections.ConfigDict, model: models.Encoder
                  ) -> tuple[TrainState, jax.Array]:
  """The state before step 1 and the key of the steps' randomness, both from
  config.seed (what tests compare a training's updates against)."""
  init_rng, step_rng = jax.random.split(jax.random.key(config.seed))
  return create_train_state(init_rng, config, model), step_rng


def train_step(state: TrainState, batch: dict[str, jax.Array], rng: jax.Array,
               *, method: str, loss: str, margin: float, temperature: float):
  """One optimiser step on this device's share of the batch (run under pmap).

  Dropout keys come from (rng, step, device), so a resumed run draws the same
  ones. Anchors, positives and negatives go through the encoder as one batch,
  so BatchNorm normalises them together.
  """
  rng = jax.random.fold_in(jax.random.fold_in(rng, state.step),
                           jax.lax.axis_index(AXIS))

  def loss_fn(params):
    variables = dict(params=params, batch_stats=state.batch_stats)
    apply = functools.partial(state.apply_fn, variables, train=True,
                              rngs=dict(dropout=rng), mutable=['batch_stats'])
    metrics = {}
    if method == 'sup':
      out, updates = apply(batch['patch'])
      value = losses.multilabel_bce(out['logits'], batch['labels'])
      metrics['accuracy'] = jnp.mean(
          (out['logits'] > 0) == (batch['labels'] > 0.5))
    else:
      roles = ['anchor', 'positive'] + (['negative'] if loss == 'triplet' else [])
      out, updates = apply(jnp.concatenate([batch[r] for r in roles]))
      embeddings = jnp.split(out['embedding'], len(roles))
      if loss == 'triplet':
        anchor, positive, negative = embeddings
        value = losses.triplet_loss(anchor, positive, negative, margin)
        d_pos = losses.squared_distance(anchor, positive)
        d_neg = losses.squared_distance(anchor, negative)
        metrics.update(d_pos=jnp.mean(d_pos), d_neg=jnp.mean(d_neg),
                       active=jnp.mean(d_pos - d_neg + margin > 0))
      else:
        value = losses.nt_xent_loss(*embeddings, temperature, axis_name=AXIS)
    return value, (updates, metrics)

  (value, (updates, metrics)), grads = jax.value_and_grad(
      loss_fn, has_aux=True)(state.params)
  grads = jax.lax.pmean(grads, AXIS)
  # BatchNorm already averages over the global batch (models.py), so the
  # updated statistics are the same on every device.
  state = state.apply_gradients(grads=grads,
                                batch_stats=updates['batch_stats'])
  metrics = jax.lax.pmean(dict(metrics, loss=value), AXIS)
  return state, metrics


def pmapped_train_step(config: ml_collections.ConfigDict):
  """train_step over the local devices: (replicated state, [devices, ...] batch).

  pmap across devices. With one device (and one process) the same function
  runs as jit(vmap) over the size-1 device axis instead, with identical
  semantics (axis_index, pmean, all_gather): XLA:CPU runs a pmapped
  computation on one thread, which made the demo step 3x slower on the
  2-core CPU (benchmarks/train_throughput.py).
  """
  step = functools.partial(
      train_step, method=config.method, loss=config.loss.name,
      margin=config.loss.margin, temperature=config.loss.temperature)
  if jax.local_device_count() == 1 and jax.process_count() == 1:
    return jax.jit(jax.vmap(step, axis_name=AXIS), donate_argnums=(0,))
  return jax.pmap(step, axis_name=AXIS, donate_argnums=(0,))


def model_inputs(config: ml_collections.ConfigDict,
                 batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
  """The arrays of a pipeline batch that the step uses (not the bookkeeping)."""
  if config.method == 'sup':
    names = ('patch', 'labels')
  elif config.loss.name == 'triplet':
    names = ('anchor', 'positive', 'negative')
  else:
    names = ('anchor', 'positive')
  # Copies: out of grain's shared memory, which XLA:CPU would otherwise alias
  # (and keep alive past the iterator's close).
  return {name: np.array(batch[name]) for name in names}


# ----------------------------------------------------------------------------
# Data, checkpoints, workdir.


def save_checkpoint(checkpoints_manager, state: TrainState,
                    maker: pipeline.ExampleMaker, data_state: dict,
                    meta: dict) -> None:
  host_state = jax.device_get(flax.jax_utils.unreplicate(state))
  checkpoints.save(checkpoints_manager, host_state,
                   dict(mean=maker.mean, std=maker.std), data_state, meta)


def open_pipeline(maker: pipeline.ExampleMaker,
                  config: ml_collections.ConfigDict, start_step: int,
                  saved: Optional[dict]):
  """The input iterator positioned after `start_step`, and what to save with it.

  A checkpoint's grain iterator state is restored when the pipeline is built
  the same way (first step, worker count, batch size); otherwise (say, other
  --config.data.workers) the stream is rebuilt from `start_step`, which
  gives the same batches because examples depend only on their index.
  """
  recipe = dict(workers=config.data.workers, batch_size=config.batch_size)
  resumable = saved is not None and all(
      saved.get(k) == v for k, v in recipe.items())
  first_step = saved['first_step'] if resumable else start_step
  # Unbounded: grain (0.2.18) leaks the shared memory of a multiprocess
  # stream whose workers reach its end (resource_tracker warnings at exit).
  dataset = pipeline.create_dataset(maker, config, first_step, None)
  iterator = iter(dataset)
  if resumable:
    iterator.set_state(saved['grain'])
  return iterator, dict(recipe, first_step=first_step)


class StopSignal:
  """SIGTERM (cluster preemption) or Ctrl-C: finish the step, save, exit."""

  def __init__(self):
    self.received: Optional[str] = None
    self._previous = {}
    for sig in (signal.SIGTERM, signal.SIGINT):
      self._previous[sig] = signal.signal(sig, self._handle)

  def _handle(self, signum, frame):
    del frame
    self.received = signal.Signals(signum).name
    signal.signal(signum, self._previous[signum])  # a second one kills

  def restore(self):
    for sig, handler in self._previous.items():
      signal.signal(sig, handler)


# ----------------------------------------------------------------------------
# The loop.


def train(config: ml_collections.ConfigDict, workdir,
          progress: bool = True) -> TrainState:
  """Trains until config.num_train_steps (or a stop signal); returns the state."""
  workdir = pathlib.Path(workdir)
  workdir.mkdir(parents=True, exist_ok=True)
  checkpoints.check_config(workdir, config)
  if jax.process_index() == 0:
    prepare_lib.ensure_prepared(config, progress=progress)
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
    multihost_utils.sync_global_devices('cvrl data prepared')
  prepared = prepare_lib.open_cache(
      config.data.root, config.features, config.data.cache_dir or None,
      derived_annotations=config.data.get('derived_annotations', True),
      validation=config.data.get('validation', False))
  classes = prepared.dataset.instrument_classes

  model = models.create_model(
      config, num_classes=len(classes) if config.method == 'sup' else 0,
      axis_name=AXIS)
  state, step_rng = initial_state(config, model)
  maker = pipeline.example_maker(prepared, config)
  if jax.process_index() == 0:
    checkpoints.write_config(workdir, config)
  meta = dict(method=config.method, classes=list(classes),
              feature_key=prepared.cache.name,
              input_shape=list(models.input_shape(config)))

  manager = checkpoints.manager(workdir, config.keep_checkpoints)
  data_state = None
  latest = manager.latest_step()
  if latest is not None:
    state, normalisation, data_state, _ = checkpoints.restore(
        manager, state, latest)
    maker.mean = np.asarray(normalisation['mean'], np.float32)
    maker.std = np.asarray(normalisation['std'], np.float32)
    if jax.process_index() == 0:
      print(f'{workdir}: resuming from the checkpoint at step {latest}',
            flush=True)
  start_step = int(state.step)

  iterator, pipeline_meta = open_pipeline(maker, config, start_step, data_state)
  p_train_step = pmapped_train_step(config)
  state = flax.jax_utils.replicate(state)
  step_rngs = flax.jax_utils.replicate(step_rng)
  writer = metric_writers.MetricWriter(workdir, jax.process_index() == 0,
                                       start_step)
  stop = StopSignal()
  bar = tqdm.tqdm(total=config.num_train_steps, initial=start_step,
                  desc=f'train {config.method}', unit='step',
                  disable=not progress or jax.process_index() != 0)
  if jax.process_index() == 0:
    print(f'{workdir}: training {config.method} from step {start_step} to '
          f'{config.num_train_steps} on {jax.device_count()} device(s), '
          f'{jax.process_count()} process(es)', flush=True)
  if start_step >= config.num_train_steps and jax.process_index() == 0:
    print(f'{workdir}: already trained to step {start_step} '
          f'(config.num_train_steps={config.num_train_steps})', flush=True)
  window_start, window_steps = time.time(), 0
  sums: dict[str, float] = {}
  try:
    for step in range(start_step + 1, config.num_train_steps + 1):
      batch = model_inputs(config, next(iterator))
      state, metrics = p_train_step(state, batch, step_rngs)
      metrics = {k: float(v[0]) for k, v in jax.device_get(metrics).items()}
      if not np.isfinite(metrics['loss']):
        manager.wait_until_finished()
        last = manager.latest_step()
        kept = (f'Last good checkpoint: step {last} in '
                f'{workdir / "checkpoints"}' if last is not None
                else 'No checkpoint was saved before it')
        raise TrainingError(
            f'loss is {metrics["loss"]} at step {step}; stopped without '
            f'saving. {kept}. Lower --config.optimizer.learning_rate or '
            'check the data.')
      for k, v in metrics.items():
        sums[k] = sums.get(k, 0.0) + v
      window_steps += 1
      bar.update()
      if step % config.log_every == 0 or step == config.num_train_steps:
        elapsed = time.time() - window_start
        summary = {k: v / window_steps for k, v in sums.items()}
        summary['steps_per_sec'] = window_steps / elapsed
        summary['examples_per_sec'] = summary['steps_per_sec'] * config.batch_size
        writer.write(step, summary)
        bar.set_postfix(loss=f'{summary["loss"]:.4f}',
                        steps_s=f'{summary["steps_per_sec"]:.2f}')
        window_start, window_steps, sums = time.time(), 0, {}
      if (step % config.checkpoint_every == 0 or stop.received
          or step == config.num_train_steps):
        save_checkpoint(manager, state, maker,
                        dict(pipeline_meta, grain=iterator.get_state()), meta)
        if jax.process_index() == 0:
          metric_writers.plot_metrics(workdir)
      if stop.received:
        manager.wait_until_finished()
        print(f'{stop.received}: saved the checkpoint at step {step} in '
              f'{workdir / "checkpoints"}; run again with the same --workdir '
              'to resume', flush=True)
        break
  finally:
    bar.close()
    manager.wait_until_finished()
    manager.close()
    writer.close()
    stop.restore()
    iterator.close()
  return flax.jax_utils.unreplicate(state)


# ----------------------------------------------------------------------------
# Binary.

FLAGS = flags.FLAGS


def define_flags():
  flags.DEFINE_string('workdir', None, 'Where checkpoints and metrics go.')
  config_flags.DEFINE_config_file(
      'config', None, 'Training config: configs/{cv,sv,sup}.py[:paper|:demo].',
      lock_config=True)
  flags.DEFINE_bool('distributed', False,
                    'Call jax.distributed.initialize() (multi-host; launch/).')
  flags.DEFINE_string('coordinator', None,
                      'host:port of process 0 (else auto-detected).')
  flags.DEFINE_integer('num_processes', None, 'Processes in the run.')
  flags.DEFINE_integer('process_id', None, 'This process\'s index.')
  flags.mark_flags_as_required(['workdir', 'config'])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  if FLAGS.distributed:
    cli.initialize_distributed(FLAGS.coordinator, FLAGS.num_processes,
                               FLAGS.process_id)
  logging.warning('JAX process %d of %d, local devices: %s',
                  jax.process_index(), jax.process_count(), jax.local_devices())
  state = train(FLAGS.config, FLAGS.workdir)
  if jax.process_index() == 0:
    print(f'{FLAGS.workdir}: step {int(state.step)} of '
          f'{FLAGS.config.num_train_steps}', flush=True)


if __name__ == '__main__':
  define_flags()
  cli.run(main)
