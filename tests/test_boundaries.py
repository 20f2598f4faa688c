"""SSM evaluation: fast novelty == libfmp, boundary P/R/F, peak picking."""

import json

import libfmp.c4
import numpy as np
import pytest

import helpers
from cvrl.evaluation import boundaries as ssm


@pytest.mark.parametrize('n,half', [(50, 3), (120, 10), (40, 30), (7, 12)])
def test_fast_novelty_equals_libfmp(n, half):
  rng = np.random.default_rng(n + half)
  x = rng.normal(size=(n, 6))
  for s in (rng.random((n, n)), x @ x.T):  # arbitrary and symmetric SSMs
    expected = libfmp.c4.compute_novelty_ssm(s, L=half, var=0.5)
    np.testing.assert_allclose(ssm.novelty(s, half, 0.5), expected, atol=1e-6,
                               rtol=0)


def test_kernel_is_libfmps():
  v = ssm.checkerboard_vector(5, 0.5)
  kernel = np.outer(v, v) / np.sum(np.abs(np.outer(v, v)))
  np.testing.assert_allclose(
      kernel, libfmp.c4.compute_kernel_checkerboard_gaussian(L=5, var=0.5),
      atol=1e-12)


def test_boundary_prf_hand_made():
  p, r, f = ssm.boundary_prf(np.array([10.0, 30.0, 50.0]),
                             np.array([11.0, 29.5, 70.0]), 3.0)
  assert (p, r, f) == pytest.approx((2 / 3, 2 / 3, 2 / 3))
  # Two estimates near one reference: only one may match it.
  p, r, f = ssm.boundary_prf(np.array([10.0]), np.array([9.0, 11.0]), 3.0)
  assert (p, r, f) == pytest.approx((0.5, 1.0, 2 / 3))
  assert ssm.boundary_prf(np.array([10.0]), np.array([14.0]), 3.0) == (0, 0, 0)
  assert ssm.boundary_prf(np.zeros(0), np.zeros(0)) == (1.0, 1.0, 1.0)
  assert ssm.boundary_prf(np.array([5.0]), np.zeros(0)) == (0.0, 0.0, 0.0)


def test_peaks_are_found_apart_and_above_the_local_average():
  rate = 5.0
  t = np.arange(0, 100, 1 / rate)
  curve = sum(np.exp(-0.5 * ((t - c) / 0.5) ** 2) for c in (20, 22, 50, 80))
  peaks = ssm.pick_peaks(curve, rate, ssm.SSMSettings())
  # 20 and 22 are closer than 6 s: one of them survives.
  assert len(peaks) == 3
  np.testing.assert_allclose(peaks[1:], [50, 80], atol=0.21)


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
  pngs = sorted(p.name for p in (trained_workdir / 'ssm').glob('*.png'))
  assert pngs == ['embedding-f.png', 'embedding-p3-a.png']
  assert 'embedding vs ref_i: F' in result.stdout
