"""The overview binary draws every version on the shared measure axis."""

import numpy as np

from cvrl import audio
from cvrl.data import overview
from cvrl.data import prepare


def test_aligned_frames_pick_the_same_measure_in_every_version(cvrl_dataset):
  prepare.prepare(cvrl_dataset, audio.feature_config(), progress=False)
  prepared = prepare.open_cache(cvrl_dataset, audio.feature_config())
  rate = prepared.frame_rate
  versions = prepared.dataset.pieces['p1'].versions
  measures = overview.measure_grid(prepared.time_map(versions[0]), rate)
  assert measures[0] >= 1.0 and measures[-1] <= 9.0
  for version in versions:
    time_map = prepared.time_map(version)
    frames = overview.aligned_frames(time_map, measures, rate)
    np.testing.assert_allclose(time_map.measure_at(frames / rate), measures,
                               atol=1.5 * np.max(np.diff(time_map.measures) /
                                                 np.diff(time_map.seconds)) / rate)


def test_writes_one_png_per_piece(cvrl_dataset, tmp_path):
  prepare.prepare(cvrl_dataset, audio.feature_config(), progress=False)
  prepared = prepare.open_cache(cvrl_dataset, audio.feature_config())
  paths = overview.write_overviews(prepared, tmp_path / 'png')
  assert [p.name for p in paths] == ['p1.png', 'p2.png']
  for path in paths:
    assert path.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
    assert path.stat().st_size > 10_000
