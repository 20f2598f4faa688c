r"""Probing frozen frame-wise features for instruments or pitch classes.

  python -m cvrl.probe --workdir=W [--target=instruments|pitch_classes]
      [--representation=embedding|input|mfcc|chroma] [--layer=embedding]
      [--seeds=3] [--hop=1]
      [--eval_config=configs/evaluation.py] [--eval_config.probe.FIELD=...]

Writes W/probe/<representation>-<target>.{json,md,png}. For the MFCC and
chroma baselines W is any output folder and the dataset comes from --data
(or a training workdir's config), so every row of the results table comes
from this one code path.

Two probes, both reported (settings: configs/evaluation.py, `probe`):
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
import time
from typing import Optional

from absl import flags
import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from sklearn import metrics as skm
import tqdm

from cvrl import cli
from cvrl.data import prepare as prepare_lib
from cvrl.evaluation import representations

TARGETS = ('instruments', 'pitch_classes')
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



def settings_from_config(config: ml_collections.ConfigDict):
  """(published, strong) ProbeSettings of an evaluation config's `probe`."""
  return tuple(ProbeSettings(**config[name].to_dict())
               for name in ('published', 'strong'))


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


def early_stopping_pieces(prepared: prepare_lib.PreparedDataset) -> set:
  """Every 5th train piece (at least one), for the strong probe's early stopping.

  (Not the study validation split, layout.validation_view: under it, these
  are taken from the train pieces that remain.)
  """
  pieces = sorted({s.piece for s in prepared.dataset.splits['train']})
  return set(pieces[4::5] or pieces[-1:]) if len(pieces) > 1 else set()


# ----------------------------------------------------------------------------
# One probing run: representation x target x seeds x probes.


def run_probe(features_of, prepared: prepare_lib.PreparedDataset,
              target: str, settings, seeds=(0, 1, 2), hop: int = 1,
              progress: bool = True) -> dict:
  """Trains and tests every probe setting with every seed; returns a report."""
  classes = (list(prepared.dataset.instrument_classes)
             if target == 'instruments' else list(PITCH_CLASSES))
  x_train, y_train, train_pieces = split_frames(prepared, 'train',
                                                features_of, target, hop)
  x_test, y_test, _ = split_frames(prepared, 'test', features_of, target, hop)
  held_out = np.isin(train_pieces, list(early_stopping_pieces(prepared)))
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


def define_flags():
  representations.define_flags()
  flags.DEFINE_enum('target', 'instruments', TARGETS, 'What to probe for.')
  flags.DEFINE_integer('seeds', None, 'Probe seeds, results as mean +- std '
                       '(default: eval_config.probe.seeds).')


def main(argv):
  del argv
  workdir = pathlib.Path(FLAGS.workdir)
  prepared, features_of, config = representations.from_flags()
  seeds = FLAGS.seeds if FLAGS.seeds is not None else config.probe.seeds
  report = run_probe(features_of, prepared, FLAGS.target,
                     settings_from_config(config.probe),
                     seeds=tuple(range(seeds)), hop=config.hop)
  report['layer'] = FLAGS.layer
  report['evaluated_on'] = ('validation pieces' if representations.on_validation()
                            else 'test split')
  out = workdir / 'probe'
  out.mkdir(parents=True, exist_ok=True)
  representation = representations.flag_name()
  name = f'{representation}-{FLAGS.target}'
  title = f'{workdir.name}: {representation} probed for {FLAGS.target}'
  (out / f'{name}.json').write_text(json.dumps(report, indent=1))
  (out / f'{name}.md').write_text(markdown(report, title))
  plot(report, title, out / f'{name}.png')
  print(markdown(report, title).split('\n\n')[2])
  print(f'wrote {out / name}.json, .md, .png')


if __name__ == '__main__':
  define_flags()
  cli.run(main)
