"""Alignment: seconds <-> measure maps and frame mapping between versions."""

import numpy as np
import pytest

from cvrl.data import alignment
from helpers import HOP, SR, tempo_curve_seconds

FRAME_RATE = SR / HOP


def annotated_map(seconds_per_measure, rubato, offset, step=0.125):
  measures = np.arange(1, 33.0001, step)
  return alignment.TimeMap(
      tempo_curve_seconds(measures, seconds_per_measure, rubato, offset),
      measures)


def true_measure(seconds, seconds_per_measure, rubato, offset):
  """Measure position from the continuous tempo curve (dense inversion)."""
  dense = np.linspace(1, 33, 200001)
  return np.interp(seconds, tempo_curve_seconds(
      dense, seconds_per_measure, rubato, offset), dense)


@pytest.mark.parametrize('curve_a,curve_b', [
    ((2.0, 0.0, 0.5), (1.5, 0.2, 1.3)),
    ((1.2, -0.25, 0.0), (2.7, 0.15, 4.0)),
])
def test_mapped_frames_within_one_frame_of_truth(curve_a, curve_b):
  map_a, map_b = annotated_map(*curve_a), annotated_map(*curve_b)
  lo, hi = alignment.valid_frame_range(map_a, 10**6, FRAME_RATE)
  frames_a = np.arange(lo, hi)
  truth = tempo_curve_seconds(
      true_measure(frames_a / FRAME_RATE, *curve_a), *curve_b) * FRAME_RATE
  mapped = alignment.map_frames(frames_a, map_a, map_b, FRAME_RATE)
  nearest = alignment.nearest_frames(mapped, map_b, FRAME_RATE)
  assert frames_a.size > 1000
  assert np.all(np.isfinite(mapped)) and np.all(nearest >= 0)
  assert np.max(np.abs(mapped - truth)) <= 1.0
  assert np.max(np.abs(nearest - truth)) <= 1.0


def test_round_trip_lands_within_one_frame():
  map_a, map_b = annotated_map(2.0, 0.1, 0.3), annotated_map(1.1, -0.2, 2.0)
  lo, hi = alignment.valid_frame_range(map_a, 10**6, FRAME_RATE)
  frames = np.arange(lo, hi)
  there = alignment.map_frames(frames, map_a, map_b, FRAME_RATE)
  back = alignment.map_frames(there, map_b, map_a, FRAME_RATE)
  assert np.max(np.abs(back - frames)) < 1e-6


def test_positions_outside_span_are_never_mapped():
  map_a = alignment.TimeMap(np.array([1.0, 3.0]), np.array([1.0, 2.0]))
  map_b = alignment.TimeMap(np.array([0.0, 4.0]), np.array([1.0, 2.0]))
  frames = np.arange(0, int(5 * FRAME_RATE))
  mapped = alignment.nearest_frames(
      alignment.map_frames(frames, map_a, map_b, FRAME_RATE), map_b, FRAME_RATE)
  seconds = frames / FRAME_RATE
  outside = (seconds < 1.0) | (seconds > 3.0)
  assert np.all(mapped[outside] == -1)
  assert np.all(mapped[~outside] >= 0)
  measures = alignment.frame_measures(map_a, frames.size, FRAME_RATE)
  assert np.all(np.isnan(measures[outside]))
  lo, hi = alignment.valid_frame_range(map_a, frames.size, FRAME_RATE)
  assert np.all(np.isfinite(measures[lo:hi]))
  assert np.isnan(measures[lo - 1]) and np.isnan(measures[hi])


def test_seconds_and_measures_invert_each_other():
  time_map = annotated_map(1.7, 0.2, 0.8)
  seconds = np.linspace(time_map.start_seconds, time_map.end_seconds, 777)
  np.testing.assert_allclose(
      time_map.seconds_at(time_map.measure_at(seconds)), seconds, atol=1e-9)


def test_rejects_non_monotone_maps():
  with pytest.raises(ValueError, match='not strictly increasing at entry 2'):
    alignment.TimeMap(np.array([0.0, 1.0, 0.5]), np.array([1.0, 2.0, 3.0]))
  with pytest.raises(ValueError, match='measures'):
    alignment.TimeMap(np.array([0.0, 1.0]), np.array([2.0, 2.0]))
