"""The overview binary draws every version on the shared measure axis."""

import numpy as np

from cvrl import audio
from cvrl.data import layout
from cvrl.data import overview
from cvrl.data import prepare


def test_aligned_frames_pick_the_same_measure_in_every_version(cvrl_dataset):
  infos = layout.validate_dataset(layout.load_dataset(cvrl_dataset))
  rate = 22050 / 512
  measures = overview.measure_grid(infos['p1/a'].time_map, rate)
  assert measures[0] >= 1.0 and measures[-1] <= 9.0
  for key in ('p1/a', 'p1/b', 'p1/c'):
    time_map = infos[key].time_map
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
