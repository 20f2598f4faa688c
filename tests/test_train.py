"""The trainer: pmapped steps on 8 simulated devices, resume, NaN, SIGTERM, binary."""

import json
import os
import signal
import subprocess
import sys
import time

import flax
import jax
import numpy as np
import pytest

import helpers
from configs import cv
from configs import sup
from configs import sv
from cvrl import checkpoints
from cvrl import models
from cvrl import train
from cvrl.data import pipeline
from cvrl.data import prepare

CONFIGS = dict(cv=cv.get_config, sv=sv.get_config, sup=sup.get_config)


@pytest.fixture(scope='module')
def data_root(tmp_path_factory):
  root = helpers.make_cvrl_dataset(tmp_path_factory.mktemp('train') / 'data',
                                    pieces=('p1', 'p2', 'p3'))
  prepare.prepare(root, cv.get_config('test').features, progress=False)
  return root


def make_config(method, root, **overrides):
  config = CONFIGS[method]('test')
  config.data.root = str(root)
  for key, value in overrides.items():
    section = config
    *parents, leaf = key.split('.')
    for parent in parents:
      section = section[parent]
    section[leaf] = value
  return config


@pytest.mark.parametrize('method,loss', [('cv', 'triplet'), ('sv', 'triplet'),
                                         ('sup', 'bce'), ('cv', 'nt_xent')])
def test_pmapped_steps_keep_replicas_identical_and_finite(data_root, method,
                                                          loss):
  assert jax.local_device_count() == 8
  config = make_config(method, data_root, **{'loss.name': loss})
  prepared = prepare.open_cache(data_root, config.features)
  classes = len(prepared.dataset.instrument_classes)
  model = models.create_model(
      config, classes if method == 'sup' else 0, axis_name=train.AXIS)
  state = flax.jax_utils.replicate(
      train.create_train_state(jax.random.key(0), config, model))
  initial = jax.device_get(state.params)
  rngs = flax.jax_utils.replicate(jax.random.key(1))
  maker = pipeline.example_maker(prepared, config)
  step = train.pmapped_train_step(config)
  iterator = iter(pipeline.create_dataset(maker, config, 0, 3))
  for _ in range(3):
    state, metrics = step(state, train.model_inputs(config, next(iterator)),
                          rngs)
  for tree in (state.params, state.batch_stats, state.opt_state):
    for leaf in jax.tree.leaves(jax.device_get(tree)):
      leaf = np.asarray(leaf)
      assert leaf.shape[0] == 8
      assert np.all(np.isfinite(leaf))
      for replica in leaf[1:]:
        np.testing.assert_array_equal(replica, leaf[0])
  metrics = jax.device_get(metrics)
  assert np.all(metrics['loss'] == metrics['loss'][0])
  changed = jax.tree.map(lambda a, b: not np.allclose(a[0], b[0]),
                         jax.device_get(state.params), initial)
  assert all(jax.tree.leaves(changed))  # every parameter was trained


def params_of(workdir, step):
  manager = checkpoints.manager(workdir, 3)
  restored = manager.restore(step)
  manager.close()
  return restored['state']['params']


def test_resume_gives_the_same_parameters_as_one_run(data_root, tmp_path):
  # Constant learning rate (the paper's), so the schedule does not depend on
  # num_train_steps, which the resumed run raises.
  whole = train.train(
      make_config('cv', data_root, num_train_steps=6), tmp_path / 'whole',
      progress=False)
  train.train(make_config('cv', data_root, num_train_steps=3),
                           tmp_path / 'parts', progress=False)
  with open(tmp_path / 'parts' / 'metrics.jsonl', 'a') as f:
    f.write('{"step": 4, "loss": 9.9}\n')  # a crashed run logged past step 3
  resumed = train.train(
      make_config('cv', data_root, num_train_steps=6), tmp_path / 'parts',
      progress=False)
  assert int(resumed.step) == int(whole.step) == 6
  jax.tree.map(np.testing.assert_array_equal, jax.device_get(resumed.params),
               jax.device_get(whole.params))
  jax.tree.map(np.testing.assert_array_equal,
               jax.device_get(resumed.batch_stats),
               jax.device_get(whole.batch_stats))
  lines = (tmp_path / 'parts' / 'metrics.jsonl').read_text().splitlines()
  assert [json.loads(line)['step'] for line in lines] == list(range(1, 7))


def test_checkpoint_holds_normalisation_pipeline_and_meta(data_root, tmp_path):
  config = make_config('sup', data_root, num_train_steps=4)
  train.train(config, tmp_path, progress=False)
  manager = checkpoints.manager(tmp_path, 3)
  assert manager.all_steps() == [2, 4]
  restored = manager.restore(4)
  manager.close()
  prepared = prepare.open_cache(data_root, config.features)
  np.testing.assert_array_equal(restored['normalisation']['mean'],
                                prepared.mean)
  assert restored['pipeline']['first_step'] == 0
  assert restored['meta']['method'] == 'sup'
  assert restored['meta']['classes'] == list(
      prepared.dataset.instrument_classes)
  assert json.loads((tmp_path / 'config.json').read_text())['method'] == 'sup'
  assert list((tmp_path / 'tensorboard').iterdir())
  assert (tmp_path / 'metrics.png').stat().st_size > 1000


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path):
  root = helpers.make_cvrl_dataset(tmp_path / 'data', pieces=('p1', 'p2', 'p3'))
  config = make_config('cv', root, num_train_steps=2)
  train.train(config, tmp_path / 'w', progress=False)
  prepared = prepare.open_cache(root, config.features)
  for version in prepared.dataset.versions():  # poison the cached features
    features = np.load(prepare.cache_paths(prepared.cache, version)[0],
                       mmap_mode='r+')
    features[:] = np.nan
    features.flush()
  with pytest.raises(train.TrainingError, match=r'loss is nan at step 3.*'
                     r'Last good checkpoint: step 2'):
    train.train(make_config('cv', root, num_train_steps=4),
                             tmp_path / 'w', progress=False)
  manager = checkpoints.manager(tmp_path / 'w', 3)
  assert manager.all_steps() == [2]
  logged = [json.loads(line)['step'] for line in
            (tmp_path / 'w' / 'metrics.jsonl').read_text().splitlines()]
  assert logged == [1, 2]
  assert np.all(np.isfinite(jax.tree.leaves(
      manager.restore(2)['state']['params'])[0]))
  manager.close()


def test_resume_refuses_another_model(data_root, tmp_path):
  train.train(make_config('cv', data_root, num_train_steps=1),
                           tmp_path, progress=False)
  with pytest.raises(checkpoints.CheckpointError, match='config.json: config.model'):
    train.train(
        make_config('cv', data_root, **{'model.final_features': 32}), tmp_path,
        progress=False)


def test_missing_dataset_names_the_folder(tmp_path):
  config = make_config('cv', tmp_path / 'nowhere')
  with pytest.raises(Exception, match='nowhere: no such dataset folder'):
    train.train(config, tmp_path / 'w', progress=False)


def run_binary(*args, devices=8, **popen):
  env = dict(os.environ, PYTHONPATH=str(helpers.ROOT),
             XLA_FLAGS=f'--xla_force_host_platform_device_count={devices}')
  return subprocess.Popen(
      [sys.executable, '-m', 'cvrl.train', *args], cwd=helpers.ROOT, env=env,
      stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **popen)


def test_binary_with_overrides_on_one_device(data_root, tmp_path):
  process = run_binary('--config=configs/sv.py:test',
                       f'--config.data.root={data_root}',
                       '--config.num_train_steps=3', '--config.data.workers=1',
                       f'--workdir={tmp_path}', devices=1)
  output, _ = process.communicate(timeout=300)
  assert process.returncode == 0, output
  assert f'{tmp_path}: step 3 of 3' in output
  assert 'leaked' not in output
  steps = [json.loads(line)['step'] for line in
           (tmp_path / 'metrics.jsonl').read_text().splitlines()]
  assert steps == [1, 2, 3]
  # Run again: nothing left to do, and it says so.
  process = run_binary('--config=configs/sv.py:test',
                       f'--config.data.root={data_root}',
                       '--config.num_train_steps=3', f'--workdir={tmp_path}',
                       devices=1)
  output, _ = process.communicate(timeout=300)
  assert process.returncode == 0, output
  assert 'resuming from the checkpoint at step 3' in output
  assert 'already trained to step 3' in output


def test_sigterm_saves_a_checkpoint_and_the_run_resumes(data_root, tmp_path):
  process = run_binary('--config=configs/cv.py:test',
                       f'--config.data.root={data_root}',
                       '--config.num_train_steps=100000',
                       '--config.checkpoint_every=100000',
                       f'--workdir={tmp_path}')
  lines = []
  deadline = time.time() + 240
  while time.time() < deadline:
    line = process.stdout.readline()
    lines.append(line)
    if 'training cv from step 0' in line:
      break
  time.sleep(3)
  process.send_signal(signal.SIGTERM)
  output, _ = process.communicate(timeout=120)
  output = ''.join(lines) + output
  assert process.returncode == 0, output
  assert 'SIGTERM: saved the checkpoint at step' in output
  manager = checkpoints.manager(tmp_path, 3)
  (step,) = manager.all_steps()
  manager.close()
  assert step >= 1
  resumed = train.train(
      make_config('cv', data_root, num_train_steps=step + 1), tmp_path,
      progress=False)
  assert int(resumed.step) == step + 1


def test_demo_dataset_is_built_on_first_use(tmp_path):
  root = tmp_path / 'demo'
  config = make_config('cv', root, num_train_steps=2)
  config.data.demo = True
  config.data.demo_pieces = 2
  config.data.demo_versions = 2
  config.data.demo_max_seconds = 12.0
  state = train.train(config, tmp_path / 'w', progress=False)
  assert int(state.step) == 2
  assert (root / 'demo.json').exists() and (root / 'pieces.csv').exists()
