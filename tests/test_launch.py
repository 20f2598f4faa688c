"""Multi-process training through launch/local.py equals one process."""

import os
import subprocess
import sys

import jax

import helpers
from configs import cv
from cvrl import checkpoints
from cvrl import models
from cvrl import train
from cvrl.data import prepare


def test_two_processes_train_like_one(tmp_path):
  root = helpers.make_cvrl_dataset(tmp_path / 'data', pieces=('p1', 'p2', 'p3'))
  prepare.prepare(root, cv.get_config('test').features, progress=False)
  args = ['--config=configs/cv.py:test', f'--config.data.root={root}',
          '--config.num_train_steps=1',
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

  def state(workdir):
    manager = checkpoints.manager(workdir, 1)
    restored = manager.restore(1)['state']
    manager.close()
    return restored

  config = cv.get_config('test')
  model = models.create_model(config, num_classes=0, axis_name=train.AXIS)
  init = train.initial_state(config, model)[0].params
  mp, one = state(tmp_path / 'mp'), state(tmp_path / 'one')
  # Same global batch, BatchNorm over the global batch: the same statistics
  # up to summation order.
  helpers.assert_trees_close(mp['batch_stats'], one['batch_stats'], 1e-4,
                             floor=1e-2)
  # Gradients averaged over all devices: the same update, to 1e-2 of each
  # array's largest change; an array whose change is zero in exact
  # arithmetic (a bias before BatchNorm) is held to 1e-7. One step, because
  # float-order noise is not small here: the update's sums cancel (1.4e-3 of
  # a BatchNorm bias's update on a 2-core Intel Xeon, and 3 steps grew it to
  # 13 % of the bias there), while a gradient not averaged across processes
  # is off by the whole update.
  delta = lambda params: jax.tree_util.tree_map(lambda p, i: p - i, params,
                                                init)
  helpers.assert_trees_close(delta(mp['params']), delta(one['params']), 1e-2,
                             floor=1e-5)


def test_cluster_scripts_parse():
  for script in ('launch/slurm.sbatch', 'launch/tpu_vm.sh'):
    result = subprocess.run(['bash', '-n', script], cwd=helpers.ROOT,
                            capture_output=True, text=True)
    assert result.returncode == 0, (script, result.stderr)
