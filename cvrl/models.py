"""The published VGG-like CNN encoder, with an optional classifier head for Sup.

Input patches are [batch, time, bins, channels]: 201 x 252 x 5 for the
published HCQT, [frames, n_mels, 1] for log-mel. Every convolution is
Conv -> BatchNorm -> LeakyReLU, as in the original.

BatchNorm under pmap: `axis_name='batch'` makes the batch statistics means
over the *global* batch (all devices, all hosts), so training with 8 devices
computes what one device would on the whole batch, and the running averages
stay identical on every replica without a separate sync. The original
trained on one GPU, where BN saw the whole batch: this reproduces it.
"""

from __future__ import annotations

import functools
from typing import NamedTuple, Optional, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from cvrl import layers


def l2_normalize(x: jax.Array, eps: float = 1e-12) -> jax.Array:
  return x * jax.lax.rsqrt(jnp.maximum(jnp.sum(x * x, -1, keepdims=True), eps))


FORMULATIONS = ('fast', 'plain')  # config.compute.formulation: also 'auto'


class FastConv(nn.Module):
  """nn.Conv without bias, same parameter ('kernel', HWIO) and initialiser,
  computed with cvrl/layers.py's fast gradients where they apply."""
  features: int
  kernel_size: tuple[int, int]
  strides: tuple[int, int] = (1, 1)
  padding: str = 'VALID'
  time_dilation: int = 1

  @nn.compact
  def __call__(self, x):
    kh, kw = self.kernel_size
    kernel = self.param('kernel', nn.initializers.lecun_normal(),
                        (kh, kw, x.shape[-1], self.features))
    if (kh == 1 and self.strides == (1, kw) and self.padding == 'VALID'):
      return layers.strided_frequency_conv(x, kernel)
    if self.strides == (1, 1) and self.time_dilation == 1:
      return layers.conv2d(x, kernel, self.padding)
    return jax.lax.conv_general_dilated(  # dense evaluation: forward only
        x, kernel, self.strides, self.padding,
        rhs_dilation=(self.time_dilation, 1),
        dimension_numbers=layers.DIMENSIONS)


class ConvBlock(nn.Module):
  """Conv (no bias: BN follows) -> BatchNorm -> LeakyReLU."""
  features: int
  kernel: tuple[int, int]
  strides: tuple[int, int] = (1, 1)
  padding: str = 'VALID'
  leaky_slope: float = 0.3
  axis_name: Optional[str] = None
  time_dilation: int = 1  # > 1 only in dense evaluation (cvrl/sliding.py)
  formulation: str = 'fast'  # 'plain': flax's nn.Conv (same parameters)

  @nn.compact
  def __call__(self, x, train: bool):
    if self.formulation == 'fast':
      x = FastConv(self.features, self.kernel, self.strides, self.padding,
                   self.time_dilation, name='Conv_0')(x)
    else:
      x = nn.Conv(self.features, self.kernel, self.strides, self.padding,
                  kernel_dilation=(self.time_dilation, 1), use_bias=False,
                  name='Conv_0')(x)
    # Keras' BatchNormalization defaults (momentum 0.99, eps 1e-3).
    x = nn.BatchNorm(use_running_average=not train, momentum=0.99,
                     epsilon=1e-3, axis_name=self.axis_name)(x)
    return nn.leaky_relu(x, self.leaky_slope)


class Layer(NamedTuple):
  """One layer of the conv trunk: a ConvBlock, or a max-pool (kind 'pool')."""
  kind: str  # 'conv' | 'pool'
  name: str
  features: int
  kernel: tuple[int, int]
  strides: tuple[int, int]
  padding: str


class Encoder(nn.Module):
  """Patch -> 128-d embedding (L2-normalised) and, for Sup, class logits.

  Layers (docs/protocol.md, "Network"): a 15x15 pre-filter; a 1x3 stride-3
  convolution over frequency (3 HCQT bins per semitone -> 1); three blocks
  of two 3x3 convolutions and a 3x3 max-pool; one convolution spanning the
  remaining time x frequency extent (5x1 for the published input); then
  dense layers with dropout to the embedding.
  """
  prefilter_features: int = 64
  prefilter_kernel: tuple[int, int] = (15, 15)
  freq_stride: int = 3
  block_features: Sequence[int] = (64, 128, 256)
  final_features: int = 512
  dense_features: Sequence[int] = (256, 128)
  embedding_dim: int = 128
  dropout_rate: float = 0.5
  leaky_slope: float = 0.3
  num_classes: int = 0  # > 0: also return logits (Sup)
  axis_name: Optional[str] = None
  formulation: str = 'fast'  # 'plain': flax's conv and pool (cvrl/layers.py)

  def trunk(self) -> list[Layer]:
    """The layers before the final conv, as data (also read by cvrl/sliding.py)."""
    layers = [
        Layer('conv', 'prefilter', self.prefilter_features,
              tuple(self.prefilter_kernel), (1, 1), 'SAME'),
        Layer('conv', 'semitones', self.prefilter_features,
              (1, self.freq_stride), (1, self.freq_stride), 'VALID')]
    for i, features in enumerate(self.block_features):
      layers += [Layer('conv', f'block{i}_conv0', features, (3, 3), (1, 1), 'VALID'),
                 Layer('conv', f'block{i}_conv1', features, (3, 3), (1, 1), 'VALID'),
                 Layer('pool', f'block{i}_pool', 0, (3, 3), (3, 3), 'VALID')]
    return layers

  def conv_block(self, layer: Layer, time_dilation: int = 1,
                 **kwargs) -> ConvBlock:
    """The ConvBlock of `layer` (variables: those under its name)."""
    return ConvBlock(layer.features, layer.kernel, layer.strides, layer.padding,
                     self.leaky_slope, self.axis_name, time_dilation,
                     self.formulation, **kwargs)

  @nn.compact
  def __call__(self, inputs, train: bool = False, from_trunk: bool = False):
    """Patches -> dict(embedding[, logits]).

    from_trunk: `inputs` are already the trunk's output (the last pooled
    feature map), as cvrl/sliding.py computes it for many patches at once.
    """
    x = inputs
    if self.formulation not in FORMULATIONS:
      raise ValueError(f'config.compute.formulation={self.formulation!r}: '
                       f"one of {FORMULATIONS + ('auto',)}")
    conv = functools.partial(ConvBlock, leaky_slope=self.leaky_slope,
                             axis_name=self.axis_name,
                             formulation=self.formulation)
    for layer in ([] if from_trunk else self.trunk()):
      if layer.kind == 'pool' and (self.formulation == 'fast' and
                                   layer.kernel == layer.strides):
        x = layers.max_pool(x, layer.kernel)
      elif layer.kind == 'pool':
        x = nn.max_pool(x, layer.kernel, strides=layer.strides, padding='VALID')
      else:
        x = self.conv_block(layer, name=layer.name)(x, train)
    if min(x.shape[1:3]) < 1:
      raise ValueError(
          f'input {tuple(inputs.shape[1:])} is too small for '
          f'{len(self.block_features)} conv blocks (3x3, 3x3, pool 3): use '
          'longer patches (config.data.patch_frames), more bins, a smaller '
          'config.model.freq_stride or fewer config.model.block_features')
    x = conv(self.final_features, tuple(x.shape[1:3]), name='final')(x, train)
    # The final conv spans the whole remaining map, so this mean (the
    # "pooled output of the last convolution") only drops the 1 x 1.
    x = jnp.mean(x, axis=(1, 2))
    hidden = dict(final=x)  # what `layer_names` offers besides the embedding
    dense_bn = functools.partial(nn.BatchNorm, use_running_average=not train,
                                 momentum=0.99, epsilon=1e-3,
                                 axis_name=self.axis_name)
    for i, features in enumerate(self.dense_features):
      x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
      x = nn.Dense(features, name=f'dense{i}')(x)
      x = nn.leaky_relu(dense_bn(name=f'dense{i}_bn')(x), self.leaky_slope)
      hidden[f'dense{i}'] = x
    x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
    z = nn.Dense(self.embedding_dim, name='embedding')(x)
    out = dict(embedding=l2_normalize(z), **hidden)
    if self.num_classes:
      out['logits'] = nn.Dense(self.num_classes, name='classifier')(z)
    return out


def layer_names(model: Encoder) -> tuple[str, ...]:
  """Layers whose output can be evaluated, from the embedding inwards.

  'embedding' is the published L2-normalised output; 'dense<i>' the dense
  layers before it (after BatchNorm and LeakyReLU), 'final' the output of the
  last convolution. In SimCLR-style learning the layers before the
  projection often carry more of what downstream tasks need.
  """
  dense = tuple(f'dense{i}' for i in reversed(range(len(model.dense_features))))
  return ('embedding',) + dense + ('final',)


def layer_dim(model: Encoder, layer: str) -> int:
  """Width of a layer's output (one of `layer_names`)."""
  if layer not in layer_names(model):
    raise ValueError(f'layer {layer!r}: one of {layer_names(model)}')
  if layer == 'embedding':
    return model.embedding_dim
  if layer == 'final':
    return model.final_features
  return model.dense_features[int(layer[len('dense'):])]


def input_shape(config: ml_collections.ConfigDict) -> tuple[int, int, int]:
  """(time, bins, channels) of the patches a training config produces."""
  features = config.features
  if features.kind == 'hcqt':
    bins, channels = features.hcqt.n_bins, len(features.hcqt.harmonics)
  else:
    bins, channels = features.logmel.n_mels, 1
  return (config.data.patch_frames, bins, channels)


def formulation(config: ml_collections.ConfigDict) -> str:
  """config.compute.formulation, 'auto' resolved for this process' backend."""
  # Outside config.model, so workdirs trained before it existed resume.
  name = config.get('compute', {}).get('formulation', 'auto')
  if name == 'auto':
    return 'fast' if jax.default_backend() == 'cpu' else 'plain'
  return name


def create_model(config: ml_collections.ConfigDict, num_classes: int = 0,
                 axis_name: Optional[str] = None) -> Encoder:
  # Tuples, also for configs read back from config.json (lists), so the
  # module stays hashable (a static argument of jit).
  fields = {k: tuple(v) if isinstance(v, list) else v
            for k, v in config.model.to_dict().items()}
  return Encoder(**fields, num_classes=num_classes, axis_name=axis_name,
                 formulation=formulation(config))
