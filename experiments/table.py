r"""The SV / CV / Sup results table, over training seeds, in one command.

  .venv/bin/python experiments/table.py [--out=runs/table] [--variant=demo] \
      [--seeds=3] [--steps=6000] [--probe_seeds=3] [--hop=4] \
      [--layers=embedding,dense0,final] [--no-hold_out_validation] \
      [--jobs=1] [--carry=ARCHIVE.tar.gz]

Trains SV, CV and Sup with configs/{sv,cv,sup}.py:<variant> once per
training seed (`--config.seed=k`, OUT/<method>/seed<k>); SV and CV for
`--steps` steps (the budget the training-length study chose on the
validation pieces), Sup for its config's. By default the encoders train
without the validation pieces (`--config.data.validation=True`: the very
runs the validation studies chose on, e.g. experiments/train_length.py's)
and every evaluation is on the test pieces (`--validation=false`), which no
encoder and no choice has seen. Probes every
encoder at every `--layers` layer, the MFCC and chroma baselines and the
log-mel input frames themselves for instruments and pitch classes
(published and strong probe, `--probe_seeds` probe seeds each); runs the SSM
boundary evaluation of all of them. Writes OUT/table.md, OUT/table.json and
OUT/ssm-f.png. Encoders' cells are mean ± std over training seeds (each
seed's value is its mean over probe seeds); the baselines, which nothing
trains, are mean ± std over probe seeds. CV − SV is also given per training
seed (paired: same seed, same data order), with whether CV > SV holds in
every seed. Every step is a run of the public binaries (cvrl.train,
cvrl.probe, cvrl.ssm) and is skipped when its output exists, so an
interrupted table resumes where it stopped. A table longer than one
machine's life (~6 h for `:demo` on 2 CPU cores) goes on on the next machine
with `--carry`: the archive holds every finished run's reports (not its
checkpoints), and a run whose reports are all there is not trained again.
"""

import argparse
import json
import pathlib
import sys
from typing import NamedTuple

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cvrl.evaluation import boundaries as ssm_lib  # noqa: E402  pylint: disable=g-import-not-at-top
from cvrl.evaluation import representations  # noqa: E402
from experiments import runner  # noqa: E402

METHODS = ('sv', 'cv', 'sup')
BASELINES = (('MFCC', 'mfcc'), ('Chroma', 'chroma'), ('Log-mel input', 'input'))
TARGETS = ('instruments', 'pitch_classes')
PROBES = ('published', 'strong')
METRICS = ('ap', 'auc', 'f1')
PUBLISHED = dict(sv=(0.708, 0.735, 0.590), cv=(0.753, 0.795, 0.657),
                 sup=(0.838, 0.881, 0.772))


class Row(NamedTuple):
  """One row of the table: a representation read from one or more workdirs."""
  name: str
  method: str  # 'sv' | 'cv' | 'sup' | '' (baseline)
  workdirs: tuple[pathlib.Path, ...]  # one per training seed
  representation: str
  layer: str

  @property
  def file_name(self) -> str:
    return representations.name(self.representation, self.layer)


def table_rows(out: pathlib.Path, train_seeds: int, layers) -> list[Row]:
  rows = []
  for method in METHODS:
    seeds = tuple(out / method / f'seed{k}' for k in range(train_seeds))
    for layer in layers:
      name = method.upper() + ('' if layer == 'embedding' else f' ({layer})')
      rows.append(Row(name, method, seeds, 'embedding', layer))
  for name, representation in BASELINES:
    rows.append(Row(name, '', (out / 'baselines',), representation,
                    'embedding'))
  return rows


def steps(out: pathlib.Path, args) -> list[tuple[str, ...]]:
  """Every command line of the table, in order (finished ones included)."""
  data = [f'--config.data.root={args.data}'] if args.data else []
  if args.hold_out_validation:
    data.append('--config.data.validation=True')
  commands = []
  for method in METHODS:
    steps_flag = ([f'--config.num_train_steps={args.steps}']
                  if args.steps and method != 'sup' else [])
    for seed in range(args.seeds):
      commands.append(('-m', 'cvrl.train',
                       f'--config=configs/{method}.py:{args.variant}',
                       f'--workdir={out / method / f"seed{seed}"}',
                       f'--config.seed={seed}', *data, *steps_flag))
  baseline_data = (f'--data={args.data}',) if args.data else ()
  # On the test pieces even where the encoder was trained for a study view.
  split = ('--validation=false',) if args.hold_out_validation else ()
  for row in table_rows(out, args.seeds, args.layers):
    extra = (baseline_data if row.method == '' else ()) + split
    for workdir in row.workdirs:
      for target in TARGETS:
        commands.append(('-m', 'cvrl.probe', f'--workdir={workdir}',
                         f'--target={target}',
                         f'--representation={row.representation}',
                         f'--layer={row.layer}', f'--seeds={args.probe_seeds}',
                         f'--hop={args.hop}', *extra))
      commands.append(('-m', 'cvrl.ssm', f'--workdir={workdir}',
                       f'--representation={row.representation}',
                       f'--layer={row.layer}', f'--hop={args.hop}', *extra))
  return commands


def output_of(command: tuple[str, ...]):
  """The file whose existence means a step has finished; None for training,
  which writes checkpoints (runner.finished_when_outputs_exist)."""
  flags = runner.flag_values(command)
  workdir = pathlib.Path(flags['workdir'])
  if command[1] == 'cvrl.train':
    return None
  name = representations.name(flags['representation'], flags['layer'])
  if command[1] == 'cvrl.probe':
    return workdir / 'probe' / f'{name}-{flags["target"]}.json'
  return workdir / 'ssm' / f'{name}.json'


# ----------------------------------------------------------------------------
# Aggregation (pure: reads the reports, tested on hand-made ones).


def probe_values(row: Row, probe: str, target: str) -> dict[str, list[float]]:
  """{metric: one value per training seed} (baselines: per probe seed)."""
  values = {m: [] for m in METRICS}
  for workdir in row.workdirs:
    report = json.loads((workdir / 'probe' / f'{row.file_name}-{target}.json')
                        .read_text())
    run = report['probes'][probe]
    for metric in METRICS:
      if row.method:  # a training seed: its mean over probe seeds
        values[metric].append(run['summary'][metric]['mean'])
      else:
        values[metric] += [r[metric] for r in run['runs']]
  return values


def mean_std(values) -> tuple[float, float]:
  values = np.asarray(values, np.float64)
  return float(values.mean()), float(values.std(ddof=1) if len(values) > 1
                                     else 0.0)


def paired_differences(rows: list[Row], probe: str, target: str,
                       a: str = 'cv', b: str = 'sv',
                       layer: str = 'embedding') -> dict[str, list[float]]:
  """{metric: [a - b per training seed]} at `layer` (seeds paired by index)."""
  by_method = {r.method: r for r in rows if r.layer == layer and r.method}
  va = probe_values(by_method[a], probe, target)
  vb = probe_values(by_method[b], probe, target)
  return {m: [x - y for x, y in zip(va[m], vb[m])] for m in METRICS}


def cv_against_baselines(cells: dict, rows: list[Row], probe: str) -> str:
  """The aim 'CV at its best layer >= the log-mel input and MFCC on AP'."""
  key = f'{probe}-instruments'
  cv = max((r for r in rows if r.method == 'cv'),
           key=lambda r: cells[r.name][key]['ap']['mean'])
  best = cells[cv.name][key]['ap']['mean']
  against = {name: cells[name][key]['ap']['mean']
             for name in ('Log-mel input', 'MFCC')}
  holds = all(best >= v for v in against.values())
  return (f'CV at its best layer ({cv.layer}, AP {best:.3f}) >= the log-mel '
          'input and MFCC (' + ', '.join(f'{v:.3f}' for v in against.values())
          + f'): {"holds" if holds else "does not hold"}.')


def mean_ssm_report(reports: list[dict]) -> dict:
  """A report whose F curves are the means of several (training seeds)."""
  merged = dict(reports[0], mean={})
  for ref in ('ref_i', 'ref_h'):
    f = np.mean([r['mean'][ref]['f'] for r in reports], axis=0)
    merged['mean'][ref] = dict(reports[0]['mean'][ref], f=f.tolist())
  return merged


def build_table(out: pathlib.Path, args, seconds: float) -> tuple[str, dict]:
  rows = table_rows(out, args.seeds, args.layers)
  budget = (f'SV / CV {args.steps} steps, Sup its config\'s'
            if args.steps else 'each config\'s steps')
  trained_on = ('train pieces less the validation pieces'
                if args.hold_out_validation else 'all train pieces')
  lines = [f'Dataset `{args.data or "demo_data"}`, configs `:{args.variant}` '
           f'({budget}; trained on the {trained_on}; evaluated on the test '
           f'pieces), {args.seeds} training seeds x {args.probe_seeds} probe '
           f'seeds, frames every {args.hop}; {seconds / 60:.0f} min of wall '
           'time on this machine (every step this command ran). Encoders: '
           'mean ± std over training seeds; baselines: over probe seeds.', '']
  results = {'rows': {}, 'differences': {}}
  for probe in PROBES:
    for target in TARGETS:
      paper = target == 'instruments' and probe == 'published'
      lines += [f'**{target.replace("_", " ")}, {probe} probe**', '',
                '| | AP | AUC | F1 |' + (' published AP / AUC / F1 |'
                                          if paper else ''),
                '|---|---|---|---|' + ('---|' if paper else '')]
      for row in rows:
        values = probe_values(row, probe, target)
        cells = {m: mean_std(values[m]) for m in METRICS}
        results['rows'].setdefault(row.name, {})[f'{probe}-{target}'] = dict(
            values=values, **{m: dict(mean=c[0], std=c[1])
                              for m, c in cells.items()})
        line = f'| {row.name} | ' + ' | '.join(
            f'{c[0]:.3f} ± {c[1]:.3f}' for c in cells.values()) + ' |'
        if paper:
          published = PUBLISHED.get(row.method) if row.layer == 'embedding' \
              else None
          line += (' ' + ' / '.join(f'{v:.3f}' for v in published) + ' |'
                   if published else ' |')
        lines.append(line)
      differences = paired_differences(rows, probe, target)
      results['differences'][f'{probe}-{target}'] = differences
      lines += ['', 'CV − SV per training seed: ' + '; '.join(
          f'{m.upper()} ' + ', '.join(f'{d:+.3f}' for d in differences[m]) +
          f' ({sum(d > 0 for d in differences[m])}/{len(differences[m])} '
          'seeds CV > SV)' for m in METRICS), '']
      if target == 'instruments':
        lines += [cv_against_baselines(results['rows'], rows, probe), '']
  lines += ['**SSM boundaries** (F at 3 s tolerance, mean over test versions '
            'and training seeds)', '',
            '| | vs Ref_I, 20 s kernel | vs Ref_I, best (kernel) | '
            'vs Ref_H, 20 s kernel | vs Ref_H, best (kernel) |',
            '|---|---|---|---|---|']
  curves = {}
  for row in rows:
    report = mean_ssm_report([json.loads(
        (w / 'ssm' / f'{row.file_name}.json').read_text())
                              for w in row.workdirs])
    curves[row.name] = report
    summary = ssm_lib.summary_columns(report)
    results['rows'][row.name]['ssm'] = summary
    cells = []
    for ref in ('ref_i', 'ref_h'):
      s = summary[ref]
      cells += [f"{s['f_mid']:.3f}",
                f"{s['f_best']:.3f} ({s['best_seconds']:.0f} s)"]
    lines.append(f'| {row.name} | ' + ' | '.join(cells) + ' |')
  ssm_lib.plot_curves(curves, out / 'ssm-f.png',
                      'test versions: boundaries of each SSM vs the '
                      'reference SSMs')
  return '\n'.join(lines) + '\n', results


def main() -> int:
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  parser.add_argument('--out', default='runs/table')
  parser.add_argument('--variant', default='demo')
  # Flag names as in every driver under experiments/: --seeds counts
  # training seeds, --probe_seeds the probe seeds inside each.
  parser.add_argument('--seeds', type=int, default=3,
                      help='training seeds per method (0, 1, ...)')
  parser.add_argument('--steps', type=int, default=6000,
                      help='SV and CV training steps (0: the config\'s); '
                      'Sup keeps its config\'s')
  parser.add_argument('--hold_out_validation',
                      action=argparse.BooleanOptionalAction, default=True,
                      help='train without the validation pieces (the runs '
                      'the studies chose on); evaluation is on test either '
                      'way')
  parser.add_argument('--probe_seeds', type=int, default=3,
                      help='probe seeds inside each training seed')
  parser.add_argument('--hop', type=int, default=4,
                      help='probe / SSM every hop-th frame (1 = published)')
  parser.add_argument('--layers', default='embedding',
                      type=lambda s: [x for x in s.split(',') if x],
                      help='encoder layers to evaluate (cvrl.probe --layer)')
  parser.add_argument('--data', default=None,
                      help='dataset (default: the configs\' data.root)')
  runner.add_run_flags(parser)
  runner.add_carry_flag(parser)
  args = parser.parse_args()
  out = (ROOT / args.out).resolve()
  with runner.carried(args.carry, out, pack=not args.dry_run):
    commands = steps(out, args)
    runner.run_pending(commands, runner.finished_when_outputs_exist(
        commands, output_of), args.dry_run, out, args.jobs, args.carry)
    if args.dry_run:
      return 0
    total = runner.wall_time(out)
    table, results = build_table(out, args, total)
    runner.write_report(out, 'table', table, results)
  print(f'wrote {out / "table.md"}, table.json, ssm-f.png')
  return 0


if __name__ == '__main__':
  sys.exit(runner.main(main))
