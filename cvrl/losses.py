"""Training objectives: the published triplet loss, NT-Xent, and BCE for Sup.

All take embeddings that are already L2-normalised (the encoder's output) and
return a scalar mean over the examples on this device; under pmap the train
step averages it over devices with `lax.pmean`.
"""

from __future__ import annotations

from typing import Optional

import jax
import jax.numpy as jnp
import optax


def squared_distance(x: jax.Array, y: jax.Array) -> jax.Array:
  return jnp.sum(jnp.square(x - y), axis=-1)


def triplet_loss(anchor, positive, negative, margin: float = 1.0):
  """Mean of max(0, |a-p|^2 - |a-n|^2 + margin), as published (margin 1.0)."""
  return jnp.mean(jax.nn.relu(squared_distance(anchor, positive)
                              - squared_distance(anchor, negative) + margin))


def nt_xent_loss(first, second, temperature: float = 0.1,
                 axis_name: Optional[str] = None):
  """NT-Xent (SimCLR's InfoNCE) over the global batch.

  Row i of `first` and of `second` are a positive pair; every other
  embedding of the *global* batch (all devices, gathered along `axis_name`)
  is a negative. Each of the 2B local embeddings is a query; the result is
  the mean over them, so the pmean over devices is the global mean.

  Args:
    first, second: [B, D] L2-normalised embeddings on this device.
    temperature: softmax temperature.
    axis_name: pmap axis to gather candidates over; None on one device.
  """
  batch = first.shape[0]
  if axis_name is None:
    all_first, all_second, offset = first, second, 0
  else:
    all_first = jax.lax.all_gather(first, axis_name, tiled=True)
    all_second = jax.lax.all_gather(second, axis_name, tiled=True)
    offset = jax.lax.axis_index(axis_name) * batch
  total = all_first.shape[0]
  keys = jnp.concatenate([all_first, all_second])  # [2N, D]
  queries = jnp.concatenate([first, second])  # [2B, D]
  logits = queries @ keys.T / temperature  # [2B, 2N]
  local = offset + jnp.arange(batch)
  self_index = jnp.concatenate([local, total + local])
  positive_index = jnp.concatenate([total + local, local])
  is_self = jax.nn.one_hot(self_index, 2 * total, dtype=bool)
  logits = jnp.where(is_self, -jnp.inf, logits)
  log_probs = jax.nn.log_softmax(logits, axis=-1)
  return -jnp.mean(jnp.take_along_axis(
      log_probs, positive_index[:, None], axis=-1))


def multilabel_bce(logits, labels):
  """Binary cross-entropy over classes (multi-hot instrument activity)."""
  return jnp.mean(optax.sigmoid_binary_cross_entropy(
      logits, labels.astype(logits.dtype)))
