"""The benchmark scripts whose output the README quotes still run."""


import re

import helpers
from configs import cv
from cvrl import audio
from cvrl.data import prepare
from helpers import ROOT, run_python



def run_script(name, *args):
  result = run_python(str(ROOT / 'benchmarks' / name), *args)
  assert result.returncode == 0, result.stderr
  return [l for l in result.stdout.splitlines() if l.startswith('| ')]


def test_feature_prep_reports_real_time_factors(cvrl_dataset):
  rows = run_script('feature_prep.py', f'--data={cvrl_dataset}',
                    '--workers=1,2')
  kinds = [r.split('|')[1].strip() for r in rows[1:]]
  assert kinds == ['logmel', 'logmel', 'hcqt', 'hcqt']
  assert all(float(r.split('|')[4]) > 1 for r in rows[1:])


def test_version_similarity_separates_corresponding_frames(cvrl_dataset):
  prepare.prepare(cvrl_dataset, audio.feature_config(), progress=False)
  rows = run_script('version_similarity.py', f'--data={cvrl_dataset}')
  means = {r.split('|')[2].strip(): float(r.split('|')[4]) for r in rows[1:]}
  assert set(means) == {'corresponding', 'shifted by half the piece'}
  assert all(-1.0 <= m <= 1.0 for m in means.values())


def test_train_throughput_reports_steps_and_pipeline(cvrl_dataset):
  # The tiny test network (the demo's compile alone took ~30 s of CI).
  prepare.prepare(cvrl_dataset, cv.get_config('test').features,
                  progress=False)
  rows = run_script('train_throughput.py', f'--data={cvrl_dataset}',
                    '--variants=test', '--pipeline_variants=test',
                    '--workers=0', '--steps=1', '--batches=2')
  step_rows = [r for r in rows if r.startswith('| cv:test | 31x32x1')]
  assert len(step_rows) == 1 and float(step_rows[0].split('|')[5]) > 0
  pipeline_rows = [r for r in rows if r.split('|')[2].strip() in ('on', 'off')]
  assert len(pipeline_rows) == 2
  assert all(float(r.split('|')[4]) > 0 for r in pipeline_rows)


def test_embed_throughput_on_a_trained_and_a_config_encoder(trained_workdir):
  result = run_python(
      str(ROOT / 'benchmarks' / 'embed_throughput.py'),
      f'--encoders={trained_workdir},configs/cv.py:test', '--seconds=2',
      f'--plot={trained_workdir / "speed.png"}')
  assert result.returncode == 0, result.stderr
  rows = [r.split('|') for r in result.stdout.splitlines() if r.startswith('| ')]
  assert [r[3].strip() for r in rows[1:]] == ['original', 'patches', 'dense'] * 2
  assert all(float(r[5]) > 0 for r in rows[1:])
  assert (trained_workdir / 'speed.png').stat().st_size > 0


def test_step_vs_reference_prints_the_table_and_the_ratio_line():
  """The demo group end to end (the published group starts the same child
  processes with other specs: `contender_specs` and `plain_gflop` are
  tested below, in-process, to keep CI short)."""
  result = run_python(str(ROOT / 'benchmarks' / 'step_vs_reference.py'),
                      '--skip_published', '--demo_variant=test', '--repeats=1')
  assert result.returncode == 0, result.stderr
  rows = [r.split('|') for r in result.stdout.splitlines()
          if r.startswith('| demo')]
  assert [r[2].strip() for r in rows] == [
      'cvrl fast', 'cvrl plain', 'cvrl plain, system malloc']
  # s/step, triplets/s and GFLOP/step (the plain program's count) positive.
  assert all(float(r[3]) > 0 and float(r[4]) > 0 and float(r[5]) > 0
             for r in rows)
  formulation, last = result.stdout.strip().splitlines()[-2:]
  assert formulation.startswith('demo, formulation alone')
  assert float(formulation.rsplit('=', 1)[1]) > 0
  assert re.fullmatch(r'published: skipped  demo: optimised/plain=[\d.]+',
                      last), last


def test_step_vs_reference_published_contenders_and_flops(monkeypatch):
  monkeypatch.syspath_prepend(str(ROOT / 'benchmarks'))
  import step_vs_reference as bench  # pylint: disable=g-import-not-at-top
  installed = {'torch'}  # as if only PyTorch were installed
  monkeypatch.setattr(bench.importlib.util, 'find_spec',
                      lambda name: name if name in installed else None)
  specs = bench.contender_specs('published', 'paper', published_plain=False)
  assert specs == {'cvrl fast': ('cvrl:paper:fast', False),
                   'pytorch': ('pytorch:paper', False)}
  specs = bench.contender_specs('published', 'paper', published_plain=True)
  assert list(specs) == ['cvrl fast', 'cvrl plain',
                         'cvrl plain, system malloc', 'pytorch']
  assert specs['cvrl plain, system malloc'] == ('cvrl:paper:plain', True)
  demo = bench.contender_specs('demo', 'demo', published_plain=False)
  assert list(demo) == ['cvrl fast', 'cvrl plain', 'cvrl plain, system malloc']
  config = cv.get_config('test')
  assert bench.plain_gflop(config) > 0  # compiled, not run
  assert config.compute.formulation == 'auto'  # the caller's config untouched


def test_gpu_step_reports_steps_mfu_pipeline_and_embedding(cvrl_dataset):
  """benchmarks/gpu_step.py (what benchmarks/gpu.sh runs), on CPU, tiny."""
  prepare.prepare(cvrl_dataset, cv.get_config('test').features, progress=False)
  result = helpers.run_python(
      str(helpers.ROOT / 'benchmarks' / 'gpu_step.py'), '--variant=test',
      '--batches=8', '--steps=1', f'--data={cvrl_dataset}', '--workers=0',
      '--batches_timed=1', '--embed_seconds=1')
  assert result.returncode == 0, result.stderr
  out = result.stdout
  assert '| global batch (triplets) | s/step | steps/s |' in out
  assert out.count('\n| 8 |') == 1
  assert 'input pipeline (0 workers' in out and 'keep' in out
  assert 'dense embedding:' in out and 'x real time' in out


def test_loss_curves_compares_runs_against_the_reference(tmp_path):
  """Hand-made metrics: run b's loss is a's + 0.1 everywhere, c stops early."""
  import json  # pylint: disable=g-import-not-at-top
  for name, offset, last in (('a', 0.0, 1000), ('b', 0.1, 1000),
                             ('c', 0.0, 500)):
    (tmp_path / name).mkdir()
    (tmp_path / name / 'metrics.jsonl').write_text(''.join(
        json.dumps(dict(step=s, loss=1.0 / s + offset, steps_per_sec=2.0))
        + '\n' for s in range(25, last + 1, 25)))
  rows = run_script('loss_curves.py', '--window=100',
                    f'--plot={tmp_path / "curves.png"}', '--runs=' + ','.join(
                        f'{n}={tmp_path / n}' for n in 'abc'))
  table = {r.split('|')[1].strip(): [c.strip() for c in r.split('|')[2:-1]]
           for r in rows[1:]}
  assert table['a'][0] == '1000' and table['c'][0] == '500'
  assert float(table['a'][3]) == 0.0
  assert float(table['b'][3]) == float(table['b'][4]) == 0.1
  assert float(table['c'][3]) == 0.0  # compared on the steps both logged
  assert float(table['a'][2]) == round(1000 / 2 / 60, 1)  # 1000 steps, 2/s
  assert (tmp_path / 'curves.png').stat().st_size > 0
