"""Audio-to-audio synchronisation of unannotated versions (cvrl.data.sync).

  python -m cvrl.data.sync --data=DIR [--config=configs/sync.py] \
      [--config.max_cost_ratio=0.6]

The feature and DTW settings are synctoolbox's own full audio-audio pipeline
(chroma + DLNCO at 50 Hz, MrMsDTW); the rest decides where the music is and
when an alignment is not to be trusted.
"""

import ml_collections


def get_config():
  config = ml_collections.ConfigDict()
  # synctoolbox's audio-audio pipeline, as its authors run it.
  config.sample_rate = 22050
  config.feature_rate = 50
  config.step_weights = (1.5, 1.5, 2.0)
  config.threshold_rec = 10 ** 6
  config.alpha = 0.5  # chroma vs DLNCO weight at the finest level

  # Where the music is: the reference's annotated span is located in the other
  # recording by subsequence DTW on CENS at `locate_rate` Hz, and both are
  # cropped to it plus `margin_seconds`, so silence, applause or talk at either
  # end cannot pull the path (global DTW would have to align them).
  config.locate_rate = 10
  config.margin_seconds = 10.0
  # A piece with no annotated version: the reference's own time axis is its
  # measure axis, one "measure" per second over its non-silent span.
  config.silence_top_db = 40.0

  # Quality: an alignment is left out when its cost per step is more than
  # `max_cost_ratio` of the cost between unrelated frames of the two
  # recordings (not the same piece), or when over any `slope_window_seconds`
  # of the reference the other recording runs more than `max_slope` times
  # faster or slower (a long repeat or cut).
  config.max_cost_ratio = 0.55
  config.slope_window_seconds = 10.0
  config.max_slope = 3.0
  return config
