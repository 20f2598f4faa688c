"""cvrl.evaluation.retrieval: errors against the measure maps, the binary."""

import json

import numpy as np

import helpers
from cvrl.data import prepare
from cvrl.evaluation import retrieval


def test_input_features_retrieve_their_own_frames_exactly(cvrl_dataset):
  """Versions that are time-scaled copies: retrieval by the true map is exact."""
  prepare.prepare(cvrl_dataset, prepare.audio_lib.feature_config(),
                  progress=False)
  prepared = prepare.open_cache(cvrl_dataset,
                                prepare.audio_lib.feature_config())

  def true_position(version):  # one column: the frame's measure position
    measures = np.nan_to_num(prepared.references(version).measures[::2]) / 10
    return np.stack([np.cos(measures), np.sin(measures)], axis=1)

  errors = retrieval.retrieval_errors(prepared, true_position, hop=2)
  assert errors.size > 0
  # Same measure position, same vector: errors are at most one frame at the
  # (hop-2) rate, up to where the map's rounding puts the target.
  assert np.median(errors) <= 2 * 2 / prepared.frame_rate
  summary = retrieval.summarise(errors, (1.0, 3.0))
  assert summary['within']['1'] > 0.9 and summary['queries'] == errors.size


def test_retrieval_binary_writes_json(trained_workdir):
  result = helpers.run_python('-m', 'cvrl.evaluation.retrieval',
                              f'--workdir={trained_workdir}', '--hop=4')
  assert result.returncode == 0, result.stderr
  report = json.loads((trained_workdir / 'retrieval' /
                       'embedding.json').read_text())
  assert set(report['within']) == {'1', '3'}
  assert 0 <= report['within']['1'] <= report['within']['3'] <= 1
  assert report['queries'] > 0 and report['hop'] == 4
