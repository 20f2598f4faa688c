"""Frozen frame-wise representations that the evaluators read, and their flags.

  embedding   a trained encoder's output (cvrl.embed, cached in the workdir);
              --layer picks the published embedding or a layer before it
  input       the input features the encoders see, standardised
  mfcc        MFCC coefficients 4-13 (the published timbre baseline)
  chroma      STFT chroma (the published harmony baseline)

Every representation gives, per dataset version, [ceil(frames / hop), D]
rows on the feature cache's frame grid, so every evaluator compares them on
the same frames and references.
"""

from __future__ import annotations

import pathlib
from typing import Optional

from absl import flags
import ml_collections
from ml_collections import config_flags
import numpy as np

from cvrl import audio as audio_lib
from cvrl import checkpoints
from cvrl import cli
from cvrl import embed
from cvrl.data import prepare as prepare_lib

REPRESENTATIONS = ('embedding', 'input', 'mfcc', 'chroma')
EVAL_CONFIG = pathlib.Path(__file__).parents[2] / 'configs' / 'evaluation.py'
FLAGS = flags.FLAGS


def define_flags():
  """Which features to read, and the evaluation settings (shared by evaluators)."""
  flags.DEFINE_string('workdir', None, 'A cvrl.train workdir (embedding) or '
                      'any output folder (input, mfcc, chroma).')
  flags.DEFINE_enum('representation', 'embedding', REPRESENTATIONS,
                    'Frozen features: a trained embedding, the input '
                    'features themselves, or a librosa baseline.')
  flags.DEFINE_integer('hop', None, 'Use every `hop`-th frame (default: '
                       'eval_config.hop, 1 = all, as published).')
  flags.DEFINE_string('data', None, 'Dataset (default: the workdir config\'s '
                      'data.root, else demo_data).')
  flags.DEFINE_integer('step', None, 'Checkpoint step (default: latest).')
  flags.DEFINE_bool('validation', None, 'Evaluate on the validation pieces '
                    '(layout.validation_view: probes fit on the other train '
                    'pieces) instead of the test split. Default: what the '
                    'workdir\'s encoder was trained for (config.data.'
                    'validation), else test.')
  flags.DEFINE_string('layer', 'embedding', 'With --representation=embedding: '
                      'which layer of the encoder: embedding (the published '
                      'one), dense0, dense1, ... (the dense layers before it) '
                      'or '
                      'final (the last convolution\'s output).')
  config_flags.DEFINE_config_file(
      'eval_config', str(EVAL_CONFIG),
      'Evaluation settings (configs/evaluation.py); override fields with '
      '--eval_config.FIELD=VALUE.')
  flags.mark_flag_as_required('workdir')


def eval_config() -> ml_collections.ConfigDict:
  """The evaluation config with --hop folded in (the flag wins)."""
  config = FLAGS.eval_config
  if FLAGS.hop is not None:
    config.hop = FLAGS.hop
  return config


def baseline_features(kind: str, path: pathlib.Path, config,
                      num_frames: int) -> np.ndarray:
  """MFCC coefficients 4-13 or chroma, on the cache's `num_frames` frames."""
  functions = dict(mfcc=audio_lib.mfcc, chroma=audio_lib.chroma)
  if kind not in functions:
    raise ValueError(f'unknown baseline {kind!r}')
  out = functions[kind](audio_lib.load_audio(path, config.sample_rate), config)
  out = out[:num_frames]
  if len(out) < num_frames:
    out = np.pad(out, ((0, num_frames - len(out)), (0, 0)), mode='edge')
  return out


def name(representation: str, layer: str = 'embedding',
         validation: bool = False, step: Optional[int] = None) -> str:
  """What reports and files call a representation: 'embedding',
  'embedding_dense0', 'mfcc-val' (on the validation pieces),
  'embedding_step3000' (an explicit --step, so probing an earlier checkpoint
  does not overwrite the latest one's report)."""
  out = representation if layer == 'embedding' else f'{representation}_{layer}'
  if step is not None and representation == 'embedding':
    out += f'_step{step}'
  return out + ('-val' if validation else '')


def features_for(representation: str, workdir: pathlib.Path,
                 data: Optional[str], step: Optional[int], hop: int,
                 splits=('train', 'test'), layer: str = 'embedding',
                 validation: bool = False):
  """(prepared dataset, version -> [frames / hop, D] features) of a representation."""
  workdir = pathlib.Path(workdir)
  if representation != 'embedding' and layer != 'embedding':
    raise cli.UserError(f'--layer={layer!r} needs --representation=embedding '
                        f'(got {representation!r})')
  if representation == 'embedding':
    encoder = checkpoints.restore_model(workdir, step)
    embed.check_layer(encoder, layer, workdir)
    prepared = embed.open_dataset(encoder, data, validation)
    cache = {}
    for split in splits:
      cache.update(embed.embed_split(workdir, encoder, prepared, split, hop,
                                     layer=layer))
    return prepared, lambda version: cache[version.key]
  # Baselines read the audio; the caches give references and frame counts.
  # A training workdir's dataset and feature settings, else the defaults.
  features_config = audio_lib.feature_config()
  if checkpoints.config_path(workdir).exists():
    saved = checkpoints.read_config(workdir)
    features_config = saved.features
    data = data or saved.data.root
  prepared = prepare_lib.open_cache(data or 'demo_data', features_config,
                                    validation=validation)
  if representation == 'input':  # the features the encoders see, standardised
    mean, std = prepared.mean.reshape(-1), prepared.std.reshape(-1)

    def input_of(version):
      features = np.asarray(prepared.features(version), np.float32)[::hop]
      return (features.reshape(len(features), -1) - mean) / std
    return prepared, input_of
  folder = workdir / 'baselines' / representation

  def features_of(version):
    path = folder / version.piece / f'{version.name}.npy'
    if not path.exists():
      path.parent.mkdir(parents=True, exist_ok=True)
      values = baseline_features(representation, version.audio_path,
                                 prepared.config,
                                 prepared.num_frames[version.key])
      prepare_lib.write_atomic(path, lambda f: np.save(f, values))
    return np.load(path)[::hop]
  return prepared, features_of


def on_validation() -> bool:
  """--validation, else what the workdir's encoder was trained for."""
  if FLAGS.validation is not None:
    return FLAGS.validation
  workdir = pathlib.Path(FLAGS.workdir)
  if checkpoints.config_path(workdir).exists():
    return bool(checkpoints.read_config(workdir).data.get('validation', False))
  return False


def flag_name() -> str:
  """name() of the representation, layer and split the flags ask for."""
  return name(FLAGS.representation, FLAGS.layer, on_validation(), FLAGS.step)


def from_flags(splits=('train', 'test')):
  """(prepared dataset, features_of, eval config) as the flags ask."""
  config = eval_config()
  prepared, features_of = features_for(
      FLAGS.representation, pathlib.Path(FLAGS.workdir), FLAGS.data,
      FLAGS.step, config.hop, splits, FLAGS.layer, on_validation())
  return prepared, features_of, config
