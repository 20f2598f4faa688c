"""Probe metrics on hand-made cases, and a probe that must learn a separable task."""

import json

import numpy as np
import pytest
from sklearn import metrics as skm

import helpers
from configs import cv
from configs import evaluation
from cvrl import cli
from cvrl.evaluation import probe
from cvrl.evaluation import representations

PUBLISHED, STRONG = probe.settings_from_config(evaluation.get_config().probe)

LABELS = np.array([[1, 0, 0], [0, 1, 0], [1, 1, 0], [0, 0, 0]])
SCORES = np.array([[0.9, 0.2, 0.1], [0.6, 0.7, 0.2], [0.8, 0.2, 0.3],
                   [0.1, 0.2, 0.3]])


def test_metrics_hand_made():
  result = probe.probe_metrics(LABELS, SCORES, ['a', 'b', 'c'])
  # AP (label ranking): rows 1, 1, (1 + 2/3) / 2, and 1 for the row without
  # labels (sklearn's convention).
  assert result['ap'] == pytest.approx((1 + 1 + 5 / 6 + 1) / 4)
  # AUC: class a 1.0; class b: 0.7 beats both negatives, 0.2 ties both -> 3/4;
  # class c has no positives and is left out.
  assert result['auc'] == pytest.approx((1.0 + 0.75) / 2)
  # F at 0.5: a P 2/3 R 1 -> 0.8; b P 1 R 1/2 -> 2/3; c has no positives.
  assert result['f1'] == pytest.approx((0.8 + 2 / 3) / 2)
  assert result['per_class']['a'] == dict(precision=pytest.approx(2 / 3),
                                          recall=1.0, f1=pytest.approx(0.8),
                                          support=2)
  assert result['per_class']['c']['support'] == 0


def test_metrics_agree_with_sklearn_on_random_cases():
  rng = np.random.default_rng(0)
  labels = rng.random((200, 5)) < 0.3
  labels[:, 4] = False  # a class that never occurs
  scores = np.clip(labels * 0.3 + rng.random((200, 5)) * 0.7, 0, 1)
  result = probe.probe_metrics(labels, scores)
  assert result['ap'] == pytest.approx(
      skm.label_ranking_average_precision_score(labels, scores))
  assert result['auc'] == pytest.approx(np.mean(
      [skm.roc_auc_score(labels[:, c], scores[:, c]) for c in range(4)]))
  assert result['f1'] == pytest.approx(np.mean(
      skm.f1_score(labels, scores >= 0.5, average=None)[:4]))


def separable(n, dim=16, classes=4, seed=0):
  rng = np.random.default_rng(seed)
  x = rng.normal(size=(n, dim)).astype(np.float32)
  w = np.random.default_rng(99).normal(size=(dim, classes))
  return x * 3 + 5, (x @ w > 0).astype(np.float32)  # unstandardised on purpose


def test_strong_probe_learns_a_linearly_separable_task():
  x_train, y_train = separable(4000)
  x_val, y_val = separable(500, seed=1)
  x_test, y_test = separable(1000, seed=2)
  fit, test, val = probe.standardise(x_train, x_test, x_val)
  predict, epochs = probe.train_probe(fit, y_train, STRONG, 0, val, y_val)
  result = probe.probe_metrics(y_test, predict(test))
  assert result['ap'] > 0.95 and result['f1'] > 0.9, (result, epochs)


def test_published_probe_runs_its_ten_epochs():
  x, y = separable(640)
  (fit,) = probe.standardise(x)
  predict, epochs = probe.train_probe(fit, y, PUBLISHED, 0)
  assert epochs == 10
  scores = predict(fit)
  assert scores.shape == y.shape and np.all((scores >= 0) & (scores <= 1))


def test_standardise_uses_the_standard_deviation_and_survives_constants():
  train = np.array([[1.0, 5.0], [3.0, 5.0]])
  out, other = probe.standardise(train, np.array([[2.0, 5.0]]))
  np.testing.assert_allclose(out, [[-1, 0], [1, 0]])
  np.testing.assert_allclose(other, [[0, 0]])


@pytest.mark.parametrize('representation,target', [
    ('embedding', 'instruments'), ('embedding', 'pitch_classes'),
    ('mfcc', 'instruments'), ('chroma', 'pitch_classes'),
    ('input', 'pitch_classes')])
def test_probe_binary_writes_json_markdown_png(trained_workdir, representation,
                                               target):
  result = helpers.run_python(
      '-m', 'cvrl.probe', f'--workdir={trained_workdir}', f'--target={target}',
      f'--representation={representation}', '--seeds=2', '--hop=2')
  assert result.returncode == 0, result.stderr
  name = f'{representation}-{target}'
  report = json.loads((trained_workdir / 'probe' / f'{name}.json').read_text())
  assert set(report['probes']) == {'published', 'strong'}
  for run in report["probes"].values():
    assert len(run["runs"]) == 2
    assert 0 <= run["summary"]["ap"]["mean"] <= 1
  assert len(report['classes']) == (12 if target == 'pitch_classes' else 25)
  assert '| published |' in (trained_workdir / 'probe' / f'{name}.md').read_text()
  assert (trained_workdir / 'probe' / f'{name}.png').stat().st_size > 1000


def test_probe_binary_on_a_layer_before_the_embedding(trained_workdir):
  result = helpers.run_python(
      '-m', 'cvrl.probe', f'--workdir={trained_workdir}', '--layer=dense0',
      '--seeds=1', '--hop=3', '--step=2')
  assert result.returncode == 0, result.stderr
  # An explicit --step names the report, so it cannot overwrite the latest's.
  report = json.loads((trained_workdir / 'probe' /
                       'embedding_dense0_step2-instruments.json').read_text())
  assert report['layer'] == 'dense0'
  cached = list((trained_workdir / 'embeddings').glob('step_*/hop_3_dense0'))
  assert cached, 'dense0 outputs are cached apart from the embedding'
  # The binary's wrong-flag errors, checked in process (a subprocess costs a
  # JAX import; tests/test_cli.py covers how binaries report such errors).
  with pytest.raises(cli.UserError, match="--layer='dense9' is not a layer"):
    representations.features_for('embedding', trained_workdir, None, None, 3,
                                 layer='dense9')
  with pytest.raises(cli.UserError, match='needs --representation=embedding'):
    representations.features_for('mfcc', trained_workdir, None, None, 3,
                                 layer='final')


def test_report_names_say_layer_step_and_split():
  assert representations.name('embedding') == 'embedding'
  assert representations.name('embedding', 'dense0', True,
                              3000) == 'embedding_dense0_step3000-val'
  assert representations.name('embedding', step=250) == 'embedding_step250'
  # Baselines have no checkpoint: a step does not rename them.
  assert representations.name('mfcc', validation=True, step=250) == 'mfcc-val'


def test_probe_without_checkpoint_is_a_clear_error(tmp_path):
  (tmp_path / 'config.json').write_text(
      cv.get_config('test').to_json_best_effort())
  result = helpers.run_python('-m', 'cvrl.probe', f'--workdir={tmp_path}')
  assert result.returncode == 1
  assert 'no checkpoint' in result.stderr
