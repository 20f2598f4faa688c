"""Multi-process training through launch/local.py equals one process."""

import os
import subprocess
import sys

import helpers
from configs import cv
from cvrl import checkpoints
from cvrl.data import prepare


def test_two_processes_train_like_one(tmp_path):
  root = helpers.make_cvrl_dataset(tmp_path / 'data', pieces=('p1', 'p2', 'p3'))
  prepare.prepare(root, cv.get_config('test').features, progress=False)
  args = ['--config=configs/cv.py:test', f'--config.data.root={root}',
          '--config.num_train_steps=3',
          # SGD: Adam's g / sqrt(v) turns float-order noise in near-zero
          # gradients into full learning-rate steps, which hides real errors.
          '--config.optimizer.name=sgd', '--config.optimizer.learning_rate=0.05']
  env = dict(os.environ, PYTHONPATH=str(helpers.ROOT))
  env.pop('XLA_FLAGS', None)
  launched = subprocess.run(
      [sys.executable, 'launch/local.py', '--processes=2',
       '--devices_per_process=2', '--', *args, f'--workdir={tmp_path / "mp"}'],
      cwd=helpers.ROOT, env=env, capture_output=True, text=True, timeout=600)
  assert launched.returncode == 0, launched.stdout + launched.stderr
  assert 'on 4 device(s), 2 process(es)' in launched.stdout
  single = subprocess.run(
      [sys.executable, '-m', 'cvrl.train', *args,
       f'--workdir={tmp_path / "one"}'], cwd=helpers.ROOT,
      env=dict(env, XLA_FLAGS='--xla_force_host_platform_device_count=4'),
      capture_output=True, text=True, timeout=600)
  assert single.returncode == 0, single.stdout + single.stderr

  def params(workdir):
    manager = checkpoints.manager(workdir, 3)
    restored = manager.restore(3)['state']['params']
    manager.close()
    return restored

  # Same global batches, BatchNorm over the global batch, gradients averaged
  # over all devices: the same parameters up to summation order, i.e. to
  # 1e-4 of each array's largest value (an elementwise relative tolerance
  # failed on one small weight, 1.9e-6 off in an array of values ~0.3), and
  # to 1e-6 for arrays that stay near zero (a bias before BatchNorm, whose
  # gradient is zero in exact arithmetic: its values are rounding noise).
  helpers.assert_trees_close(params(tmp_path / 'mp'), params(tmp_path / 'one'),
                             1e-4, floor=1e-2)


def test_cluster_scripts_parse():
  for script in ('launch/slurm.sbatch', 'launch/tpu_vm.sh'):
    result = subprocess.run(['bash', '-n', script], cwd=helpers.ROOT,
                            capture_output=True, text=True)
    assert result.returncode == 0, (script, result.stderr)
