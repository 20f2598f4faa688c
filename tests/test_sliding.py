"""Dense sliding-window evaluation == one forward pass per patch."""

import dataclasses
import logging

import jax
import numpy as np
import pytest

from configs import cv
from cvrl import checkpoints
from cvrl import embed
from cvrl import models
from cvrl import sliding


def random_encoder(config, seed=0) -> checkpoints.TrainedModel:
  """An untrained encoder with non-trivial BatchNorm and normalisation."""
  encoder = checkpoints.untrained_model(config, seed)
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
  elif name == 'paper-like':  # the published time geometry, narrow
    config.data.patch_frames = 201
    config.features.logmel.n_mels = 90
    config.model.update(dict(prefilter_kernel=(15, 5), freq_stride=1,
                             block_features=(4, 4, 8)))
  elif name == 'prefilter-9':  # several edge rows after the first pool
    config.data.patch_frames = 89
    config.features.logmel.n_mels = 90
    config.model.update(dict(prefilter_kernel=(9, 3), freq_stride=1,
                             block_features=(4, 4, 8)))
  elif name == 'even-prefilter':  # SAME pads 1 row before, 2 after
    config.data.patch_frames = 40
    config.model.prefilter_kernel = (4, 3)
  return config


@pytest.mark.parametrize('name', ['test', 'demo', 'paper-like',
                                  'prefilter-9', 'even-prefilter'])
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


@pytest.mark.parametrize('name', ['test', 'demo'])
def test_every_layer_dense_equals_patch_by_patch(name):
  config = geometry(name)
  encoder = random_encoder(config)
  bins = models.input_shape(config)[1]
  features = np.random.RandomState(2).uniform(-90, 0, (61, bins))
  names = models.layer_names(encoder.model)
  dense = tuple(f'dense{i}' for i in range(len(config.model.dense_features)))
  assert names == ('embedding', *reversed(dense), 'final')
  for layer in names:
    dense = embed.embed_features(encoder, features, hop=2, batch_size=8,
                                 method='dense', layer=layer)
    patches = embed.embed_features(encoder, features, hop=2, batch_size=8,
                                   method='patches', layer=layer)
    assert dense.shape == (31, models.layer_dim(encoder.model, layer)), layer
    np.testing.assert_allclose(dense, patches, atol=2e-5, err_msg=layer)
    if layer != 'embedding':  # hidden layers are not normalised
      assert not np.allclose(np.linalg.norm(dense, axis=1), 1.0)
  with pytest.raises(ValueError, match="layer 'dense7'"):
    embed.embed_features(encoder, features, layer='dense7')


@pytest.mark.parametrize('name', ['paper-like', 'prefilter-9',
                                  'even-prefilter'])
def test_plan_edge_rows_are_exactly_where_patches_differ(name):
  """Per layer: a patch's own map vs the shared sequence map at its rows."""
  encoder = random_encoder(geometry(name))
  model, variables, patch = encoder.model, encoder.variables, encoder.patch_frames
  rows = sliding.plan(model, patch)
  starts = np.arange(5)
  sequence = np.random.RandomState(3).normal(
      0, 1, (len(starts) - 1 + patch,) + models.input_shape(encoder.config)[1:])
  sequence = sequence.astype(np.float32)
  own = np.stack([sequence[s:s + patch] for s in starts])
  shared = sequence[None]
  input_dilations = [1] + [r.dilation for r in rows[:-1]]
  for layer, r, dilation in zip(model.trunk(), rows, input_dilations):
    own = sliding._apply(model, variables, layer, own)
    shared = sliding._apply(model, variables, layer, shared, dilation)
    assert own.shape[1] == r.n, layer.name
    differs = [q for q in range(r.n) if not np.allclose(
        own[:, q], shared[0][starts + r.dilation * q], atol=1e-5)]
    assert differs == [*range(r.left), *range(r.n - r.right, r.n)], layer.name
  # What the final conv spans: 5 x 1 for the published geometry.
  assert (rows[-1].n, rows[-1].dilation) == dict(
      {'paper-like': (5, 27), 'prefilter-9': (1, 27),
       'even-prefilter': (2, 9)})[name]


def test_too_short_patches_fall_back_to_patch_by_patch(caplog):
  config = geometry('paper-like')
  config.data.patch_frames = 80  # 1 row after 3 blocks, edges on both sides
  config.model.prefilter_kernel = (5, 5)
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
