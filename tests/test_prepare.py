"""Feature and reference caches: complete, fresh, atomic, and the binary."""

import os
import shutil
import signal

import numpy as np
import pytest
import soundfile as sf

from cvrl import audio
from cvrl.data import layout
from cvrl.data import prepare
from helpers import ROOT, run_python, tone, version_seconds


def config(kind='logmel'):
  c = audio.feature_config()
  c.kind = kind
  return c


def test_prepare_builds_complete_cache(cvrl_dataset, monkeypatch):
  monkeypatch.setattr(prepare, 'STATS_BLOCK', 97)  # several uneven blocks
  root = prepare.prepare(cvrl_dataset, config(), progress=False)
  prepared = prepare.open_cache(cvrl_dataset, config())
  assert prepared.cache == root
  train_features = []
  for version in prepared.dataset.versions():
    features = prepared.features(version)
    assert isinstance(features, np.memmap) and features.dtype == np.float16
    assert features.shape == (prepared.num_frames[version.key], 128)
    refs = prepared.references(version)
    assert refs.instruments.shape[0] == features.shape[0]
    if version.piece == 'p1':  # the training split
      train_features.append(np.asarray(features[refs.valid], np.float64))
  train_features = np.concatenate(train_features)
  np.testing.assert_allclose(prepared.mean, train_features.mean(0), rtol=1e-5,
                             atol=1e-4)
  np.testing.assert_allclose(prepared.std, train_features.std(0), rtol=1e-4,
                             atol=1e-4)
  assert not list(root.rglob('.*.tmp-*'))


def test_rerun_reuses_and_changed_audio_rebuilds(cvrl_dataset):
  root = prepare.prepare(cvrl_dataset, config(), progress=False)
  cached = root / 'p1' / 'a.npy'
  first = cached.stat().st_mtime_ns
  old_frames = np.load(cached).shape[0]
  prepare.prepare(cvrl_dataset, config(), progress=False)
  assert cached.stat().st_mtime_ns == first
  # New audio for p1/a: its cache is stale until prepared again.
  sf.write(cvrl_dataset / 'audio' / 'p1' / 'a.wav',
           tone(version_seconds('a') + 2.0, 1000.0), 22050)
  with pytest.raises(layout.DatasetError, match='changed since'):
    prepare.open_cache(cvrl_dataset, config())
  prepare.prepare(cvrl_dataset, config(), progress=False)
  assert cached.stat().st_mtime_ns != first
  assert (root / 'p1' / 'b.npy').stat().st_mtime_ns < cached.stat().st_mtime_ns
  prepared = prepare.open_cache(cvrl_dataset, config())
  # Longer audio, same annotations: references follow the new frame count.
  version = prepared.dataset.version('p1', 'a')
  frames = prepared.features(version).shape[0]
  assert frames == prepared.num_frames['p1/a'] > old_frames + 80
  assert prepared.references(version).measures.shape == (frames,)


def test_changed_annotations_invalidate_references(cvrl_dataset):
  prepare.prepare(cvrl_dataset, config(), progress=False)
  path = cvrl_dataset / 'instruments' / 'p2.csv'
  path.write_text(path.read_text().replace('flute', 'oboe'))
  with pytest.raises(layout.DatasetError, match='changed since'):
    prepare.open_cache(cvrl_dataset, config())
  prepare.prepare(cvrl_dataset, config(), progress=False)
  prepared = prepare.open_cache(cvrl_dataset, config())
  refs = prepared.references(prepared.dataset.version('p2', 'a'))
  oboe = prepared.dataset.instrument_classes.index('oboe')
  assert refs.instruments[:, oboe].any()


def test_interrupted_prepare_leaves_no_valid_cache(cvrl_dataset, monkeypatch):
  calls = []
  real = audio.compute_features

  def failing(waveform, cfg):
    calls.append(1)
    if len(calls) == 3:
      raise KeyboardInterrupt('killed mid-way')
    return real(waveform, cfg)

  monkeypatch.setattr(audio, 'compute_features', failing)
  with pytest.raises(KeyboardInterrupt):
    prepare.prepare(cvrl_dataset, config(), progress=False)
  root = prepare.cache_root(cvrl_dataset, config())
  assert not (root / prepare.INDEX).exists()
  assert not list(root.rglob('.*.tmp-*'))
  with pytest.raises(layout.DatasetError, match='no complete feature cache'):
    prepare.open_cache(cvrl_dataset, config())
  monkeypatch.setattr(audio, 'compute_features', real)
  prepare.prepare(cvrl_dataset, config(), progress=False)
  prepare.open_cache(cvrl_dataset, config())


def segfault_on_p1_b(job):
  """A feature job that dies natively on one version, like numba 0.68 did."""
  if job[0].version.key == 'p1/b':
    os.kill(os.getpid(), signal.SIGSEGV)
  return prepare._build_features_job(job)  # pylint: disable=protected-access


def test_worker_crash_names_the_version_and_writes_no_cache(cvrl_dataset,
                                                           monkeypatch):
  warmed = []
  monkeypatch.setattr(audio, 'warm_up', lambda config: warmed.append(config))
  with pytest.raises(layout.DatasetError) as error:
    prepare.prepare(cvrl_dataset, config(), workers=2, progress=False,
                    build_job=segfault_on_p1_b)
  assert len(warmed) == 1  # numba compiled once here, before the workers
  message = str(error.value)
  assert str(cvrl_dataset / 'audio' / 'p1' / 'b.wav') in message
  assert 'version p1/b' in message and 'SIGSEGV' in message
  root = prepare.cache_root(cvrl_dataset, config())
  features, manifest, _ = prepare.cache_paths(
      root, layout.load_dataset(cvrl_dataset).version('p1', 'b'))
  assert not features.exists() and not manifest.exists()
  assert not list(root.glob('*/.*.tmp-*'))
  with pytest.raises(layout.DatasetError, match='no complete feature cache'):
    prepare.open_cache(cvrl_dataset, config())


def test_paper_features_binary_with_workers(cvrl_dataset):
  """The published HCQT, tuning estimated, through the binary with 2 workers."""
  result = run_binary(f'--data={cvrl_dataset}', '--workers=2',
                      f'--config={ROOT / "configs" / "features.py"}:paper')
  assert result.returncode == 0, result.stderr
  paper = config('hcqt')
  assert paper.hcqt.estimate_tuning
  prepared = prepare.open_cache(cvrl_dataset, paper)
  features = prepared.features(prepared.dataset.version('p2', 'c'))
  assert features.shape[1:] == (252, 5)
  assert np.isfinite(np.asarray(features, np.float32)).all()
  assert prepared.mean.shape == prepared.std.shape == (252, 5)
  # The log-mel cache is separate and still missing.
  with pytest.raises(layout.DatasetError, match='no complete feature cache'):
    prepare.open_cache(cvrl_dataset, config('logmel'))


def test_published_layout_prepares_without_conversion(published_dataset):
  prepare.prepare(published_dataset, config(), progress=False)
  prepared = prepare.open_cache(published_dataset, config())
  version = prepared.dataset.version('Beethoven_Op055-01', 'V3')
  refs = prepared.references(version)
  assert refs.instruments.shape == (prepared.num_frames[version.key], 13)
  flute = layout.PUBLISHED_CLASSES.index('flute')
  assert refs.instruments[:, flute].all()


def run_binary(*args):
  return run_python('-m', 'cvrl.data.prepare', *args)


def test_binary_rejects_broken_copy_and_keeps_stale_cache_unused(
    cvrl_dataset, tmp_path):
  result = run_binary(f'--data={cvrl_dataset}', '--workers=1')
  assert result.returncode == 0, result.stderr
  assert '6 versions of 2 pieces' in result.stdout

  broken = tmp_path / 'broken'
  shutil.copytree(cvrl_dataset, broken)  # with its (valid) cache
  path = broken / 'measures' / 'p2' / 'b.csv'
  lines = path.read_text().splitlines()
  lines[7], lines[8] = lines[8], lines[7]
  path.write_text('\n'.join(lines) + '\n')
  result = run_binary(f'--data={broken}', '--workers=1')
  assert result.returncode != 0
  assert f'{path}: row 9' in result.stderr
  with pytest.raises(layout.DatasetError):
    prepare.open_cache(broken, config())

  missing = tmp_path / 'missing'
  shutil.copytree(cvrl_dataset, missing)
  (missing / 'audio' / 'p1' / 'c.wav').unlink()
  result = run_binary(f'--data={missing}', '--workers=1')
  assert result.returncode != 0
  assert str(missing / 'audio' / 'p1' / 'c.{wav,flac,') in result.stderr
  with pytest.raises(layout.DatasetError):
    prepare.open_cache(missing, config())


def test_moved_dataset_keeps_its_cache(cvrl_dataset, tmp_path):
  prepare.prepare(cvrl_dataset, config(), progress=False)
  moved = tmp_path / 'moved'
  shutil.move(cvrl_dataset, moved)
  prepare.open_cache(moved, config())


def test_binary_takes_config_files_and_overrides(cvrl_dataset):
  result = run_binary(f'--data={cvrl_dataset}', '--workers=1',
                      '--config.logmel.n_mels=16')
  assert result.returncode == 0, result.stderr
  small = config()
  small.logmel.n_mels = 16
  prepared = prepare.open_cache(cvrl_dataset, small)
  assert prepared.mean.shape == (16,)
  import importlib.util
  spec = importlib.util.spec_from_file_location(
      'features', prepare.DEFAULT_CONFIG)
  features = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(features)
  assert features.get_config('paper').kind == 'hcqt'
  assert audio.feature_key(features.get_config()) == audio.feature_key(config())


def test_undecodable_audio_is_a_dataset_error(cvrl_dataset, monkeypatch):
  def broken(path, sample_rate):
    raise RuntimeError('Error in WAV file. No data chunk marker.')

  monkeypatch.setattr(audio, 'load_audio', broken)
  with pytest.raises(layout.DatasetError,
                     match=r'audio/p1/a.wav: cannot decode audio: Error in WAV'):
    prepare.prepare(cvrl_dataset, config(), progress=False)


def test_copy_without_mtimes_keeps_cache_by_content(cvrl_dataset, tmp_path):
  prepare.prepare(cvrl_dataset, config(), progress=False)
  copy = tmp_path / 'copy'
  shutil.copytree(cvrl_dataset, copy, copy_function=shutil.copyfile)  # cp -r
  prepare.open_cache(copy, config())  # new mtimes, same content
  cached = prepare.cache_root(copy, config()) / 'p1' / 'a.npy'
  before = cached.stat().st_mtime_ns
  prepare.prepare(copy, config(), progress=False)
  assert cached.stat().st_mtime_ns == before  # same content: not recomputed
  index = (prepare.cache_root(copy, config()) / prepare.INDEX).read_text()
  assert str((copy / 'audio' / 'p1' / 'a.wav').stat().st_mtime_ns) in index
  prepare.open_cache(copy, config())
  # An edit of the same size is caught by its content hash.
  audio_path = copy / 'audio' / 'p1' / 'a.wav'
  data = bytearray(audio_path.read_bytes())
  data[-100:] = bytes(100)
  audio_path.write_bytes(bytes(data))
  with pytest.raises(layout.DatasetError, match='a.wav: changed since'):
    prepare.open_cache(copy, config())


def test_exclusive_lets_one_builder_in_at_a_time(tmp_path):
  """Runs started side by side on an unbuilt dataset build it once."""
  import threading  # pylint: disable=g-import-not-at-top
  import time  # pylint: disable=g-import-not-at-top
  lock = tmp_path / '.data.lock'
  events = []

  def builder(name):
    with prepare.exclusive(lock):
      events.append((name, 'in'))
      time.sleep(0.2)
      events.append((name, 'out'))

  threads = [threading.Thread(target=builder, args=(n,)) for n in 'ab']
  for t in threads:
    t.start()
  for t in threads:
    t.join()
  # Never both inside: each 'in' is followed by the same builder's 'out'.
  assert [e[1] for e in events] == ['in', 'out', 'in', 'out']
  assert events[0][0] == events[1][0] and events[2][0] == events[3][0]
  # A lock that cannot be created (its folder is a file) runs unlocked.
  (tmp_path / 'file').write_text('')
  with prepare.exclusive(tmp_path / 'file' / '.data.lock'):
    events.append('unlocked')
  assert events[-1] == 'unlocked'


def test_exclusive_runs_unlocked_where_locks_fail(tmp_path, monkeypatch):
  def no_locks(*_):
    raise OSError(37, 'No locks available')
  monkeypatch.setattr(prepare.fcntl, 'flock', no_locks)
  ran = []
  with prepare.exclusive(tmp_path / '.data.lock'):
    ran.append(True)
  assert ran == [True]
