"""The encoder: the published layer shapes, the variants, the error for small inputs."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import helpers
from configs import cv
from configs import sup
from cvrl import models


def layer_shapes(config, num_classes=0, batch=2):
  model = models.create_model(config, num_classes)
  x = jax.random.normal(jax.random.key(0),
                        (batch,) + models.input_shape(config))
  variables = model.init(jax.random.key(1), x)
  out, state = model.apply(variables, x, capture_intermediates=True,
                           mutable=['intermediates'])
  shapes = {'/'.join(path): leaf.shape[1:] for path, leaf in
            _flatten(state['intermediates'])
            if path[-1] == '__call__' and hasattr(leaf, 'shape')}
  return out, {k.removesuffix('/__call__'): v for k, v in shapes.items()}


def _flatten(tree, prefix=()):
  for key, value in tree.items():
    if isinstance(value, dict):
      yield from _flatten(value, prefix + (key,))
    else:
      yield prefix + (key,), value[0]


def test_paper_network_layer_shapes():
  config = cv.get_config('paper')
  assert models.input_shape(config) == (201, 252, 5)
  out, shapes = layer_shapes(config)
  expected = {
      'prefilter': (201, 252, 64),      # 15x15 same
      'semitones': (201, 84, 64),       # 1x3 stride 3: 3 bins/semitone -> 1
      'block0_conv0': (199, 82, 64), 'block0_conv1': (197, 80, 64),
      'block1_conv0': (63, 24, 128), 'block1_conv1': (61, 22, 128),
      'block2_conv0': (18, 5, 256), 'block2_conv1': (16, 3, 256),
      'final': (1, 1, 512),             # 5x1 over time after the last pool
      'dense0': (256,), 'dense1': (128,), 'embedding': (128,),
  }
  for name, shape in expected.items():
    assert shapes[name] == shape, (name, shapes[name])
  embedding = np.asarray(out['embedding'])
  assert embedding.shape == (2, 128)
  np.testing.assert_allclose(np.linalg.norm(embedding, axis=1), 1.0, rtol=1e-5)
  assert 'logits' not in out


def test_paper_final_conv_is_5x1():
  config = cv.get_config('paper')
  model = models.create_model(config)
  variables = jax.eval_shape(model.init, jax.random.key(0),
                             jnp.zeros((1,) + models.input_shape(config)))
  assert variables['params']['final']['Conv_0']['kernel'].shape == (5, 1, 256, 512)


@pytest.mark.parametrize('variant', ['', 'demo', 'test'])
def test_variants_build_and_normalise(variant):
  config = cv.get_config(variant)
  out, _ = layer_shapes(config)
  assert out['embedding'].shape == (2, config.model.embedding_dim)
  np.testing.assert_allclose(np.linalg.norm(out['embedding'], axis=1), 1.0,
                             rtol=1e-5)


def test_sup_head_gives_logits_per_class():
  out, _ = layer_shapes(sup.get_config('test'), num_classes=7)
  assert out['logits'].shape == (2, 7)


def test_too_small_input_is_a_clear_error():
  config = cv.get_config('test')
  config.data.patch_frames = 9
  with pytest.raises(ValueError, match='patch_frames'):
    layer_shapes(config)


def slim(config):
  """The variant's geometry (input, kernels, strides, pools) at few channels."""
  width = dict(prefilter_features=4, block_features=(4, 4, 8)[
      :len(config.model.block_features)], final_features=8,
      dense_features=(8,), embedding_dim=8)
  config.model.update(width)
  config.batch_size = 2
  return config


def train_step_gradients(config, batch):
  """(metrics, parameter gradients, new BatchNorm statistics) of one step.

  The step runs with SGD at learning rate 1, so the parameter change is the
  gradient itself (Adam's first step, ~lr * sign(g), would turn rounding
  noise in gradients that are zero in exact arithmetic, such as a bias
  before BatchNorm, into a full step).
  """
  import functools  # pylint: disable=g-import-not-at-top
  from cvrl import train  # pylint: disable=g-import-not-at-top
  config.optimizer.update(name='sgd', learning_rate=1.0)
  model = models.create_model(config, axis_name=train.AXIS)
  one_device = lambda tree: jax.tree.map(lambda x: jnp.asarray(x)[None], tree)
  state = one_device(train.create_train_state(jax.random.key(0), config,
                                              model))
  step = jax.jit(jax.vmap(functools.partial(
      train.train_step, method='cv', loss='triplet', margin=1.0,
      temperature=0.1), axis_name=train.AXIS))
  new_state, metrics = step(state, batch, one_device(jax.random.key(1)))
  gradients = jax.tree.map(lambda old, new: old - new, state.params,
                           new_state.params)
  return jax.device_get((metrics, gradients, new_state.batch_stats))


def assert_step_close(fast, plain, tolerance):
  """Each array within `tolerance` of its largest value; arrays whose values
  are all far below the largest gradient (zero in exact arithmetic) are
  compared against 1 % of that instead of their own rounding noise."""
  largest = max(float(np.abs(g).max()) for g in jax.tree.leaves(plain[1]))
  helpers.assert_trees_close(fast, plain, tolerance, floor=0.01 * largest)


@pytest.mark.parametrize('variant', ['paper', '', 'demo'])
def test_fast_formulation_equals_plain_in_the_train_step(variant):
  """Loss, metrics, parameter gradients and the new BatchNorm statistics of
  one triplet step: fast == plain to 1e-4 of each array's largest value."""
  shape = models.input_shape(slim(cv.get_config(variant)))
  rng = np.random.default_rng(0)
  batch = {role: rng.normal(size=(1, 2) + shape).astype(np.float32)
           for role in ('anchor', 'positive', 'negative')}
  batch['negative'][0, 0, :40] = -3.0  # a silent stretch: max-pool ties
  results = {}
  for formulation in ('plain', 'fast'):
    config = slim(cv.get_config(variant))
    config.compute.formulation = formulation
    results[formulation] = train_step_gradients(config, batch)
  assert_step_close(results['fast'], results['plain'], 1e-4)


def test_auto_formulation_is_fast_on_cpu_and_plain_elsewhere(monkeypatch):
  config = cv.get_config('test')
  assert config.compute.formulation == 'auto'  # the default
  assert models.formulation(config) == 'fast'  # tests run on CPU
  assert models.create_model(config).formulation == 'fast'
  monkeypatch.setattr(jax, 'default_backend', lambda: 'gpu')
  assert models.formulation(config) == 'plain'
  config.compute.formulation = 'fast'  # an explicit choice is kept
  assert models.formulation(config) == 'fast'
  config.compute.formulation = 'quick'
  model = models.create_model(config)
  with pytest.raises(ValueError, match="formulation='quick'"):
    model.init(jax.random.key(0), jnp.zeros((2,) + models.input_shape(config)))
