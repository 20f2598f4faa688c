"""The workdir of a training run: its config, its orbax checkpoints, restoring.

  W/config.json          the training config (written by the trainer)
  W/checkpoints/<step>/  orbax items: state (TrainState: step, params,
                         opt_state, batch_stats), normalisation (mean, std of
                         the input features), pipeline (the input iterator's
                         position), meta (method, classes, feature key, input
                         shape, step)
  W/metrics.jsonl, W/metrics.png, W/tensorboard/   (cvrl.metric_writers)

The trainer saves and restores whole train states; evaluators restore the
model variables and the normalisation only (`restore_model`), without
building an optimiser, and never import the trainer.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
from typing import Any, Optional

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import orbax.checkpoint as ocp

from cvrl import models

CONFIG = 'config.json'
CHECKPOINTS = 'checkpoints'
# A resumed run must agree with the checkpoint on these config sections.
FIXED_SECTIONS = ('method', 'features', 'model', 'loss')


class CheckpointError(RuntimeError):
  """A workdir or checkpoint is missing or does not fit; names the path."""


# ----------------------------------------------------------------------------
# config.json


def config_path(workdir) -> pathlib.Path:
  return pathlib.Path(workdir) / CONFIG


def write_config(workdir, config: ml_collections.ConfigDict) -> None:
  config_path(workdir).write_text(config.to_json_best_effort(indent=2))


def read_config(workdir) -> ml_collections.ConfigDict:
  """The training config a workdir was trained with."""
  path = config_path(workdir)
  if not path.exists():
    raise CheckpointError(f'{path}: not there; is {workdir} a cvrl.train '
                          'workdir?')
  try:
    return ml_collections.ConfigDict(json.loads(path.read_text()))
  except ValueError as e:
    raise CheckpointError(f'{path}: not valid JSON ({e})') from None


def check_config(workdir, config: ml_collections.ConfigDict) -> None:
  """Refuses a workdir trained with another method/model/features/loss."""
  path = config_path(workdir)
  if not path.exists():
    return
  saved = json.loads(path.read_text())
  current = json.loads(config.to_json_best_effort())
  for section in FIXED_SECTIONS:
    if saved.get(section) != current.get(section):
      raise CheckpointError(
          f'{path}: config.{section} differs from this run\'s '
          f'({saved.get(section)!r} vs {current.get(section)!r}); use a new '
          '--workdir or the same settings')


# ----------------------------------------------------------------------------
# Saving and restoring whole train states (the trainer).


def manager(workdir, keep: int = 1,
            read_only: bool = False) -> ocp.CheckpointManager:
  directory = (pathlib.Path(workdir) / CHECKPOINTS).absolute()
  if read_only:
    if not directory.is_dir():
      raise CheckpointError(f'{directory}: no checkpoints (train first, or '
                            'check --workdir)')
    options = ocp.CheckpointManagerOptions(read_only=True, create=False)
  else:
    options = ocp.CheckpointManagerOptions(max_to_keep=keep, create=True)
  return ocp.CheckpointManager(directory, options=options)


def save(checkpoints: ocp.CheckpointManager, host_state, normalisation: dict,
         pipeline_state: dict, meta: dict) -> None:
  """Saves an unreplicated, host-side train state and what goes with it."""
  step = int(host_state.step)
  checkpoints.save(step, args=ocp.args.Composite(
      state=ocp.args.StandardSave(host_state),
      normalisation=ocp.args.StandardSave(normalisation),
      pipeline=ocp.args.JsonSave(pipeline_state),
      meta=ocp.args.JsonSave(dict(meta, step=step))))


def restore(checkpoints: ocp.CheckpointManager, state, step: int):
  """-> (state, normalisation dict, pipeline state, meta) of checkpoint `step`.

  `state` gives the structure (a TrainState with its optimiser).
  """
  abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, state)
  restored = checkpoints.restore(step, args=ocp.args.Composite(
      state=ocp.args.StandardRestore(abstract),
      normalisation=ocp.args.StandardRestore(),
      pipeline=ocp.args.JsonRestore(), meta=ocp.args.JsonRestore()))
  return (restored['state'], restored['normalisation'], restored['pipeline'],
          restored['meta'])


# ----------------------------------------------------------------------------
# Restoring a model for evaluation.


@dataclasses.dataclass(frozen=True)
class TrainedModel:
  """What evaluation needs of a checkpoint: the model and how to feed it."""
  config: ml_collections.ConfigDict
  model: models.Encoder
  variables: Any  # {'params', 'batch_stats'}
  mean: np.ndarray
  std: np.ndarray
  step: int
  classes: tuple[str, ...]

  @property
  def patch_frames(self) -> int:
    return self.config.data.patch_frames


def abstract_variables(model: models.Encoder,
                       config: ml_collections.ConfigDict):
  """Shapes and dtypes of the model's variables, computing nothing."""
  shape = (1,) + models.input_shape(config)
  return jax.eval_shape(
      lambda: model.init({'params': jax.random.key(0)}, jnp.zeros(shape),
                         train=False))


def restore_model(workdir, step: Optional[int] = None) -> TrainedModel:
  """The model of `workdir`'s latest (or given) checkpoint.

  Reads only params, BatchNorm statistics, normalisation and meta of the
  checkpoint (orbax partial restore): the optimiser state stays on disk.
  """
  workdir = pathlib.Path(workdir)
  config = read_config(workdir)
  checkpoints = manager(workdir, read_only=True)
  try:
    steps = checkpoints.all_steps()
    if not steps:
      raise CheckpointError(f'{workdir / CHECKPOINTS}: no checkpoint')
    step = max(steps) if step is None else step
    if step not in steps:
      raise CheckpointError(f'{workdir / CHECKPOINTS}: no checkpoint at step '
                            f'{step} (there are {sorted(steps)})')
    meta = checkpoints.restore(step, args=ocp.args.Composite(
        meta=ocp.args.JsonRestore()))['meta']
    num_classes = len(meta['classes']) if config.method == 'sup' else 0
    model = models.create_model(config, num_classes)
    abstract = abstract_variables(model, config)
    restored = checkpoints.restore(step, args=ocp.args.Composite(
        state=ocp.args.PyTreeRestore(item=dict(abstract),
                                     partial_restore=True),
        normalisation=ocp.args.StandardRestore()))
  finally:
    checkpoints.close()
  normalisation = restored['normalisation']
  return TrainedModel(
      config=config, model=model, variables=dict(restored['state']),
      mean=np.asarray(normalisation['mean'], np.float32),
      std=np.asarray(normalisation['std'], np.float32), step=int(step),
      classes=tuple(meta['classes']))


def untrained_model(config: ml_collections.ConfigDict,
                    seed: int = 0) -> TrainedModel:
  """A randomly initialised model of `config` (identity normalisation):
  for speed measurements and tests, which don't depend on the weights."""
  model = models.create_model(config)
  shape = (1,) + models.input_shape(config)
  variables = model.init({'params': jax.random.key(seed)}, jnp.zeros(shape),
                         train=False)
  bins = int(np.prod(models.input_shape(config)[1:]))
  return TrainedModel(
      config=config, model=model, variables=dict(variables),
      mean=np.zeros(bins, np.float32), std=np.ones(bins, np.float32), step=0,
      classes=())
