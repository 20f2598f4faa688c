r"""How alike are the versions of a prepared dataset, aligned and not?

  python benchmarks/version_similarity.py --data=DEMO [--config.kind=hcqt]

For every pair of versions of a piece, the Pearson correlation of their
standardised features at corresponding frames (through the measure maps),
against the same frames shifted by half the piece (non-corresponding), and
grouped by the two versions' SoundFonts (demo datasets only).
Corresponding frames must correlate clearly better than shifted ones, or the
cross-version pretext task has nothing to learn; versions must not be
near-copies, or it learns too little.
"""

import collections
import itertools
import json
import pathlib

from absl import app
from absl import flags
from ml_collections import config_flags
import numpy as np

from cvrl.data import alignment
from cvrl.data import prepare

FLAGS = flags.FLAGS
flags.DEFINE_string('data', None, 'Prepared dataset folder.')
config_flags.DEFINE_config_file('config', str(prepare.DEFAULT_CONFIG),
                                'Feature config, as for prepare.')


def correlation(a: np.ndarray, b: np.ndarray) -> float:
  a = (a - a.mean()) / (a.std() + 1e-9)
  b = (b - b.mean()) / (b.std() + 1e-9)
  return float(np.mean(a * b))


def main(argv):
  del argv
  prepared = prepare.open_cache(FLAGS.data,
                                prepare.feature_section(FLAGS.config))
  rate = prepared.frame_rate
  soundfonts = {}
  summary = pathlib.Path(FLAGS.data) / 'demo.json'
  if summary.exists():
    for piece in json.loads(summary.read_text())['pieces']:
      for name, version in piece['versions'].items():
        soundfonts[f'{piece["piece"]}/{name}'] = version['soundfont']
  results = collections.defaultdict(list)
  for piece in prepared.dataset.pieces.values():
    for a, b in itertools.combinations(piece.versions, 2):
      map_a, map_b = prepared.time_map(a), prepared.time_map(b)
      lo, hi = alignment.valid_frame_range(map_a, prepared.num_frames[a.key],
                                           rate)
      frames = np.arange(lo, hi)
      there = alignment.nearest_frames(
          alignment.map_frames(frames, map_a, map_b, rate), map_b, rate)
      shifted = np.roll(there, len(there) // 2)
      fa = (np.asarray(prepared.features(a), np.float32) - prepared.mean
            ) / prepared.std
      fb = (np.asarray(prepared.features(b), np.float32) - prepared.mean
            ) / prepared.std
      group = (' vs '.join(sorted((soundfonts[a.key], soundfonts[b.key])))
               if soundfonts else 'all pairs')
      results[(group, 'corresponding')].append(
          correlation(fa[frames], fb[there]))
      results[(group, 'shifted by half the piece')].append(
          correlation(fa[frames], fb[shifted]))
  print(f'{FLAGS.data}: {prepared.config.kind}, standardised features')
  print()
  print('| version pairs | frames | pairs | mean corr. | min | max |')
  print('|---|---|---|---|---|---|')
  for (group, kind), values in sorted(results.items()):
    print(f'| {group} | {kind} | {len(values)} | {np.mean(values):.3f} | '
          f'{np.min(values):.3f} | {np.max(values):.3f} |')


if __name__ == '__main__':
  flags.mark_flag_as_required('data')
  app.run(main)
