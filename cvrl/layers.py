"""Convolution and max-pooling with gradients that XLA:CPU computes fast.

The functions compute exactly what flax's nn.Conv / nn.max_pool compute
(same forward; gradients equal up to float summation order). Why they exist:
measured on a 2-core CPU (jaxlib 0.10.2, the demo network, 48 patches), the
weight gradient of a 3x3 convolution took 5-8x its forward pass and a 3x3
max-pool's gradient 30x its forward: XLA:CPU lowers the weight gradient to
a convolution with swapped dimensions that misses its fast Eigen path, and
the pool gradient to select-and-scatter. Here
- the weight gradient is a scan over examples of one matrix product each:
  the example's kh * kw shifted views (im2col) contracted with its output
  gradient, which XLA:CPU runs as a fast, cache-sized dot;
- a convolution whose kernel equals its stride along frequency and spans one
  frame (the published 1x3 stride-3 "semitone" layer) is a reshape and a
  matrix product, forward and backward;
- the max-pool gradient (windows equal to strides, VALID) is an elementwise
  mask of each window's first maximum, as XLA's select-and-scatter picks it.
"""

from __future__ import annotations

import functools
from typing import Sequence

import jax
import jax.numpy as jnp

DIMENSIONS = ('NHWC', 'HWIO', 'NHWC')
# Largest im2col matrix of one example (elements, ~64 MB of float32) for
# which the matrix-product weight gradient is used; above it (the published
# 15x15x5 pre-filter) XLA's own gradient is kept.
IM2COL_ELEMENTS = 16 * 1024 * 1024


def _padding(padding, kernel: Sequence[int]):
  """Explicit ((lo, hi), (lo, hi)) of 'SAME' / 'VALID' for stride 1."""
  if padding == 'VALID':
    return ((0, 0), (0, 0))
  if padding == 'SAME':
    return tuple(((k - 1) // 2, k // 2) for k in kernel)
  return tuple(tuple(p) for p in padding)


def _conv(x, kernel, padding, time_dilation):
  return jax.lax.conv_general_dilated(
      x, kernel, (1, 1), padding, rhs_dilation=(time_dilation, 1),
      dimension_numbers=DIMENSIONS)


def uses_im2col(input_shape, kernel_shape, padding) -> bool:
  """Whether one example's im2col matrix is small enough (IM2COL_ELEMENTS)."""
  kh, kw, cin, _ = kernel_shape
  (pt, pf) = _padding(padding, (kh, kw))
  out_t = input_shape[1] + sum(pt) - kh + 1
  out_f = input_shape[2] + sum(pf) - kw + 1
  return out_t * out_f * kh * kw * cin <= IM2COL_ELEMENTS


def weight_gradient(x: jax.Array, grad: jax.Array, kernel_shape,
                    padding) -> jax.Array:
  """d loss / d kernel of a stride-1 conv, as im2col matrix products.

  x: [B, T, F, Cin] input, grad: [B, T', F', Cout] output gradient.
  dW[i, j, c, o] = sum_{b,t,f} x_pad[b, t + i, f + j, c] * grad[b, t, f, o].
  One example per scan step keeps each im2col matrix in cache (measured:
  2.6x faster than XLA's gradient on the demo's 3x3 layers; one matrix for
  the whole batch was slower than XLA, memory-bound).
  """
  kh, kw, cin, cout = kernel_shape
  (pt, pf) = _padding(padding, (kh, kw))
  x = jnp.pad(x, ((0, 0), pt, pf, (0, 0)))
  out_t, out_f = grad.shape[1], grad.shape[2]

  def add_example(total, example):
    xb, gb = example
    columns = jnp.concatenate(
        [xb[i:i + out_t, j:j + out_f, :] for i in range(kh)
         for j in range(kw)], axis=-1)
    return total + jax.lax.dot_general(
        columns, gb, (((0, 1), (0, 1)), ((), ())),
        preferred_element_type=jnp.float32), None

  total, _ = jax.lax.scan(add_example,
                          jnp.zeros((kh * kw * cin, cout), jnp.float32),
                          (x, grad))
  return total.reshape(kh, kw, cin, cout).astype(grad.dtype)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def conv2d(x: jax.Array, kernel: jax.Array, padding) -> jax.Array:
  """Stride-1, undilated NHWC convolution with the im2col weight gradient."""
  return _conv(x, kernel, padding, 1)


def _conv2d_fwd(x, kernel, padding):
  return _conv(x, kernel, padding, 1), (x, kernel)


def _conv2d_bwd(padding, saved, grad):
  x, kernel = saved
  _, vjp = jax.vjp(lambda x_, k_: _conv(x_, k_, padding, 1), x, kernel)
  if not uses_im2col(x.shape, kernel.shape, padding):
    return vjp(grad)  # XLA's gradients (large im2col: the published pre-filter)
  _, input_vjp = jax.vjp(lambda x_: _conv(x_, kernel, padding, 1), x)
  (dx,) = input_vjp(grad)
  return dx, weight_gradient(x, grad, kernel.shape, padding)


conv2d.defvjp(_conv2d_fwd, _conv2d_bwd)


def strided_frequency_conv(x: jax.Array, kernel: jax.Array) -> jax.Array:
  """A [1, k] kernel with stride (1, k), VALID: a reshape and a matrix product.

  x: [B, T, F, Cin] -> [B, T, F // k, Cout]; trailing F % k bins are dropped
  as a VALID convolution drops them.
  """
  _, k, cin, cout = kernel.shape
  batch, frames, bins, _ = x.shape
  out_bins = bins // k
  x = x[:, :, :out_bins * k, :].reshape(batch, frames, out_bins, k * cin)
  return jnp.dot(x, kernel.reshape(k * cin, cout),
                 preferred_element_type=jnp.float32).astype(x.dtype)


@functools.partial(jax.custom_vjp, nondiff_argnums=(1,))
def max_pool(x: jax.Array, window: tuple[int, int]) -> jax.Array:
  """Non-overlapping VALID max-pool (window == strides) over time x frequency."""
  return _pool_forward(x, window)


def _pool_forward(x, window):
  return jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, (1, *window, 1),
                               (1, *window, 1), 'VALID')


def _max_pool_fwd(x, window):
  y = _pool_forward(x, window)
  return y, (x, y)


def _max_pool_bwd(window, saved, grad):
  x, y = saved
  (wt, wf), (b, t, f, c) = window, x.shape
  t2, f2 = y.shape[1], y.shape[2]
  inner = x[:, :t2 * wt, :f2 * wf].reshape(b, t2, wt, f2, wf, c)
  inner = inner.transpose(0, 1, 3, 2, 4, 5).reshape(b, t2, f2, wt * wf, c)
  is_max = inner == y[:, :, :, None, :]
  # The first maximum of each window (row-major), as select-and-scatter.
  first = is_max & (jnp.cumsum(is_max, axis=3) == 1)
  spread = jnp.where(first, grad[:, :, :, None, :], 0).astype(x.dtype)
  spread = spread.reshape(b, t2, f2, wt, wf, c).transpose(0, 1, 3, 2, 4, 5)
  spread = spread.reshape(b, t2 * wt, f2 * wf, c)
  return (jnp.pad(spread, ((0, 0), (0, t - t2 * wt), (0, f - f2 * wf),
                           (0, 0))),)


max_pool.defvjp(_max_pool_fwd, _max_pool_bwd)
