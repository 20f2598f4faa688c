"""cvrl.embed, cvrl.probe and cvrl.ssm on a workdir the trainer produced."""

import json

import numpy as np
import pytest
import soundfile as sf

import conftest
from configs import cv
from cvrl import embed
from cvrl import train


@pytest.fixture(scope='module')
def workdir(tmp_path_factory):
  base = tmp_path_factory.mktemp('evaluation')
  root = conftest.make_cvrl_dataset(base / 'data', pieces=('p1', 'p2', 'p3'))
  config = cv.get_config('test')
  config.data.root = str(root)
  config.num_train_steps = 2
  train.train_and_evaluate(config, base / 'cv', progress=False)
  return base / 'cv'


def test_fast_embeddings_equal_one_patch_at_a_time(workdir):
  encoder = embed.load_encoder(workdir)
  prepared = embed.open_dataset(encoder)
  version = prepared.dataset.versions()[0]
  features = np.asarray(prepared.features(version), np.float32)[:70]
  fast = embed.embed_features(encoder, features, hop=1, batch_size=16)
  assert fast.shape == (70, encoder.config.model.embedding_dim)
  half = encoder.patch_frames // 2
  padded = np.concatenate([np.full((half, features.shape[1]), -100.0),
                           features, np.full((half, features.shape[1]), -100.0)])
  padded = (padded - encoder.mean) / encoder.std
  for frame in (0, 33, 69):
    patch = padded[frame:frame + encoder.patch_frames][None, ..., None]
    one = encoder.model.apply(encoder.variables, patch)['embedding'][0]
    np.testing.assert_allclose(fast[frame], one, atol=1e-5)
  hopped = embed.embed_features(encoder, features, hop=4, batch_size=16)
  np.testing.assert_allclose(hopped, fast[::4], atol=1e-5)


def test_embed_binary_on_an_audio_file(workdir, tmp_path):
  audio = tmp_path / 'tone.wav'
  sf.write(audio, conftest.tone(3.0), conftest.SR)
  result = conftest.run_python('-m', 'cvrl.embed', f'--workdir={workdir}',
                               f'--audio={audio}', f'--out={tmp_path / "e.npy"}')
  assert result.returncode == 0, result.stderr
  embedding = np.load(tmp_path / 'e.npy')
  assert embedding.shape == (1 + 3 * conftest.SR // conftest.HOP, 8)
  np.testing.assert_allclose(np.linalg.norm(embedding, axis=1), 1, rtol=1e-4)


@pytest.mark.parametrize('representation,target', [
    ('embedding', 'instruments'), ('embedding', 'pitch_classes'),
    ('mfcc', 'instruments'), ('chroma', 'pitch_classes'),
    ('input', 'pitch_classes')])
def test_probe_binary_writes_json_markdown_png(workdir, representation,
                                               target):
  result = conftest.run_python(
      '-m', 'cvrl.probe', f'--workdir={workdir}', f'--target={target}',
      f'--representation={representation}', '--seeds=2', '--hop=2')
  assert result.returncode == 0, result.stderr
  name = f'{representation}-{target}'
  report = json.loads((workdir / 'probe' / f'{name}.json').read_text())
  assert set(report['probes']) == {'published', 'strong'}
  for probe in report['probes'].values():
    assert len(probe['runs']) == 2
    assert 0 <= probe['summary']['ap']['mean'] <= 1
  assert len(report['classes']) == (12 if target == 'pitch_classes' else 25)
  assert '| published |' in (workdir / 'probe' / f'{name}.md').read_text()
  assert (workdir / 'probe' / f'{name}.png').stat().st_size > 1000


def test_ssm_binary_writes_json_and_plots(workdir):
  result = conftest.run_python('-m', 'cvrl.ssm', f'--workdir={workdir}',
                               '--kernel_seconds=2,4', '--plots=1')
  assert result.returncode == 0, result.stderr
  report = json.loads((workdir / 'ssm' / 'embedding.json').read_text())
  assert report['versions'] == 3 and report['kernel_seconds'] == [2.0, 4.0]
  for ref in ('ref_i', 'ref_h'):
    assert len(report['mean'][ref]['f']) == 2
  pngs = sorted(p.name for p in (workdir / 'ssm').glob('*.png'))
  assert pngs == ['embedding-f.png', 'embedding-p3-a.png']
  assert 'embedding vs ref_i: F' in result.stdout


def test_probe_without_checkpoint_is_a_clear_error(tmp_path):
  (tmp_path / 'config.json').write_text(
      cv.get_config('test').to_json_best_effort())
  result = conftest.run_python('-m', 'cvrl.probe', f'--workdir={tmp_path}')
  assert result.returncode == 1
  assert 'no checkpoint' in result.stderr


def test_benchmark_scripts_on_a_trained_workdir(workdir):
  """embed_throughput.py and cross_version_retrieval.py, quoted in the README."""
  result = conftest.run_python(
      str(conftest.ROOT / 'benchmarks' / 'embed_throughput.py'),
      f'--encoders={workdir},configs/cv.py:test', '--seconds=2',
      f'--plot={workdir / "speed.png"}')
  assert result.returncode == 0, result.stderr
  rows = [r.split('|') for r in result.stdout.splitlines() if r.startswith('| ')]
  assert [r[3].strip() for r in rows[1:]] == ['original', 'patches', 'dense'] * 2
  assert all(float(r[5]) > 0 for r in rows[1:])
  assert (workdir / 'speed.png').stat().st_size > 0
  result = conftest.run_python(
      str(conftest.ROOT / 'benchmarks' / 'cross_version_retrieval.py'),
      f'--workdirs={workdir}', '--hop=4')
  assert result.returncode == 0, result.stderr
  rows = [r.split('|') for r in result.stdout.splitlines()
          if r.startswith('| ') and not r.startswith('| features')]
  assert len(rows) == 2  # the workdir, the input features
  assert all(0 <= float(row[2]) <= 1 for row in rows)


def test_ablation_driver_trains_probes_and_tabulates(workdir, tmp_path):
  """experiments/ablate.py end to end on the tiny dataset, one study, 1 probe seed."""
  result = conftest.run_python(
      str(conftest.ROOT / 'launch' / 'ablate.py'), f'--out={tmp_path / "ab"}',
      f'--table={tmp_path / "table"}', '--only=seed', '--seeds=1', '--hop=2',
      '--variant=test', f'--data={workdir.parent / "data"}')
  assert result.returncode == 0, result.stderr
  results = json.loads((tmp_path / 'ab' / 'ablate.json').read_text())
  assert [(r['study'], r['method']) for r in results] == [
      ('table (reference)', 'sv'), ('table (reference)', 'cv'),
      ('table (reference)', 'log-mel input'), ('seed', 'sv'), ('seed', 'cv')]
  for r in results:
    assert 0 < r['strong']['ap']['mean'] <= 1
    assert 0 <= r['retrieval'] <= 1
    assert (r['loss'] is None) == (r['method'] == 'log-mel input')
  seeds = [json.loads((tmp_path / 'ab' / f'{m}-seed' / 'config.json')
                      .read_text())['seed'] for m in ('sv', 'cv')]
  assert seeds == [1, 1]
  table = (tmp_path / 'ab' / 'ablate.md').read_text()
  assert table.count('\n| ') == 6  # header + 5 rows
