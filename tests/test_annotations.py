"""Frame-level references Ref_I / Ref_H from score-level and frame-wise data."""

import numpy as np
import pytest

from cvrl.data import annotations
from cvrl.data import layout
from helpers import HOP, SR

RATE = SR / HOP


def test_span_activity_on_constructed_case():
  measures = np.array([np.nan, 1.0, 1.5, 2.0, 2.5, 3.0, np.nan])
  activity = annotations.span_activity(
      measures, starts=np.array([1.0, 2.0, 1.5]), ends=np.array([2.0, 3.5, 1.6]),
      labels=np.array([0, 1, 0]), num_labels=3)
  np.testing.assert_array_equal(activity, [
      [0, 0, 0], [1, 0, 0], [1, 0, 0], [0, 1, 0], [0, 1, 0], [0, 1, 0],
      [0, 0, 0]])


def test_fold_pitch_classes():
  pitches = np.zeros((2, 128))
  pitches[0, [60, 72, 61]] = 1
  pitches[1, 127] = 1  # G9
  np.testing.assert_array_equal(
      np.flatnonzero(annotations.fold_pitch_classes(pitches)[0]), [0, 1])
  np.testing.assert_array_equal(
      np.flatnonzero(annotations.fold_pitch_classes(pitches)[1]), [7])


def frame_at(seconds, rate=RATE):
  return int(round(seconds * rate))


def test_score_level_references_follow_each_version(cvrl_dataset):
  dataset = layout.load_dataset(cvrl_dataset)
  infos = layout.validate_dataset(dataset)
  classes = dataset.instrument_classes
  violin, flute, horn = (classes.index(n) for n in
                         ('violin', 'flute', 'french_horn'))
  for key, seconds_of in (
      # version a: 2 s per measure from 0.5 s; version c: 2.4 s with rubato.
      ('p1/a', lambda m: 0.5 + 2.0 * (m - 1)),
      ('p1/c', lambda m: infos['p1/c'].time_map.seconds_at(m))):
    info = infos[key]
    frames = 1 + int(info.duration * RATE)
    refs = annotations.version_references(dataset, info, frames, RATE)
    assert refs.instruments.shape == (frames, len(classes))
    assert refs.pitch_classes.shape == (frames, 12)
    expected = {1.5: ({violin}, {0}), 2.5: ({violin}, {0, 7}),
                3.5: ({violin, flute}, {7}), 5.5: ({flute, horn}, {4}),
                8.5: ({flute}, {4})}
    for measure, (instruments, pitch_classes) in expected.items():
      frame = frame_at(seconds_of(measure))
      assert set(np.flatnonzero(refs.instruments[frame])) == instruments
      assert set(np.flatnonzero(refs.pitch_classes[frame])) == pitch_classes
    # Nothing is active, and nothing is valid, before the first measure.
    lead_in = frame_at(info.time_map.start_seconds) - 2
    assert not refs.valid[lead_in] and not refs.instruments[lead_in].any()
    assert refs.valid[lead_in + 4]


def test_instruments_fall_back_to_notes(cvrl_dataset):
  (cvrl_dataset / 'instruments' / 'p1.csv').unlink()
  dataset = layout.load_dataset(cvrl_dataset)
  info = layout.validate_dataset(dataset)['p1/a']
  refs = annotations.version_references(dataset, info,
                                        1 + int(info.duration * RATE), RATE)
  horn = dataset.instrument_classes.index('french_horn')
  violin = dataset.instrument_classes.index('violin')
  assert refs.instruments[frame_at(0.5 + 2.0 * 5.5), horn] == 1
  assert refs.instruments[frame_at(0.5 + 2.0 * 3.5), violin] == 0


def test_framewise_npz_route(published_dataset):
  dataset = layout.load_dataset(published_dataset)
  info = layout.validate_dataset(dataset)['Dvorak_Op095-01/V2']
  source = np.load(info.version.instruments_npz)['arr_0']
  classes = dataset.instrument_classes
  for rate in (RATE, 2 * RATE):  # our frame grid, and a finer one
    frames = int(source.shape[0] * rate / RATE)
    refs = annotations.version_references(dataset, info, frames, rate)
    assert refs.instruments.shape == (frames, 13)
    half = frames // 2
    assert set(np.flatnonzero(refs.instruments[half // 2])) == {
        classes.index('flute')}
    assert set(np.flatnonzero(refs.instruments[half + half // 2])) == {
        classes.index('flute'), classes.index('violin')}
    assert set(np.flatnonzero(refs.pitch_classes[half // 2])) == {0}
    assert set(np.flatnonzero(refs.pitch_classes[half + half // 2])) == {0, 7}
    measures = info.time_map.measure_at(np.arange(frames) / rate)
    np.testing.assert_allclose(refs.measures, measures)


def test_cvrl_format_framewise_npz_wins_over_score_level(cvrl_dataset):
  dataset = layout.load_dataset(cvrl_dataset)
  info = layout.validate_dataset(dataset)['p1/b']
  frames = int(info.duration * 100) + 1  # arrays at 100 frames/s
  oboe = dataset.instrument_classes.index('oboe')
  instruments = np.zeros((frames, len(dataset.instrument_classes)))
  instruments[:, oboe] = 1
  pitches = np.zeros((frames, 128))
  pitches[:, 62] = 1  # D
  path = cvrl_dataset / 'references' / 'p1' / 'b.npz'
  path.parent.mkdir(parents=True)
  np.savez(path, instruments=instruments, pitches=pitches, frame_rate=100.0)
  dataset = layout.load_dataset(cvrl_dataset)
  info = layout.validate_dataset(dataset)['p1/b']
  refs = annotations.version_references(dataset, info,
                                        1 + int(info.duration * RATE), RATE)
  assert set(np.flatnonzero(refs.instruments.any(axis=0))) == {oboe}
  assert set(np.flatnonzero(refs.pitch_classes.any(axis=0))) == {2}
  # A wrong length is named as an error.
  np.savez(path, instruments=instruments[:-20], pitches=pitches[:-20],
           frame_rate=100.0)
  with pytest.raises(layout.DatasetError, match='references/p1/b.npz'):
    layout.validate_dataset(layout.load_dataset(cvrl_dataset))
