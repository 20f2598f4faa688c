r"""Embeddings per second: cvrl.embed against the original's way of doing it.

  .venv/bin/python benchmarks/embed_throughput.py --workdir=runs/cv_demo [--seconds=60]

cvrl.embed: features on the device once, patches sliced there, batches of
256. The original: one patch per frame cut on the host, batches of 8. Both
with the same trained encoder on the first test version's first `seconds`.
Prints a Markdown table for the README.
"""

from __future__ import annotations

import os
import sys
import time

from absl import app
from absl import flags
import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..'))

from cvrl import augment  # noqa: E402  pylint: disable=g-import-not-at-top
from cvrl import embed  # noqa: E402
from cvrl.data import prepare  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string('workdir', 'runs/cv_demo', 'A trained cvrl.train workdir.')
flags.DEFINE_float('seconds', 60.0, 'Audio to embed, seconds.')
flags.DEFINE_list('batch_sizes', ['64', '256', '1024'], 'cvrl.embed batches.')


def original_way(encoder, features, batch_size=8):
  """One host-cut patch per frame, `batch_size` patches per call."""
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


def main(argv):
  del argv
  encoder = embed.load_encoder(FLAGS.workdir)
  prepared = embed.open_dataset(encoder)
  version, _ = next(prepare.split_versions(prepared.dataset, 'test'))
  frames = int(FLAGS.seconds * prepared.frame_rate)
  features = np.asarray(prepared.features(version)[:frames])
  print(f'{FLAGS.workdir} (step {encoder.step}), {version.key}, {frames} '
        f'frames, {jax.local_device_count()} x {jax.devices()[0].device_kind}\n')
  print('| method | batch | embeddings/s | x real time |')
  print('|---|---|---|---|')
  reference, seconds = timed(lambda: original_way(encoder, features))
  print(f'| original (host patches) | 8 | {frames / seconds:.0f} | '
        f'{FLAGS.seconds / seconds:.1f} |', flush=True)
  for batch in map(int, FLAGS.batch_sizes):
    ours, seconds = timed(
        lambda b=batch: embed.embed_features(encoder, features, batch_size=b))
    np.testing.assert_allclose(ours, reference, atol=2e-4)
    print(f'| cvrl.embed (device slices) | {batch} | {frames / seconds:.0f} | '
          f'{FLAGS.seconds / seconds:.1f} |', flush=True)


if __name__ == '__main__':
  app.run(main)
