"""Losses against independent NumPy computations on hand-made inputs."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cvrl import losses


def unit(x):
  x = np.asarray(x, np.float64)
  return x / np.linalg.norm(x, axis=-1, keepdims=True)


def test_triplet_loss_hand_made():
  anchor = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
  positive = np.array([[1.0, 0.0], [1.0, 0.0], [0.6, 0.8]])
  negative = np.array([[-1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
  # |a-p|^2: 0, 2, 0.8; |a-n|^2: 4, 0, 2  -> max(0, d_p - d_n + 1): 0, 3, 0
  expected = (0.0 + 3.0 + 0.0) / 3
  got = losses.triplet_loss(anchor, positive, negative, margin=1.0)
  np.testing.assert_allclose(got, expected, rtol=1e-6)
  got = losses.triplet_loss(anchor, positive, negative, margin=2.0)
  np.testing.assert_allclose(got, (0.0 + 4.0 + 0.8) / 3, rtol=1e-6)


def nt_xent_numpy(first, second, temperature):
  """SimCLR's loss written out with loops, over all 2N views."""
  views = np.concatenate([first, second])
  n = len(first)
  total = 0.0
  for i in range(2 * n):
    j = (i + n) % (2 * n)
    sims = views @ views[i] / temperature
    others = [k for k in range(2 * n) if k != i]
    total += -(sims[j] - np.log(np.sum(np.exp(sims[others]))))
  return total / (2 * n)


def test_nt_xent_matches_numpy():
  rng = np.random.default_rng(0)
  first, second = unit(rng.normal(size=(6, 5))), unit(rng.normal(size=(6, 5)))
  for temperature in (0.1, 0.5):
    got = losses.nt_xent_loss(jnp.asarray(first, jnp.float32),
                              jnp.asarray(second, jnp.float32), temperature)
    np.testing.assert_allclose(got, nt_xent_numpy(first, second, temperature),
                               rtol=1e-5)


def test_nt_xent_over_devices_is_the_global_batch_loss():
  devices = jax.local_device_count()
  assert devices == 8, 'conftest simulates 8 devices'
  rng = np.random.default_rng(1)
  first = unit(rng.normal(size=(16, 4))).astype(np.float32)
  second = unit(rng.normal(size=(16, 4))).astype(np.float32)
  sharded = jax.pmap(
      lambda a, b: jax.lax.pmean(losses.nt_xent_loss(a, b, 0.2, 'batch'),
                                 'batch'), axis_name='batch')
  got = sharded(first.reshape(8, 2, 4), second.reshape(8, 2, 4))
  np.testing.assert_allclose(got, nt_xent_numpy(first, second, 0.2), rtol=1e-5)
  # Its gradient, as the train step forms it: each device differentiates its
  # own loss (all_gather routes the other devices' terms back to their rows,
  # summed over devices), and the pmean over devices divides by their number.
  grad_global = jax.grad(lambda a: losses.nt_xent_loss(a, second, 0.2))(first)
  grad_local = jax.pmap(jax.grad(
      lambda a, b: losses.nt_xent_loss(a, b, 0.2, 'batch')),
                        axis_name='batch')(first.reshape(8, 2, 4),
                                           second.reshape(8, 2, 4))
  np.testing.assert_allclose(np.asarray(grad_local).reshape(16, 4) / devices,
                             grad_global, rtol=1e-4, atol=1e-6)


def test_multilabel_bce_matches_numpy():
  logits = np.array([[2.0, -1.0, 0.0], [-3.0, 0.5, 4.0]])
  labels = np.array([[1, 0, 1], [0, 0, 1]], np.float32)
  p = 1 / (1 + np.exp(-logits))
  expected = -np.mean(labels * np.log(p) + (1 - labels) * np.log(1 - p))
  np.testing.assert_allclose(losses.multilabel_bce(jnp.asarray(logits), labels),
                             expected, rtol=1e-6)


@pytest.mark.parametrize('margin', [0.5, 1.0])
def test_triplet_loss_is_zero_when_negatives_are_far(margin):
  anchor = unit([[1.0, 0.0]])
  assert float(losses.triplet_loss(anchor, anchor, -anchor, margin)) == 0.0
