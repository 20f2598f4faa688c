"""SSM boundary evaluation: each published step on hand-made inputs, the binary."""

import json

import libfmp.c4
import numpy as np
import pytest

import helpers
from cvrl.evaluation import boundaries as ssm


PUBLISHED = ssm.SSMSettings()
V1 = ssm.SSMSettings(procedure='cvrl-v1', kernel_var=0.5, peak_floor=0.05)
RATE = 22050 / 512  # 43.07 Hz


def test_smoothing_is_upfirdn_with_the_published_window_and_cut():
  """w = int(1 s * 43.07 + 0.5) = 43 (odd), d = int(43.07 / 5 + 0.5) = 9,
  c = (43 - 1) // 18 = 2; new rate 4.785 Hz; checked by an explicit sum."""
  window = ssm.smoothing_window(RATE, PUBLISHED)
  assert len(window) == 43 and window.sum() == pytest.approx(1.0)
  np.testing.assert_allclose(window, np.hanning(45)[1:-1] / np.hanning(45).sum())
  assert ssm.downsampling_factor(RATE, PUBLISHED) == 9
  x = np.random.default_rng(0).normal(size=(100, 2))
  out, rate = ssm.smooth_downsample(x, RATE, PUBLISHED)
  assert rate == pytest.approx(4.785, abs=1e-3)
  assert out.shape == (12, 2)  # ceil(100 / 9)
  for j in range(12):  # upfirdn: y[m] = sum_k h[k] x[9m - k]; cut at c = 2
    m = j + 2
    expected = sum(window[k] * x[9 * m - k] for k in range(43)
                   if 0 <= 9 * m - k < 100)
    np.testing.assert_allclose(out[j], expected, atol=1e-12)


def test_rows_are_unit_and_silence_is_uniform():
  s, _ = ssm.self_similarity(np.vstack([np.ones((60, 3)), np.zeros((60, 3))]),
                             RATE, PUBLISHED)
  assert np.allclose(np.diag(s), 1.0)
  assert s[-1, -2] == pytest.approx(1.0)  # two silent frames: identical


def test_kernel_size_and_variance():
  rate = 4.785
  assert ssm.kernel_half(2.0, rate, PUBLISHED) == 10  # int(9.57 + 0.5): 2k s
  assert ssm.kernel_half(2.0, rate, V1) == 5  # round(4.785): k s
  s = np.random.default_rng(1).random((40, 40))
  expected = libfmp.c4.compute_novelty_ssm(
      s, kernel=libfmp.c4.compute_kernel_checkerboard_gaussian(10, var=1.0),
      L=10, exclude=True)
  np.testing.assert_allclose(ssm.novelty(s, 10, PUBLISHED), expected)
  # Variance 1.0 tapers less than 0.5: the kernel's corners weigh more.
  wide = libfmp.c4.compute_kernel_checkerboard_gaussian(10, var=1.0)
  narrow = libfmp.c4.compute_kernel_checkerboard_gaussian(10, var=0.5)
  assert abs(wide[0, 0]) > abs(narrow[0, 0])


def test_first_and_last_l_novelty_values_are_excluded():
  x = np.repeat(np.eye(3), 20, axis=0)  # boundaries at frames 20 and 40
  curve = ssm.novelty(x @ x.T, 8, PUBLISHED)
  assert np.all(curve[:8] == 0) and np.all(curve[-8:] == 0)
  assert min(abs(np.argmax(curve) - b) for b in (20, 40)) <= 1
  assert np.any(ssm.novelty(x @ x.T, 8, V1)[:8] != 0)


def test_peak_threshold_is_a_tenth_of_the_maximum_or_the_median():
  rate = 1.0
  curve = np.zeros(200)
  curve[20] = 1.0  # the maximum
  curve[60] = 0.09  # below 0.1 * max
  curve[100] = 0.5  # kept
  curve[104] = 0.45  # within 6 s of 100: distance 7 frames suppresses it
  curve[150:170] = 0.3  # a plateau: the median filter there is 0.3 ...
  curve[160] = 0.31  # ... so this bump is above it
  curve[140] = 0.2  # isolated, median 0: kept
  peaks = ssm.pick_peaks(curve, rate, kernel_seconds=9.0, settings=PUBLISHED)
  np.testing.assert_array_equal(peaks, [20, 100, 140, 160])
  curve[165] = 0.31  # a second bump on the plateau, 5 frames away: only
  peaks = ssm.pick_peaks(curve, rate, kernel_seconds=9.0, settings=PUBLISHED)
  assert (160 in peaks) + (165 in peaks) == 1  # one of the two survives


def test_matching_counts_any_reference_within_tolerance():
  # Two estimates near one reference are both hits (not one-to-one).
  assert ssm.boundary_prf(np.array([10.0, 30.0]), np.array([9.0, 11.0, 50.0]),
                          3.0) == pytest.approx((2 / 3, 2 / 3, 2 / 3))
  assert ssm.boundary_prf(np.array([10.0]), np.array([9.0, 11.0]),
                          3.0) == pytest.approx((1.0, 1.0, 1.0))
  assert ssm.boundary_prf(np.array([10.0]), np.array([9.0, 11.0]), 3.0,
                          one_to_one=True) == pytest.approx((0.5, 1.0, 2 / 3))
  assert ssm.boundary_prf(np.array([10.0]), np.array([14.0]), 3.0) == (0, 0, 0)
  # The published empty-list conventions.
  assert ssm.boundary_prf(np.zeros(0), np.zeros(0)) == (1.0, 1.0, 1.0)
  assert ssm.boundary_prf(np.zeros(0), np.array([5.0])) == (0.0, 1.0, 0.0)
  assert ssm.boundary_prf(np.array([5.0]), np.zeros(0)) == (1.0, 0.0, 0.0)


def blocks(segment_frames, dims=4):
  """Features constant within segments, different between them."""
  rows = [np.eye(dims)[i % dims] for i, n in enumerate(segment_frames)
          for _ in range(n)]
  return np.array(rows)


def test_features_equal_to_ref_i_find_its_boundaries():
  rate = 43.0
  instruments = blocks([900, 1300, 700, 1100])
  pitch = blocks([400] * 10, dims=12)
  result = ssm.evaluate_version(instruments * 2.0, instruments, pitch, rate,
                                [10.0, 20.0])
  assert result['ref_i']['f'] == [1.0, 1.0]
  assert max(result['ref_h']['f']) < 1.0


def test_ssm_binary_writes_json_and_plots(trained_workdir):
  result = helpers.run_python('-m', 'cvrl.ssm', f'--workdir={trained_workdir}',
                               '--kernel_seconds=2,4', '--plots=1')
  assert result.returncode == 0, result.stderr
  report = json.loads((trained_workdir / 'ssm' / 'embedding.json').read_text())
  assert report['versions'] == 3 and report['kernel_seconds'] == [2.0, 4.0]
  for ref in ('ref_i', 'ref_h'):
    assert len(report['mean'][ref]['f']) == 2
  pngs = sorted(p.name for p in (trained_workdir / 'ssm').glob('embedding-*.png'))
  assert pngs == ['embedding-f.png', 'embedding-p3-a.png']
  assert 'embedding vs ref_i: F' in result.stdout


def test_ssm_binary_on_the_last_convolution(trained_workdir):
  result = helpers.run_python('-m', 'cvrl.ssm', f'--workdir={trained_workdir}',
                              '--kernel_seconds=2', '--plots=0',
                              '--layer=final', '--hop=2')
  assert result.returncode == 0, result.stderr
  report = json.loads((trained_workdir / 'ssm' /
                       'embedding_final.json').read_text())
  assert report['layer'] == 'final' and report['versions'] == 3
  assert 'embedding_final vs ref_i: F' in result.stdout


def test_reference_peaks_are_cached_by_content(tmp_path, monkeypatch):
  rate, sizes = 5.0, [10.0, 20.0]
  reference, _ = ssm.self_similarity(blocks([300, 400, 250]), rate,
                                     ssm.SSMSettings())
  expected = ssm.peaks_per_kernel(reference, rate, sizes, ssm.SSMSettings())
  cached = ssm.peaks_per_kernel(reference, rate, sizes, ssm.SSMSettings(),
                                tmp_path)
  assert len(list(tmp_path.iterdir())) == 1
  # Read back without computing anything.
  monkeypatch.setattr(ssm, 'novelty', lambda *a: pytest.fail('recomputed'))
  again = ssm.peaks_per_kernel(reference, rate, sizes, ssm.SSMSettings(),
                               tmp_path)
  for e, c, a in zip(expected, cached, again):
    np.testing.assert_array_equal(e, c)
    np.testing.assert_array_equal(e, a)
  assert len(expected[0]) == 2  # the two block boundaries (seconds 60, 140)
  # Another SSM or other settings is another entry, never a stale hit.
  monkeypatch.undo()
  ssm.peaks_per_kernel(reference[:-5, :-5], rate, sizes, ssm.SSMSettings(),
                       tmp_path)
  ssm.peaks_per_kernel(reference, rate, sizes,
                       ssm.SSMSettings(peak_floor=0.2), tmp_path)
  assert len(list(tmp_path.iterdir())) == 3
