r"""Which built-in demo? SV and CV on demos that differ only in their SoundFonts.

  .venv/bin/python experiments/demo_study.py [--out=runs/demo_study] \
      [--draws=version,piece,instrument] [--seeds=3] [--steps=1500] \
      [--probe_seeds=3] [--hop=4] [--jobs=1]

The demo renders each version with General-MIDI SoundFonts; who draws one
(`cvrl.data.demo --soundfont_draw`) decides how the versions of a piece
differ: `version` (today's default: each version its own SoundFont, so a
cross-version positive pairs the same notes played by other instrument
samples), `piece` (all versions of a piece share one) or `instrument` (each
instrument of each version draws its own: versions differ in samples while
an instrument stays itself, as orchestras do). Notes, orchestration and
performances are the same in all three, so the comparison is run for run.

For every draw, SV and CV are trained (`:demo` configs, `--steps` steps)
with `--seeds` training seeds *without the validation pieces*
(config.data.validation) and probed for instruments *on the validation
pieces* (strong probe, the published one too), beside the draw's own log-mel input. Seeds go round
robin (seed 0 of every run first), so a partial run already compares every
setting. Each demo is built on first use into `<demo_root>_<draw>`
(`version` is the default demo itself). Writes OUT/demo_study.md / .json;
finished steps are skipped, so an interrupted study resumes.
"""

import argparse
import json
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from experiments import runner  # noqa: E402  pylint: disable=g-import-not-at-top
from experiments.table import mean_std  # noqa: E402

METHODS = ('sv', 'cv')
METRICS = ('ap', 'auc', 'f1')


def demo_root(args, draw: str) -> str:
  return args.demo_root if draw == 'version' else f'{args.demo_root}_{draw}'


def workdir(out: pathlib.Path, draw: str, method: str, seed: int):
  return out / draw / method / f'seed{seed}'


def steps(out: pathlib.Path, args) -> list[tuple[str, ...]]:
  commands = []
  for seed in range(args.seeds):  # round robin: every setting's seed 0 first
    for draw in args.draws:
      for method in METHODS:
        w = workdir(out, draw, method, seed)
        commands.append(('-m', 'cvrl.train', f'--config=configs/{method}.py:demo',
                         f'--workdir={w}', f'--config.seed={seed}',
                         '--config.data.validation=True',
                         f'--config.data.root={demo_root(args, draw)}',
                         f'--config.data.demo_soundfont_draw={draw}',
                         f'--config.num_train_steps={args.steps}'))
        commands.append(('-m', 'cvrl.probe', f'--workdir={w}',
                         '--target=instruments', f'--seeds={args.probe_seeds}',
                         f'--hop={args.hop}'))
      if seed == 0:  # the draw's own input, on the same pieces
        commands.append(('-m', 'cvrl.probe',
                         f'--workdir={out / draw / "input"}',
                         '--representation=input', '--validation',
                         f'--data={demo_root(args, draw)}',
                         '--target=instruments', f'--seeds={args.probe_seeds}',
                         f'--hop={args.hop}'))
  return commands


def report_path(command) -> pathlib.Path:
  flags = runner.flag_values(command)
  name = ('input' if flags.get('representation') == 'input'
          else 'embedding') + '-val'
  return pathlib.Path(flags['workdir']) / 'probe' / f'{name}-instruments.json'


def summarise(out: pathlib.Path, args, probe: str = 'strong') -> dict:
  """{draw: {method: per-seed values, mean, std}, differences, input}.

  Only seeds whose SV and CV runs have both finished count, so a partial
  study compares like with like.
  """
  results = {}
  for draw in args.draws:
    entry = {}
    paths = {m: [workdir(out, draw, m, s) / 'probe' / 'embedding-val-instruments.json'
                 for s in range(args.seeds)] for m in METHODS}
    done = [s for s in range(args.seeds)
            if all(paths[m][s].exists() for m in METHODS)]
    for method in METHODS:
      values = {m: [] for m in METRICS}
      for seed in done:
        summary = json.loads(paths[method][seed].read_text())['probes'][probe][
            'summary']
        for metric in METRICS:
          values[metric].append(summary[metric]['mean'])
      entry[method] = dict(values=values, **{
          m: dict(zip(('mean', 'std'), mean_std(values[m])))
          for m in METRICS if values[m]})
    entry['cv_minus_sv'] = {m: [c - s for c, s in zip(
        entry['cv']['values'][m], entry['sv']['values'][m])] for m in METRICS}
    entry['seeds'] = done
    input_path = out / draw / 'input' / 'probe' / 'input-val-instruments.json'
    if input_path.exists():
      summary = json.loads(input_path.read_text())['probes'][probe]['summary']
      entry['input'] = {m: summary[m] for m in METRICS}
    results[draw] = entry
  return results


def markdown(results: dict, probe: str) -> str:
  lines = [f'Instrument probing ({probe} probe) on the validation pieces; '
           'SV / CV: mean ± std over training seeds.', '',
           '| SoundFont drawn per | seeds | SV AP | CV AP | CV − SV AP per seed '
           '| CV > SV (AP / AUC / F1) | log-mel input AP |',
           '|---|---|---|---|---|---|---|']
  for draw, e in results.items():
    if not e['seeds']:
      lines.append(f'| {draw} | 0 | | | | | |')
      continue
    cell = lambda m: f"{e[m]['ap']['mean']:.3f} ± {e[m]['ap']['std']:.3f}"
    wins = ' / '.join(f"{sum(d > 0 for d in e['cv_minus_sv'][m])}/"
                      f"{len(e['seeds'])}" for m in METRICS)
    per_seed = ', '.join(f'{d:+.3f}' for d in e['cv_minus_sv']['ap'])
    inp = f"{e['input']['ap']['mean']:.3f}" if 'input' in e else ''
    lines.append(f"| {draw} | {len(e['seeds'])} | {cell('sv')} | {cell('cv')} "
                 f'| {per_seed} | {wins} | {inp} |')
  return '\n'.join(lines)


def main() -> int:
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  parser.add_argument('--out', default='runs/demo_study')
  parser.add_argument('--draws', default='version,piece,instrument',
                      type=lambda s: [x for x in s.split(',') if x])
  parser.add_argument('--demo_root', default='demo_data',
                      help='the default demo; other draws go beside it')
  parser.add_argument('--seeds', type=int, default=3)
  parser.add_argument('--steps', type=int, default=1500,
                      help='training steps per run: 1500, the :demo budget '
                      'when its recorded results ran (:demo is 6000 since)')
  parser.add_argument('--probe_seeds', type=int, default=3)
  parser.add_argument('--hop', type=int, default=4)
  runner.add_run_flags(parser)
  parser.add_argument('--report', action='store_true',
                      help='tabulate the finished seeds, run nothing')
  args = parser.parse_args()
  out = (ROOT / args.out).resolve()
  if not args.report:
    runner.run_pending(steps(out, args), lambda c: c[1] != 'cvrl.train'
                       and report_path(c).exists(), args.dry_run, out,
                       args.jobs)
  if args.dry_run:
    return 0
  total = runner.wall_time(out)
  results = {p: summarise(out, args, p) for p in ('strong', 'published')}
  text = '\n\n'.join(markdown(results[p], p) for p in results) + (
      f'\n\n{total / 60:.0f} min of wall time (all invocations).\n')
  runner.write_report(out, 'demo_study', text, results)
  return 0


if __name__ == '__main__':
  sys.exit(runner.main(main))
