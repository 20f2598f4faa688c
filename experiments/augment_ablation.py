r"""What each of the seven published augmentations does to CV, in one command.

  .venv/bin/python experiments/augment_ablation.py [--out=runs/augment] \
      [--variant=demo] [--steps=N] [--seeds=3] [--loo_seeds=1] \
      [--probe_seeds=3] [--hop=4] [--jobs=1] [--report]

Trains CV (configs/cv.py:<variant>, without the validation pieces:
layout.validation_view) with all augmentations and with none,
`--seeds` training seeds each, and with each augmentation left out (its
probability set to 0), `--loo_seeds` training seeds each, for `--steps`
training steps (default: the config's); probes every run
for instruments on the validation pieces (`--on_test`: train on every train
piece, report on test), strong probe, `--probe_seeds` probe seeds, every
`--hop`-th frame; the published probe too. Writes OUT/augment.md (AP / AUC / F1 as
mean ± std over training seeds, and the change against "all"),
OUT/augment.json and OUT/augment.png (bars with error bars). The published
work named this ablation as future work. Every step is a public binary and
is skipped when its output exists, so an interrupted run resumes;
`--report` tabulates what has finished so far.
"""

import argparse
import json
import pathlib
import sys

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from configs import base  # noqa: E402  pylint: disable=g-import-not-at-top
from experiments import runner  # noqa: E402
from experiments.table import mean_std  # noqa: E402

# In the published order; configs/base.py holds their settings.
AUGMENTATIONS = ('eq', 'time_warp', 'bin_shift', 'bin_mask', 'time_mask',
                 'noise', 'gain')
assert set(AUGMENTATIONS) == set(base.augment_config(1)) - {'enabled'}
METRICS = ('ap', 'auc', 'f1')


def settings(args) -> list[tuple[str, list[str], int]]:
  """(name, --config overrides, training seeds) of every setting."""
  out = [('all', [], args.seeds),
         ('none', ['--config.augment.enabled=False'], args.seeds)]
  out += [(f'without {name}', [f'--config.augment.{name}.p=0'],
           args.loo_seeds) for name in AUGMENTATIONS]
  return out


def workdir(out: pathlib.Path, name: str, seed: int) -> pathlib.Path:
  return out / name.replace(' ', '-') / f'seed{seed}'


def steps(out: pathlib.Path, args) -> list[tuple[str, ...]]:
  data = [f'--config.data.root={args.data}'] if args.data else []
  if args.steps:
    data.append(f'--config.num_train_steps={args.steps}')
  commands = []
  for name, overrides, seeds in settings(args):
    for seed in range(seeds):
      w = workdir(out, name, seed)
      commands.append(('-m', 'cvrl.train',
                       f'--config=configs/cv.py:{args.variant}',
                       f'--workdir={w}', f'--config.seed={seed}',
                       f'--config.data.validation={not args.on_test}', *data,
                       *overrides))
      commands.append(('-m', 'cvrl.probe', f'--workdir={w}',
                       '--target=instruments', f'--seeds={args.probe_seeds}',
                       f'--hop={args.hop}'))
  return commands


def report_path(w: pathlib.Path, on_test: bool = False) -> pathlib.Path:
  # The probe evaluates where the encoder was trained for (validation pieces
  # unless --on_test), and names its report so.
  name = 'embedding' if on_test else 'embedding-val'
  return w / 'probe' / f'{name}-instruments.json'


def collect(out: pathlib.Path, args, probe: str = 'strong') -> list[dict]:
  """Per setting: each finished training seed's mean over probe seeds, and
  their mean ± std (None while no seed has finished)."""
  rows = []
  for name, _, seeds in settings(args):
    values = {m: [] for m in METRICS}
    finished = 0
    for seed in range(seeds):
      path = report_path(workdir(out, name, seed), args.on_test)
      if not path.exists():
        continue
      finished += 1
      report = json.loads(path.read_text())
      for m in METRICS:
        values[m].append(report['probes'][probe]['summary'][m]['mean'])
    rows.append(dict(setting=name, seeds=finished, planned=seeds,
                     values=values,
                     **{m: dict(zip(('mean', 'std'), mean_std(values[m])))
                        if finished else None for m in METRICS}))
  return rows


def markdown(rows: list[dict], probe: str) -> str:
  reference = rows[0]

  def cell(r, m):  # one seed has no spread to show
    if r[m] is None:
      return 'not run yet'
    return (f"{r[m]['mean']:.3f} ± {r[m]['std']:.3f}" if r['seeds'] > 1 else
            f"{r[m]['mean']:.3f}")

  def delta(r, m):
    if r is reference or r[m] is None or reference[m] is None:
      return ''
    return f"{r[m]['mean'] - reference[m]['mean']:+.3f}"

  lines = ['| setting | training seeds | AP | AUC | F1 | ΔAP vs all | '
           'ΔAUC vs all | ΔF1 vs all |', '|---|---|---|---|---|---|---|---|']
  for r in rows:
    seeds = (f"{r['seeds']}" if r['seeds'] == r['planned'] else
             f"{r['seeds']} of {r['planned']}")
    cells = ' | '.join(cell(r, m) for m in METRICS)
    deltas = ' | '.join(delta(r, m) for m in METRICS)
    lines.append(f"| {r['setting']} | {seeds} | {cells} | {deltas} |")
  return f'CV, instrument probing ({probe} probe)\n\n' + '\n'.join(lines)


def plot(rows: list[dict], path: pathlib.Path, title: str) -> None:
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  from matplotlib import pyplot as plt  # pylint: disable=g-import-not-at-top
  fig, axes = plt.subplots(1, 3, figsize=(13, 4), sharey=False)
  colors = [c for r, c in zip(rows, ['tab:green', 'tab:red'] +
                              ['tab:blue'] * (len(rows) - 2)) if r['seeds']]
  rows = [r for r in rows if r['seeds']]  # settings not run yet: no bar
  names = [r['setting'] for r in rows]
  for ax, metric in zip(axes, METRICS):
    means = np.array([r[metric]['mean'] for r in rows])
    stds = np.array([r[metric]['std'] for r in rows])
    ax.bar(range(len(rows)), means, yerr=stds, color=colors, capsize=3)
    if names[0] == 'all':
      ax.axhline(means[0], color='tab:green', lw=0.8, ls='--')
    ax.set_xticks(range(len(rows)))
    ax.set_xticklabels(names, rotation=60, ha='right', fontsize=8)
    ax.set_title(metric.upper())
    span = max(float((means + stds).max() - (means - stds).min()), 0.02)
    ax.set_ylim(float((means - stds).min()) - 0.3 * span,
                float((means + stds).max()) + 0.3 * span)
    ax.grid(axis='y', alpha=0.3)
  runner.save_figure(fig, title, path)


def main() -> int:
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  parser.add_argument('--out', default='runs/augment')
  parser.add_argument('--variant', default='demo')
  parser.add_argument('--seeds', type=int, default=3,
                      help='training seeds for "all" and "none"')
  parser.add_argument('--steps', type=int, default=0,
                      help='training steps per run (0: the config\'s; the '
                      'results table trains SV / CV for 6000)')
  parser.add_argument('--loo_seeds', type=int, default=1,
                      help='training seeds for each leave-one-out')
  parser.add_argument('--probe_seeds', type=int, default=3)
  parser.add_argument('--hop', type=int, default=4)
  parser.add_argument('--data', default=None,
                      help='dataset (default: the config\'s data.root)')
  parser.add_argument('--on_test', action='store_true',
                      help='train on all train pieces and report on the test '
                      'split (default: train without the validation pieces '
                      'and report on them, where settings are chosen)')
  runner.add_run_flags(parser)
  parser.add_argument('--report', action='store_true',
                      help='tabulate what has finished, run nothing')
  args = parser.parse_args()
  out = (ROOT / args.out).resolve()
  if not args.report:
    # Training always runs (it resumes, or returns at once when finished).
    runner.run_pending(
        steps(out, args), lambda c: c[1] != 'cvrl.train' and report_path(
            pathlib.Path(c[2].split('=', 1)[1]), args.on_test).exists(),
        args.dry_run, out, args.jobs)
  if args.dry_run:
    return 0
  total = runner.wall_time(out)
  split = 'test split' if args.on_test else 'validation pieces'
  text = (f'configs/cv.py:{args.variant}, evaluated on the {split}; '
          f'{args.probe_seeds} probe seeds per '
          f'training seed, frames every {args.hop}; mean ± std over training '
          f'seeds; {total / 60:.0f} min of wall time (all invocations).\n\n')
  results = {}
  for probe in ('strong', 'published'):
    rows = collect(out, args, probe)
    results[probe] = rows
    text += markdown(rows, probe) + '\n\n'
  runner.write_report(out, 'augment', text, results)
  if not any(r['seeds'] for r in results['strong']):
    print(f'wrote {out / "augment.md"}, augment.json; no run has finished '
          'yet, so no plot')
    return 0
  plot(results['strong'], out / 'augment.png',
       'CV: instrument probing (strong probe) by augmentation setting')
  print(f'wrote {out / "augment.md"}, augment.json, augment.png')
  return 0


if __name__ == '__main__':
  sys.exit(runner.main(main))
