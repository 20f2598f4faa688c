r"""Probing frozen frame-wise features for instruments or pitch classes.

  python -m cvrl.probe --workdir=W [--target=instruments|pitch_classes]
      [--representation=embedding|mfcc|chroma] [--seeds=3] [--hop=1]

Writes W/probe/<representation>-<target>.{json,md,png}. For the MFCC and
chroma baselines W is any output folder and the dataset comes from --data
(or a training workdir's config), so every row of the results table comes
from this one code path.

Two probes, both reported:
  published  MLP 128 -> 64 -> 32 -> classes (LeakyReLU, sigmoid outputs,
             BCE), SGD lr 1e-4, 10 epochs, batch 32, on the train split;
  strong     the same MLP with Adam 1e-3, batch 256, up to 100 epochs,
             early stopping on held-out train pieces (the published probe
             underfits frame-level data badly).
Features are standardised with the training frames' mean and standard
deviation (the original divides by the variance, which turns near-constant
columns into NaN). Metrics as published, from sklearn.metrics: AP =
label-ranking average precision; AUC = mean per-class ROC-AUC over classes
with both labels in the test set; F1 = macro mean of per-class F at
threshold 0.5 over classes with positives.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import pathlib
import sys
import time
from typing import Optional

from absl import app
from absl import flags
import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from sklearn import metrics as skm
import tqdm

from cvrl import audio as audio_lib
from cvrl.data import layout
from cvrl.data import prepare as prepare_lib

TARGETS = ('instruments', 'pitch_classes')
REPRESENTATIONS = ('embedding', 'input', 'mfcc', 'chroma')
PITCH_CLASSES = ('C', 'C#', 'D', 'D#', 'E', 'F', 'F#', 'G', 'G#', 'A', 'A#', 'B')


# ----------------------------------------------------------------------------
# Metrics.


def probe_metrics(labels: np.ndarray, scores: np.ndarray,
                  class_names=None) -> dict:
  """The published AP / AUC / F1 and per-class P/R/F of [N, C] scores."""
  labels = np.asarray(labels) > 0.5
  scores = np.asarray(scores, np.float64)
  names = list(class_names) if class_names is not None else [
      str(c) for c in range(labels.shape[1])]
  ap = skm.label_ranking_average_precision_score(labels, scores)
  both = [c for c in range(labels.shape[1])
          if 0 < labels[:, c].sum() < len(labels)]
  auc = float(np.mean([skm.roc_auc_score(labels[:, c], scores[:, c])
                       for c in both])) if both else float('nan')
  precision, recall, f, support = skm.precision_recall_fscore_support(
      labels, scores >= 0.5, average=None, zero_division=0)
  present = support > 0
  return dict(
      ap=float(ap), auc=auc,
      f1=float(np.mean(f[present])) if present.any() else float('nan'),
      per_class={name: dict(precision=float(p), recall=float(r), f1=float(x),
                            support=int(s))
                 for name, p, r, x, s in zip(names, precision, recall, f,
                                             support)})


# ----------------------------------------------------------------------------
# The probe network and its training.


class ProbeMLP(nn.Module):
  """MLP 64 -> 32 -> classes with LeakyReLU, as published; logits out."""
  num_classes: int

  @nn.compact
  def __call__(self, x):
    x = nn.leaky_relu(nn.Dense(64)(x))
    x = nn.leaky_relu(nn.Dense(32)(x))
    return nn.Dense(self.num_classes)(x)


@dataclasses.dataclass(frozen=True)
class ProbeSettings:
  name: str
  optimizer: str
  learning_rate: float
  epochs: int
  batch_size: int
  patience: Optional[int] = None  # early stopping on validation BCE


PUBLISHED = ProbeSettings('published', 'sgd', 1e-4, 10, 32)
STRONG = ProbeSettings('strong', 'adam', 1e-3, 100, 256, patience=5)


def standardise(train: np.ndarray, *others: np.ndarray):
  """Standardise with the training mean and standard deviation."""
  mean = train.mean(axis=0)
  std = train.std(axis=0)
  std = np.where(std > 1e-8, std, 1.0)
  return [((x - mean) / std).astype(np.float32) for x in (train, *others)]


def _bce(params, model, x, y):
  return jnp.mean(optax.sigmoid_binary_cross_entropy(model.apply(params, x), y))


@functools.partial(jax.jit, static_argnames=('model', 'tx', 'batch_size'))
def _epoch(params, opt_state, x, y, rng, *, model, tx, batch_size):
  """One pass over shuffled minibatches, as a lax.scan (no Python per step)."""
  steps = x.shape[0] // batch_size
  order = jax.random.permutation(rng, x.shape[0])[:steps * batch_size]
  batches = order.reshape(steps, batch_size)

  def step(carry, index):
    params, opt_state = carry
    loss, grads = jax.value_and_grad(_bce)(params, model, x[index], y[index])
    updates, opt_state = tx.update(grads, opt_state, params)
    return (optax.apply_updates(params, updates), opt_state), loss

  (params, opt_state), losses = jax.lax.scan(step, (params, opt_state),
                                             batches)
  return params, opt_state, losses.mean()


@functools.partial(jax.jit, static_argnames=('model',))
def _predict(params, x, *, model):
  return jax.nn.sigmoid(model.apply(params, x))


def train_probe(x_train, y_train, settings: ProbeSettings, seed: int,
                x_val=None, y_val=None):
  """Trains the probe MLP; returns (predict function, epochs run)."""
  model = ProbeMLP(y_train.shape[1])
  rng = jax.random.key(seed)
  params = model.init(rng, jnp.zeros((1, x_train.shape[1])))
  tx = (optax.sgd(settings.learning_rate) if settings.optimizer == 'sgd'
        else optax.adam(settings.learning_rate))
  opt_state = tx.init(params)
  x, y = jnp.asarray(x_train), jnp.asarray(y_train, jnp.float32)
  batch_size = min(settings.batch_size, len(x_train))
  best, best_params, waited, epochs = np.inf, params, 0, 0
  for epoch in range(settings.epochs):
    params, opt_state, _ = _epoch(
        params, opt_state, x, y, jax.random.fold_in(rng, epoch), model=model,
        tx=tx, batch_size=batch_size)
    epochs = epoch + 1
    if settings.patience is None or x_val is None:
      best_params = params
      continue
    val = float(_bce(params, model, jnp.asarray(x_val),
                     jnp.asarray(y_val, jnp.float32)))
    if val < best - 1e-5:
      best, best_params, waited = val, params, 0
    else:
      waited += 1
      if waited >= settings.patience:
        break
  return (lambda x_: np.asarray(_predict(best_params, jnp.asarray(x_),
                                         model=model))), epochs


# ----------------------------------------------------------------------------
# Frame-wise features and labels of a split.


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


def split_frames(prepared: prepare_lib.PreparedDataset, split: str,
                 features_of, target: str, hop: int = 1):
  """(features [N, D], labels [N, C], piece of each row [N]) of a split.

  Only annotated frames inside the split's segments; `features_of(version)`
  gives [frames / hop, D] rows for frames 0, hop, 2 * hop, ...
  """
  xs, ys, pieces = [], [], []
  for version, segment in prepare_lib.split_versions(prepared.dataset, split):
    refs = prepared.references(version)
    frames = np.arange(0, len(refs.measures), hop)
    keep = prepare_lib.split_frame_mask(segment, refs.measures)[frames]
    xs.append(features_of(version)[:len(frames)][keep])
    ys.append(getattr(refs, target)[frames][keep])
    pieces.append(np.full(int(keep.sum()), version.piece))
  return (np.concatenate(xs), np.concatenate(ys).astype(np.float32),
          np.concatenate(pieces))


def validation_pieces(prepared: prepare_lib.PreparedDataset) -> set:
  """Every 5th train piece (at least one), for the strong probe's early stopping."""
  pieces = sorted({s.piece for s in prepared.dataset.splits['train']})
  return set(pieces[4::5] or pieces[-1:]) if len(pieces) > 1 else set()


# ----------------------------------------------------------------------------
# One probing run: representation x target x seeds x probes.


def run_probe(features_of, prepared: prepare_lib.PreparedDataset,
              target: str, seeds=(0, 1, 2), hop: int = 1,
              settings=(PUBLISHED, STRONG), progress: bool = True) -> dict:
  """Trains and tests every probe setting with every seed; returns a report."""
  classes = (list(prepared.dataset.instrument_classes)
             if target == 'instruments' else list(PITCH_CLASSES))
  x_train, y_train, train_pieces = split_frames(prepared, 'train',
                                                features_of, target, hop)
  x_test, y_test, _ = split_frames(prepared, 'test', features_of, target, hop)
  held_out = np.isin(train_pieces, list(validation_pieces(prepared)))
  x_fit, y_fit = x_train[~held_out], y_train[~held_out]
  x_val, y_val = ((x_train[held_out], y_train[held_out]) if held_out.any()
                  else (None, None))
  report = dict(target=target, classes=classes, hop=hop,
                train_frames=len(x_train), test_frames=len(x_test), probes={})
  for setting in settings:
    if setting.patience is not None and x_val is not None:
      fit, test, val = standardise(x_fit, x_test, x_val)
      labels = y_fit
    else:
      fit, test = standardise(x_train, x_test)
      val, labels = None, y_train
    runs = []
    for seed in tqdm.tqdm(seeds, desc=f'probe {setting.name}', unit='seed',
                          disable=not progress):
      start = time.time()
      predict, epochs = train_probe(fit, labels, setting, seed, val, y_val)
      result = probe_metrics(y_test, predict(test), classes)
      result.update(seed=seed, epochs=epochs, seconds=time.time() - start)
      runs.append(result)
    summary = {}
    for metric in ('ap', 'auc', 'f1'):
      values = np.array([r[metric] for r in runs])
      summary[metric] = dict(mean=float(values.mean()),
                             std=float(values.std()),
                             min=float(values.min()), max=float(values.max()))
    report['probes'][setting.name] = dict(settings=dataclasses.asdict(setting),
                                          summary=summary, runs=runs)
  return report


def markdown(report: dict, title: str) -> str:
  lines = [f'# {title}', '',
           f"{report['train_frames']} train / {report['test_frames']} test "
           f"frames (hop {report['hop']}), {len(report['classes'])} classes; "
           'mean +- std over seeds.', '',
           '| probe | AP | AUC | F1 |', '|---|---|---|---|']
  for name, probe in report['probes'].items():
    s = probe['summary']
    lines.append(f'| {name} | ' + ' | '.join(
        f"{s[m]['mean']:.3f} +- {s[m]['std']:.3f}" for m in ('ap', 'auc', 'f1'))
        + ' |')
  lines += ['', '| class | support | ' + ' | '.join(
      f'{n} P | {n} R | {n} F' for n in report['probes']) + ' |',
            '|---|---|' + '---|' * 3 * len(report['probes'])]
  for c in report['classes']:
    cells = []
    support = 0
    for probe in report['probes'].values():
      per = [r['per_class'][c] for r in probe['runs']]
      support = per[0]['support']
      cells += [f"{np.mean([p[k] for p in per]):.2f}"
                for k in ('precision', 'recall', 'f1')]
    lines.append(f'| {c} | {support} | ' + ' | '.join(cells) + ' |')
  return '\n'.join(lines) + '\n'


def plot(report: dict, title: str, path: pathlib.Path) -> None:
  """Per-class F of each probe (mean over seeds) as grouped bars."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  from matplotlib import pyplot as plt  # pylint: disable=g-import-not-at-top
  classes = report['classes']
  fig, ax = plt.subplots(figsize=(max(6, 0.6 * len(classes)), 3.5))
  width = 0.8 / len(report['probes'])
  for i, (name, probe) in enumerate(report['probes'].items()):
    f = [np.mean([r['per_class'][c]['f1'] for r in probe['runs']])
         for c in classes]
    ax.bar(np.arange(len(classes)) + i * width, f, width, label=name)
  ax.set_xticks(np.arange(len(classes)) + 0.4 - width / 2, classes,
                rotation=45, ha='right')
  ax.set_ylabel('F (threshold 0.5)')
  ax.set_ylim(0, 1)
  ax.set_title(title)
  ax.legend()
  fig.tight_layout()
  fig.savefig(path, dpi=90)
  plt.close(fig)


# ----------------------------------------------------------------------------
# Binary.

FLAGS = flags.FLAGS


def define_representation_flags():
  """Which frozen features to read (shared with cvrl.ssm)."""
  flags.DEFINE_string('workdir', None, 'A cvrl.train workdir (embedding) or '
                      'any output folder (input, mfcc, chroma).')
  flags.DEFINE_enum('representation', 'embedding', REPRESENTATIONS,
                    'Frozen features: a trained embedding, the input '
                    'features themselves, or a librosa baseline.')
  flags.DEFINE_integer('hop', 1, 'Use every `hop`-th frame (1: all, as '
                       'published).')
  flags.DEFINE_string('data', None, 'Dataset (default: the workdir config\'s '
                      'data.root, else demo_data).')
  flags.DEFINE_integer('step', None, 'Checkpoint step (default: latest).')
  flags.mark_flag_as_required('workdir')


def define_flags():
  define_representation_flags()
  flags.DEFINE_enum('target', 'instruments', TARGETS, 'What to probe for.')
  flags.DEFINE_integer('seeds', 3, 'Probe seeds (results: mean +- std).')


def features_for(representation: str, workdir: pathlib.Path,
                 data: Optional[str], step: Optional[int], hop: int,
                 splits=('train', 'test')):
  """(prepared dataset, version -> [frames / hop, D] features) of a representation."""
  from cvrl import embed  # pylint: disable=g-import-not-at-top
  if representation == 'embedding':
    encoder = embed.load_encoder(workdir, step)
    prepared = embed.open_dataset(encoder, data)
    cache = {}
    for split in splits:
      cache.update(embed.embed_split(workdir, encoder, prepared, split, hop))
    return prepared, lambda version: cache[version.key]
  # Baselines read the audio; the caches give references and frame counts.
  # A training workdir's dataset and feature settings, else the defaults.
  features_config = audio_lib.feature_config()
  config_path = workdir / 'config.json'
  if config_path.exists():
    saved = json.loads(config_path.read_text())
    features_config = ml_collections.ConfigDict(saved['features'])
    data = data or saved['data']['root']
  prepared = prepare_lib.open_cache(data or 'demo_data', features_config)
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


def main(argv):
  del argv
  from cvrl import train  # pylint: disable=g-import-not-at-top
  train.quiet_logging()
  workdir = pathlib.Path(FLAGS.workdir)
  try:
    prepared, features_of = features_for(FLAGS.representation, workdir,
                                         FLAGS.data, FLAGS.step, FLAGS.hop)
    report = run_probe(features_of, prepared, FLAGS.target,
                       seeds=tuple(range(FLAGS.seeds)), hop=FLAGS.hop)
  except (FileNotFoundError, layout.DatasetError) as e:
    print(f'error: {e}', file=sys.stderr)
    sys.exit(1)
  out = workdir / 'probe'
  out.mkdir(parents=True, exist_ok=True)
  name = f'{FLAGS.representation}-{FLAGS.target}'
  title = f'{workdir.name}: {FLAGS.representation} probed for {FLAGS.target}'
  (out / f'{name}.json').write_text(json.dumps(report, indent=1))
  (out / f'{name}.md').write_text(markdown(report, title))
  plot(report, title, out / f'{name}.png')
  print(markdown(report, title).split('\n\n')[2])
  print(f'wrote {out / name}.json, .md, .png')


if __name__ == '__main__':
  define_flags()
  app.run(main)
