"""Augmentations: exact when off, each one doing what it says."""

import numpy as np

from configs import base
from cvrl import augment


def config_with(only=None):
  config = base.augment_config(max_bins=4)
  for name in ('eq', 'time_warp', 'bin_shift', 'bin_mask', 'time_mask',
               'noise', 'gain'):
    config[name].p = 1.0 if name == only else 0.0
  return config


def window(frames=41, bins=16, channels=1, seed=0):
  rng = np.random.default_rng(seed)
  return rng.uniform(-80, -10, (frames, bins, channels)).astype(np.float32)


def test_no_augmentation_cuts_the_centre_exactly():
  w = window()
  out = augment.augment(w, 21, config_with(None), np.random.default_rng(0))
  np.testing.assert_array_equal(out, w[10:31])


def test_disabled_switch_turns_everything_off():
  config = base.augment_config(max_bins=4)
  config.enabled = False
  w = window()
  out = augment.augment(w, 21, config, np.random.default_rng(0))
  np.testing.assert_array_equal(out, w[10:31])


def test_warp_margin_covers_the_largest_stretch():
  config = base.augment_config(max_bins=4)
  margin = augment.warp_margin(21, config)
  w = window(frames=2 * margin + 1)
  for stretch in (1 - config.time_warp.max_stretch,
                  1 + config.time_warp.max_stretch):
    ramp = np.arange(w.shape[0], dtype=np.float32)[:, None, None] + 0 * w
    out = augment.time_warp(ramp, 21, stretch)
    # Linear positions, none clamped at the window's edge.
    np.testing.assert_allclose(np.diff(out[:, 0, 0]), stretch, rtol=1e-5)


def test_time_warp_interpolates_linearly():
  ramp = np.arange(21, dtype=np.float32)[:, None, None] * np.ones((1, 2, 1))
  out = augment.time_warp(ramp, 11, 1.1)
  np.testing.assert_allclose(out[:, 0, 0], 10 + (np.arange(11) - 5) * 1.1,
                             rtol=1e-6)


def test_bin_shift_repeats_the_edge_bin():
  patch = np.arange(6, dtype=np.float32)[None, :, None].repeat(2, axis=0)
  np.testing.assert_array_equal(augment.bin_shift(patch, 2)[0, :, 0],
                                [0, 0, 0, 1, 2, 3])
  np.testing.assert_array_equal(augment.bin_shift(patch, -2)[0, :, 0],
                                [2, 3, 4, 5, 5, 5])


def test_gain_is_a_constant_db_offset_within_range():
  w = window()
  out = augment.augment(w, 21, config_with('gain'), np.random.default_rng(3))
  offset = out - w[10:31]
  assert np.ptp(offset) < 1e-4
  assert abs(offset.mean()) <= 20 * np.log10(1.2) + 1e-5


def test_masks_set_silence():
  w = window()
  for name, axis in (('bin_mask', 1), ('time_mask', 0)):
    masked = 0
    for seed in range(10):
      out = augment.augment(w, 21, config_with(name),
                            np.random.default_rng(seed))
      silent = np.all(out == augment.SILENCE_DB, axis=tuple(
          a for a in range(3) if a != axis))
      masked += silent.sum()
      changed = out != w[10:31]
      assert np.all(out[changed] == augment.SILENCE_DB)
    assert masked > 0, name


def test_noise_is_relative_to_the_peak_and_never_above_it_by_much():
  w = window()
  out = augment.augment(w, 21, config_with('noise'), np.random.default_rng(0))
  peak = w[10:31].max()
  assert out.max() <= peak + 20 * np.log10(1.05) + 1e-4
  assert np.all(out >= augment.SILENCE_DB - 1e-3)
  assert not np.allclose(out, w[10:31])


def test_eq_is_smooth_over_frequency_and_the_same_in_every_frame():
  w = window()
  out = augment.augment(w, 21, config_with('eq'), np.random.default_rng(5))
  curve = (out - w[10:31])
  np.testing.assert_allclose(curve, np.broadcast_to(curve[:1], curve.shape),
                             atol=1e-4)
  assert np.abs(curve).max() <= 6.0 + 3.0 + 1e-4


def test_same_generator_same_patch_and_harmonics_shift_together():
  config = base.augment_config(max_bins=4)
  config.noise.p = 0.0  # noise is drawn per bin and channel
  w = window(channels=3)
  w[..., 1] = w[..., 0]
  a = augment.augment(w, 21, config, np.random.default_rng(9))
  b = augment.augment(w, 21, config, np.random.default_rng(9))
  np.testing.assert_array_equal(a, b)
  np.testing.assert_array_equal(a[..., 0], a[..., 1])


def test_demo_self_supervised_defaults_drop_eq_and_noise_only():
  published = base.augment_config(max_bins=4)
  for method in ('sv', 'cv'):
    demo = base.get_config(method, 'demo').augment
    assert demo.eq.p == 0.0 and demo.noise.p == 0.0
    for name in set(published) - {'enabled', 'eq', 'noise'}:
      assert demo[name].p == published[name].p, (method, name)
  # Sup was not ablated, and the published configuration stays published.
  for method, variant in (('sup', 'demo'), ('cv', 'paper'), ('sv', '')):
    config = base.get_config(method, variant).augment
    assert (config.eq.p, config.noise.p) == (1.0, 0.5), (method, variant)
