"""Workdir layout, config checks, and restoring a model without its optimiser."""

import json

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

from cvrl import checkpoints
from cvrl import embed


def test_on_disk_format_is_the_one_earlier_code_wrote(trained_workdir):
  """Workdirs trained before checkpoints.py existed load unchanged: the items
  and the train state's fields are the ones that code saved."""
  step_dir = trained_workdir / 'checkpoints' / '2'
  items = {p.name for p in step_dir.iterdir() if p.is_dir()}
  assert items == {'state', 'normalisation', 'pipeline', 'meta'}
  manager = ocp.CheckpointManager(
      (trained_workdir / 'checkpoints').absolute(),
      options=ocp.CheckpointManagerOptions(read_only=True))
  restored = manager.restore(2)  # no template: the raw saved trees
  manager.close()
  assert set(restored['state']) == {'step', 'params', 'opt_state',
                                    'batch_stats'}
  assert set(restored['normalisation']) == {'mean', 'std'}
  assert {'method', 'classes', 'feature_key', 'input_shape',
          'step'} <= set(restored['meta'])
  config = json.loads((trained_workdir / 'config.json').read_text())
  assert config['method'] == 'cv'


def test_restore_model_reads_variables_only_and_embeds_the_same(
    trained_workdir):
  model = checkpoints.restore_model(trained_workdir)
  assert set(model.variables) == {'params', 'batch_stats'}
  manager = ocp.CheckpointManager(
      (trained_workdir / 'checkpoints').absolute(),
      options=ocp.CheckpointManagerOptions(read_only=True))
  raw = manager.restore(2)
  manager.close()
  for name in ('params', 'batch_stats'):
    jax.tree.map(np.testing.assert_array_equal, model.variables[name],
                 raw['state'][name])
  np.testing.assert_array_equal(model.mean, raw['normalisation']['mean'])
  # The embedding the saved arrays give, applied by hand, is the same.
  features = np.random.default_rng(0).normal(
      size=(40,) + tuple(model.mean.shape)).astype(np.float32)
  by_restore = embed.embed_features(model, features, method='patches')
  by_hand = embed.embed_features(
      checkpoints.TrainedModel(
          config=model.config, model=model.model,
          variables=dict(params=raw['state']['params'],
                         batch_stats=raw['state']['batch_stats']),
          mean=np.asarray(raw['normalisation']['mean']),
          std=np.asarray(raw['normalisation']['std']), step=2, classes=()),
      features, method='patches')
  np.testing.assert_array_equal(by_restore, by_hand)


def test_missing_step_and_mismatched_config_name_the_path(trained_workdir):
  with pytest.raises(checkpoints.CheckpointError, match='no checkpoint at step 7'):
    checkpoints.restore_model(trained_workdir, step=7)
  config = checkpoints.read_config(trained_workdir)
  config.model.embedding_dim = 3
  with pytest.raises(checkpoints.CheckpointError,
                     match=r'config.json: config.model differs'):
    checkpoints.check_config(trained_workdir, config)
