"""Training metrics on disk: metrics.jsonl, TensorBoard event files, metrics.png.

Kept out of the train loop so the loop reads as step -> metrics -> checkpoint.
"""

from __future__ import annotations

import json
import pathlib

import numpy as np


class MetricWriter:
  """Console-free metric sink: metrics.jsonl and TensorBoard event files."""

  def __init__(self, workdir: pathlib.Path, enabled: bool, start_step: int):
    self.enabled = enabled
    if enabled:
      import tensorboardX  # pylint: disable=g-import-not-at-top
      path = workdir / 'metrics.jsonl'
      if path.exists():  # drop steps after the checkpoint we resume from
        kept = [line for line in path.read_text().splitlines()
                if json.loads(line)['step'] <= start_step]
        path.write_text(''.join(line + '\n' for line in kept))
      self.jsonl = open(path, 'a')
      self.tensorboard = tensorboardX.SummaryWriter(str(workdir / 'tensorboard'))

  def write(self, step: int, metrics: dict[str, float]) -> None:
    if not self.enabled:
      return
    self.jsonl.write(json.dumps(dict(step=step, **metrics)) + '\n')
    self.jsonl.flush()
    for name, value in metrics.items():
      self.tensorboard.add_scalar(f'train/{name}', value, step)

  def close(self) -> None:
    if self.enabled:
      self.jsonl.close()
      self.tensorboard.close()


def read_metrics(workdir: pathlib.Path) -> list[dict]:
  """The rows of workdir/metrics.jsonl, oldest first ([] when there is none)."""
  path = workdir / 'metrics.jsonl'
  if not path.exists():
    return []
  return [json.loads(line) for line in path.read_text().splitlines() if line]


def training_seconds(rows: list[dict]) -> float | None:
  """Seconds a run spent training, from the rates it logged: each logged
  interval's steps over its rate (as it ran: another job on the machine
  slows it). Rows without a rate are skipped; None when none has one."""
  rows = [r for r in rows if r.get('steps_per_sec')]
  if not rows:
    return None
  step = np.array([r['step'] for r in rows], np.float64)
  rate = np.array([r['steps_per_sec'] for r in rows], np.float64)
  return float(np.sum(np.diff(step, prepend=0.0).clip(min=0) / rate))


def plot_metrics(workdir: pathlib.Path) -> None:
  """workdir/metrics.png: loss (and distances) against step, for a quick look."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  from matplotlib import pyplot as plt  # pylint: disable=g-import-not-at-top
  rows = read_metrics(workdir)
  if not rows:
    return
  steps = [r['step'] for r in rows]
  names = [n for n in ('loss', 'd_pos', 'd_neg', 'accuracy') if n in rows[-1]]
  fig, axes = plt.subplots(1, len(names) + 1, figsize=(4 * (len(names) + 1), 3))
  for ax, name in zip(axes, names):
    ax.plot(steps, [r.get(name, np.nan) for r in rows])
    ax.set_title(name)
    ax.set_xlabel('step')
  axes[-1].plot(steps, [r['steps_per_sec'] for r in rows])
  axes[-1].set_title('steps/s')
  axes[-1].set_xlabel('step')
  fig.suptitle(str(workdir))
  fig.tight_layout()
  fig.savefig(workdir / 'metrics.png', dpi=80)
  plt.close(fig)
