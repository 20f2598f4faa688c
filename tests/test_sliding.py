"""Dense sliding-window evaluation == one forward pass per patch."""

import dataclasses
import logging

import jax
import numpy as np
import pytest

from configs import cv
from cvrl import embed
from cvrl import models
from cvrl import sliding


def random_encoder(config, seed=0) -> embed.TrainedEncoder:
  """An untrained encoder with non-trivial BatchNorm and normalisation."""
  encoder = embed.untrained_encoder(config, seed)
  rng = np.random.RandomState(seed)
  stats = jax.tree_util.tree_map_with_path(
      lambda path, x: (rng.uniform(0.5, 2.0, x.shape) if 'var' in str(path[-1])
                       else rng.normal(0, 0.3, x.shape)).astype(np.float32),
      encoder.variables['batch_stats'])
  return dataclasses.replace(
      encoder, variables=dict(encoder.variables, batch_stats=stats),
      mean=rng.normal(-40, 5, encoder.mean.shape).astype(np.float32),
      std=rng.uniform(5, 15, encoder.std.shape).astype(np.float32))


def geometry(name):
  config = cv.get_config('test')
  if name == 'demo':
    config = cv.get_config('demo')
    config.features.logmel.n_mels = 64
  elif name == 'paper-like':  # 3 blocks, 5x5 pre-filter (2 edge rows a side)
    config.data.patch_frames = 89
    config.features.logmel.n_mels = 90
    config.model.update(dict(prefilter_kernel=(5, 5), freq_stride=1,
                             block_features=(4, 4, 8)))
  elif name == 'even-prefilter':  # SAME pads 1 row before, 2 after
    config.data.patch_frames = 40
    config.model.prefilter_kernel = (4, 3)
  return config


@pytest.mark.parametrize('name', ['test', 'demo', 'paper-like',
                                  'even-prefilter'])
@pytest.mark.parametrize('hop', [1, 3])
def test_dense_equals_patch_by_patch(name, hop):
  config = geometry(name)
  encoder = random_encoder(config)
  sliding.plan(encoder.model, encoder.patch_frames)  # feasible
  bins = models.input_shape(config)[1]
  features = np.random.RandomState(1).uniform(-90, 0, (97, bins))
  dense = embed.embed_features(encoder, features, hop=hop, batch_size=16,
                               method='dense')
  patches = embed.embed_features(encoder, features, hop=hop, batch_size=16,
                                 method='patches')
  assert dense.shape == (len(range(0, 97, hop)), config.model.embedding_dim)
  np.testing.assert_allclose(dense, patches, atol=2e-5)


def test_plan_counts_edge_rows():
  model = models.create_model(geometry('paper-like'))
  rows = sliding.plan(model, 89)
  assert rows[0] == sliding.Rows(89, 2, 2, 1)
  # 3 pools: dilation 1 -> 3 -> 9 -> 27; the last map is what 'final' spans.
  assert [r.dilation for r in rows][-1] == 27
  assert rows[-1].n == 1


def test_too_short_patches_fall_back_to_patch_by_patch(caplog):
  config = geometry('paper-like')
  config.data.patch_frames = 80  # 1 row after 3 blocks, edges on both sides
  encoder = random_encoder(config)
  with pytest.raises(ValueError, match='too short for dense'):
    sliding.plan(encoder.model, 80)
  features = np.random.RandomState(2).uniform(-90, 0, (20, 90))
  with caplog.at_level(logging.WARNING):
    dense = embed.embed_features(encoder, features, batch_size=8)
  assert 'patch by patch' in caplog.text
  np.testing.assert_allclose(
      dense, embed.embed_features(encoder, features, batch_size=8,
                                  method='patches'), atol=1e-6)
  with pytest.raises(ValueError, match="method='fast'"):
    embed.embed_features(encoder, features, method='fast')
