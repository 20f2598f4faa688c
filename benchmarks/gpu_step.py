r"""The train step, the input pipeline and dense embedding on an accelerator.

  python benchmarks/gpu_step.py [--variant=paper] [--batches=8,64,256]
      [--steps=10] [--peak_tflops=494] [--data=DIR] [--workers=8]
      [--embed_seconds=600]

For each global batch (triplets per step, split over the local devices):
seconds per step (median of `--steps`, compile excluded), triplets/s, GFLOP
per step from XLA's cost analysis and the achieved rate as a share of
`--peak_tflops` (MFU; default: an H200's dense TF32 tensor rate, which XLA
uses for float32 convolutions and matrix products on that GPU). With
`--data` (a prepared dataset) it also times the CV input pipeline with
`--workers` processes and says whether it keeps up with the largest batch's
step. Last, dense embedding throughput of an untrained encoder of the same
config on `--embed_seconds` of random features. Written for
benchmarks/gpu.sh; it runs on CPU too (tests use a tiny variant).
"""

from __future__ import annotations

import os
import statistics
import sys
import time

from absl import app
from absl import flags
import jax
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..'))

from configs import cv  # noqa: E402  pylint: disable=g-import-not-at-top
from cvrl import allocator  # noqa: E402
from cvrl import checkpoints  # noqa: E402
from cvrl import embed  # noqa: E402
from cvrl import models  # noqa: E402
import train_throughput  # noqa: E402  (benchmarks/, beside this file)

FLAGS = flags.FLAGS
flags.DEFINE_string('variant', 'paper', 'configs/cv.py variant.')
flags.DEFINE_list('batches', ['8', '64', '256'], 'Global batches (triplets).')
flags.DEFINE_integer('steps', 10, 'Timed steps per batch size.')
flags.DEFINE_float('peak_tflops', 494.0, 'Dense peak of the device(s), '
                   'TFLOP/s, for MFU (H200 TF32: 494).')
flags.DEFINE_string('data', None, 'Prepared dataset for the pipeline check.')
flags.DEFINE_integer('workers', 8, 'Pipeline worker processes.')
flags.DEFINE_integer('batches_timed', 20, 'Timed pipeline batches.')
flags.DEFINE_float('embed_seconds', 600.0, 'Audio seconds to embed densely.')


def time_step(config, batch_size: int) -> dict:
  """Median s/step and GFLOP/step of the pmapped CV step at `batch_size`."""
  config.batch_size = batch_size
  run, gflop = train_throughput.pmapped_step(config)
  times = []
  for _ in range(FLAGS.steps):
    start = time.perf_counter()
    run()
    times.append(time.perf_counter() - start)
  seconds = statistics.median(times)
  return dict(batch=batch_size, step_s=seconds, triplets_s=batch_size / seconds,
              gflop=gflop, mfu=gflop / seconds / (FLAGS.peak_tflops * 1e3))


def main(argv):
  del argv
  device = jax.devices()[0]
  print(f'{jax.local_device_count()} x {device.device_kind} ({device.platform}), '
        f'jax {jax.__version__}; configs/cv.py:{FLAGS.variant} '
        f'({models.formulation(cv.get_config(FLAGS.variant))} formulation: '
        'XLA counts a scan body once, so GFLOP is exact for plain); MFU against '
        f'{FLAGS.peak_tflops:g} TFLOP/s per device x {jax.local_device_count()}\n')
  print('| global batch (triplets) | s/step | steps/s | triplets/s | GFLOP/step '
        '| TFLOP/s | MFU |')
  print('|---|---|---|---|---|---|---|')
  results = []
  for batch in map(int, FLAGS.batches):
    r = time_step(cv.get_config(FLAGS.variant), batch)
    r['mfu'] /= jax.local_device_count()
    results.append(r)
    print(f"| {batch} | {r['step_s']:.4f} | {1 / r['step_s']:.2f} | "
          f"{r['triplets_s']:.1f} | {r['gflop']:.1f} | "
          f"{r['gflop'] / r['step_s'] / 1e3:.2f} | {r['mfu']:.1%} |", flush=True)
  if FLAGS.data:
    config = cv.get_config(FLAGS.variant)
    config.batch_size = results[-1]['batch']
    config.data.workers = FLAGS.workers
    rate = train_throughput.pipeline_rate(config, FLAGS.data,
                                          FLAGS.batches_timed, warm_up=3)
    need = results[-1]['triplets_s']
    print(f'\ninput pipeline ({FLAGS.workers} workers, augmentations on): '
          f'{rate:.0f} triplets/s; the batch-{config.batch_size} step takes '
          f'{need:.0f}/s: {"keeps up" if rate >= need else "does NOT keep up"} '
          f'({rate / need:.1f}x)')
  config = cv.get_config(FLAGS.variant)
  encoder = checkpoints.untrained_model(config)
  frame_rate = config.features.sample_rate / config.features.hop_length
  frames = int(FLAGS.embed_seconds * frame_rate)
  features = np.random.RandomState(0).uniform(
      -80, 0, (frames,) + models.input_shape(config)[1:]).astype(np.float32)
  embed.embed_features(encoder, features[:2 * encoder.patch_frames])  # compile
  start = time.perf_counter()
  out = embed.embed_features(encoder, features)
  seconds = time.perf_counter() - start
  print(f'\ndense embedding: {len(out)} embeddings of {FLAGS.embed_seconds:g} s '
        f'in {seconds:.2f} s: {len(out) / seconds:.0f} embeddings/s, '
        f'{FLAGS.embed_seconds / seconds:.0f}x real time')


if __name__ == '__main__':
  allocator.keep_freed_memory()  # as the binaries do (cvrl/cli.py)
  app.run(main)
