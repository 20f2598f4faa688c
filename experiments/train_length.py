r"""Does the probe still improve with training? SV and CV probed along one run.

  .venv/bin/python experiments/train_length.py [--out=runs/train_length] \
      [--variant=demo] [--steps=1500,3000,6000] [--seeds=1] [--probe_seeds=3] \
      [--hop=4] [--data=DIR]

Trains SV and CV (configs/<method>.py:<variant>, without the validation
pieces) to each length in `--steps` in turn and probes the checkpoint at that
length for instruments on the validation pieces (strong probe, the published
one too), beside the log-mel input on the same pieces. The learning rate is
constant and examples depend only on their index, so the checkpoint at 3000
steps of a run continued to 6000 is the 3000-step run: one run per method
and seed gives the whole curve. Lengths go round robin (every method's
shortest first), so a partial run already compares SV and CV. Writes
OUT/train_length.md / .json and OUT/train_length.png (AP, AUC, F1 against
steps); finished steps are skipped, so an interrupted run resumes.
"""

import argparse
import json
import math
import pathlib
import sys

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cvrl.evaluation import representations  # noqa: E402  pylint: disable=g-import-not-at-top
from experiments import runner  # noqa: E402
from experiments.table import mean_std  # noqa: E402

METHODS = ('sv', 'cv')
METRICS = ('ap', 'auc', 'f1')
SAVE_EVERY = 250  # steps; configs/base.py's :demo checkpoint_every


def workdir(out: pathlib.Path, method: str, seed: int) -> pathlib.Path:
  return out / method / f'seed{seed}'


def report_path(w: pathlib.Path, step: int) -> pathlib.Path:
  name = representations.name('embedding', validation=True, step=step)
  return w / 'probe' / f'{name}-instruments.json'


def input_report(out: pathlib.Path) -> pathlib.Path:
  return out / 'input' / 'probe' / (
      representations.name('input', validation=True) + '-instruments.json')


def steps(out: pathlib.Path, args) -> list[tuple[str, ...]]:
  """Train-to-length and probe commands, shortest length of every run first."""
  # Every length must be a checkpoint that survives to the end of the run,
  # and a run stopped half-way must not start again from 0: save at least as
  # often as :demo does (SAVE_EVERY).
  every = math.gcd(*args.steps, SAVE_EVERY)
  keep = max(args.steps) // every + 1
  data = [f'--config.data.root={args.data}'] if args.data else []
  commands = [('-m', 'cvrl.probe', f'--workdir={out / "input"}',
               '--representation=input', '--validation',
               f'--data={args.data or "demo_data"}', '--target=instruments',
               f'--seeds={args.probe_seeds}', f'--hop={args.hop}')]
  for length in sorted(args.steps):
    for seed in range(args.seeds):
      for method in METHODS:
        w = workdir(out, method, seed)
        commands.append(('-m', 'cvrl.train',
                         f'--config=configs/{method}.py:{args.variant}',
                         f'--workdir={w}', f'--config.seed={seed}',
                         '--config.data.validation=True', *data,
                         f'--config.num_train_steps={length}',
                         f'--config.checkpoint_every={every}',
                         f'--config.keep_checkpoints={keep}'))
        commands.append(('-m', 'cvrl.probe', f'--workdir={w}', f'--step={length}',
                         '--target=instruments', f'--seeds={args.probe_seeds}',
                         f'--hop={args.hop}'))
  return commands


def finished(command, out: pathlib.Path) -> bool:
  """A probe is done when its report exists; training, when the probe of its
  length is (training itself resumes, or returns at once when done)."""
  flags = runner.flag_values(command)
  w = pathlib.Path(flags['workdir'])
  if flags.get('representation') == 'input':
    return input_report(out).exists()
  length = int(flags.get('step') or flags['config.num_train_steps'])
  return report_path(w, length).exists()


def effective_dimensions(w: pathlib.Path, step: int, hop: int):
  """Participation ratio (sum of variances)^2 / sum of squared variances of
  the embeddings cached at `step`: 128 if every direction carried equal
  variance, 1 if one did. None when nothing is cached."""
  files = sorted((w / 'embeddings' / f'step_{step}' / f'hop_{hop}').glob(
      '*/*.npy'))
  if not files:
    return None
  x = np.concatenate([np.load(f) for f in files]).astype(np.float64)
  variances = np.linalg.eigvalsh(np.cov(x, rowvar=False))
  return float(variances.sum() ** 2 / np.sum(variances ** 2))


def finished_runs(out: pathlib.Path, method: str) -> tuple[set, set]:
  """(lengths, seeds) of `method` with a finished probe on disk.

  The report shows these too, whatever --steps / --seeds ask this time: a
  run continued to one more length must not drop the lengths before it.
  """
  lengths, seeds = set(), set()
  reports = 'seed*/probe/embedding_step*-val-instruments.json'
  for f in (out / method).glob(reports):
    length = f.name[len('embedding_step'):].split('-', 1)[0]
    seed = f.parents[1].name[len('seed'):]
    if length.isdigit() and seed.isdigit() and report_path(
        f.parents[1], int(length)) == f:
      lengths.add(int(length))
      seeds.add(int(seed))
  return lengths, seeds


def collect(out: pathlib.Path, args, probe: str = 'strong') -> dict:
  """{method: {length: {metric: mean, std, values; seeds}}}, input.

  Seeds whose probe of a length has not finished are left out of its row.
  """
  results = {}
  for method in METHODS:
    rows = {}
    lengths, seeds_done = finished_runs(out, method)
    for length in sorted(set(args.steps) | lengths):
      seeds = [s for s in sorted(set(range(args.seeds)) | seeds_done)
               if report_path(workdir(out, method, s), length).exists()]
      if not seeds:
        continue
      summaries = [json.loads(report_path(workdir(out, method, s), length)
                              .read_text())['probes'][probe]['summary']
                   for s in seeds]
      rows[length] = {m: dict(values=[x[m]['mean'] for x in summaries],
                              **dict(zip(('mean', 'std'), mean_std(
                                  [x[m]['mean'] for x in summaries]))))
                      for m in METRICS}
      rows[length]['seeds'] = seeds
      rows[length]['dims'] = [effective_dimensions(
          workdir(out, method, s), length, args.hop) for s in seeds]
    results[method] = rows
  if input_report(out).exists():
    summary = json.loads(input_report(out).read_text())['probes'][probe][
        'summary']
    results['input'] = {m: summary[m]['mean'] for m in METRICS}
  return results


def markdown(results: dict, probe: str) -> str:
  def dims(r):  # mean over seeds of the embeddings' participation ratio
    known = [d for d in (r or {}).get('dims', []) if d is not None]
    return f'{np.mean(known):.1f}' if known else ''

  lines = [f'Instrument probing ({probe} probe) on the validation pieces, '
           'mean ± std over training seeds; effective dims: participation '
           'ratio of the embeddings the probe saw.', '',
           '| steps | SV AP | CV AP | CV − SV AP per seed | SV AUC | CV AUC | SV F1 '
           '| CV F1 | SV / CV effective dims |',
           '|---|---|---|---|---|---|---|---|---|']
  lengths = sorted(set(results['sv']) | set(results['cv']))
  for length in lengths:
    sv, cv = results['sv'].get(length), results['cv'].get(length)
    def cell(r, m):  # one seed has no spread to show
      if not r:
        return ''
      spread = f" ± {r[m]['std']:.3f}" if len(r[m]['values']) > 1 else ''
      return f"{r[m]['mean']:.3f}{spread}"
    sv_ap, cv_ap = (dict(zip(r['seeds'], r['ap']['values'])) if r else {}
                    for r in (sv, cv))
    diff = ', '.join(f'{cv_ap[seed] - sv_ap[seed]:+.3f}'
                     for seed in sorted(set(sv_ap) & set(cv_ap)))
    lines.append(f"| {length} | {cell(sv, 'ap')} | {cell(cv, 'ap')} | {diff} "
                 f"| {cell(sv, 'auc')} | {cell(cv, 'auc')} | {cell(sv, 'f1')} "
                 f"| {cell(cv, 'f1')} | {dims(sv)} / {dims(cv)} |")
  if 'input' in results:
    i = results['input']
    lines.append(f"| log-mel input | {i['ap']:.3f} | | | {i['auc']:.3f} | "
                 f"| {i['f1']:.3f} | | |")
  return '\n'.join(lines)


def plot(results: dict, path: pathlib.Path, title: str) -> None:
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  from matplotlib import pyplot as plt  # pylint: disable=g-import-not-at-top
  fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
  for ax, metric in zip(axes, METRICS):
    for method, color in (('sv', 'tab:orange'), ('cv', 'tab:blue')):
      rows = results[method]
      lengths = sorted(rows)
      ax.errorbar(lengths, [rows[n][metric]['mean'] for n in lengths],
                  yerr=[rows[n][metric]['std'] for n in lengths], marker='o',
                  capsize=3, color=color, label=method.upper())
    if 'input' in results:
      ax.axhline(results['input'][metric], color='gray', ls='--',
                 label='log-mel input')
    ax.set_xscale('log')
    lengths = sorted(set(results['sv']) | set(results['cv']))
    ax.set_xticks(lengths, [str(n) for n in lengths])
    ax.minorticks_off()
    ax.set_xlabel('training steps')
    ax.set_title(metric.upper())
    ax.grid(alpha=0.3)
  axes[0].legend()
  runner.save_figure(fig, title, path)


def main() -> int:
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  parser.add_argument('--out', default='runs/train_length')
  parser.add_argument('--variant', default='demo')
  parser.add_argument('--steps', default=[1500, 3000, 6000],
                      type=lambda s: [int(x) for x in s.split(',') if x])
  parser.add_argument('--seeds', type=int, default=1)
  parser.add_argument('--probe_seeds', type=int, default=3)
  parser.add_argument('--hop', type=int, default=4)
  parser.add_argument('--data', default=None,
                      help='dataset (default: the config\'s data.root)')
  runner.add_run_flags(parser)
  parser.add_argument('--report', action='store_true',
                      help='tabulate what has finished, run nothing')
  args = parser.parse_args()
  out = (ROOT / args.out).resolve()
  if not args.report:
    runner.run_pending(steps(out, args), lambda c: finished(c, out),
                       args.dry_run, out, args.jobs)
  if args.dry_run:
    return 0
  total = runner.wall_time(out)
  results = {p: collect(out, args, p) for p in ('strong', 'published')}
  seeds = max([len(row['seeds']) for method in METHODS
               for row in results['strong'][method].values()] + [args.seeds])
  text = '\n\n'.join(markdown(results[p], p) for p in results) + (
      f'\n\n{seeds} training seed(s); {total / 60:.0f} min of wall time '
      '(all invocations).\n')
  runner.write_report(out, 'train_length', text, results)
  plot(results['strong'], out / 'train_length.png',
       'SV and CV against training length (strong probe, validation pieces)')
  return 0


if __name__ == '__main__':
  sys.exit(runner.main(main))
