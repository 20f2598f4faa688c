r"""Train-step and input-pipeline throughput, in triplets per second.

  .venv/bin/python benchmarks/train_throughput.py --data=demo_data \
      [--variants=demo,default,paper] [--workers=0,1,2] [--steps=5]

Train step: the pmapped step of cvrl.train on all local devices, on
synthetic batches of the config's shape (compile time excluded). Pipeline:
the grain stream of the CV config on the prepared dataset, with and without
augmentations, for each worker count (first batches excluded). Prints
Markdown tables for the README.
"""

from __future__ import annotations

import os
import sys
import time

from absl import app
from absl import flags
import flax
import jax
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..'))

from configs import cv  # noqa: E402  pylint: disable=g-import-not-at-top
from cvrl import allocator  # noqa: E402
from cvrl import models  # noqa: E402
from cvrl import train  # noqa: E402
from cvrl.data import pipeline  # noqa: E402
from cvrl.data import prepare  # noqa: E402

FLAGS = flags.FLAGS


def define_flags():
  """Flags of the script; defined only when it runs, so others import it."""
  flags.DEFINE_string('data', 'demo_data', 'Prepared dataset (log-mel cache).')
  flags.DEFINE_list('variants', ['demo', 'default', 'paper'],
                    'Config variants of configs/cv.py to time the step of.')
  flags.DEFINE_list('pipeline_variants', ['demo', 'default'],
                    'Config variants to time the pipeline of (need a cache).')
  flags.DEFINE_list('workers', ['0', '1', '2'], 'Pipeline worker counts.')
  flags.DEFINE_integer('steps', 5, 'Timed train steps per variant.')
  flags.DEFINE_integer('batches', 40, 'Timed pipeline batches per setting.')


def config_for(variant: str):
  return cv.get_config('' if variant == 'default' else variant)


def pmapped_step(config, count_flops: bool = True):
  """(run(), GFLOP per step) of the config's pmapped train step.

  run() takes one step on fixed random triplets, split over this host's
  devices, and waits for it; the first (compiling) step is taken here.
  GFLOP is XLA's count for all devices together (pmap's is per device);
  nan without count_flops, which saves a second compile. Shared with
  gpu_step.py.
  """
  devices = jax.local_device_count()
  if config.batch_size % devices:
    raise app.UsageError(f'batch {config.batch_size} does not split over '
                         f'{devices} devices')
  model = models.create_model(config, axis_name=train.AXIS)
  state = flax.jax_utils.replicate(
      train.create_train_state(jax.random.key(0), config, model))
  rng = flax.jax_utils.replicate(jax.random.key(1))
  shape = (devices, config.batch_size // devices) + models.input_shape(config)
  data = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
  batch = dict(anchor=data, positive=data[:, ::-1].copy(), negative=-data)
  step = train.pmapped_train_step(config)
  gflop = float('nan')
  if count_flops:
    cost = step.lower(state, batch, rng).compile().cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    gflop = cost.get('flops', float('nan')) * devices / 1e9
  holder = [state]

  def run():
    holder[0], metrics = step(holder[0], batch, rng)
    jax.block_until_ready(metrics)
  run()  # compile and warm up
  return run, gflop


def time_train_step(variant: str) -> dict:
  config = config_for(variant)
  run, _ = pmapped_step(config, count_flops=False)
  start = time.perf_counter()
  for _ in range(FLAGS.steps):
    run()
  seconds = (time.perf_counter() - start) / FLAGS.steps
  return dict(variant=variant, shape=models.input_shape(config),
              batch=config.batch_size, step_s=seconds,
              triplets_s=config.batch_size / seconds)


def pipeline_rate(config, data: str, batches: int, warm_up: int = 5) -> float:
  """Triplets/s of the config's grain stream on a prepared dataset."""
  prepared = prepare.open_cache(data, config.features)
  maker = pipeline.example_maker(prepared, config)
  iterator = iter(pipeline.create_dataset(maker, config, 0, None))
  for _ in range(warm_up):  # start-up: worker processes, first memory maps
    next(iterator)
  start = time.perf_counter()
  for _ in range(batches):
    next(iterator)
  seconds = time.perf_counter() - start
  iterator.close()
  return batches * config.batch_size / seconds


def time_pipeline(variant: str, workers: int, augment: bool) -> float:
  config = config_for(variant)
  config.data.workers = workers
  config.augment.enabled = augment
  return pipeline_rate(config, FLAGS.data, FLAGS.batches)


def main(argv):
  del argv
  print(f'{jax.local_device_count()} x {jax.devices()[0].device_kind}, '
        f'{os.cpu_count()} CPU cores\n')
  print('| config | patch | triplets/step | s/step | triplets/s |')
  print('|---|---|---|---|---|')
  steps = {}
  for variant in FLAGS.variants:
    r = time_train_step(variant)
    steps[variant] = r['triplets_s']
    print(f"| cv:{variant} | {'x'.join(map(str, r['shape']))} | {r['batch']} "
          f"| {r['step_s']:.3f} | {r['triplets_s']:.1f} |", flush=True)
  print('\n| config | augmentations | workers | triplets/s | x train step |')
  print('|---|---|---|---|---|')
  for variant in FLAGS.pipeline_variants:
    for augment in (True, False):
      for workers in map(int, FLAGS.workers):
        rate = time_pipeline(variant, workers, augment)
        ratio = f'{rate / steps[variant]:.1f}' if variant in steps else '-'
        print(f"| cv:{variant} | {'on' if augment else 'off'} | {workers} "
              f'| {rate:.0f} | {ratio} |', flush=True)


if __name__ == '__main__':
  allocator.keep_freed_memory()  # as the binaries do (cvrl/cli.py)
  define_flags()
  app.run(main)
