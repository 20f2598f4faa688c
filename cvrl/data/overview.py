r"""Binary: one PNG per piece to eyeball a prepared dataset's alignment.

  python -m cvrl.data.overview --data=DIR [--pieces=a,b] [--out=DIR/overview]
                               [--config=configs/features.py[:paper]]

Each version's features are drawn on the piece's shared measure axis (frames
looked up through the version's time map), above Ref_I and Ref_H. Where the
measure annotations are right, the versions line up vertically; a bad
annotation shows as a smear or shift.
"""

from __future__ import annotations

import pathlib

from absl import app
from absl import flags
from ml_collections import config_flags
import matplotlib
matplotlib.use('Agg')
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
import numpy as np
import tqdm

from cvrl import cli
from cvrl.data import alignment
from cvrl.data import layout
from cvrl.data import prepare

PITCH_CLASSES = ('C', 'C#', 'D', 'D#', 'E', 'F', 'F#', 'G', 'G#', 'A', 'A#',
                 'B')


def measure_grid(time_map: alignment.TimeMap, frame_rate: float) -> np.ndarray:
  """Measure positions at the first version's frame rate over the span."""
  lo, hi = alignment.valid_frame_range(time_map, np.iinfo(np.int64).max,
                                       frame_rate)
  return time_map.measure_at(np.arange(lo, hi) / frame_rate)


def aligned_frames(time_map: alignment.TimeMap, measures: np.ndarray,
                   frame_rate: float) -> np.ndarray:
  """Frame of a version at each measure position of the grid."""
  return alignment.nearest_frames(time_map.seconds_at(measures) * frame_rate,
                                  time_map, frame_rate)


def piece_figure(prepared: prepare.PreparedDataset, piece: layout.Piece):
  """Figure: versions' features on the measure axis, then Ref_I and Ref_H."""
  rate = prepared.frame_rate
  time_maps = {v.key: prepared.time_map(v) for v in piece.versions}
  first = piece.versions[0]
  measures = measure_grid(time_maps[first.key], rate)
  refs = prepared.references(first)
  ref_frames = aligned_frames(time_maps[first.key], measures, rate)
  active = np.flatnonzero(refs.instruments[ref_frames].any(axis=0))
  classes = [prepared.dataset.instrument_classes[i] for i in active]
  heights = [3] * len(piece.versions) + [max(1, len(classes) / 4), 1.5]
  fig, axes = plt.subplots(len(heights), 1, sharex=True, figsize=(12, sum(
      heights) * 0.9 + 0.6), gridspec_kw=dict(height_ratios=heights))
  extent_x = (measures[0], measures[-1])
  for ax, version in zip(axes, piece.versions):
    features = np.asarray(prepared.features(version), np.float32)
    if features.ndim == 3:  # HCQT: show the fundamental's channel
      features = features[:, :, min(1, features.shape[2] - 1)]
    frames = aligned_frames(time_maps[version.key], measures, rate)
    ax.imshow(features[frames].T, origin='lower', aspect='auto',
              cmap='magma', extent=(*extent_x, 0, features.shape[1]),
              interpolation='nearest')
    ax.set_ylabel(version.name, rotation=0, ha='right', va='center')
    ax.set_yticks([])
  ax = axes[-2]
  ax.imshow(refs.instruments[ref_frames][:, active].T, origin='lower',
            aspect='auto', cmap='Greys', extent=(*extent_x, -0.5,
                                                  len(classes) - 0.5),
            interpolation='nearest')
  ax.set_yticks(range(len(classes)))
  ax.set_yticklabels(classes, fontsize=7)
  ax.set_title('Ref_I (instrument activity)', fontsize=9, loc='left')
  ax = axes[-1]
  ax.imshow(refs.pitch_classes[ref_frames].T, origin='lower', aspect='auto',
            cmap='Blues', extent=(*extent_x, -0.5, 11.5),
            interpolation='nearest')
  ax.set_yticks(range(0, 12, 2))
  ax.set_yticklabels(PITCH_CLASSES[::2], fontsize=7)
  ax.set_title('Ref_H (pitch classes)', fontsize=9, loc='left')
  ax.set_xlabel('measure')
  fig.suptitle(f'{piece.name}: {len(piece.versions)} versions on the score '
               f'axis ({prepared.config.kind})')
  fig.tight_layout()
  return fig


def write_overviews(prepared: prepare.PreparedDataset, out: pathlib.Path,
                    pieces=None) -> list[pathlib.Path]:
  out.mkdir(parents=True, exist_ok=True)
  written = []
  for name in tqdm.tqdm(pieces or list(prepared.dataset.pieces),
                        desc='overviews', unit='piece'):
    if name not in prepared.dataset.pieces:
      raise layout.DatasetError(f'{prepared.dataset.root}: no piece {name!r}')
    fig = piece_figure(prepared, prepared.dataset.pieces[name])
    path = out / f'{name}.png'
    fig.savefig(path, dpi=80)
    plt.close(fig)
    written.append(path)
  return written


FLAGS = flags.FLAGS


def define_flags():
  """Flags of the binary; defined only when it runs, so modules import freely."""
  flags.DEFINE_string('data', None, 'Prepared dataset folder.')
  flags.DEFINE_list('pieces', [], 'Pieces to draw (default: all).')
  flags.DEFINE_string('out', None, 'Output folder (default DATA/overview).')
  flags.DEFINE_string('cache_dir', None, 'Cache folder used by prepare.')
  config_flags.DEFINE_config_file('config', str(prepare.DEFAULT_CONFIG),
                                  'Feature config, as for prepare.')


def main(argv):
  del argv
  if not FLAGS.data:
    raise app.UsageError('--data=DIR is required')
  prepared = prepare.open_cache(
      FLAGS.data, prepare.feature_section(FLAGS.config), FLAGS.cache_dir)
  paths = write_overviews(prepared, pathlib.Path(
      FLAGS.out or pathlib.Path(FLAGS.data) / 'overview'), FLAGS.pieces)
  print(f'wrote {len(paths)} overview(s) to {paths[0].parent}')


if __name__ == '__main__':
  define_flags()
  cli.run(main)
