"""Frame-level references of any version: Ref_I (instruments), Ref_H (pitch classes).

Score-level annotations live in measure positions, once per piece; sampled
through a version's time map they label that version's frames without any
per-version work. Datasets that ship frame-wise arrays instead (the published
layout) are resampled to our frame grid by nearest frame.
"""

from __future__ import annotations

import dataclasses
from typing import Optional

import numpy as np

from cvrl.data import alignment
from cvrl.data import layout


@dataclasses.dataclass(frozen=True)
class References:
  """Frame-level targets of one version, all with `num_frames` rows.

  Attributes:
    measures: [F] float64 measure position of each frame, NaN outside the
      annotated span.
    instruments: [F, C] uint8 multi-hot instrument activity (Ref_I).
    pitch_classes: [F, 12] uint8 pitch-class activity (Ref_H), C = 0.
  """
  measures: np.ndarray
  instruments: np.ndarray
  pitch_classes: np.ndarray

  @property
  def valid(self) -> np.ndarray:
    """[F] bool: frames inside the annotated span (the only ones sampled)."""
    return np.isfinite(self.measures)


def span_activity(frame_measures: np.ndarray, starts: np.ndarray,
                  ends: np.ndarray, labels: np.ndarray,
                  num_labels: int) -> np.ndarray:
  """[F, num_labels] uint8: label l is on where start <= measure < end.

  `frame_measures` is non-decreasing where finite (a time map is monotone), so
  each span covers one contiguous run of frames, found by binary search; a
  difference array then sums all spans at once.
  """
  num_frames = frame_measures.shape[0]
  finite = np.flatnonzero(np.isfinite(frame_measures))
  out = np.zeros((num_frames, num_labels), np.uint8)
  if finite.size == 0 or starts.size == 0:
    return out
  inside = frame_measures[finite]
  lo = finite[0] + np.searchsorted(inside, starts, side='left')
  hi = finite[0] + np.searchsorted(inside, ends, side='left')
  counts = np.zeros((num_frames + 1, num_labels), np.int32)
  np.add.at(counts, (lo, labels), 1)
  np.add.at(counts, (hi, labels), -1)
  out[:] = np.cumsum(counts, axis=0)[:-1] > 0
  return out


def fold_pitch_classes(pitch_activity: np.ndarray) -> np.ndarray:
  """[F, 128] MIDI-pitch activity -> [F, 12] pitch-class activity (C = 0)."""
  if pitch_activity.shape[1] == 12:
    return (pitch_activity > 0).astype(np.uint8)
  pitches = np.arange(pitch_activity.shape[1])
  folded = np.zeros((pitch_activity.shape[0], 12), np.uint8)
  for pitch_class in range(12):
    folded[:, pitch_class] = np.any(
        pitch_activity[:, pitches % 12 == pitch_class] > 0, axis=1)
  return folded


def resample_frames(array: np.ndarray, source_rate: float, num_frames: int,
                    target_rate: float) -> np.ndarray:
  """Nearest-frame resampling of a frame-wise array to another frame grid."""
  if abs(source_rate - target_rate) < 1e-9 and array.shape[0] >= num_frames:
    return array[:num_frames]
  index = np.rint(np.arange(num_frames) * source_rate / target_rate)
  index = np.clip(index.astype(np.int64), 0, array.shape[0] - 1)
  return array[index]


def _load_framewise(path, key: str, columns: Optional[tuple[int, ...]],
                    default_rate: float) -> tuple[np.ndarray, float]:
  with np.load(path) as npz:
    array = npz[key]
    rate = float(npz['frame_rate']) if 'frame_rate' in npz else default_rate
  if columns is not None:
    array = array[:, list(columns)]
  return (array > 0).astype(np.uint8), rate


def version_references(dataset: layout.Dataset, info: layout.VersionInfo,
                       num_frames: int, frame_rate: float) -> References:
  """Ref_I / Ref_H of one version on a grid of `num_frames` at `frame_rate`.

  Frame-wise arrays win where a version has them; otherwise the piece's
  score-level CSVs are sampled through the version's time map. Instrument
  activity falls back to the instruments of the notes when a piece has notes
  but no instruments file.
  """
  version = info.version
  piece = dataset.pieces[version.piece]
  classes = dataset.instrument_classes
  measures = alignment.frame_measures(info.time_map, num_frames, frame_rate)
  instruments = np.zeros((num_frames, len(classes)), np.uint8)
  pitch_classes = np.zeros((num_frames, 12), np.uint8)

  notes = (layout.read_note_spans(piece.notes_csv, classes)
           if piece.notes_csv else None)
  if version.instruments_npz is not None:
    fmt = dataset.framewise
    array, rate = _load_framewise(version.instruments_npz, fmt.instrument_key,
                                  fmt.instrument_columns, fmt.frame_rate)
    instruments = resample_frames(array, rate, num_frames, frame_rate)
  elif piece.instruments_csv is not None:
    starts, ends, labels = layout.read_instrument_spans(piece.instruments_csv,
                                                        classes)
    instruments = span_activity(measures, starts, ends, labels, len(classes))
  elif notes is not None:
    starts, ends, _, labels = notes
    instruments = span_activity(measures, starts, ends, labels, len(classes))

  if version.notes_npz is not None:
    fmt = dataset.framewise
    array, rate = _load_framewise(version.notes_npz, fmt.pitch_key, None,
                                  fmt.frame_rate)
    pitch_classes = fold_pitch_classes(
        resample_frames(array, rate, num_frames, frame_rate))
  elif notes is not None:
    starts, ends, pitches, _ = notes
    pitch_classes = span_activity(measures, starts, ends, pitches % 12, 12)
  return References(measures, instruments, pitch_classes)
