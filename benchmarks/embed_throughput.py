r"""Embeddings per second: cvrl.embed against the original's way of doing it.

  .venv/bin/python benchmarks/embed_throughput.py \
      [--encoders=runs/cv_demo,configs/cv.py:paper] [--seconds=60,4] \
      [--plot=docs/embed_throughput.png]

Each encoder is a trained workdir (embeds the first test version's first
`seconds`) or a config spec `file.py:variant` (random weights and random
features of its input shape: speed doesn't depend on either). Three ways,
one embedding per frame:
  original      one patch per frame cut on the host, whole network, batches of 8
  patches       cvrl.embed method='patches': sliced on the device, batches of 256
  dense         cvrl.embed method='dense' (cvrl/sliding.py), windows of 512
All three must agree (checked); prints a Markdown table for the README and
draws the bar chart.
"""

from __future__ import annotations

import importlib
import os
import sys
import time

from absl import app
from absl import flags
import jax
import jax.numpy as jnp
import matplotlib
import numpy as np

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402  pylint: disable=g-import-not-at-top

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..'))

from cvrl import allocator  # noqa: E402
from cvrl import augment  # noqa: E402  pylint: disable=g-import-not-at-top
from cvrl import checkpoints  # noqa: E402
from cvrl import embed  # noqa: E402
from cvrl import models  # noqa: E402
from cvrl.data import prepare  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_list('encoders', ['runs/cv_demo'],
                  'Trained workdirs and/or config specs (configs/cv.py:paper).')
flags.DEFINE_list('seconds', ['60'], 'Audio to embed, seconds: one value, or '
                  'one per encoder (the published network embeds ~3 patches '
                  'per second on a 2-core CPU).')
flags.DEFINE_string('plot', None, 'Write the bar chart here (PNG).')

FRAME_RATE = 22050 / 512


def original_way(encoder, features, batch_size=8):
  """One host-cut patch per frame, `batch_size` patches per call.

  Re-implemented on purpose: this is the baseline being measured.
  """
  half = encoder.patch_frames // 2
  x = np.asarray(features, np.float32).reshape(features.shape[:2] + (-1,))
  mean = encoder.mean.reshape(x.shape[1:])
  std = encoder.std.reshape(x.shape[1:])
  silence = np.full((half,) + x.shape[1:], augment.SILENCE_DB, np.float32)
  padded = (np.concatenate([silence, x, silence]) - mean) / std
  apply = jax.jit(lambda v, p: encoder.model.apply(v, p)['embedding'])
  out = []
  for lo in range(0, len(x), batch_size):
    starts = range(lo, min(lo + batch_size, len(x)))
    patches = np.stack([padded[s:s + encoder.patch_frames] for s in starts])
    out.append(np.asarray(apply(encoder.variables, jnp.asarray(patches))))
  return np.concatenate(out)


def timed(fn):
  fn()  # compile
  start = time.perf_counter()
  result = fn()
  return result, time.perf_counter() - start


def load(spec: str, seconds: float):
  """-> (name, encoder, [frames, bins(, channels)] dB features)."""
  if '.py' in spec:
    path, _, variant = spec.partition(':')
    module = importlib.import_module(path.removesuffix('.py').replace('/', '.'))
    config = module.get_config(variant) if variant else module.get_config()
    encoder = checkpoints.untrained_model(config)
    frames = int(seconds * FRAME_RATE)
    shape = models.input_shape(config)[1:]
    features = np.random.RandomState(0).uniform(-80, 0, (frames,) + shape)
    return f'{spec} (untrained)', encoder, features.astype(np.float32)
  encoder = checkpoints.restore_model(spec)
  prepared = embed.open_dataset(encoder)
  version, _ = next(prepare.split_versions(prepared.dataset, 'test'))
  frames = int(seconds * prepared.frame_rate)
  return (f'{spec} (step {encoder.step}, {version.key})', encoder,
          np.asarray(prepared.features(version)[:frames]))


def main(argv):
  del argv
  seconds = [float(s) for s in FLAGS.seconds]
  seconds = seconds * len(FLAGS.encoders) if len(seconds) == 1 else seconds
  if len(seconds) != len(FLAGS.encoders):
    raise app.UsageError(f'--seconds: one value or one per encoder '
                         f'({len(FLAGS.encoders)})')
  print(f'{jax.local_device_count()} x {jax.devices()[0].device_kind}\n')
  print('| encoder | audio | method | batch | embeddings/s | x real time | speed-up |')
  print('|---|---|---|---|---|---|---|')
  results = {}
  for spec, length in zip(FLAGS.encoders, seconds):
    name, encoder, features = load(spec, length)
    frames = len(features)
    ways = [('original', 8, lambda: original_way(encoder, features)),
            ('patches', 256, lambda: embed.embed_features(
                encoder, features, batch_size=256, method='patches')),
            ('dense', 512, lambda: embed.embed_features(
                encoder, features, batch_size=512, method='dense'))]
    reference = None
    for method, batch, fn in ways:
      result, seconds = timed(fn)
      if reference is None:
        reference, base = result, seconds
      np.testing.assert_allclose(result, reference, atol=1e-4)
      rate = frames / seconds
      results.setdefault(spec, []).append((method, rate))
      print(f'| {name} | {length:g} s | {method} | {batch} | {rate:.0f} | '
            f'{frames / FRAME_RATE / seconds:.1f} | {base / seconds:.1f}x |',
            flush=True)
  if FLAGS.plot:
    fig, axes = plt.subplots(1, len(results), figsize=(4.5 * len(results), 3.2),
                             squeeze=False)
    for ax, (spec, rows) in zip(axes[0], results.items()):
      labels, rates = zip(*rows)
      bars = ax.bar(labels, rates, color=['0.6', 'tab:blue', 'tab:green'])
      ax.bar_label(bars, [f'{r:.0f}' for r in rates])
      ax.set_title(spec, fontsize=9)
      ax.set_ylabel('embeddings / s')
      ax.set_yscale('log')
      ax.margins(y=0.25)
    fig.suptitle(f'one embedding per frame, {jax.devices()[0].device_kind}',
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(FLAGS.plot, dpi=110)
    print(f'\nwrote {FLAGS.plot}')


if __name__ == '__main__':
  allocator.keep_freed_memory()  # as the binaries do (cvrl/cli.py)
  app.run(main)
