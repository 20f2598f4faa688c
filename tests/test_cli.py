"""Every binary: bad input is one `error:` line naming the file, exit 1."""

import subprocess
import sys

import pytest

import helpers


def check_one_error_line(result, *names):
  assert result.returncode == 1, (result.returncode, result.stderr)
  assert 'Traceback' not in result.stderr, result.stderr
  last = result.stderr.strip().splitlines()[-1]
  assert last.startswith('error: '), result.stderr
  for name in names:
    assert str(name) in last, (name, last)


@pytest.fixture(scope='module')
def bad_inputs(tmp_path_factory):
  base = tmp_path_factory.mktemp('bad')
  (base / 'empty').mkdir()
  (base / 'noise.wav').write_bytes(b'RIFF not really a wave file')
  untrained = base / 'untrained'
  untrained.mkdir()
  from configs import cv  # pylint: disable=g-import-not-at-top
  (untrained / 'config.json').write_text(cv.get_config('test').to_json())
  unprepared = helpers.make_cvrl_dataset(base / 'unprepared')
  return base, unprepared


def test_train_on_a_folder_that_is_no_dataset(bad_inputs):
  base, _ = bad_inputs
  result = helpers.run_python(
      '-m', 'cvrl.train', f'--config={helpers.ROOT}/configs/cv.py:test',
      f'--workdir={base / "w"}', f'--config.data.root={base / "empty"}')
  check_one_error_line(result, base / 'empty', 'not a cross-version dataset')


@pytest.mark.parametrize('module', ['cvrl.embed', 'cvrl.probe', 'cvrl.ssm',
                                    'cvrl.evaluation.retrieval'])
def test_evaluators_on_a_missing_workdir_and_checkpoint(bad_inputs, module):
  base, _ = bad_inputs
  result = helpers.run_python('-m', module, f'--workdir={base / "nowhere"}')
  check_one_error_line(result, base / 'nowhere' / 'config.json', 'not there')
  result = helpers.run_python('-m', module, f'--workdir={base / "untrained"}')
  check_one_error_line(result, base / 'untrained' / 'checkpoints',
                       'no checkpoint')


def test_embed_an_unreadable_audio_file(bad_inputs, trained_workdir):
  base, _ = bad_inputs
  result = helpers.run_python(
      '-m', 'cvrl.embed', f'--workdir={trained_workdir}',
      f'--audio={base / "noise.wav"}', f'--out={base / "e.npy"}')
  check_one_error_line(result, base / 'noise.wav', 'cannot decode audio')


def test_baseline_probe_on_an_unprepared_dataset(bad_inputs):
  base, unprepared = bad_inputs
  result = helpers.run_python('-m', 'cvrl.probe', f'--workdir={base / "b"}',
                              '--representation=mfcc', f'--data={unprepared}')
  check_one_error_line(result, 'index.json', 'no complete feature cache')


def test_prepare_on_a_folder_that_is_no_dataset(bad_inputs):
  base, _ = bad_inputs
  result = helpers.run_python('-m', 'cvrl.data.prepare',
                              f'--data={base / "empty"}', '--workers=1')
  check_one_error_line(result, base / 'empty', 'not a cross-version dataset')


def test_prepare_on_unreadable_audio(tmp_path):
  broken = helpers.make_cvrl_dataset(tmp_path / 'broken')
  (broken / 'audio' / 'p1' / 'b.wav').write_bytes(b'RIFF nonsense')
  result = helpers.run_python('-m', 'cvrl.data.prepare', f'--data={broken}',
                              '--workers=1')
  check_one_error_line(result, broken / 'audio' / 'p1' / 'b.wav',
                       'unreadable audio')


def test_overview_of_an_unprepared_dataset(bad_inputs):
  _, unprepared = bad_inputs
  result = helpers.run_python('-m', 'cvrl.data.overview',
                              f'--data={unprepared}')
  check_one_error_line(result, 'index.json', 'no complete feature cache')


def test_demo_with_an_unknown_soundfont(bad_inputs):
  base, _ = bad_inputs
  result = helpers.run_python('-m', 'cvrl.data.demo', f'--out={base / "d"}',
                              '--soundfonts=NoSuchFont')
  check_one_error_line(result, '--soundfonts=NoSuchFont')


def test_no_evaluator_imports_the_trainer():
  code = ('import sys; import cvrl.embed, cvrl.probe, cvrl.ssm, '
          'cvrl.evaluation.retrieval, cvrl.checkpoints; '
          'print("cvrl.train" in sys.modules)')
  result = subprocess.run([sys.executable, '-c', code], capture_output=True,
                          text=True, cwd=helpers.ROOT, check=True)
  assert result.stdout.split() == ['False']
