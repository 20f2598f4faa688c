"""Experiment drivers: their steps, their tables, and a failing step is one error line."""

import json
import os
import pathlib
import sys
import time
import types

import numpy as np
import pytest

import helpers
from experiments import ablate
from experiments import augment_ablation
from experiments import compare
from experiments import demo_study
from experiments import runner
from experiments import table
from experiments import train_length


def test_runner_names_a_step_that_crashed_natively():
  code = ('import sys; sys.path.insert(0, sys.argv[1]); '
          'from experiments import runner; '
          'sys.exit(runner.main(lambda: runner.run("-c", "import os, signal; '
          'os.kill(os.getpid(), signal.SIGSEGV)")))')
  result = helpers.run_python('-c', code, str(helpers.ROOT))
  assert result.returncode == 1
  assert result.stderr.strip().splitlines()[-1].startswith(
      'error: step failed (killed by SIGSEGV): -c import os, signal;')


def test_table_driver_reports_the_failing_step(tmp_path):
  (tmp_path / 'empty').mkdir()
  result = helpers.run_python(
      str(helpers.ROOT / 'experiments' / 'table.py'), '--variant=test',
      f'--data={tmp_path / "empty"}', f'--out={tmp_path / "table"}')
  assert result.returncode == 1
  last = result.stderr.strip().splitlines()[-1]
  assert last.startswith('error: step failed (exit code 1): -m cvrl.train '
                         '--config=configs/sv.py:test')
  assert 'not a cross-version dataset' in result.stderr


def test_ablation_driver_trains_probes_and_tabulates(tmp_path, monkeypatch):
  """experiments/ablate.py's steps and table, its binaries replaced by fakes.

  Each binary it calls runs for real in its own module's tests; here every
  call is recorded and answered with the file the binary would write.
  """
  calls = []

  def fake_run(*args, capture=False):
    del capture
    args = [str(a) for a in args]
    calls.append(args)
    flags = runner.flag_values(args)
    workdir = pathlib.Path(flags['workdir'])
    if args[1] == 'cvrl.train':
      workdir.mkdir(parents=True, exist_ok=True)
      (workdir / 'config.json').write_text(json.dumps(dict(
          seed=int(flags.get('config.seed', 0)),
          data=dict(root=flags.get('config.data.root', 'demo_data')))))
      (workdir / 'metrics.jsonl').write_text(
          '\n'.join(json.dumps(dict(step=s, loss=1.0 / s)) for s in
                    (100, 200, 300, 400)) + '\n')
    elif args[1] == 'cvrl.probe':
      fake_probe(workdir, flags['representation'], 'instruments',
                 dict(strong=[0.7], published=[0.4]))
    else:  # retrieval
      path = workdir / 'retrieval' / f"{flags['representation']}.json"
      path.parent.mkdir(parents=True, exist_ok=True)
      path.write_text(json.dumps(dict(within={'1': 0.3})))
    return ''

  monkeypatch.setattr(ablate, 'run', fake_run)
  monkeypatch.setattr(sys, 'argv', [
      'ablate.py', f'--out={tmp_path / "ab"}', f'--table={tmp_path / "table"}',
      '--only=seed', '--probe_seeds=1', '--hop=2', '--variant=test',
      f'--data={tmp_path / "data"}'])
  assert ablate.main() == 0
  trains = [c for c in calls if c[1] == 'cvrl.train']
  assert [c[3] for c in trains] == [
      f'--workdir={tmp_path / "table" / "sv" / "seed0"}',
      f'--workdir={tmp_path / "table" / "cv" / "seed0"}',
      f'--workdir={tmp_path / "ab" / "sv-seed"}',
      f'--workdir={tmp_path / "ab" / "cv-seed"}']
  assert '--config.seed=0' in trains[0] and '--config.seed=1' in trains[2]
  assert all('--config=configs/' in c[2] and c[2].endswith(':test') and
             '--config.num_train_steps=1500' in c for c in trains)
  results = json.loads((tmp_path / 'ab' / 'ablate.json').read_text())
  assert [(r['study'], r['method']) for r in results] == [
      ('table (reference)', 'sv'), ('table (reference)', 'cv'),
      ('table (reference)', 'log-mel input'), ('seed', 'sv'), ('seed', 'cv')]
  for r in results:
    assert r['strong']['ap']['mean'] == pytest.approx(0.7)
    assert r['retrieval'] == pytest.approx(0.3)
    assert (r['loss'] is None) == (r['method'] == 'log-mel input')
  table_md = (tmp_path / 'ab' / 'ablate.md').read_text()
  assert table_md.count('\n| ') == 6  # header + 5 rows
  # Finished steps are skipped: a second run trains (resumes) but probes nothing.
  calls.clear()
  assert ablate.main() == 0
  assert all(c[1] == 'cvrl.train' for c in calls)


def fake_probe(workdir, name, target, values_by_probe):
  """A probe report with the given per-probe-seed values (what cvrl.probe writes)."""
  probes = {}
  for probe, values in values_by_probe.items():
    runs = [{m: v for m in ('ap', 'auc', 'f1')} for v in values]
    summary = {m: dict(mean=float(np.mean(values)), std=float(np.std(values)))
               for m in ('ap', 'auc', 'f1')}
    probes[probe] = dict(runs=runs, summary=summary)
  path = workdir / 'probe' / f'{name}-{target}.json'
  path.parent.mkdir(parents=True, exist_ok=True)
  path.write_text(json.dumps(dict(probes=probes)))


def fake_ssm(workdir, name, f):
  path = workdir / 'ssm' / f'{name}.json'
  path.parent.mkdir(parents=True, exist_ok=True)
  path.write_text(json.dumps(dict(kernel_seconds=[10.0, 20.0], mean={
      ref: dict(f=f) for ref in ('ref_i', 'ref_h')})))


def table_args(**kw):
  args = dict(data=None, variant='demo', seeds=3, probe_seeds=2, hop=4,
              layers=['embedding', 'dense0'], steps=6000,
              hold_out_validation=True)
  args.update(kw)
  return types.SimpleNamespace(**args)


def test_table_trains_every_seed_and_probes_every_layer(tmp_path):
  args = table_args()
  commands = table.steps(tmp_path, args)
  trains = [c for c in commands if c[1] == 'cvrl.train']
  assert len(trains) == 9
  assert trains[4] == ('-m', 'cvrl.train', '--config=configs/cv.py:demo',
                       f'--workdir={tmp_path / "cv" / "seed1"}',
                       '--config.seed=1', '--config.data.validation=True',
                       '--config.num_train_steps=6000')
  # Sup is the labelled reference: its config's budget, same pieces.
  assert trains[-1][-1] == '--config.data.validation=True'
  probes = [c for c in commands if c[1] == 'cvrl.probe']
  # Encoders trained for the study view are still evaluated on test.
  assert all(c[-1] == '--validation=false' for c in commands[9:])
  # 3 methods x 3 seeds x 2 layers + 3 baselines, x 2 targets
  assert len(probes) == (18 + 3) * 2
  dense0 = [c for c in probes if '--layer=dense0' in c]
  assert len(dense0) == 3 * 3 * 2 and '--seeds=2' in dense0[0]
  assert table.output_of(dense0[0]) == (
      tmp_path / 'sv' / 'seed0' / 'probe' / 'embedding_dense0-instruments.json')
  assert table.output_of(trains[0]) is None  # training writes checkpoints
  everything = table.steps(tmp_path, table_args(steps=0,
                                                hold_out_validation=False))
  assert everything[4][-1] == '--config.seed=1'  # the configs' own runs
  assert not any('validation' in flag for c in everything for flag in c)


def test_table_is_mean_and_std_over_training_seeds_with_paired_differences(
    tmp_path):
  args = table_args(layers=['embedding'])
  ap = dict(sv=[0.69, 0.73, 0.70], cv=[0.70, 0.72, 0.74], sup=[0.8, 0.8, 0.8])
  for row in table.table_rows(tmp_path, 3, args.layers):
    for k, workdir in enumerate(row.workdirs):
      base = ap[row.method][k] if row.method else 0.6
      for target in table.TARGETS:
        # Two probe seeds around the training seed's value.
        fake_probe(workdir, row.file_name, target,
                   dict(strong=[base - 0.01, base + 0.01],
                        published=[base - 0.1, base - 0.1]))
      fake_ssm(workdir, row.file_name, [0.2 + 0.1 * k, 0.5])
  text, results = table.build_table(tmp_path, args, 600.0)
  cv = results['rows']['CV']['strong-instruments']
  assert cv['values']['ap'] == pytest.approx([0.70, 0.72, 0.74])
  assert cv['ap']['mean'] == pytest.approx(0.72)
  assert cv['ap']['std'] == pytest.approx(0.02)  # ddof=1 over seeds
  mfcc = results['rows']['MFCC']['strong-instruments']  # over probe seeds
  assert mfcc['values']['ap'] == pytest.approx([0.59, 0.61])
  differences = results['differences']['strong-instruments']['ap']
  assert differences == pytest.approx([0.01, -0.01, 0.04])
  assert 'AP +0.010, -0.010, +0.040 (2/3 seeds CV > SV)' in text
  assert '| CV | 0.720 ± 0.020 |' in text
  # Baselines sit at 0.6 here: the strong probe's CV is above them.
  assert ('CV at its best layer (embedding, AP 0.720) >= the log-mel input '
          'and MFCC (0.600, 0.600): holds.') in text
  assert ('CV at its best layer (embedding, AP 0.620) >= the log-mel input '
          'and MFCC (0.500, 0.500): holds.') in text
  assert results['rows']['CV']['ssm']['ref_i']['f_mid'] == pytest.approx(0.5)
  assert results['rows']['CV']['ssm']['ref_i']['f_best'] == pytest.approx(0.5)
  assert (tmp_path / 'ssm-f.png').stat().st_size > 1000


def test_augmentation_ablation_steps_table_and_plot(tmp_path):
  args = types.SimpleNamespace(seeds=3, loo_seeds=1, probe_seeds=2, hop=4,
                               data=None, variant='demo', on_test=False,
                               steps=3000, first_seed=0)
  settings = augment_ablation.settings(args)
  assert [s.name for s in settings] == [
      'all', 'none', 'without eq', 'without time_warp', 'without bin_shift',
      'without bin_mask', 'without time_mask', 'without noise', 'without gain']
  commands = compare.steps(tmp_path, settings, args)
  assert len(commands) == 2 * (3 + 3 + 7)
  assert '--config.augment.time_mask.p=0' in commands[2 * 10]
  assert '--config.augment.enabled=False' in commands[2 * 3]
  assert all('--config.data.validation=True' in c for c in commands[::2])
  assert all('--config.num_train_steps=3000' in c for c in commands[::2])
  assert commands[0][:3] == ('-m', 'cvrl.train', '--config=configs/cv.py:demo')
  for name, _, seeds in settings:
    for seed in range(seeds):
      value = 0.7 + (0.02 * seed if name == 'all' else
                     -0.05 if name == 'none' else 0.0)
      fake_probe(compare.workdir(tmp_path, name, seed),
                 'embedding-val', 'instruments',
                 dict(strong=[value], published=[value]))
  rows = compare.collect(tmp_path, settings)
  assert rows[0]['ap']['mean'] == pytest.approx(0.72)
  assert rows[1]['ap']['mean'] == pytest.approx(0.65)
  text = compare.markdown(rows, 'CV', minutes=False)
  assert '| none | 3 | 0.650 ± 0.000 |' in text and '-0.070 |' in text
  assert '| ΔAP vs all |' in text and 'train min' not in text
  compare.plot(rows, tmp_path / 'a.png', 'title')
  assert (tmp_path / 'a.png').stat().st_size > 1000
  # Partly run: what finished is tabulated and drawn, the rest says so.
  for seed in (1, 2):
    compare.report_path(compare.workdir(tmp_path, 'none', seed)).unlink()
  compare.report_path(compare.workdir(tmp_path, 'without gain', 0)).unlink()
  rows = compare.collect(tmp_path, settings)
  text = compare.markdown(rows, 'CV', minutes=False)
  assert '| none | 1 of 3 | 0.650 | 0.650 | 0.650 | -0.070 |' in text
  assert ('| without gain | 0 of 1 | not run yet | not run yet | not run yet '
          '|  |  |  |') in text
  compare.plot(rows, tmp_path / 'b.png', 'title')
  assert (tmp_path / 'b.png').stat().st_size > 1000
  # "none" stands out only where the driver says so (the ablation does).
  assert compare.bar_colors(rows)[:3] == ['tab:green'] + ['tab:blue'] * 2
  assert compare.bar_colors(rows, ('none',))[:3] == [
      'tab:green', 'tab:red', 'tab:blue']
  assert len(compare.bar_colors(rows)) == len(rows) - 1  # gain has no bar


def test_compare_parses_settings_and_reports_training_minutes(tmp_path):
  setting = compare.parse_setting(
      'nt_xent 9000: loss.name=nt_xent num_train_steps=9000', 3)
  assert setting == compare.Setting(
      'nt_xent 9000', ('--config.loss.name=nt_xent',
                       '--config.num_train_steps=9000'), 3)
  assert compare.parse_setting('triplet:', 1).overrides == ()
  for bad in ('no colon', ': loss.name=x', 'a: loss.name'):
    with pytest.raises(ValueError, match='--setting='):
      compare.parse_setting(bad, 1)
  args = types.SimpleNamespace(probe_seeds=1, hop=4, data='/d', variant='demo',
                               on_test=True, steps=0, first_seed=0)
  commands = compare.steps(tmp_path, [setting], args, method='sv')
  later = compare.steps(tmp_path, [setting._replace(seeds=2)],
                        types.SimpleNamespace(**dict(vars(args), first_seed=3)))
  assert [c[4] for c in later[::2]] == ['--config.seed=3', '--config.seed=4']
  assert later[0][3].endswith('seed3')
  assert commands[0][2] == '--config=configs/sv.py:demo'
  assert '--config.data.validation=False' in commands[0]
  assert commands[0][-2:] == setting.overrides
  assert not any('num_train_steps=0' in c for c in commands[0])
  # 100 steps at 2/s, then 100 at 4/s: 75 s. A row without a rate is skipped.
  w = compare.workdir(tmp_path, 'nt_xent 9000', 0)
  w.mkdir(parents=True)
  (w / 'metrics.jsonl').write_text('\n'.join(json.dumps(r) for r in (
      dict(step=100, steps_per_sec=2.0), dict(step=150, eval=1.0),
      dict(step=200, steps_per_sec=4.0))))
  assert compare.training_minutes(w) == pytest.approx(75 / 60)
  fake_probe(w, 'embedding', 'instruments', dict(strong=[0.6], published=[0.4]))
  rows = compare.collect(tmp_path, [setting._replace(seeds=1)], on_test=True)
  assert rows[0]['minutes'] == [pytest.approx(1.25)]
  text = compare.markdown(rows, 'SV')
  assert text.startswith('SV\n\n| setting |')
  assert '| nt_xent 9000 | 1 | 0.600 | 0.600 | 0.600 |  |  |  | 1 |' in text


def test_demo_study_goes_round_robin_and_compares_finished_seeds(tmp_path):
  args = types.SimpleNamespace(draws=['version', 'instrument'], seeds=2,
                               probe_seeds=1, hop=4, demo_root='/d/demo',
                               steps=1500)
  commands = demo_study.steps(tmp_path, args)
  trains = [c for c in commands if c[1] == 'cvrl.train']
  assert [(c[3].split('/')[-3], c[3].split('/')[-2], c[4]) for c in trains] == [
      ('version', 'sv', '--config.seed=0'), ('version', 'cv', '--config.seed=0'),
      ('instrument', 'sv', '--config.seed=0'),
      ('instrument', 'cv', '--config.seed=0'),
      ('version', 'sv', '--config.seed=1'), ('version', 'cv', '--config.seed=1'),
      ('instrument', 'sv', '--config.seed=1'),
      ('instrument', 'cv', '--config.seed=1')]
  assert '--config.data.root=/d/demo_instrument' in trains[2]
  assert '--config.data.demo_soundfont_draw=instrument' in trains[2]
  assert all('--config.data.validation=True' in c and
             '--config.num_train_steps=1500' in c for c in trains)
  inputs = [c for c in commands if '--representation=input' in c]
  assert len(inputs) == 2 and all('--validation' in c for c in inputs)
  assert demo_study.report_path(inputs[0]) == (
      tmp_path / 'version' / 'input' / 'probe' / 'input-val-instruments.json')
  # Seed 0 finished everywhere, seed 1 only for SV of 'version'.
  for draw, method, seed, ap in (('version', 'sv', 0, 0.6),
                                 ('version', 'cv', 0, 0.7),
                                 ('version', 'sv', 1, 0.6),
                                 ('instrument', 'sv', 0, 0.65),
                                 ('instrument', 'cv', 0, 0.62)):
    fake_probe(demo_study.workdir(tmp_path, draw, method, seed),
               'embedding-val', 'instruments', dict(strong=[ap],
                                                    published=[ap]))
  results = demo_study.summarise(tmp_path, args)
  assert results['version']['seeds'] == [0]
  assert results['version']['cv_minus_sv']['ap'] == pytest.approx([0.1])
  assert results['instrument']['cv_minus_sv']['ap'] == pytest.approx([-0.03])
  text = demo_study.markdown(results, 'strong')
  assert '| version | 1 | 0.600 ± 0.000 | 0.700 ± 0.000 | +0.100 | 1/1 / 1/1 / 1/1 |' in text


def test_train_length_continues_one_run_per_method_and_probes_each_length(
    tmp_path):
  args = types.SimpleNamespace(steps=[3000, 1500, 6000], seeds=2, probe_seeds=1,
                               hop=4, data='/d/demo', variant='demo')
  commands = train_length.steps(tmp_path, args)
  assert '--representation=input' in commands[0] and '--data=/d/demo' in (
      commands[0])
  trains = [c for c in commands if c[1] == 'cvrl.train']
  # Shortest length of every run first; one workdir per method and seed.
  assert [(c[3].split('/')[-2], c[4], c[7]) for c in trains[:4]] == [
      ('sv', '--config.seed=0', '--config.num_train_steps=1500'),
      ('cv', '--config.seed=0', '--config.num_train_steps=1500'),
      ('sv', '--config.seed=1', '--config.num_train_steps=1500'),
      ('cv', '--config.seed=1', '--config.num_train_steps=1500')]
  assert len(trains) == 3 * 2 * 2
  # Every length is a checkpoint that is still there at the end.
  assert all('--config.checkpoint_every=250' in c and
             '--config.keep_checkpoints=25' in c for c in trains)
  odd = train_length.steps(tmp_path, types.SimpleNamespace(
      **{**vars(args), 'steps': [1000, 1100]}))
  assert '--config.checkpoint_every=50' in odd[1]
  probes = [c for c in commands[1:] if c[1] == 'cvrl.probe']
  assert probes[0][3] == '--step=1500' and probes[-1][3] == '--step=6000'
  assert not any(train_length.finished(c, tmp_path) for c in commands)
  for method, seed, length, ap in (('sv', 0, 1500, 0.6), ('cv', 0, 1500, 0.55),
                                   ('sv', 1, 1500, 0.62),
                                   ('cv', 1, 1500, 0.57),
                                   ('sv', 0, 3000, 0.63), ('cv', 0, 3000, 0.66),
                                   ('sv', 1, 6000, 0.5), ('cv', 0, 6000, 0.6)):
    fake_probe(train_length.workdir(tmp_path, method, seed),
               f'embedding_step{length}-val', 'instruments',
               dict(strong=[ap], published=[ap]))
  fake_probe(tmp_path / 'input', 'input-val', 'instruments',
             dict(strong=[0.7], published=[0.4]))
  # Training to 1500 is done once its probe is; 3000 is not for seed 1.
  assert train_length.finished(trains[0], tmp_path)
  assert not train_length.finished(trains[6], tmp_path)
  assert train_length.finished(commands[0], tmp_path)
  # Two independent directions of equal variance in 128: 2 effective dims.
  rng = np.random.default_rng(0)
  for version in ('a', 'b'):
    cached = (train_length.workdir(tmp_path, 'sv', 0) / 'embeddings' /
              'step_1500' / 'hop_4' / 'piece' / f'{version}.npy')
    cached.parent.mkdir(parents=True, exist_ok=True)
    x = np.zeros((5000, 128), np.float32)
    x[:, 3], x[:, 70] = rng.normal(size=(2, 5000))
    np.save(cached, x)
  assert train_length.effective_dimensions(
      train_length.workdir(tmp_path, 'sv', 0), 1500, 4) == pytest.approx(
          2.0, abs=0.01)
  results = train_length.collect(tmp_path, args)
  assert results['sv'][1500]['dims'][0] == pytest.approx(2.0, abs=0.01)
  assert results['sv'][1500]['dims'][1] is None  # seed 1: nothing cached
  assert results['cv'][1500]['ap']['mean'] == pytest.approx(0.56)
  assert results['cv'][3000]['ap']['values'] == [0.66]
  assert results['sv'][6000]['seeds'] == [1]
  text = train_length.markdown(results, 'strong')
  assert '| 1500 | 0.610 ± 0.014 | 0.560 ± 0.014 | -0.050, -0.050 |' in text
  assert '| 2.0 /  |' in text  # SV seed 0's embeddings; none cached for CV
  assert '| log-mel input | 0.700 |' in text
  assert '| 3000 | 0.630 | 0.660 | +0.030 |' in text  # one seed: no ± shown
  # Different seeds finished for SV and CV: nothing to pair.
  assert '| 6000 | 0.500 | 0.600 |  |' in text
  train_length.plot(results, tmp_path / 't.png', 'title')
  assert (tmp_path / 't.png').stat().st_size > 1000
  # Continued with --steps=6000 --seeds=1: the report keeps every length and
  # seed that has finished.
  narrower = types.SimpleNamespace(**{**vars(args), 'steps': [6000],
                                      'seeds': 1})
  assert train_length.collect(tmp_path, narrower) == results


def test_each_finished_step_adds_its_seconds_at_once(tmp_path, monkeypatch):
  """An interrupted study keeps the time of the steps it finished."""
  monkeypatch.setattr(runner, 'run', lambda *a: None)
  runner.run_pending([('a',), ('b',), ('c',)], lambda c: c == ('b',),
                     out=tmp_path)
  first = runner.wall_time(tmp_path)
  assert 0 < first < 5
  runner.add_wall_time(tmp_path, start=time.time() - 60)
  assert runner.wall_time(tmp_path) == pytest.approx(first + 60, abs=1)
  runner.run_pending([('a',)], lambda c: True, out=tmp_path / 'none')
  assert runner.wall_time(tmp_path / 'none') == 0.0


def test_steps_run_one_workdir_after_another(tmp_path, monkeypatch):
  """Sequentially too, a workdir is trained and evaluated before the next
  starts, so a study stopped midway leaves whole runs to carry on with."""
  ran = []
  out, archive = tmp_path / 'out', tmp_path / 'study.tar.gz'
  out.mkdir()

  def run(*command):  # each step leaves a report; the last one fails
    ran.append(command)
    if command == ('report',):
      raise runner.StepFailed('report')
    (out / f'{len(ran)}.json').write_text('{}')

  monkeypatch.setattr(runner, 'run', run)
  commands = [('train', f'--workdir={w}') for w in 'ab'] + [
      ('probe', f'--workdir={w}') for w in 'ab'] + [('report',)]
  with pytest.raises(runner.StepFailed):
    runner.run_pending(commands, lambda c: c == ('probe', '--workdir=b'),
                       out=out, carry=str(archive))
  assert ran == [('train', '--workdir=a'), ('probe', '--workdir=a'),
                 ('train', '--workdir=b'), ('report',)]
  # --carry's archive was packed as each step ended, not only at the end.
  runner.unpack_reports(archive, tmp_path / 'unpacked')
  assert [str(p) for p in runner.carried_files(tmp_path / 'unpacked')] == [
      '1.json', '2.json', '3.json', 'seconds.json']


def test_a_run_whose_reports_all_exist_is_not_trained_again(tmp_path):
  args = table_args(seeds=1, layers=['embedding'])
  commands = table.steps(tmp_path, args)
  finished = runner.finished_when_outputs_exist(commands, table.output_of)
  sv = [c for c in commands if f'--workdir={tmp_path / "sv" / "seed0"}' in c]
  assert [c[1] for c in sv] == ['cvrl.train'] + ['cvrl.probe'] * 2 + [
      'cvrl.ssm']
  for command in sv[1:]:
    assert not finished(sv[0])  # a report is missing: it needs the checkpoint
    table.output_of(command).parent.mkdir(parents=True, exist_ok=True)
    table.output_of(command).write_text('{}')
    assert finished(command)
  assert finished(sv[0])
  # A workdir with nothing but training (no report to stand for it) trains.
  alone = runner.finished_when_outputs_exist([sv[0]], table.output_of)
  assert not alone(sv[0])


def test_carried_reports_go_to_the_next_machine_and_back(tmp_path):
  """--carry: reports, metrics and configs travel; checkpoints, caches, logs
  and plots stay; this machine's copy of a file wins; a failure packs too."""
  out = tmp_path / 'out'
  kept = ['seconds.json', 'table.md', 'cv/seed0/config.json',
          'cv/seed0/metrics.jsonl', 'cv/seed0/probe/embedding-instruments.json',
          'cv/seed0/ssm/embedding.json']
  left = ['cv/seed0/checkpoints/6000/_CHECKPOINT_METADATA.json',
          'cv/seed0/embeddings/step_6000/hop_4/a.json', 'logs/cv_seed0.log',
          'cv/seed0/tensorboard/x.json', 'cv/seed0/probe/plot.png']
  for name in kept + left:
    (out / name).parent.mkdir(parents=True, exist_ok=True)
    (out / name).write_text(name)
  archive = tmp_path / 'docs' / 'study.tar.gz'
  with runner.carried(str(archive), out):
    pass
  assert [str(p) for p in runner.carried_files(out)] == sorted(kept)
  # The next machine: a fresh OUT, one report made there already.
  there = tmp_path / 'there'
  (there / 'table.md').parent.mkdir(parents=True)
  (there / 'table.md').write_text('newer')
  with pytest.raises(runner.StepFailed):
    with runner.carried(str(archive), there):
      assert (there / 'cv/seed0/metrics.jsonl').read_text() == (
          'cv/seed0/metrics.jsonl')
      assert (there / 'table.md').read_text() == 'newer'
      assert not (there / 'cv/seed0/checkpoints').exists()
      (there / 'sv/seed0/probe').mkdir(parents=True)
      (there / 'sv/seed0/probe/embedding-instruments.json').write_text('sv')
      raise runner.StepFailed('a later step failed')
  again = tmp_path / 'again'
  with runner.carried(str(archive), again, pack=False):
    pass
  assert (again / 'sv/seed0/probe/embedding-instruments.json').read_text() == (
      'sv')  # packed although the driver failed
  assert (again / 'table.md').read_text() == 'newer'
  assert not list(archive.parent.glob('*.partial'))
  archive.write_text('not an archive')
  with pytest.raises(SystemExit, match=r'--carry=.*study\.tar\.gz: not a '
                     'readable .tar.gz'):
    with runner.carried(str(archive), tmp_path / 'bad'):
      pass


def test_cv_against_baselines_takes_cvs_best_layer(tmp_path):
  rows = table.table_rows(tmp_path, 1, ['embedding', 'dense0'])
  ap = {'CV': 0.60, 'CV (dense0)': 0.66, 'Log-mel input': 0.70, 'MFCC': 0.65,
        'SV': 0.9}  # SV is not CV: never its best layer
  cells = {name: {'strong-instruments': {'ap': {'mean': v}}}
           for name, v in ap.items()}
  assert table.cv_against_baselines(cells, rows, 'strong') == (
      'CV at its best layer (dense0, AP 0.660) >= the log-mel input and MFCC '
      '(0.700, 0.650): does not hold.')
  cells['Log-mel input']['strong-instruments']['ap']['mean'] = 0.66
  assert table.cv_against_baselines(cells, rows, 'strong').endswith(': holds.')


def test_parallel_jobs_keep_each_workdirs_order_on_their_own_cores(
    tmp_path, capsys):
  """--jobs: workdirs side by side, each in order, pinned, logged, timed once."""
  out = tmp_path / 'out'
  step = ('import os, sys, time, pathlib; w = pathlib.Path(sys.argv[1][10:]); '
          'w.mkdir(parents=True, exist_ok=True); time.sleep(0.5); '
          'print(sorted(os.sched_getaffinity(0))); '
          'open(w / "order", "a").write(sys.argv[2] + " ")')
  commands = [('-c', step, f'--workdir={out / w}', str(i))
              for i in range(3) for w in ('a', 'b')]
  assert [len(c) for c in runner.chains(commands)] == [3, 3]
  slots = runner.core_slots(2)
  assert sorted(c for s in slots for c in s) == sorted(os.sched_getaffinity(0))
  start = time.time()
  runner.run_pending(commands, lambda c: False, out=out, jobs=2)
  assert '[6/6 steps ended, 0 failed]' in capsys.readouterr().out
  for w in ('a', 'b'):
    assert (out / w / 'order').read_text() == '0 1 2 '
    cores = [json.loads(line) for line in
             (out / 'logs' / f'{w}.log').read_text().splitlines()]
    assert len(cores) == 3 and all(tuple(c) in slots for c in cores)
  # Six 0.5 s steps; with two slots the clock counts the wall, not the sum.
  assert runner.wall_time(out) <= time.time() - start + 0.01
  if len(slots) == 2:
    assert runner.wall_time(out) < 2.9


def test_a_failing_parallel_step_names_its_log_and_stops_new_steps(tmp_path):
  out = tmp_path / 'out'
  fail = 'import sys; print("boom"); sys.exit(3)'
  mark = ('import sys, pathlib; p = pathlib.Path(sys.argv[1][10:]); '
          'p.mkdir(parents=True, exist_ok=True); (p / "ran").write_text("")')
  slow = 'import time; time.sleep(0.5)'
  # 'late' waits for a free slot, which 'bad' frees by failing: it never runs.
  commands = [('-c', fail, f'--workdir={out / "bad"}'),
              ('-c', mark, f'--workdir={out / "bad"}'),
              ('-c', slow, f'--workdir={out / "slow"}'),
              ('-c', mark, f'--workdir={out / "late"}')]
  with pytest.raises(runner.StepFailed, match=r'exit code 3.*its output: .*'
                     r'logs/bad\.log'):
    runner.run_pending(commands, lambda c: False, out=out, jobs=2)
  assert 'boom' in (out / 'logs' / 'bad.log').read_text()
  assert not (out / 'bad' / 'ran').exists()
  assert not (out / 'late' / 'ran').exists()
  assert (out / 'logs' / 'slow.log').exists()  # the running one finished


def test_demo_budget_is_what_the_validation_split_chose():
  from configs import base  # pylint: disable=g-import-not-at-top
  assert base.get_config('sv', 'demo').num_train_steps == 6000
  assert base.get_config('cv', 'demo').num_train_steps == 6000
  assert base.get_config('sup', 'demo').num_train_steps == 1500


def test_compare_names_a_bad_setting(tmp_path):
  script = str(helpers.ROOT / 'experiments' / 'compare.py')
  for settings, message in ((['a:', 'a: seed=1'], 'names must differ'),
                            (['a: loss.name'], "'loss.name' is not")):
    result = helpers.run_python(script, f'--out={tmp_path}', '--dry_run',
                                *[f'--setting={s}' for s in settings])
    assert result.returncode == 2 and message in result.stderr


def test_compare_takes_settings_not_run_here_from_an_earlier_report(tmp_path):
  script = str(helpers.ROOT / 'experiments' / 'compare.py')
  flags = [f'--out={tmp_path / "here"}', '--report', '--seeds=1',
           '--setting=a:', '--setting=b: seed=1', '--setting=c: seed=2']
  fake_probe(compare.workdir(tmp_path / 'here', 'a', 0), 'embedding-val',
             'instruments', dict(strong=[0.6], published=[0.5]))
  old = dict(setting='b', seeds=2, planned=2, values={}, minutes=[],
             ap=dict(mean=0.7, std=0.01), auc=dict(mean=0.8, std=0.02),
             f1=dict(mean=0.4, std=0.03))
  earlier = tmp_path / 'earlier.json'
  # "a" finished here and keeps its own row; "c" is in neither.
  earlier.write_text(json.dumps(dict(strong=[
      dict(old, setting='a', ap=dict(mean=0.1, std=0.0)), old])))
  result = helpers.run_python(script, *flags, f'--include={earlier}')
  assert result.returncode == 0, result.stderr
  text = (tmp_path / 'here' / 'compare.md').read_text()
  assert '| a | 1 | 0.600 | 0.600 | 0.600 |' in text
  assert ('| b* | 2 | 0.700 ± 0.010 | 0.800 ± 0.020 | 0.400 ± 0.030 | '
          '+0.100 | +0.200 | -0.200 |') in text
  assert '| c | 0 of 1 | not run yet |' in text
  assert f'* from {earlier}' in text
  assert 'not counting included rows' in text
  # The published probe is not in the earlier report: "b" stays unrun there.
  published = text.split('published probe')[1]
  assert '| b | 0 of 1 | not run yet |' in published
  # The merged report names each row's source, to be included in turn.
  merged = json.loads((tmp_path / 'here' / 'compare.json').read_text())
  assert merged['strong'][1]['source'] == str(earlier)
  assert 'source' not in merged['strong'][0]
  assert (tmp_path / 'here' / 'compare.png').stat().st_size > 1000
  result = helpers.run_python(script, *flags,
                              f'--include={tmp_path / "absent.json"}')
  assert result.returncode == 1 and 'absent.json' in result.stderr


def test_compare_adds_seeds_later_and_merges_an_earlier_reports_seeds(
    tmp_path):
  script = str(helpers.ROOT / 'experiments' / 'compare.py')
  here = tmp_path / 'here'
  # Seeds made here by any --first_seed count; a seed without a report not.
  for name, seed, value in (('a', 0, 0.6), ('b', 1, 0.9), ('b', 2, 0.5)):
    fake_probe(compare.workdir(here, name, seed), 'embedding-val',
               'instruments', dict(strong=[value], published=[value]))
  compare.workdir(here, 'b', 3).mkdir()
  flags = [f'--out={here}', '--report', '--seeds=1', '--setting=a:',
           '--setting=b: seed=1', '--setting=c: seed=2', '--setting=d: seed=3']
  fake_probe(compare.workdir(here, 'd', 1), 'embedding-val', 'instruments',
             dict(strong=[0.5], published=[0.5]))
  values = lambda *v: {m: list(v) for m in ('ap', 'auc', 'f1')}
  earlier = tmp_path / 'earlier.json'
  earlier.write_text(json.dumps(dict(strong=[
      # Seeds 0 and 1, recorded before seeds were: b's seed 1 finished here
      # and wins, seed 0 joins it; "c" takes the earlier row whole.
      dict(setting='b', seeds=2, planned=2, values=values(0.7, 0.1),
           minutes=[50.0, 60.0]),
      dict(setting='c', seeds=1, planned=1, values=values(0.4),
           minutes=[40.0], training_seeds=[5]),
      # A transcribed single seed is that seed's value: "d" takes seed 0,
      # and keeps the source the earlier report named for it.
      dict(setting='d', seeds=1, planned=1, values={}, minutes=[],
           source='the first machine',
           **{m: dict(mean=0.3, std=0.0) for m in ('ap', 'auc', 'f1')}),
      # A transcribed summary cannot take seeds: "a" keeps its own.
      dict(setting='a', seeds=3, planned=3, values={}, minutes=[],
           ap=dict(mean=0.1, std=0.0)),
  ])))
  result = helpers.run_python(script, *flags, f'--include={earlier}')
  assert result.returncode == 0, result.stderr
  report = json.loads((here / 'compare.json').read_text())['strong']
  assert report[0]['training_seeds'] == [0] and 'source' not in report[0]
  b = report[1]
  assert b['training_seeds'] == [0, 1, 2] and b['included_seeds'] == [0]
  assert b['values']['ap'] == [0.7, 0.9, 0.5]
  assert b['minutes'][0] == 50.0 and b['source'] == str(earlier)
  assert b['ap']['mean'] == pytest.approx(0.7)
  # A row wholly from the earlier report is marked as a whole.
  assert report[2]['training_seeds'] == [5]
  assert 'included_seeds' not in report[2]
  assert report[3]['source'] == 'the first machine'
  text = (here / 'compare.md').read_text()
  assert '| b | 3 (seed 0*) | 0.700 ± 0.200 |' in text
  assert '| c* | 1 | 0.400 |' in text
  assert '| d | 2 (seed 0**) | 0.400 ± 0.141 |' in text
  assert f'* from {earlier}' in text and '** from the first machine' in text


def test_ablation_runs_only_the_settings_named(tmp_path):
  script = str(helpers.ROOT / 'experiments' / 'augment_ablation.py')
  result = helpers.run_python(script, f'--out={tmp_path}', '--dry_run',
                              '--only=without eq', '--only=without gain')
  assert result.returncode == 0, result.stderr
  steps = [line for line in result.stdout.splitlines()
           if line.startswith('python -m cvrl.')]
  assert len(steps) == 4
  assert ('--config.augment.eq.p=0 ' in steps[0] and
          '--config.augment.gain.p=0' in steps[2])
  # The others stay at their published probabilities, whatever the variant's
  # default: "all" is the published set, spelled out.
  assert ('--config.augment.noise.p=0.5' in steps[0] and
          '--config.augment.eq.p=1.0' in steps[2])
  result = helpers.run_python(script, f'--out={tmp_path}', '--dry_run',
                              '--only=all')
  train = [line for line in result.stdout.splitlines()
           if line.startswith('python -m cvrl.train')]
  assert len(train) == 3 and all(
      '--config.augment.eq.p=1.0' in line and
      '--config.augment.noise.p=0.5' in line for line in train)
  result = helpers.run_python(script, f'--out={tmp_path}', '--dry_run',
                              '--only=without reverb')
  assert result.returncode == 1 and "'without reverb'" in result.stderr
