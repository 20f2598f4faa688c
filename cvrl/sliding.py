"""Exact dense evaluation of the encoder on the patches of every frame.

Embedding every frame of a recording means one patch per frame: patch s is
frames [s, s + P) of the (silence-padded) sequence, and neighbouring patches
share P - 1 frames. Run patch by patch (as the original does), the trunk
recomputes nearly the same feature maps P times. This module computes each
layer's feature map *once* over the whole sequence and reads every patch's
rows out of it, which is the classic dense sliding-window trick (OverFeat,
"shift-and-pool"): after a 3-stride pool, row q of patch s sits at sequence
position s + 3q, so later layers run on the sequence with time dilation 3
(then 9, ...) and pools become stride-1 maxima over dilated rows.

Written by hand because it is specific to this encoder: the pre-filter pads
each *patch* with zeros (SAME), so the first and last rows of a patch's
feature maps differ from the sequence's. Those rows (a few per layer; see
`plan`) are recomputed per patch from the patch's own edge rows, and the rest
come from the shared maps, so the result equals the patch-by-patch forward
pass up to float rounding (tests/test_sliding.py). Measured on a 2-core CPU
(README, "Evaluation"): 23x the original's embeddings per second with the
demo encoder, 10x with the published one.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from cvrl import models


@dataclasses.dataclass(frozen=True)
class Rows:
  """Time geometry of one layer's output for a single patch."""
  n: int  # rows
  left: int  # rows [0, left) depend on zero padding at the patch start
  right: int  # rows [n - right, n) on zero padding at its end
  dilation: int  # sequence frames between consecutive rows


def plan(model: models.Encoder, patch_frames: int) -> list[Rows]:
  """Rows after each trunk layer; ValueError when dense evaluation can't work.

  It can't when the patch is too short for its edge rows and shared rows to
  be told apart at some layer; embed.embed_features then goes patch by patch.
  """
  trunk = model.trunk()
  first, rest = trunk[0], trunk[1:]
  for layer in rest:
    if layer.padding != 'VALID' or layer.strides[0] != (
        layer.kernel[0] if layer.kind == 'pool' else 1):
      raise ValueError(f'dense evaluation expects VALID layers with time '
                       f'stride 1 (or pools) after the first: {layer}')
  lo = (first.kernel[0] - 1) // 2  # XLA's SAME split of the padding
  hi = first.kernel[0] - 1 - lo
  rows = [Rows(patch_frames, lo, hi, 1)]
  for layer in rest:
    r = rows[-1]
    span = layer.kernel[0]
    if layer.kind == 'pool':
      # Output row q pools input rows [span q, span q + span).
      n = r.n // span
      left = math.ceil(r.left / span)
      first_right = math.ceil((r.n - r.right - span + 1) / span)
      right = n - max(0, first_right) if r.right else 0
      rows.append(Rows(n, min(left, n), min(max(right, 0), n),
                       r.dilation * span))
    else:  # output row q convolves input rows [q, q + span)
      n = r.n - span + 1
      rows.append(Rows(n, min(r.left, n), min(r.right, n), r.dilation))
    # Every row must be an edge row of one side or shared, never both.
    if rows[-1].n < 1 or rows[-1].left + rows[-1].right > rows[-1].n:
      raise ValueError(f'{patch_frames}-frame patches are too short for dense '
                       f'evaluation at layer {layer.name}')
  if lo + hi > patch_frames:
    raise ValueError(f'{patch_frames}-frame patches are shorter than the '
                     'pre-filter')
  return rows


def _variables(variables, name: str) -> dict:
  return {'params': variables['params'][name],
          'batch_stats': variables['batch_stats'][name]}


def _apply(model: models.Encoder, variables, layer: models.Layer, x,
           dilation: int = 0):
  """One trunk layer on [batch, time, bins, channels].

  dilation 0: as in the model (patch rows). dilation d > 0: on a sequence
  map whose consecutive patch rows are d frames apart, so convolutions are
  time-dilated by d and pools take stride-1 maxima over rows d apart.
  """
  if layer.kind == 'pool' and dilation:
    return jax.lax.reduce_window(
        x, -jnp.inf, jax.lax.max, (1, *layer.kernel, 1),
        (1, 1, layer.strides[1], 1), 'VALID',
        window_dilation=(1, dilation, 1, 1))
  if layer.kind == 'pool':
    return nn.max_pool(x, layer.kernel, strides=layer.strides, padding='VALID')
  block = model.conv_block(layer, time_dilation=max(dilation, 1), parent=None)
  return block.apply(_variables(variables, layer.name), x, train=False)


@functools.partial(jax.jit, static_argnames=('model', 'patch_frames', 'hop',
                                             'num_patches', 'layer'))
def embed_chunk(model: models.Encoder, variables: Any, sequence: jax.Array,
                patch_frames: int, hop: int, num_patches: int,
                layer: str = 'embedding') -> jax.Array:
  """Embeddings of patches starting at 0, hop, ... (num_patches) of `sequence`.

  sequence: [(num_patches - 1) * hop + patch_frames, bins, channels],
  standardised and already padded; -> [num_patches, D] outputs of `layer`
  (models.layer_names).
  """
  rows = plan(model, patch_frames)
  trunk = model.trunk()
  starts = np.arange(num_patches) * hop

  # Layer 0 (SAME): shared map over the sequence; the patch's edge rows from
  # slabs of its first / last lo + hi frames, zero-padded like the patch.
  dense = _apply(model, variables, trunk[0], sequence[None], 1)[0]
  r0 = rows[0]
  slab = r0.left + r0.right
  left = right = None
  if slab:
    def cut(start):
      return jax.lax.dynamic_slice_in_dim(sequence, start, slab, axis=0)
    left_slabs = jax.vmap(cut)(jnp.asarray(starts))
    right_slabs = jax.vmap(cut)(jnp.asarray(starts + patch_frames - slab))
    both = _apply(model, variables, trunk[0],
                  jnp.concatenate([left_slabs, right_slabs]))
    left, right = both[:num_patches, :r0.left], both[num_patches:, slab - r0.right:]

  def gather(r: Rows, dense, left, right, lo: int, hi: int):
    """Rows [lo, hi) of every patch's map: edge rows own, others shared."""
    parts = []
    if lo < r.left:
      parts.append(left[:, lo:min(hi, r.left)])
    a, b = max(lo, r.left), min(hi, r.n - r.right)
    if a < b:
      index = starts[:, None] + r.dilation * np.arange(a, b)[None]
      parts.append(dense[index])
    if hi > r.n - r.right:
      first = r.n - r.right
      parts.append(right[:, max(lo, first) - first:hi - first])
    return jnp.concatenate(parts, axis=1) if len(parts) > 1 else parts[0]

  for block, r, new in zip(trunk[1:], rows[:-1], rows[1:]):
    span = block.kernel[0]
    if block.kind == 'pool':
      left_in, right_in = (0, span * new.left), (span * (new.n - new.right),
                                                  span * new.n)
    else:
      left_in, right_in = (0, new.left + span - 1), (new.n - new.right, r.n)
    new_left = new_right = None
    if new.left:
      new_left = _apply(model, variables, block,
                        gather(r, dense, left, right, *left_in))
    if new.right:
      new_right = _apply(model, variables, block,
                         gather(r, dense, left, right, *right_in))
    dense = _apply(model, variables, block, dense[None], r.dilation)[0]
    left, right = new_left, new_right
  trunk_out = gather(rows[-1], dense, left, right, 0, rows[-1].n)
  return model.apply(variables, trunk_out, from_trunk=True)[layer]
