"""Experiment drivers: a failing step is one error line naming it."""

import json

import helpers


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


def test_ablation_driver_trains_probes_and_tabulates(trained_workdir, tmp_path):
  """experiments/ablate.py end to end on the tiny dataset, one study, 1 probe seed."""
  result = helpers.run_python(
      str(helpers.ROOT / 'experiments' / 'ablate.py'), f'--out={tmp_path / "ab"}',
      f'--table={tmp_path / "table"}', '--only=seed', '--seeds=1', '--hop=2',
      '--variant=test', f'--data={trained_workdir.parent / "data"}')
  assert result.returncode == 0, result.stderr
  results = json.loads((tmp_path / 'ab' / 'ablate.json').read_text())
  assert [(r['study'], r['method']) for r in results] == [
      ('table (reference)', 'sv'), ('table (reference)', 'cv'),
      ('table (reference)', 'log-mel input'), ('seed', 'sv'), ('seed', 'cv')]
  for r in results:
    assert 0 < r['strong']['ap']['mean'] <= 1
    assert 0 <= r['retrieval'] <= 1
    assert (r['loss'] is None) == (r['method'] == 'log-mel input')
  seeds = [json.loads((tmp_path / 'ab' / f'{m}-seed' / 'config.json')
                      .read_text())['seed'] for m in ('sv', 'cv')]
  assert seeds == [1, 1]
  table = (tmp_path / 'ab' / 'ablate.md').read_text()
  assert table.count('\n| ') == 6  # header + 5 rows
