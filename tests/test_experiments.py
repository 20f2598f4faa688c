"""Experiment drivers: a failing step is one error line naming it."""

import conftest


def test_runner_names_a_step_that_crashed_natively():
  code = ('import sys; sys.path.insert(0, sys.argv[1]); '
          'from experiments import runner; '
          'sys.exit(runner.main(lambda: runner.run("-c", "import os, signal; '
          'os.kill(os.getpid(), signal.SIGSEGV)")))')
  result = conftest.run_python('-c', code, str(conftest.ROOT))
  assert result.returncode == 1
  assert result.stderr.strip().splitlines()[-1].startswith(
      'error: step failed (killed by SIGSEGV): -c import os, signal;')


def test_table_driver_reports_the_failing_step(tmp_path):
  (tmp_path / 'empty').mkdir()
  result = conftest.run_python(
      str(conftest.ROOT / 'experiments' / 'table.py'), '--variant=test',
      f'--data={tmp_path / "empty"}', f'--out={tmp_path / "table"}')
  assert result.returncode == 1
  last = result.stderr.strip().splitlines()[-1]
  assert last.startswith('error: step failed (exit code 1): -m cvrl.train '
                         '--config=configs/sv.py:test')
  assert 'not a cross-version dataset' in result.stderr
