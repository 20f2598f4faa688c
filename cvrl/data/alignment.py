"""Score <-> audio time maps from measure annotations.

Every version of a piece carries a monotone list of (seconds, measure position)
pairs. Interpolating it gives that version's seconds <-> measure map; composing
two maps sends a position in version a to the corresponding one in version b.
This is the one idea the cross-version pretext task stands on, so it lives in
its own small module of pure functions on arrays.
"""

from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class TimeMap:
  """Monotone seconds <-> measure-position map of one version.

  Attributes:
    seconds: [K] strictly increasing annotation times in the recording.
    measures: [K] strictly increasing measure positions at those times.
  """

  seconds: np.ndarray
  measures: np.ndarray

  def __post_init__(self):
    seconds = np.asarray(self.seconds, dtype=np.float64)
    measures = np.asarray(self.measures, dtype=np.float64)
    if seconds.ndim != 1 or seconds.shape != measures.shape or seconds.size < 2:
      raise ValueError(
          'a time map needs two equally long 1-d arrays with >= 2 entries, got '
          f'seconds {seconds.shape} and measures {measures.shape}')
    for name, values in (('seconds', seconds), ('measures', measures)):
      if not np.all(np.isfinite(values)):
        raise ValueError(f'time map {name} contain non-finite values')
      step = np.diff(values)
      if np.any(step <= 0):
        row = int(np.argmax(step <= 0)) + 1
        raise ValueError(
            f'time map {name} are not strictly increasing at entry {row}: '
            f'{values[row - 1]!r} then {values[row]!r}')
    object.__setattr__(self, 'seconds', seconds)
    object.__setattr__(self, 'measures', measures)

  @property
  def first_measure(self) -> float:
    return float(self.measures[0])

  @property
  def last_measure(self) -> float:
    return float(self.measures[-1])

  @property
  def start_seconds(self) -> float:
    return float(self.seconds[0])

  @property
  def end_seconds(self) -> float:
    return float(self.seconds[-1])

  def measure_at(self, seconds) -> np.ndarray:
    """Measure position at `seconds`; NaN outside the annotated span."""
    seconds = np.asarray(seconds, dtype=np.float64)
    out = np.interp(seconds, self.seconds, self.measures)
    inside = (seconds >= self.seconds[0]) & (seconds <= self.seconds[-1])
    return np.where(inside, out, np.nan)

  def seconds_at(self, measures) -> np.ndarray:
    """Time in the recording of measure position `measures`; NaN outside."""
    measures = np.asarray(measures, dtype=np.float64)
    out = np.interp(measures, self.measures, self.seconds)
    inside = (measures >= self.measures[0]) & (measures <= self.measures[-1])
    return np.where(inside, out, np.nan)


def frame_times(num_frames: int, frame_rate: float) -> np.ndarray:
  """Centre time in seconds of frames 0..num_frames-1 (librosa's centred STFT)."""
  return np.arange(num_frames, dtype=np.float64) / frame_rate


def frame_measures(time_map: TimeMap, num_frames: int,
                   frame_rate: float) -> np.ndarray:
  """[num_frames] measure position of every frame, NaN outside the span."""
  return time_map.measure_at(frame_times(num_frames, frame_rate))


def valid_frame_range(time_map: TimeMap, num_frames: int,
                      frame_rate: float) -> tuple[int, int]:
  """Half-open [lo, hi) range of frames that lie inside the annotated span.

  Samplers draw only from this range, so no example is ever taken from the
  unannotated silence or applause before the first / after the last measure.
  """
  lo = int(np.ceil(time_map.start_seconds * frame_rate - 1e-9))
  hi = int(np.floor(time_map.end_seconds * frame_rate + 1e-9)) + 1
  return max(lo, 0), min(hi, num_frames)


def map_seconds(seconds, source: TimeMap, target: TimeMap) -> np.ndarray:
  """Seconds in version `source` -> corresponding seconds in `target`.

  NaN where the position is outside either version's annotated span.
  """
  return target.seconds_at(source.measure_at(seconds))


def map_frames(frames, source: TimeMap, target: TimeMap,
               frame_rate: float) -> np.ndarray:
  """Frames of version `source` -> fractional frame positions in `target`.

  Positions stay fractional so that mapping there and back is exact; round
  with `nearest_frames` only where a patch is cut. NaN outside either span.
  """
  seconds = np.asarray(frames, dtype=np.float64) / frame_rate
  return map_seconds(seconds, source, target) * frame_rate


def nearest_frames(positions, time_map: TimeMap,
                   frame_rate: float) -> np.ndarray:
  """Fractional frame positions -> nearest annotated int64 frames, -1 for NaN.

  Kept inside the annotated frames, where plain rounding would step half a
  frame past the first or last annotation.
  """
  positions = np.asarray(positions, dtype=np.float64)
  inside = np.isfinite(positions)
  lo, hi = valid_frame_range(time_map, np.iinfo(np.int64).max, frame_rate)
  nearest = np.clip(np.rint(np.where(inside, positions, lo)), lo, hi - 1)
  return np.where(inside, nearest, -1).astype(np.int64)
