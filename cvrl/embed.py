r"""Frozen encoder -> one embedding per feature frame (or per `hop` frames).

  python -m cvrl.embed --workdir=W [--split=test] [--hop=1]     # dataset versions, cached
  python -m cvrl.embed --workdir=W --audio=file.wav --out=emb.npy [--hop=1]

The original cuts one patch per frame on the host and runs each through the
whole network, 8 at a time. Here a version's standardised features, padded
with silence by half a patch on each side, go to the device in fixed-size
windows, and cvrl/sliding.py computes every layer once per window and reads
each patch's rows out of it (exact: the edge rows that the pre-filter's
zero padding changes are recomputed per patch). `method='patches'` keeps the
one-forward-pass-per-patch way, with the patches sliced on the device.

Embeddings of dataset versions are cached per checkpoint step and hop in
W/embeddings/step_<N>/hop_<H>/<piece>/<version>.npy.
"""

from __future__ import annotations

import functools
import pathlib
from typing import Optional

from absl import app
from absl import flags
from absl import logging
import jax
import jax.numpy as jnp
import numpy as np
import tqdm

from cvrl import audio as audio_lib
from cvrl import augment
from cvrl import checkpoints
from cvrl import cli
from cvrl import models
from cvrl import sliding
from cvrl.data import layout
from cvrl.data import prepare as prepare_lib


@functools.partial(jax.jit, static_argnames=('model', 'patch_frames', 'layer'))
def _embed_batch(model, variables, padded, starts, patch_frames, layer):
  """[N] start frames -> [N, D] outputs of `layer` for the patches there."""
  def cut(start):
    return jax.lax.dynamic_slice_in_dim(padded, start, patch_frames, axis=0)
  patches = jax.vmap(cut)(starts)
  return model.apply(variables, patches, train=False)[layer]


METHODS = ('dense', 'patches')


def embed_features(encoder: checkpoints.TrainedModel, features: np.ndarray,
                   hop: int = 1, batch_size: int = 512,
                   method: str = 'dense',
                   layer: str = 'embedding') -> np.ndarray:
  """[frames, bins(, channels)] dB features -> [ceil(frames / hop), D] float32.

  Row i embeds the patch centred on frame i * hop, `batch_size` patches per
  jit call; `layer` picks the output (models.layer_names: the published
  embedding, a dense layer before it, or the last convolution's). method 'dense' (cvrl/sliding.py) shares the feature maps of
  overlapping patches and equals 'patches', one forward pass per patch
  (sliced on the device), up to float rounding; it falls back to 'patches'
  where the patch is too short for it.
  """
  if method not in METHODS:
    raise ValueError(f'method={method!r}: expected one of {METHODS}')
  dim = models.layer_dim(encoder.model, layer)  # checks the name
  features = np.asarray(features, np.float32)
  features = features.reshape(features.shape[:2] + (-1,))
  mean = encoder.mean.reshape(features.shape[1:])
  std = encoder.std.reshape(features.shape[1:])
  frames, patch = features.shape[0], encoder.patch_frames
  half = patch // 2
  silence = np.full((half,) + features.shape[1:], augment.SILENCE_DB,
                    np.float32)
  padded = (np.concatenate([silence, features, silence]) - mean) / std
  starts = np.arange(0, frames, hop, dtype=np.int32)
  batch_size = max(1, min(batch_size, len(starts)))  # short inputs: no waste
  if method == 'dense':
    try:
      sliding.plan(encoder.model, patch)
    except ValueError as e:
      logging.warning('%s; embedding patch by patch', e)
      method = 'patches'
  out = []
  if method == 'dense':
    # Every call gets a window of the same length (the last one padded).
    span = (batch_size - 1) * hop + patch
    padded = np.pad(padded, [(0, batch_size * hop)] + [(0, 0)] * 2)
    for lo in range(0, len(starts), batch_size):
      window = padded[starts[lo]:starts[lo] + span]
      embedding = sliding.embed_chunk(
          encoder.model, encoder.variables, jnp.asarray(window), patch, hop,
          batch_size, layer)
      out.append(np.asarray(embedding)[:len(starts) - lo])
  else:
    padded = jnp.asarray(padded)
    for lo in range(0, len(starts), batch_size):
      chunk = starts[lo:lo + batch_size]
      batch = np.pad(chunk, (0, batch_size - len(chunk)), mode='edge')
      embedding = _embed_batch(encoder.model, encoder.variables, padded,
                               jnp.asarray(batch), patch, layer)
      out.append(np.asarray(embedding)[:len(chunk)])
  return np.concatenate(out) if out else np.zeros((0, dim), np.float32)


def check_layer(encoder: checkpoints.TrainedModel, layer: str, workdir) -> None:
  """A UserError naming the workdir unless its encoder has `layer`."""
  names = models.layer_names(encoder.model)
  if layer not in names:
    raise cli.UserError(f'{workdir}: --layer={layer!r} is not a layer of this '
                        f'encoder; one of {list(names)}')


def cache_path(workdir, encoder: checkpoints.TrainedModel, version: layout.Version,
               hop: int, layer: str = 'embedding') -> pathlib.Path:
  folder = f'hop_{hop}' if layer == 'embedding' else f'hop_{hop}_{layer}'
  return (pathlib.Path(workdir) / 'embeddings' / f'step_{encoder.step}' /
          folder / version.piece / f'{version.name}.npy')


def open_dataset(encoder: checkpoints.TrainedModel,
                 data: Optional[str] = None,
                 validation: bool = False) -> prepare_lib.PreparedDataset:
  """The workdir's dataset (or `data`), with caches of the encoder's features."""
  root = data or encoder.config.data.root
  return prepare_lib.open_cache(root, encoder.config.features,
                                encoder.config.data.cache_dir or None,
                                validation=validation)


def embed_split(workdir, encoder: checkpoints.TrainedModel,
                prepared: prepare_lib.PreparedDataset, split: str,
                hop: int = 1, progress: bool = True,
                layer: str = 'embedding') -> dict[str, np.ndarray]:
  """{version key: [frames / hop, D]} for every version of a split, cached."""
  out = {}
  versions = sorted({v.key: v for v, _ in prepare_lib.split_versions(
      prepared.dataset, split)}.values(), key=lambda v: v.key)
  for version in tqdm.tqdm(versions, desc=f'embed {split}', unit='version',
                           disable=not progress):
    path = cache_path(workdir, encoder, version, hop, layer)
    if path.exists():
      out[version.key] = np.load(path)
      continue
    embedding = embed_features(encoder, prepared.features(version), hop,
                               layer=layer)
    path.parent.mkdir(parents=True, exist_ok=True)
    prepare_lib.write_atomic(path, lambda f, e=embedding: np.save(f, e))
    out[version.key] = embedding
  return out


FLAGS = flags.FLAGS


def define_flags():
  flags.DEFINE_string('workdir', None, 'A cvrl.train workdir.')
  flags.DEFINE_integer('step', None, 'Checkpoint step (default: latest).')
  flags.DEFINE_string('audio', None, 'Embed this audio file instead.')
  flags.DEFINE_string('out', None, 'With --audio: where the .npy goes.')
  flags.DEFINE_string('split', 'test', 'Dataset split to embed.')
  flags.DEFINE_integer('hop', 1, 'One embedding every `hop` feature frames.')
  flags.DEFINE_string('data', None, 'Dataset (default: the config\'s).')
  flags.DEFINE_string('layer', 'embedding', 'Which output: embedding (the '
                      'published one), dense0, dense1, ... (the dense '
                      'layers before it) or final (the last convolution\'s).')
  flags.mark_flag_as_required('workdir')


def main(argv):
  del argv
  encoder = checkpoints.restore_model(FLAGS.workdir, FLAGS.step)
  check_layer(encoder, FLAGS.layer, FLAGS.workdir)
  rate = audio_lib.frame_rate(encoder.config.features)
  if FLAGS.audio:
    if not FLAGS.out:
      raise app.UsageError('--audio needs --out=emb.npy')
    waveform = audio_lib.load_audio(FLAGS.audio,
                                    encoder.config.features.sample_rate)
    features = audio_lib.compute_features(waveform, encoder.config.features)
    embedding = embed_features(encoder, features, FLAGS.hop,
                               layer=FLAGS.layer)
    np.save(FLAGS.out, embedding)
    print(f'{FLAGS.out}: {embedding.shape[0]} embeddings x '
          f'{embedding.shape[1]} at {rate / FLAGS.hop:.2f} per second')
    return
  prepared = open_dataset(encoder, FLAGS.data)
  embeddings = embed_split(FLAGS.workdir, encoder, prepared, FLAGS.split,
                           FLAGS.hop, layer=FLAGS.layer)
  frames = sum(len(e) for e in embeddings.values())
  folder = cache_path(FLAGS.workdir, encoder, prepared.dataset.versions()[0],
                      FLAGS.hop, FLAGS.layer).parents[1]
  print(f'{FLAGS.workdir}: {len(embeddings)} {FLAGS.split} versions, '
        f'{frames} embeddings in {folder}')


if __name__ == '__main__':
  define_flags()
  cli.run(main)
