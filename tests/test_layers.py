"""cvrl/layers.py: the fast formulations compute what flax/lax compute."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import helpers
from cvrl import layers

RTOL = 1e-4  # float32 summation order differs; relative to the largest value


def lax_conv(x, kernel, strides=(1, 1), padding='VALID'):
  return jax.lax.conv_general_dilated(x, kernel, strides, padding,
                                      dimension_numbers=layers.DIMENSIONS)


def assert_close(fast, plain):
  helpers.assert_trees_close(fast, plain, RTOL)


CONV_CASES = [
    ((3, 20, 17, 4), (3, 3), 'VALID'), ((2, 15, 12, 1), (3, 3), 'SAME'),
    ((2, 11, 30, 5), (7, 5), 'SAME'), ((2, 9, 8, 6), (4, 2), 'SAME')]
# Large kernels, which conv2d convolves through FFTs (odd and even extents,
# so SAME pads unequally; one channel; a grid that is not a power of two).
FFT_CASES = [
    ((2, 21, 26, 5), (15, 15), 'SAME'), ((2, 18, 16, 3), (7, 8), 'VALID'),
    ((1, 13, 11, 1), (9, 9), 'SAME'), ((2, 10, 17, 2), (6, 10), 'SAME')]


@pytest.mark.parametrize('conv,shape,kernel,padding', [
    (layers.conv2d, *case) for case in CONV_CASES + FFT_CASES] + [
    (layers.fft_conv2d, *case) for case in CONV_CASES])
def test_conv2d_value_and_gradients(conv, shape, kernel, padding):
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.normal(size=shape), jnp.float32)
  k = jnp.asarray(rng.normal(size=kernel + (shape[-1], 3)), jnp.float32)
  # Shifted multiply-adds and FFTs: equal up to summation order and rounding.
  assert_close(conv(x, k, padding), lax_conv(x, k, padding=padding))
  loss = lambda f: lambda x, k: jnp.sum(jnp.sin(f(x, k)))
  fast = jax.grad(loss(lambda x, k: conv(x, k, padding)),
                  argnums=(0, 1))(x, k)
  plain = jax.grad(loss(lambda x, k: lax_conv(x, k, padding=padding)),
                   argnums=(0, 1))(x, k)
  assert_close(fast, plain)


def test_large_kernels_go_through_ffts():
  x, k = jnp.ones((1, 20, 20, 2)), jnp.ones((7, 7, 2, 3))
  assert layers.FFT_TAPS <= 7 * 7
  jaxpr = str(jax.make_jaxpr(jax.grad(
      lambda k: layers.conv2d(x, k, 'SAME').sum()))(k))
  assert 'fft' in jaxpr and 'conv_general_dilated' not in jaxpr


def test_fft_size_is_five_smooth():
  assert [layers._fft_size(n) for n in (215, 266, 1, 7, 11, 64)] == [
      216, 270, 1, 8, 12, 64]


def test_large_im2col_keeps_xla_gradients(monkeypatch):
  monkeypatch.setattr(layers, 'IM2COL_ELEMENTS', 10)
  x = jnp.ones((1, 8, 8, 2))
  assert not layers.uses_im2col(x.shape, (3, 3, 2, 4), 'VALID')
  k = jnp.ones((3, 3, 2, 4))
  grads = jax.grad(lambda k: layers.conv2d(x, k, 'VALID').sum())(k)
  np.testing.assert_allclose(grads, 36.0)  # 6 x 6 output positions


def test_strided_frequency_conv_is_the_strided_conv():
  rng = np.random.default_rng(1)
  x = jnp.asarray(rng.normal(size=(2, 7, 32, 5)), jnp.float32)  # 32 % 3 = 2
  k = jnp.asarray(rng.normal(size=(1, 3, 5, 4)), jnp.float32)
  plain = lambda x, k: lax_conv(x, k, strides=(1, 3))
  assert_close(layers.strided_frequency_conv(x, k), plain(x, k))
  loss = lambda f: lambda x, k: jnp.sum(f(x, k) ** 2)
  assert_close(jax.grad(loss(layers.strided_frequency_conv), (0, 1))(x, k),
               jax.grad(loss(plain), (0, 1))(x, k))


@pytest.mark.parametrize('shape', [(2, 9, 12, 3), (2, 11, 14, 2)])
def test_max_pool_gradient_goes_to_the_first_maximum(shape):
  rng = np.random.default_rng(2)
  x = rng.normal(size=shape).astype(np.float32)
  x[0, :6, :6] = 1.5  # ties, as in silence-padded patches
  x = jnp.asarray(x)
  plain = lambda x: nn.max_pool(x, (3, 3), strides=(3, 3), padding='VALID')
  fast = lambda x: layers.max_pool(x, (3, 3))
  np.testing.assert_array_equal(fast(x), plain(x))
  weights = jnp.asarray(rng.normal(size=plain(x).shape), jnp.float32)
  grad = lambda f: jax.grad(lambda x: jnp.sum(f(x) * weights))(x)
  np.testing.assert_array_equal(grad(fast), grad(plain))
