r"""Accuracy and speed of cvrl.data.sync on a dataset whose truth is exact.

  python benchmarks/sync_accuracy.py --data=DEMO --out=DIR [--reference=v1]
                                     [--wrong=4] [--workers=2]

Copies DEMO to DIR/data with the measure annotations of every version but the
reference removed (audio is linked, not copied), adds `--wrong` decoys (a
version of another piece filed under a piece), synchronises, and compares
every derived annotation with the true one at every annotated position (the
demo annotates every beat): median and 95th-percentile absolute error, the
share within 50 / 100 / 250 ms, speed as multiples of real time, and whether
every decoy and no true version was left out. DIR/data is a complete dataset
to train on afterwards. Prints a Markdown table and writes DIR/sync_accuracy.json.
"""

import json
import os
import pathlib
import platform
import shutil
import time

from absl import app
from absl import flags
import numpy as np

from cvrl.data import layout
from cvrl.data import sync

FLAGS = flags.FLAGS
flags.DEFINE_string('data', None, 'Dataset in cvrl format with exact '
                    'annotations (e.g. the built-in demo).')
flags.DEFINE_string('out', None, 'Output folder.')
flags.DEFINE_string('reference', 'v1', 'The one version per piece that keeps '
                    'its annotation.')
flags.DEFINE_integer('wrong', 4, 'Decoy versions (another piece\'s audio).')
flags.DEFINE_integer('workers', os.cpu_count() or 1, 'Pieces in parallel.')
flags.DEFINE_integer('max_pieces', 0, 'Only the first N pieces (0: all).')


def strip_annotations(data: pathlib.Path, out: pathlib.Path, reference: str,
                      num_wrong: int, max_pieces: int = 0) -> list[str]:
  """Builds the stripped copy; returns the decoy keys (piece/version)."""
  dataset = layout.load_dataset(data)
  pieces = sorted(dataset.pieces)[:max_pieces or None]
  for name in ('pieces.csv', 'classes.txt'):
    if (data / name).exists():
      shutil.copy(data / name, out / name)
  for folder in ('instruments', 'notes'):
    for piece in pieces:
      source = data / folder / f'{piece}.csv'
      if source.exists():
        (out / folder).mkdir(parents=True, exist_ok=True)
        shutil.copy(source, out / folder / source.name)
  for piece in pieces:
    for version in dataset.pieces[piece].versions:
      target = out / 'audio' / piece / version.audio_path.name
      target.parent.mkdir(parents=True, exist_ok=True)
      target.symlink_to(version.audio_path.resolve())
      if version.name == reference:
        measures = out / 'measures' / piece / f'{version.name}.csv'
        measures.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(version.measures_path, measures)
  decoys = []
  for k in range(min(num_wrong, len(pieces) - 1)):
    piece, other = pieces[k], pieces[(k + len(pieces) // 2) % len(pieces)]
    source = dataset.pieces[other].versions[-1].audio_path
    name = f'wrong-{other}'
    (out / 'audio' / piece / f'{name}{source.suffix}').symlink_to(
        source.resolve())
    decoys.append(f'{piece}/{name}')
  return decoys


def main(argv):
  del argv
  data, out = pathlib.Path(FLAGS.data), pathlib.Path(FLAGS.out)
  stripped = out / 'data'
  if stripped.exists():
    shutil.rmtree(stripped)
  stripped.mkdir(parents=True)
  decoys = strip_annotations(data, stripped, FLAGS.reference, FLAGS.wrong,
                             FLAGS.max_pieces)
  jobs = sync.plan(stripped)
  start = time.perf_counter()
  rows = sync.run(jobs, FLAGS.workers)
  wall = time.perf_counter() - start

  truth = layout.load_dataset(data)
  errors, per_version, audio_seconds = [], [], 0.0
  false_rejects, caught = [], []
  for row in rows:
    key = f"{row['piece']}/{row['version']}"
    if key in decoys:
      caught += [key] if row['status'] == 'left out' else []
      continue
    if row['version'] == FLAGS.reference:
      continue
    version = truth.version(row['piece'], row['version'])
    info = layout.check_version(version)
    audio_seconds += info.duration
    if row['status'] != 'ok':
      false_rejects.append(key)
      continue
    derived = layout.read_measures(
        layout.measures_path(stripped, 'cvrl', row['piece'], row['version']))
    e = sync.annotation_error_ms(derived, info.time_map)
    errors.append(e)
    per_version.append(dict(key=key, cost_ratio=row['cost_ratio'],
                            **sync.error_summary(e)))
  all_errors = np.concatenate(errors) if errors else np.zeros(0)
  summary = dict(sync.error_summary(all_errors), versions=len(errors),
                 wall_seconds=wall, audio_seconds=audio_seconds,
                 x_real_time=audio_seconds / wall, workers=FLAGS.workers,
                 decoys=decoys, decoys_left_out=caught,
                 true_versions_left_out=false_rejects,
                 cost_ratio_true=[r['cost_ratio'] for r in per_version],
                 cost_ratio_decoys=[r.get('cost_ratio') for r in rows if
                                    f"{r['piece']}/{r['version']}" in decoys],
                 machine=f'{os.cpu_count()} CPUs, '
                 f'{platform.processor() or platform.machine()}')
  (out / 'sync_accuracy.json').write_text(json.dumps(
      dict(summary=summary, versions=per_version), indent=1))
  print(f'{data} -> {stripped}: {len(errors)} versions synchronised to '
        f'{FLAGS.reference}, {all_errors.size} beats compared')
  print()
  print('| versions | beats | median ms | p95 ms | <= 50 ms | <= 100 ms '
        '| <= 250 ms | x real time | decoys left out | true versions left out |')
  print('|---|---|---|---|---|---|---|---|---|---|')
  print(f"| {len(errors)} | {all_errors.size} | {summary['median_ms']:.0f} | "
        f"{summary['p95_ms']:.0f} | {summary['within_50ms']:.1%} | "
        f"{summary['within_100ms']:.1%} | {summary['within_250ms']:.1%} | "
        f"{summary['x_real_time']:.1f} ({FLAGS.workers} workers) | "
        f'{len(caught)}/{len(decoys)} | {len(false_rejects)} |')
  ratios = summary['cost_ratio_true']
  print()
  print(f'cost ratio: true versions {min(ratios):.2f}..{max(ratios):.2f}, '
        'decoys ' + ', '.join(f'{r:.2f}' for r in summary['cost_ratio_decoys']
                              if r is not None))


if __name__ == '__main__':
  flags.mark_flags_as_required(['data', 'out'])
  app.run(main)
