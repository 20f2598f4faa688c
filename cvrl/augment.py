"""Spectrogram augmentations of the published method, on dB features in NumPy.

They run in the input pipeline's worker processes, on each excerpt
independently, before standardisation. Why there and not on device: on CPU
the train step is the bottleneck and the workers run beside it, so work
moved into them is free (benchmarks/train_throughput.py measures both sides;
README, "Training").

The published ranges are for magnitude spectrograms; cvrl caches dB
(`cvrl/audio.py`), so gain and noise act on magnitudes recovered from dB:
gain x(1 +- 20 %) is +-1.6 dB, and the uniform +-0.05 noise is relative to
the excerpt's peak magnitude and clipped at 0 (then back to dB). EQ is our
form of "random EQ": a random tilt plus one random bell over frequency.

Patches are [frames, bins, channels]; HCQT harmonics share every shift/mask.
"""

from __future__ import annotations

import ml_collections
import numpy as np

# The dB floor of the cached features (audio.py): silence, and what masks
# and edge padding fill in (the original pads and masks with zero magnitude).
SILENCE_DB = -100.0


def warp_margin(patch_frames: int, config: ml_collections.ConfigDict) -> int:
  """Frames to cut on each side of the centre so a time warp stays inside."""
  stretch = config.time_warp.max_stretch if _on(config, 'time_warp') else 0.0
  return int(np.ceil((patch_frames // 2 + 1) * (1 + stretch))) + 1


def _on(config, name) -> bool:
  return bool(config.enabled) and config[name].p > 0


def _happens(config, name, rng: np.random.Generator) -> bool:
  return _on(config, name) and rng.random() < config[name].p


def time_warp(window: np.ndarray, patch_frames: int, stretch: float) -> np.ndarray:
  """Centre `patch_frames` of `window`, resampled linearly by `stretch`.

  stretch 1 cuts the centre frames exactly (integer positions).
  """
  centre = window.shape[0] // 2
  positions = centre + (np.arange(patch_frames) - patch_frames // 2) * stretch
  lo = np.floor(positions).astype(np.int64)
  frac = (positions - lo).astype(np.float32)
  hi = np.minimum(lo + 1, window.shape[0] - 1)
  shape = (-1,) + (1,) * (window.ndim - 1)
  return (window[lo] * (1 - frac.reshape(shape))
          + window[hi] * frac.reshape(shape))


def bin_shift(patch: np.ndarray, shift: int) -> np.ndarray:
  """Shift along frequency by `shift` bins, repeating the edge bin."""
  bins = patch.shape[1]
  source = np.clip(np.arange(bins) - shift, 0, bins - 1)
  return patch[:, source]


def eq_curve(bins: int, rng: np.random.Generator, max_db: float,
             max_tilt_db: float) -> np.ndarray:
  """[bins] dB: a random tilt plus one random bell (microphone/room colour)."""
  position = np.linspace(-1.0, 1.0, bins)
  tilt = rng.uniform(-max_tilt_db, max_tilt_db) * position
  centre = rng.uniform(-1.0, 1.0)
  width = rng.uniform(0.05, 0.5)
  bell = rng.uniform(-max_db, max_db) * np.exp(
      -0.5 * np.square((position - centre) / width))
  return (tilt + bell).astype(np.float32)


def add_noise(patch: np.ndarray, amplitude: float,
              rng: np.random.Generator) -> np.ndarray:
  """Uniform +-amplitude noise on magnitudes relative to the peak, clipped at 0."""
  peak = patch.max()
  magnitude = np.power(10.0, (patch - peak) / 20.0, dtype=np.float32)
  magnitude += rng.uniform(-amplitude, amplitude, patch.shape).astype(np.float32)
  floor = 10.0 ** ((SILENCE_DB - peak) / 20.0)
  return peak + 20.0 * np.log10(np.maximum(magnitude, max(floor, 1e-30)))


def augment(window: np.ndarray, patch_frames: int,
            config: ml_collections.ConfigDict,
            rng: np.random.Generator) -> np.ndarray:
  """A window of dB frames around a centre -> one augmented patch.

  Args:
    window: [2 * warp_margin + 1, bins, channels] float32 dB, centred.
    patch_frames: frames of the output patch.
    config: the `augment` section of a training config.
    rng: this excerpt's generator (every excerpt draws its own).
  Returns:
    [patch_frames, bins, channels] float32 dB.
  """
  stretch = 1.0
  if _happens(config, 'time_warp', rng):
    stretch = 1.0 + rng.uniform(-1, 1) * config.time_warp.max_stretch
  patch = time_warp(window, patch_frames, stretch)
  bins = patch.shape[1]
  if _happens(config, 'bin_shift', rng):
    limit = config.bin_shift.max_bins
    patch = bin_shift(patch, int(rng.integers(-limit, limit + 1)))
  if _happens(config, 'eq', rng):
    patch = patch + eq_curve(bins, rng, config.eq.max_db,
                             config.eq.max_tilt_db)[None, :, None]
  if _happens(config, 'gain', rng):
    change = config.gain.max_change
    patch = patch + np.float32(20 * np.log10(rng.uniform(1 - change, 1 + change)))
  if _happens(config, 'noise', rng):
    patch = add_noise(patch, config.noise.max_amplitude, rng)
  if _happens(config, 'bin_mask', rng):
    width = int(rng.integers(0, config.bin_mask.max_bins + 1))
    start = int(rng.integers(0, bins - width + 1))
    patch[:, start:start + width] = SILENCE_DB
  if _happens(config, 'time_mask', rng):
    width = int(rng.integers(0, config.time_mask.max_frames + 1))
    start = int(rng.integers(0, patch_frames - width + 1))
    patch[start:start + width] = SILENCE_DB
  return patch.astype(np.float32, copy=False)
