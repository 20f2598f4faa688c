r"""Loss curves of training runs side by side: does a change train the same?

  .venv/bin/python benchmarks/loss_curves.py --runs=LABEL=WORKDIR,... \
      [--reference=LABEL] [--window=250] [--plot=loss_curves.png]

Reads each workdir's metrics.jsonl. Prints, per run, the mean loss over the
last `--window` steps and its total wall time, and, against the reference
run, the mean absolute difference of the logged losses over all steps and
over the last window. To tell a change from run-to-run noise, include two
reference-code runs that differ only in their seed: their difference is the
noise floor. The plot overlays the curves (moving average over 4 logs).
"""

from __future__ import annotations

import pathlib

from absl import app
from absl import flags
import numpy as np

from cvrl import metric_writers

FLAGS = flags.FLAGS
flags.DEFINE_list('runs', [], 'LABEL=WORKDIR pairs.')
flags.DEFINE_string('reference', None, 'Label the others are compared with '
                    '(default: the first).')
flags.DEFINE_integer('window', 250, 'Steps at the end that "final" averages.')
flags.DEFINE_string('plot', None, 'PNG of the overlaid curves.')


def read_curve(workdir: pathlib.Path) -> dict[str, np.ndarray]:
  rows = [r for r in metric_writers.read_metrics(workdir) if 'loss' in r]
  if not rows:
    raise app.UsageError(f'{workdir / "metrics.jsonl"}: no losses logged '
                         '(not a training workdir?)')
  return dict(step=np.array([r['step'] for r in rows]),
              loss=np.array([r['loss'] for r in rows]),
              wall_seconds=metric_writers.training_seconds(rows) or np.nan)


def compare(curves: dict[str, dict], reference: str, window: int) -> list:
  """Rows (label, steps, final loss, wall min, |diff| all, |diff| final)."""
  ref = curves[reference]
  rows = []
  for label, c in curves.items():
    last = c['step'] > c['step'].max() - window
    wall = c['wall_seconds'] / 60
    common, ia, ib = np.intersect1d(c['step'], ref['step'],
                                    return_indices=True)
    diff = np.abs(c['loss'][ia] - ref['loss'][ib])
    tail = common > common.max() - window
    rows.append((label, int(c['step'].max()), float(c['loss'][last].mean()),
                 float(wall), float(diff.mean()), float(diff[tail].mean())))
  return rows


def plot(curves: dict[str, dict], path: str) -> None:
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  from matplotlib import pyplot as plt  # pylint: disable=g-import-not-at-top
  fig, ax = plt.subplots(figsize=(7, 4))
  for label, c in curves.items():
    smooth = np.convolve(c['loss'], np.ones(4) / 4, mode='valid')
    ax.plot(c['step'][3:], smooth, label=label)
  ax.set_xlabel('step')
  ax.set_ylabel('training loss (moving average of 4 logs)')
  ax.legend()
  fig.tight_layout()
  fig.savefig(path, dpi=90)
  plt.close(fig)


def main(argv):
  del argv
  if not FLAGS.runs:
    raise app.UsageError('--runs=LABEL=WORKDIR,... is required')
  pairs = [run.split('=', 1) for run in FLAGS.runs]
  if any(len(p) != 2 for p in pairs):
    raise app.UsageError(f'--runs={",".join(FLAGS.runs)}: LABEL=WORKDIR pairs')
  curves = {label: read_curve(pathlib.Path(path)) for label, path in pairs}
  reference = FLAGS.reference or pairs[0][0]
  if reference not in curves:
    raise app.UsageError(f'--reference={reference}: not one of {list(curves)}')
  w = FLAGS.window
  print(f'| run | steps | loss, last {w} steps | train wall (min) | '
        f'mean abs diff to {reference} | same, last {w} steps |')
  print('|---|---|---|---|---|---|')
  for label, steps, final, wall, diff, tail in compare(curves, reference, w):
    print(f'| {label} | {steps} | {final:.4f} | {wall:.1f} | {diff:.4f} | '
          f'{tail:.4f} |')
  if FLAGS.plot:
    plot(curves, FLAGS.plot)


if __name__ == '__main__':
  app.run(main)
