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
  gradient, which XLA:CPU runs as a fast dot (the published 15x15 x 5
  pre-filter: 9x faster than XLA's gradient);
- a convolution whose kernel equals its stride along frequency and spans one
  frame (the published 1x3 stride-3 "semitone" layer) is a reshape and a
  matrix product, forward and backward;
- the max-pool gradient (windows equal to strides, VALID) is an elementwise
  mask of each window's first maximum, as XLA's select-and-scatter picks it;
- a one-channel input (the log-mel pre-filter) is convolved as a sum of
  shifted multiply-adds, which XLA:CPU fuses into one loop;
- a large kernel (the published 15x15 pre-filter) is convolved through FFTs,
  forward and backward: its cost no longer grows with the kernel's taps.
"""

from __future__ import annotations

import functools
from typing import Sequence

import jax
import jax.numpy as jnp

DIMENSIONS = ('NHWC', 'HWIO', 'NHWC')
# Largest im2col matrix of one example (elements, 1 GiB of float32) for
# which the matrix-product weight gradient is used; above it XLA's own
# gradient is kept. The published 15x15 x 5 pre-filter's is 61 M elements.
IM2COL_ELEMENTS = 256 * 1024 * 1024
# Most taps for which a one-channel convolution is computed as shifted
# multiply-adds (single_channel_conv).
SHIFTED_TAPS = 25
# Fewest taps (kh * kw) for which a stride-1 convolution runs through FFTs
# (fft_conv2d). Measured in the published step: the 15x15 pre-filter's
# forward 1.5 -> 0.69 s, backward 1.9 -> 0.84 s; a 3x3 kernel's direct
# convolution is far cheaper than its FFTs. Between, not measured.
FFT_TAPS = 49


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
  """Whether one example's im2col matrix is small enough (IM2COL_ELEMENTS).

  The matrix `weight_gradient` builds: kh * kw * cin rows, one column per
  position of the padded input flattened with its full width.
  """
  kh, kw, cin, _ = kernel_shape
  (pt, pf) = _padding(padding, (kh, kw))
  width = input_shape[2] + sum(pf)
  length = _flat_length(input_shape[1] + sum(pt), width, (kh, kw))
  return length * kh * kw * cin <= IM2COL_ELEMENTS


def _flat_length(rows: int, width: int, kernel) -> int:
  """Output positions of a [rows, width] map flattened with its full width
  whose every tap lies inside the map (the last valid one included)."""
  kh, kw = kernel
  return rows * width - ((kh - 1) * width + kw - 1)


def weight_gradient(x: jax.Array, grad: jax.Array, kernel_shape,
                    padding) -> jax.Array:
  """d loss / d kernel of a stride-1 conv, as im2col matrix products.

  x: [B, T, F, Cin] input, grad: [B, T', F', Cout] output gradient.
  dW[i, j, c, o] = sum_{b,t,f} x_pad[b, t + i, f + j, c] * grad[b, t, f, o].
  Per example (a scan), the padded input is transposed to channels-first
  and flattened with its full width: the tap (i, j) of every output
  position p = t * width + f then reads x[c, p + i * width + j], so each
  (tap, channel) row of the im2col matrix [kh * kw * Cin, L] is one
  contiguous slice. The output gradient is zero-padded to the same grid,
  which cancels the positions that straddle a row end, and one matrix
  product per example contracts the positions.
  Measured on a 2-core CPU, against XLA's own gradient: the published
  15x15 x 5 pre-filter 445 ms vs 3958 ms (4 patches); demo block0_conv0
  28 ms vs 124 ms (48 patches). The channels-last matrix [L, kh * kw * Cin]
  (concatenated along channels) was as fast on the demo's one-channel
  pre-filter and 1.2-1.7x slower at every other geometry measured.
  """
  kh, kw, cin, cout = kernel_shape
  (pt, pf) = _padding(padding, (kh, kw))
  x = jnp.pad(x, ((0, 0), pt, pf, (0, 0)))
  batch, rows, width, _ = x.shape
  out_t, out_f = grad.shape[1], grad.shape[2]
  grad = jnp.pad(grad, ((0, 0), (0, rows - out_t), (0, width - out_f), (0, 0)))
  length = _flat_length(rows, width, (kh, kw))
  x = jnp.transpose(x, (0, 3, 1, 2)).reshape(batch, cin, rows * width)

  def add_example(total, example):
    xb, gb = example
    columns = jnp.stack([xb[:, i * width + j:i * width + j + length]
                         for i in range(kh) for j in range(kw)])
    return total + jnp.dot(columns.reshape(kh * kw * cin, length),
                           gb[:length],
                           preferred_element_type=jnp.float32), None

  total, _ = jax.lax.scan(add_example,
                          jnp.zeros((kh * kw * cin, cout), jnp.float32),
                          (x, grad.reshape(batch, rows * width, cout)))
  return total.reshape(kh, kw, cin, cout).astype(grad.dtype)


def single_channel_conv(x: jax.Array, kernel: jax.Array, padding) -> jax.Array:
  """A stride-1 convolution of a one-channel input as shifted multiply-adds.

  XLA:CPU's convolution runs a one-channel input at ~2.5 GFLOP/s (the demo's
  3x3 pre-filter: 34 ms for 48 patches); the sum over taps of shifted
  copies times the tap's weights is one fused elementwise loop (2.1 ms).
  """
  kh, kw, _, _ = kernel.shape
  (pt, pf) = _padding(padding, (kh, kw))
  x = jnp.pad(x, ((0, 0), pt, pf, (0, 0)))
  out_t, out_f = x.shape[1] - kh + 1, x.shape[2] - kw + 1
  return sum(x[:, i:i + out_t, j:j + out_f, :] * kernel[i, j, 0]
             for i in range(kh) for j in range(kw))


def conv2d(x: jax.Array, kernel: jax.Array, padding) -> jax.Array:
  """Stride-1, undilated NHWC convolution with fast gradients: through FFTs
  for large kernels (FFT_TAPS), else with the im2col weight gradient."""
  if kernel.shape[0] * kernel.shape[1] >= FFT_TAPS:
    return fft_conv2d(x, kernel, padding)
  return im2col_conv2d(x, kernel, padding)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def im2col_conv2d(x: jax.Array, kernel: jax.Array, padding) -> jax.Array:
  """Stride-1, undilated NHWC convolution with the im2col weight gradient."""
  return _conv2d_forward(x, kernel, padding)


def _conv2d_forward(x, kernel, padding):
  if x.shape[-1] == 1 and kernel.shape[0] * kernel.shape[1] <= SHIFTED_TAPS:
    return single_channel_conv(x, kernel, padding)
  return _conv(x, kernel, padding, 1)


def _conv2d_fwd(x, kernel, padding):
  return _conv2d_forward(x, kernel, padding), (x, kernel)


def _conv2d_bwd(padding, saved, grad):
  x, kernel = saved
  _, vjp = jax.vjp(lambda x_, k_: _conv(x_, k_, padding, 1), x, kernel)
  if not uses_im2col(x.shape, kernel.shape, padding):
    return vjp(grad)  # XLA's gradients (an im2col past IM2COL_ELEMENTS)
  _, input_vjp = jax.vjp(lambda x_: _conv(x_, kernel, padding, 1), x)
  (dx,) = input_vjp(grad)
  return dx, weight_gradient(x, grad, kernel.shape, padding)


im2col_conv2d.defvjp(_conv2d_fwd, _conv2d_bwd)


def _fft_size(n: int) -> int:
  """The smallest 5-smooth integer >= n (sizes DUCC's FFT runs fastest)."""
  while True:
    m = n
    for p in (2, 3, 5):
      while m % p == 0:
        m //= p
    if m == 1:
      return n
    n += 1


def _fft_grid(rows: int, width: int) -> tuple[int, int]:
  """The FFT grid of a padded [rows, width] input: no wrap-around."""
  return _fft_size(rows), _fft_size(width)


def _spectrum(x: jax.Array, grid) -> jax.Array:
  """[B, T, F, C] -> [B, C, n1, n2 // 2 + 1]: real 2-D FFTs, zero-padded to
  the grid. Channels first: XLA:CPU's FFT along strided (channels-last)
  axes was 3x slower than a transpose and a contiguous FFT."""
  return jnp.fft.rfft2(jnp.transpose(x, (0, 3, 1, 2)), s=grid)


def _inverse(spectrum: jax.Array, grid, rows: int, cols: int) -> jax.Array:
  """Inverse of _spectrum's FFT, cropped to the first rows x cols samples.

  One 2-D inverse over the two trailing axes: XLA transforms only trailing
  axes, so a 1-D inverse along rows (to crop before the second pass) cost a
  transpose of the whole spectrum, slower than what it saved.
  """
  return jnp.fft.irfft2(spectrum, s=grid)[..., :rows, :cols]


def _channel_sum(spectra: jax.Array, kernel_spectra: jax.Array) -> jax.Array:
  """[B, C, ...] x [D, C, ...] -> [B, D, ...]: sum_c spectra[:, c] * kernel[:, c].

  Unrolled over C, one fused loop of multiply-adds: measured on 24
  published patches (C = 5, D = 64), 73 ms; a map over examples 135 ms, one
  broadcast reduction 191 ms, a complex einsum (a batched dot) 613 ms.
  """
  return sum(spectra[:, c, None] * kernel_spectra[None, :, c]
             for c in range(spectra.shape[1]))


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def fft_conv2d(x: jax.Array, kernel: jax.Array, padding) -> jax.Array:
  """Stride-1, undilated NHWC convolution (cross-correlation) through FFTs.

  y[b, t, f, o] = sum_{i,j,c} x_pad[b, t + i, f + j, c] * kernel[i, j, c, o]
  is, per frequency bin of an FFT grid at least as large as the padded input
  (no wrap-around), Y[o] = sum_c X[c] * conj(K[c, o]). Its cost does not grow
  with the kernel's taps: the published 15x15 x 5 -> 64 pre-filter on 8
  patches took 190 ms forward (XLA's convolution: 603 ms) and 620 ms with the
  weight gradient (XLA forward + im2col gradient: 1384 ms), measured on a
  2-core CPU. The result equals the direct convolution up to float rounding
  (~2e-6 of its scale).
  """
  return _fft_conv2d_fwd(x, kernel, padding)[0]


def _fft_conv2d_fwd(x, kernel, padding):
  kh, kw = kernel.shape[:2]
  pads = _padding(padding, (kh, kw))
  rows, width = x.shape[1] + sum(pads[0]), x.shape[2] + sum(pads[1])
  grid = _fft_grid(rows, width)
  x_spec = _spectrum(jnp.pad(x, ((0, 0), *pads, (0, 0))), grid)
  k_spec = jnp.conj(_spectrum(kernel.transpose(3, 0, 1, 2), grid))  # [O, C, ..]
  y_spec = _channel_sum(x_spec, k_spec)
  y = _inverse(y_spec, grid, rows - kh + 1, width - kw + 1)
  return jnp.transpose(y, (0, 2, 3, 1)).astype(x.dtype), (x_spec, kernel)


def _fft_conv2d_bwd(padding, saved, grad):
  x_spec, kernel = saved
  kh, kw = kernel.shape[:2]
  (pt, pf) = _padding(padding, (kh, kw))
  out_t, out_f = grad.shape[1:3]
  rows, width = out_t + kh - 1, out_f + kw - 1
  grid = _fft_grid(rows, width)
  g_spec = _spectrum(grad, grid)  # [B, O, n1, h]
  # dK[i, j, c, o] = sum_b (x_pad[b, :, :, c] correlated with grad[b, ..., o])
  # at lag (i, j): per bin, sum_b X[b, c] * conj(G[b, o]).
  # A scan over examples: the same sum as one broadcast reduction over the
  # batch axis took 5x as long (858 vs 170 ms, 24 published patches).
  def add_example(total, example):
    xb, gb = example
    return total + xb[:, None] * jnp.conj(gb[None]), None
  dk_spec, _ = jax.lax.scan(
      add_example, jnp.zeros(x_spec.shape[1:2] + g_spec.shape[1:], x_spec.dtype),
      (x_spec, g_spec))
  dk = _inverse(dk_spec, grid, kh, kw).transpose(2, 3, 0, 1)
  # dx_pad = grad convolved (not correlated) with the kernel: per bin
  # sum_o G[b, o] * K[c, o]; cropped to the unpadded input.
  k_spec = _spectrum(kernel.transpose(2, 0, 1, 3), grid)  # [C, O, n1, h]
  dx_spec = _channel_sum(g_spec, k_spec)
  dx = _inverse(dx_spec, grid, rows, width)[
      :, :, pt[0]:rows - pt[1], pf[0]:width - pf[1]]
  return (jnp.transpose(dx, (0, 2, 3, 1)).astype(grad.dtype),
          dk.astype(kernel.dtype))


fft_conv2d.defvjp(_fft_conv2d_fwd, _fft_conv2d_bwd)


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
  # Windows as axes 2 and 4 of a reshape (no transpose): [b, t2, wt, f2, wf, c].
  inner = x[:, :t2 * wt, :f2 * wf].reshape(b, t2, wt, f2, wf, c)
  is_max = inner == y[:, :, None, :, None, :]
  # The first maximum of each window (row-major), as select-and-scatter
  # picks it: the maximum of a rank that falls along the window is one fused
  # reduction (a cumsum over the window was a slow reduce-window).
  rank = (wt * wf - jnp.arange(wt * wf)).reshape(1, 1, wt, 1, wf, 1)
  first_rank = jnp.max(jnp.where(is_max, rank, 0), axis=(2, 4), keepdims=True)
  spread = jnp.where(is_max & (rank == first_rank),
                     grad[:, :, None, :, None, :], 0).astype(x.dtype)
  spread = spread.reshape(b, t2 * wt, f2 * wf, c)
  return (jnp.pad(spread, ((0, 0), (0, t - t2 * wt), (0, f - f2 * wf),
                           (0, 0))),)


max_pool.defvjp(_max_pool_fwd, _max_pool_bwd)
