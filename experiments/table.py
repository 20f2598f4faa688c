r"""The SV / CV / Sup results table on the demo dataset, in one command.

  .venv/bin/python experiments/table.py [--out=runs/table] [--variant=demo] [--seeds=3] [--hop=4]

Trains SV, CV and Sup with configs/{sv,cv,sup}.py:<variant>; probes the
three embeddings, the MFCC and chroma baselines and the log-mel input frames
themselves for instruments and pitch classes (published and strong probe, `--seeds` seeds each); runs the SSM
boundary evaluation of all five; writes OUT/table.md, OUT/table.json and
OUT/ssm-f.png (F against kernel size, every representation, vs Ref_I and
Ref_H). Every step is a run of the public binaries (cvrl.train, cvrl.probe,
cvrl.ssm) and is skipped when its output exists, so an interrupted table
resumes where it stopped.
"""

import argparse
import json
import pathlib
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cvrl.evaluation import boundaries as ssm_lib  # noqa: E402  pylint: disable=g-import-not-at-top
from experiments import runner  # noqa: E402
from experiments.runner import run  # noqa: E402

METHODS = ('sv', 'cv', 'sup')
BASELINES = ('mfcc', 'chroma')
TARGETS = ('instruments', 'pitch_classes')
PUBLISHED = dict(sv=(0.708, 0.735, 0.590), cv=(0.753, 0.795, 0.657),
                 sup=(0.838, 0.881, 0.772))


def rows(out: pathlib.Path):
  """(row name, workdir, representation) of every row of the table."""
  for method in METHODS:
    yield method.upper(), out / method, 'embedding'
  for baseline in BASELINES:
    yield baseline.upper() if baseline == 'mfcc' else 'Chroma', \
        out / 'baselines', baseline
  yield 'Log-mel input', out / 'baselines', 'input'


def fmt(summary: dict, metric: str) -> str:
  s = summary[metric]
  return f"{s['mean']:.3f} ± {s['std']:.3f}"


def build_table(out: pathlib.Path, args, seconds: float) -> str:
  lines = [f'Demo dataset, configs `:{args.variant}`, probes with '
           f'{args.seeds} seeds (mean ± std), frames every {args.hop}; '
           f'{seconds / 60:.0f} min of wall time on this machine (all '
           'invocations).', '']
  results = {}
  for probe_name in ('published', 'strong'):
    for target in TARGETS:
      lines += [f'**{target.replace("_", " ")}, {probe_name} probe**', '',
                '| | AP | AUC | F1 |' + (' published AP / AUC / F1 |'
                                          if target == 'instruments' and
                                          probe_name == 'published' else ''),
                '|---|---|---|---|' + ('---|' if target == 'instruments' and
                                       probe_name == 'published' else '')]
      for name, workdir, representation in rows(out):
        report = json.loads((workdir / 'probe' /
                             f'{representation}-{target}.json').read_text())
        summary = report['probes'][probe_name]['summary']
        results.setdefault(name, {})[f'{probe_name}-{target}'] = summary
        line = f'| {name} | ' + ' | '.join(fmt(summary, m)
                                           for m in ('ap', 'auc', 'f1')) + ' |'
        if target == 'instruments' and probe_name == 'published':
          paper = PUBLISHED.get(name.lower())
          line += (' ' + ' / '.join(f'{v:.3f}' for v in paper) + ' |'
                   if paper else ' |')
        lines.append(line)
      lines.append('')
  lines += ['**SSM boundaries** (F at 3 s tolerance, mean over test versions)',
            '', '| | vs Ref_I, 20 s kernel | vs Ref_I, best (kernel) | '
            'vs Ref_H, 20 s kernel | vs Ref_H, best (kernel) |',
            '|---|---|---|---|---|']
  curves = {}
  for name, workdir, representation in rows(out):
    report = json.loads((workdir / 'ssm' / f'{representation}.json').read_text())
    curves[name] = report
    summary = ssm_lib.summary_columns(report)
    results[name]['ssm'] = summary
    cells = []
    for ref in ('ref_i', 'ref_h'):
      s = summary[ref]
      cells += [f"{s['f_mid']:.3f}", f"{s['f_best']:.3f} ({s['best_seconds']:.0f} s)"]
    lines.append(f'| {name} | ' + ' | '.join(cells) + ' |')
  ssm_lib.plot_curves(curves, out / 'ssm-f.png',
                      'demo test versions: boundaries of each SSM vs the '
                      'reference SSMs')
  (out / 'table.json').write_text(json.dumps(results, indent=1))
  return '\n'.join(lines) + '\n'


def main() -> int:
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  parser.add_argument('--out', default='runs/table')
  parser.add_argument('--variant', default='demo')
  parser.add_argument('--seeds', type=int, default=3)
  parser.add_argument('--hop', type=int, default=4,
                      help='probe / SSM every hop-th frame (1 = published)')
  parser.add_argument('--data', default=None,
                      help='dataset (default: the configs\' data.root)')
  args = parser.parse_args()
  out = (ROOT / args.out).resolve()
  start = time.time()
  data = [f'--config.data.root={args.data}'] if args.data else []
  for method in METHODS:
    run('-m', 'cvrl.train', f'--config=configs/{method}.py:{args.variant}',
        f'--workdir={out / method}', *data)
  baseline_data = [f'--data={args.data}'] if args.data else [
      f'--data={json.loads((out / "cv" / "config.json").read_text())["data"]["root"]}']
  for name, workdir, representation in rows(out):
    extra = baseline_data if representation != 'embedding' else []
    for target in TARGETS:
      if not (workdir / 'probe' / f'{representation}-{target}.json').exists():
        run('-m', 'cvrl.probe', f'--workdir={workdir}', f'--target={target}',
            f'--representation={representation}', f'--seeds={args.seeds}',
            f'--hop={args.hop}', *extra)
    if not (workdir / 'ssm' / f'{representation}.json').exists():
      run('-m', 'cvrl.ssm', f'--workdir={workdir}',
          f'--representation={representation}', f'--hop={args.hop}', *extra)
  # Wall time summed over invocations (an interrupted table resumes).
  clock = out / 'seconds.json'
  total = json.loads(clock.read_text()) if clock.exists() else 0.0
  total += time.time() - start
  clock.write_text(json.dumps(total))
  table = build_table(out, args, total)
  (out / 'table.md').write_text(table)
  print(table)
  print(f'wrote {out / "table.md"}, table.json, ssm-f.png')
  return 0


if __name__ == '__main__':
  sys.exit(runner.main(main))
