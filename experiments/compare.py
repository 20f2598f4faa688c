r"""SV or CV under named config changes, one change at a time, in one command.

  .venv/bin/python experiments/compare.py --out=runs/loss \
      --setting='triplet:' --setting='nt_xent: loss.name=nt_xent' \
      [--method=cv] [--variant=demo] [--steps=N] [--seeds=3] \
      [--first_seed=0] [--probe_seeds=3] [--hop=4] [--data=DIR] [--on_test] \
      [--jobs=1] [--only=NAME ...] [--include=EARLIER.json] [--report] \
      [--dry_run]

Each `--setting` is `NAME: FIELD=VALUE FIELD=VALUE ...`: config overrides
without the `--config.` prefix, separated by spaces (so no spaces inside a
value); `NAME:` alone is the config as it is. The first setting is the
reference that the others are compared with. Every setting is trained
(configs/<method>.py:<variant>, without the validation pieces:
layout.validation_view) with `--seeds` training seeds for `--steps` steps
(default: the config's; a setting's own num_train_steps wins), and every run is probed for instruments on the
validation pieces (`--on_test`: train on every train piece, report on the
test split), strong probe and the published one, `--probe_seeds` probe
seeds, every `--hop`-th frame. Writes OUT/compare.md (AP / AUC / F1 as mean
± std over training seeds, the change against the reference, and each
setting's training minutes as run, from its metrics.jsonl, for comparisons
at equal wall time), OUT/compare.json and OUT/compare.png (bars with error
bars). Every step is a public binary and is skipped when its output exists,
so an interrupted run resumes; `--report` tabulates what has finished.
`--only` runs some settings (to share them out between machines),
`--first_seed` starts the training seeds there (to add seeds to a setting
later or elsewhere; the report takes every finished seed), and `--include`
adds the training seeds of an earlier report's JSON that did not finish
here, marked as such, so that runs from several machines, or from a machine
that is gone, make one table and plot.
"""

import argparse
import json
import pathlib
import sys
from typing import NamedTuple

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cvrl import metric_writers  # noqa: E402  pylint: disable=g-import-not-at-top
from cvrl.evaluation import representations  # noqa: E402
from experiments import runner  # noqa: E402
from experiments.table import mean_std  # noqa: E402

METRICS = ('ap', 'auc', 'f1')


class Setting(NamedTuple):
  name: str
  overrides: tuple[str, ...]  # --config.FIELD=VALUE flags of cvrl.train
  seeds: int  # training seeds


def parse_setting(text: str, seeds: int) -> Setting:
  """`NAME: FIELD=VALUE ...` as a Setting; ValueError naming what is wrong."""
  name, colon, overrides = text.partition(':')
  if not colon or not name.strip():
    raise ValueError(f'--setting={text!r}: expected NAME: FIELD=VALUE ...')
  flags = []
  for override in overrides.split():
    if '=' not in override or override.startswith('='):
      raise ValueError(f'--setting={text!r}: {override!r} is not '
                       'FIELD=VALUE')
    flags.append(f'--config.{override.removeprefix("--config.")}')
  return Setting(name.strip(), tuple(flags), seeds)


def workdir(out: pathlib.Path, name: str, seed: int) -> pathlib.Path:
  return out / name.replace(' ', '-') / f'seed{seed}'


def report_path(w: pathlib.Path, on_test: bool = False) -> pathlib.Path:
  # The probe evaluates where the encoder was trained for (validation pieces
  # unless --on_test), and names its report so.
  name = representations.name('embedding', validation=not on_test)
  return w / 'probe' / f'{name}-instruments.json'


def steps(out: pathlib.Path, settings, args,
          method: str = 'cv') -> list[tuple[str, ...]]:
  """Train and probe commands of every setting and training seed."""
  data = [f'--config.data.root={args.data}'] if args.data else []
  if args.steps:
    data.append(f'--config.num_train_steps={args.steps}')
  commands = []
  for setting in settings:
    for seed in range(args.first_seed, args.first_seed + setting.seeds):
      w = workdir(out, setting.name, seed)
      commands.append(('-m', 'cvrl.train',
                       f'--config=configs/{method}.py:{args.variant}',
                       f'--workdir={w}', f'--config.seed={seed}',
                       f'--config.data.validation={not args.on_test}', *data,
                       *setting.overrides))
      commands.append(('-m', 'cvrl.probe', f'--workdir={w}',
                       '--target=instruments', f'--seeds={args.probe_seeds}',
                       f'--hop={args.hop}'))
  return commands


def training_minutes(w: pathlib.Path) -> float | None:
  """Minutes the run spent training, from the rates it logged (as it ran:
  another job on the machine slows it). None when nothing was logged."""
  seconds = metric_writers.training_seconds(metric_writers.read_metrics(w))
  return None if seconds is None else seconds / 60


def finished_seeds(out: pathlib.Path, name: str,
                   on_test: bool = False) -> list[int]:
  """The training seeds of a setting whose probe report exists, in order:
  every one under OUT, whichever --first_seed and --seeds made it."""
  folder = workdir(out, name, 0).parent
  seeds = [int(w.name[4:]) for w in folder.glob('seed*')
           if w.name[4:].isdigit() and report_path(w, on_test).exists()]
  return sorted(seeds)


def summarise(row: dict) -> dict:
  """The row with its mean ± std recomputed from its per-seed values."""
  finished = len(row['training_seeds'])
  return dict(row, seeds=finished, **{
      m: dict(zip(('mean', 'std'), mean_std(row['values'][m])))
      if finished else None for m in METRICS})


def collect(out: pathlib.Path, settings, on_test: bool = False,
            probe: str = 'strong') -> list[dict]:
  """Per setting: each finished training seed's mean over probe seeds, their
  mean ± std (None while no seed has finished) and training minutes."""
  rows = []
  for setting in settings:
    values = {m: [] for m in METRICS}
    minutes = []
    seeds = finished_seeds(out, setting.name, on_test)
    for seed in seeds:
      w = workdir(out, setting.name, seed)
      report = json.loads(report_path(w, on_test).read_text())
      for m in METRICS:
        values[m].append(report['probes'][probe]['summary'][m]['mean'])
      minutes.append(training_minutes(w))
    rows.append(summarise(dict(setting=setting.name, planned=setting.seeds,
                               training_seeds=seeds, values=values,
                               minutes=minutes)))
  return rows


def include(rows: list[dict], earlier: list[dict], source: str) -> list[dict]:
  """Adds an earlier report's training seeds that did not finish here (marked
  with where they came from: the source that report names for the row,
  else its path), so that runs made on different machines combine. Reports
  before seeds were recorded hold seeds 0, 1, ...; a row transcribed as
  mean ± std over several seeds is taken whole, and only by a setting with
  no finished seed here (it cannot take more seeds)."""
  by_name = {r['setting']: r for r in earlier}
  merged = []
  for row in rows:
    old = by_name.get(row['setting'])
    if not old or not old['seeds']:
      merged.append(row)
      continue
    old_source = old.get('source', source)
    if not old['values'].get(METRICS[0]) and old['seeds'] == 1:
      # A transcribed single seed: its mean is that seed's value.
      old = dict(old, values={m: [old[m]['mean']] for m in METRICS})
    if not old['values'].get(METRICS[0]):  # a summary only
      merged.append(row if row['seeds'] else
                    dict(old, planned=row['planned'], source=old_source))
      continue
    old_seeds = old.get('training_seeds', list(range(old['seeds'])))
    old_minutes = (old['minutes'] if len(old['minutes']) == len(old_seeds)
                   else [None] * len(old_seeds))
    # seed -> ({metric: value}, training minutes); a seed run here wins.
    by_seed = {s: ({m: old['values'][m][i] for m in METRICS}, old_minutes[i])
               for i, s in enumerate(old_seeds)}
    added = sorted(set(by_seed) - set(row['training_seeds']))
    if not added:
      merged.append(row)
      continue
    by_seed.update({s: ({m: row['values'][m][i] for m in METRICS},
                        row['minutes'][i])
                    for i, s in enumerate(row['training_seeds'])})
    seeds = sorted(by_seed)
    joined = summarise(dict(
        row, training_seeds=seeds,
        values={m: [by_seed[s][0][m] for s in seeds] for m in METRICS},
        minutes=[by_seed[s][1] for s in seeds], source=old_source))
    if row['training_seeds']:  # only some seeds came from the source
      joined['included_seeds'] = added
    merged.append(joined)
  return merged


def markdown(rows: list[dict], title: str, minutes: bool = True) -> str:
  """The rows as a Markdown table; changes are against the first row. Rows
  from an earlier report (`include`) are marked, their source named below."""
  reference = rows[0]
  sources = list(dict.fromkeys(r['source'] for r in rows if 'source' in r))

  def cell(r, m):  # one seed has no spread to show
    if r[m] is None:
      return 'not run yet'
    return (f"{r[m]['mean']:.3f} ± {r[m]['std']:.3f}" if r['seeds'] > 1 else
            f"{r[m]['mean']:.3f}")

  def delta(r, m):
    if r is reference or r[m] is None or reference[m] is None:
      return ''
    return f"{r[m]['mean'] - reference[m]['mean']:+.3f}"

  def train_minutes(r):
    known = [t for t in r['minutes'] if t is not None]
    return f'{np.mean(known):.0f}' if known else ''

  name = reference['setting']
  header = (['setting', 'training seeds', 'AP', 'AUC', 'F1'] +
            [f'Δ{m.upper()} vs {name}' for m in ('ap', 'auc', 'f1')] +
            (['train min'] if minutes else []))
  lines = ['| ' + ' | '.join(header) + ' |',
           '|' + '---|' * len(header)]
  for r in rows:
    seeds = (f"{r['seeds']}" if r['seeds'] >= r['planned'] else
             f"{r['seeds']} of {r['planned']}")
    mark = ('*' * (sources.index(r['source']) + 1)) if 'source' in r else ''
    if 'included_seeds' in r:  # only these seeds came from the source
      seeds += f" (seed {', '.join(map(str, r['included_seeds']))}{mark})"
      mark = ''
    cells = [r['setting'] + mark, seeds] + [cell(r, m) for m in METRICS] + [
        delta(r, m) for m in METRICS] + ([train_minutes(r)] if minutes else [])
    lines.append('| ' + ' | '.join(cells) + ' |')
  notes = ''.join(f'\n\n{"*" * (i + 1)} from {source}'
                  for i, source in enumerate(sources))
  return f'{title}\n\n' + '\n'.join(lines) + notes


def bar_colors(rows: list[dict], contrast: tuple[str, ...] = ()) -> list[str]:
  """One colour per row that has a bar: the reference (first) green,
  `contrast` settings red, the rest blue."""
  return ['tab:green' if i == 0 else 'tab:red' if r['setting'] in contrast
          else 'tab:blue' for i, r in enumerate(rows) if r['seeds']]


def plot(rows: list[dict], path: pathlib.Path, title: str,
         contrast: tuple[str, ...] = ()) -> None:
  """AP / AUC / F1 bars with training-seed error bars; the reference first,
  in green, and its level dashed; `contrast` settings (the ablation's
  "none") in red, the rest blue. Settings not run yet get no bar; rows from
  an earlier report are hatched (dotted where only some of their seeds are),
  and each training seed's value is a dot on its bar."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  from matplotlib import pyplot as plt  # pylint: disable=g-import-not-at-top
  fig, axes = plt.subplots(1, 3, figsize=(13, 4), sharey=False)
  colors = bar_colors(rows, contrast)
  reference = rows[0]['setting'] if rows[0]['seeds'] else None
  rows = [r for r in rows if r['seeds']]
  names = [r['setting'] for r in rows]
  for ax, metric in zip(axes, METRICS):
    means = np.array([r[metric]['mean'] for r in rows])
    stds = np.array([r[metric]['std'] for r in rows])
    # Rows taken from an earlier report (--include) are hatched.
    ax.bar(range(len(rows)), means, yerr=stds, color=colors, capsize=3,
           hatch=[('..' if 'included_seeds' in r else '//')
                  if 'source' in r else '' for r in rows],
           edgecolor='white')
    # Each training seed's value; transcribed summaries have none.
    seed_values = [r['values'].get(metric, []) for r in rows]
    for i, values in enumerate(seed_values):
      ax.plot([i] * len(values), values, 'o', ms=3, color='black', alpha=0.6)
    if names[0] == reference:
      ax.axhline(means[0], color='tab:green', lw=0.8, ls='--')
    ax.set_xticks(range(len(rows)))
    ax.set_xticklabels(names, rotation=60, ha='right', fontsize=8)
    ax.set_title(metric.upper())
    every_seed = [v for values in seed_values for v in values]
    low = min([float((means - stds).min())] + every_seed)
    high = max([float((means + stds).max())] + every_seed)
    span = max(high - low, 0.02)
    ax.set_ylim(low - 0.3 * span, high + 0.3 * span)
    ax.grid(axis='y', alpha=0.3)
  runner.save_figure(fig, title, path)


def add_flags(parser, out: str) -> None:
  """The flags that compare.py and the drivers built on it share."""
  parser.add_argument('--out', default=out)
  parser.add_argument('--variant', default='demo')
  parser.add_argument('--steps', type=int, default=0,
                      help='training steps per run (0: the config\'s)')
  parser.add_argument('--first_seed', type=int, default=0,
                      help='the first training seed to train (to add seeds '
                      'to settings that have some, here or in --include)')
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
  parser.add_argument('--include', default=None,
                      help='an earlier report\'s JSON (OUT/<name>.json, e.g. '
                      'one kept in docs/): settings with no finished run '
                      'under --out take its rows, so that runs made on '
                      'different machines combine in one table and plot')
  parser.add_argument('--only', action='append', default=None,
                      metavar='SETTING',
                      help='train and probe only this setting (repeat; its '
                      'name as in the table), e.g. to share the settings out '
                      'between machines; the report still covers them all')


def run(args, settings, method: str, name: str, what: str,
        minutes: bool = True, contrast: tuple[str, ...] = ()) -> int:
  """Trains and probes what has not finished, then writes OUT/<name>.*."""
  out = (ROOT / args.out).resolve()
  earlier = {}
  if args.include:  # read first: a bad path fails before hours of training
    try:
      earlier = json.loads(pathlib.Path(args.include).read_text())
    except (OSError, ValueError) as e:
      raise SystemExit(f'error: --include={args.include}: not a readable '
                       f'report JSON ({e})') from e
  names = [s.name for s in settings]
  unknown = sorted(set(args.only or ()) - set(names))
  if unknown:
    raise SystemExit(f'error: --only={unknown}: no such setting; the '
                     f'settings are {names}')
  if not args.report:
    to_run = [s for s in settings if not args.only or s.name in args.only]
    # Training always runs (it resumes, or returns at once when finished).
    runner.run_pending(
        steps(out, to_run, args, method),
        lambda c: c[1] != 'cvrl.train' and report_path(
            pathlib.Path(c[2].split('=', 1)[1]), args.on_test).exists(),
        args.dry_run, out, args.jobs)
  if args.dry_run:
    return 0
  total = runner.wall_time(out)
  split = 'test split' if args.on_test else 'validation pieces'
  text = (f'configs/{method}.py:{args.variant}, evaluated on the {split}; '
          f'{args.probe_seeds} probe seeds per training seed, frames every '
          f'{args.hop}; mean ± std over training seeds; {total / 60:.0f} min '
          'of wall time (all invocations' +
          (', not counting included rows' if earlier else '') + ').\n\n')
  results = {}
  for probe in ('strong', 'published'):
    results[probe] = include(collect(out, settings, args.on_test, probe),
                             earlier.get(probe, []), str(args.include))
    text += markdown(results[probe], f'{what}, instrument probing ({probe} '
                     'probe)', minutes) + '\n\n'
  runner.write_report(out, name, text, results)
  if not any(r['seeds'] for r in results['strong']):
    print(f'wrote {out / name}.md, .json; no run has finished yet, so no '
          'plot')
    return 0
  plot(results['strong'], out / f'{name}.png',
       f'{what}: instrument probing (strong probe) by setting', contrast)
  print(f'wrote {out / name}.md, .json, .png')
  return 0


def main() -> int:
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  add_flags(parser, 'runs/compare')
  parser.add_argument('--setting', action='append', required=True,
                      help="'NAME: FIELD=VALUE ...'; repeat, reference first")
  parser.add_argument('--method', default='cv', choices=('sv', 'cv', 'sup'))
  parser.add_argument('--seeds', type=int, default=3,
                      help='training seeds of every setting')
  args = parser.parse_args()
  try:
    settings = [parse_setting(s, args.seeds) for s in args.setting]
  except ValueError as e:
    parser.error(str(e))
  names = [s.name for s in settings]
  if len(set(names)) != len(names):
    parser.error(f'--setting names must differ: {names}')
  return run(args, settings, args.method, 'compare', args.method.upper())


if __name__ == '__main__':
  sys.exit(runner.main(main))
