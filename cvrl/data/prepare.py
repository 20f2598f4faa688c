r"""Validates a cross-version dataset and builds its feature and reference caches.

  python -m cvrl.data.prepare --data=DIR [--config=configs/features.py[:paper]]
  python -m cvrl.data.prepare --config=configs/cv.py:demo   (the config's data.root)
      [--config.kind=hcqt] [--cache_dir=C] [--workers=N]

Cache layout, under <cache_dir or DIR/cache>/<feature key>/:
  <piece>/<version>.npy        features [frames, *feature_shape], memory-mapped
  <piece>/<version>.json       what the features were computed from
  <piece>/<version>.refs.npz   Ref_I, Ref_H, measure position per frame
  stats.npz                    per-bin mean/std over the training split
  index.json                   written last: the cache is complete and matches

Every file is written to a temporary name and renamed, and index.json records
the fingerprints of every source file, so a half-written cache, or one built
from files that have since changed, is never read (`open_cache` refuses it).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import fcntl
import hashlib
import json
import multiprocessing
import os
import pathlib
from typing import Optional

from absl import app
from absl import flags
from absl import logging
import ml_collections
from ml_collections import config_flags
import numpy as np
import tqdm

from cvrl import audio as audio_lib
from cvrl import cli
from cvrl.data import alignment
from cvrl.data import annotations
from cvrl.data import layout

INDEX = 'index.json'
STATS = 'stats.npz'
STATS_BLOCK = 4096  # frames per block when summing statistics


# ----------------------------------------------------------------------------
# Fingerprints and atomic writes.


def audio_fingerprint(path: pathlib.Path, content: bool = False) -> dict:
  """Name, size, mtime and (with `content`) a SHA-1 of the audio file.

  No absolute paths, so a dataset moved with its cache keeps the cache.
  """
  stat = path.stat()
  fingerprint = dict(name=path.name, size=stat.st_size,
                     mtime_ns=stat.st_mtime_ns)
  if content:
    with open(path, 'rb') as f:
      fingerprint['sha1'] = hashlib.file_digest(f, 'sha1').hexdigest()
  return fingerprint


def audio_unchanged(recorded: dict, path: pathlib.Path) -> bool:
  """Whether audio is the file a cache was built from, as git's index does it.

  Same size and mtime: unchanged, without reading it. Same size, other mtime
  (a copy without -p, a touch): compare content hashes, so large datasets
  copied elsewhere keep their caches.
  """
  current = audio_fingerprint(path)
  if current['size'] != recorded.get('size'):
    return False
  if current['mtime_ns'] == recorded.get('mtime_ns'):
    return True
  return audio_fingerprint(path, content=True)['sha1'] == recorded.get('sha1')


def annotation_digest(dataset: layout.Dataset, version: layout.Version) -> str:
  """Content hash of every small file a version's references come from."""
  piece = dataset.pieces[version.piece]
  digest = hashlib.sha1(json.dumps(dataset.instrument_classes).encode())
  for path in (version.measures_path, version.instruments_npz,
               version.notes_npz, piece.instruments_csv, piece.notes_csv):
    digest.update(str(path and path.name).encode())
    if path is not None:
      digest.update(path.read_bytes())
  return digest.hexdigest()


def splits_digest(dataset: layout.Dataset) -> str:
  text = json.dumps({k: [dataclasses.asdict(s) for s in v]
                     for k, v in sorted(dataset.splits.items())}, default=list)
  return hashlib.sha1(text.encode()).hexdigest()


def _temporary(path: pathlib.Path) -> pathlib.Path:
  return path.with_name(f'.{path.name}.tmp-{os.getpid()}')


def write_atomic(path: pathlib.Path, write) -> None:
  """Calls write(file object) on a temporary file, then renames it to `path`."""
  path.parent.mkdir(parents=True, exist_ok=True)
  tmp = _temporary(path)
  try:
    with open(tmp, 'wb') as f:
      write(f)
      f.flush()
      os.fsync(f.fileno())
    os.replace(tmp, path)
  finally:
    if tmp.exists():
      tmp.unlink()


def write_json_atomic(path: pathlib.Path, value) -> None:
  write_atomic(path, lambda f: f.write(json.dumps(value, indent=1).encode()))


# ----------------------------------------------------------------------------
# Per-version caches.


def cache_root(dataset_root, config: ml_collections.ConfigDict,
               cache_dir: Optional[str] = None) -> pathlib.Path:
  base = pathlib.Path(cache_dir) if cache_dir else pathlib.Path(dataset_root) / 'cache'
  return base / audio_lib.feature_key(config)


def cache_paths(root: pathlib.Path, version: layout.Version):
  """(features .npy, manifest .json, references .refs.npz) of a version."""
  folder = root / version.piece
  return (folder / f'{version.name}.npy', folder / f'{version.name}.json',
          folder / f'{version.name}.refs.npz')


def _features_fresh(root, info: layout.VersionInfo, config) -> bool:
  """Whether cached features match the audio and config.

  Features found fresh by content after a copy get the new mtime recorded,
  so later checks are cheap again.
  """
  features_path, manifest_path, _ = cache_paths(root, info.version)
  if not (features_path.exists() and manifest_path.exists()):
    return False
  try:
    manifest = json.loads(manifest_path.read_text())
  except ValueError:
    return False
  recorded = manifest.get('audio', {})
  if (manifest.get('feature_key') != audio_lib.feature_key(config) or
      not audio_unchanged(recorded, info.version.audio_path)):
    return False
  mtime_ns = info.version.audio_path.stat().st_mtime_ns
  if recorded.get('mtime_ns') != mtime_ns:
    manifest['audio'] = dict(recorded, mtime_ns=mtime_ns)
    write_json_atomic(manifest_path, manifest)
  return True


def _references_fresh(path: pathlib.Path, digest: str, num_frames: int) -> bool:
  """Same annotation files and the same frame grid as the features."""
  if not path.exists():
    return False
  try:
    with np.load(path) as npz:
      return (str(npz['sources']) == digest and
              npz['measures'].shape[0] == num_frames)
  except Exception:  # a corrupt file is simply stale
    return False


def build_features(info: layout.VersionInfo, config: ml_collections.ConfigDict,
                   root: pathlib.Path) -> int:
  """Computes and writes one version's features; returns its frame count."""
  features_path, manifest_path, _ = cache_paths(root, info.version)
  try:
    waveform = audio_lib.load_audio(info.version.audio_path,
                                    config.sample_rate)
  except audio_lib.AudioError as e:
    raise layout.DatasetError(str(e)) from e
  except Exception as e:  # a decoder error that load_audio did not wrap
    raise layout.DatasetError(
        f'{info.version.audio_path}: cannot decode audio: {e}') from e
  features = audio_lib.compute_features(waveform, config).astype(config.dtype)
  write_atomic(features_path, lambda f: np.save(f, features))
  write_json_atomic(manifest_path, dict(
      audio=audio_fingerprint(info.version.audio_path, content=True),
      feature_key=audio_lib.feature_key(config), config=config.to_dict(),
      shape=list(features.shape), dtype=str(features.dtype)))
  return features.shape[0]


def build_references(dataset: layout.Dataset, info: layout.VersionInfo,
                     num_frames: int, frame_rate: float,
                     path: pathlib.Path, digest: str) -> None:
  refs = annotations.version_references(dataset, info, num_frames, frame_rate)
  write_atomic(path, lambda f: np.savez(
      f, measures=refs.measures, instruments=refs.instruments,
      pitch_classes=refs.pitch_classes, sources=np.array(digest)))


def _build_features_job(args):
  info, config_dict, root = args
  config = ml_collections.ConfigDict(config_dict)
  return info.version.key, build_features(info, config, root)


def _find_crashing_job(jobs, build_job, context) -> None:
  """Re-runs jobs one per process until one dies; raises DatasetError naming it.

  A process pool whose worker dies (a segfault in a native library, the OOM
  killer) only says that the pool broke, not which job it was running. Native
  crashes are deterministic, so replaying the unfinished jobs one at a time
  finds the version and the signal.
  """
  for job in jobs:
    process = context.Process(target=build_job, args=(job,))
    process.start()
    process.join()
    if process.exitcode != 0:
      info = job[0]
      raise layout.DatasetError(
          f'{info.version.audio_path}: computing features for version '
          f'{info.version.key} crashed its worker process '
          f'({cli.describe_exit(process.exitcode)}); no cache entry was written. '
          'A native crash here usually means an incompatible numba/llvmlite '
          'for librosa: install the tested versions (requirements-lock.txt).')


def _remove_temporaries(root: pathlib.Path) -> None:
  """Temporary files of writes a dead worker did not finish."""
  for path in root.glob('*/.*.tmp-*'):
    path.unlink(missing_ok=True)


def build_all_features(jobs, workers: int, bar, build_job=None) -> None:
  """Runs the feature jobs, in `workers` processes when there are several.

  `build_job` replaces the job function (tests inject a crashing one).
  """
  build_job = build_job or _build_features_job
  if workers <= 1 or len(jobs) <= 1:
    for job in jobs:
      bar.set_postfix_str(job[0].version.key)  # names the version on a crash
      build_job(job)
      bar.update()
    return
  # Workers would otherwise compile librosa's numba code concurrently and
  # can corrupt its on-disk cache (audio.warm_up says how).
  audio_lib.warm_up(ml_collections.ConfigDict(jobs[0][1]))
  # spawn, not fork: the trainer calls this after JAX has started threads.
  context = multiprocessing.get_context('spawn')
  pending = {}
  try:
    with concurrent.futures.ProcessPoolExecutor(workers,
                                                mp_context=context) as pool:
      pending = {pool.submit(build_job, job): job for job in jobs}
      for future in concurrent.futures.as_completed(pending):
        future.result()
        del pending[future]
        bar.update()
  except concurrent.futures.process.BrokenProcessPool:
    _remove_temporaries(jobs[0][2])
    _find_crashing_job(list(pending.values()), build_job, context)
    raise layout.DatasetError(
        f'{jobs[0][2]}: a feature worker process died, but no single version '
        'reproduces it (out of memory?); re-run with --workers=1') from None


# ----------------------------------------------------------------------------
# Normalisation statistics.


def split_frame_mask(segment: layout.Segment, measures: np.ndarray) -> np.ndarray:
  """[F] bool: frames of a version that belong to a split segment."""
  mask = np.isfinite(measures)
  if segment.measures is not None:
    lo, hi = segment.measures
    with np.errstate(invalid='ignore'):
      mask &= (measures >= lo) & (measures < hi)
  return mask


def split_versions(dataset: layout.Dataset, split: str):
  """Yields (version, segment) for every version in a split."""
  for segment in dataset.splits[split]:
    for version in dataset.pieces[segment.piece].versions:
      if not segment.versions or version.name in segment.versions:
        yield version, segment


def compute_stats(dataset: layout.Dataset, root: pathlib.Path,
                  split: str = 'train') -> dict[str, np.ndarray]:
  """Per-bin mean/std of the features over a split's annotated frames.

  Streams float64 sums over blocks of frames instead of concatenating, so
  memory stays at one block however long the recordings and the split.
  """
  total = total_sq = None
  count = 0
  for version, segment in split_versions(dataset, split):
    features_path, _, refs_path = cache_paths(root, version)
    features = np.load(features_path, mmap_mode='r')
    with np.load(refs_path) as refs:
      mask = split_frame_mask(segment, refs['measures'])
    if total is None:
      total = np.zeros(features.shape[1:])
      total_sq = np.zeros(features.shape[1:])
    for start in range(0, features.shape[0], STATS_BLOCK):
      block = np.asarray(features[start:start + STATS_BLOCK][
          mask[start:start + STATS_BLOCK]], np.float64)
      total += block.sum(axis=0)
      total_sq += np.square(block).sum(axis=0)
      count += block.shape[0]
  if not count:
    raise layout.DatasetError(f'{dataset.root}: split {split!r} has no '
                              'annotated frames to estimate statistics on')
  mean = total / count
  std = np.sqrt(np.maximum(total_sq / count - np.square(mean), 0.0))
  return dict(mean=mean.astype(np.float32),
              std=np.maximum(std, 1e-5).astype(np.float32),
              count=np.array(count))


# ----------------------------------------------------------------------------
# The whole dataset.


def prepare(data_dir, config: ml_collections.ConfigDict,
            cache_dir: Optional[str] = None, workers: int = 1,
            progress: bool = True, build_job=None) -> pathlib.Path:
  """Validates `data_dir` and brings its caches up to date; returns the cache.

  Raises layout.DatasetError before writing anything if the dataset is broken.
  """
  dataset = layout.load_dataset(data_dir)
  infos = layout.validate_dataset(dataset)
  root = cache_root(data_dir, config, cache_dir)
  root.mkdir(parents=True, exist_ok=True)
  (root / INDEX).unlink(missing_ok=True)
  rate = audio_lib.frame_rate(config)

  stale = [info for info in infos.values()
           if not _features_fresh(root, info, config)]
  logging.info('%s: %d of %d versions need features (%s)', data_dir,
               len(stale), len(infos), audio_lib.feature_key(config))
  jobs = [(info, config.to_dict(), root) for info in stale]
  bar = tqdm.tqdm(total=len(jobs), desc='features', unit='version',
                  disable=not progress or not jobs)
  build_all_features(jobs, workers, bar, build_job)
  bar.close()

  index = dict(feature_key=audio_lib.feature_key(config),
               config=config.to_dict(), dataset=str(dataset.root),
               splits=splits_digest(dataset), versions={})
  for key, info in tqdm.tqdm(infos.items(), desc='references', unit='version',
                             disable=not progress):
    features_path, manifest_path, refs_path = cache_paths(root, info.version)
    num_frames = np.load(features_path, mmap_mode='r').shape[0]
    digest = annotation_digest(dataset, info.version)
    if not _references_fresh(refs_path, digest, num_frames):
      build_references(dataset, info, num_frames, rate, refs_path, digest)
    index['versions'][key] = dict(
        audio=json.loads(manifest_path.read_text())['audio'],
        annotations=digest, num_frames=int(num_frames),
        duration=info.duration)

  stats = compute_stats(dataset, root, 'train')
  write_atomic(root / STATS, lambda f: np.savez(f, **stats))
  write_json_atomic(root / INDEX, index)
  return root


def ensure_prepared(config: ml_collections.ConfigDict,
                    progress: bool = True) -> pathlib.Path:
  """A training config's dataset, ready: built first if it is the absent demo.

  Builds the demo dataset when `config.data.root` does not exist and
  `config.data.demo` allows it, then brings the feature caches up to date.
  """
  root = pathlib.Path(config.data.root) if config.data.root else None
  if root is None:
    raise layout.DatasetError('config.data.root is empty: set '
                              '--config.data.root=DIR')
  with exclusive(root.parent / f'.{root.name}.lock'):
    if not root.exists():
      if not config.data.demo:
        raise layout.DatasetError(f'{root}: no such dataset folder '
                                  '(config.data.root)')
      from cvrl.data import demo  # pylint: disable=g-import-not-at-top
      print(f'{root}: not there; building the demo dataset '
            f'({config.data.demo_pieces} pieces x '
            f'{config.data.demo_versions} versions)', flush=True)
      demo.build_demo(root, config.data.demo_pieces,
                      config.data.demo_versions, config.data.demo_max_seconds,
                      seed=0, workers=os.cpu_count() or 1,
                      soundfonts=tuple(config.data.demo_soundfonts.split(',')),
                      soundfont_draw=config.data.get('demo_soundfont_draw',
                                                     'version'))
    return prepare(root, config.features, config.data.cache_dir or None,
                   workers=os.cpu_count() or 1, progress=progress)


@contextlib.contextmanager
def exclusive(lock_path: pathlib.Path):
  """Holds an exclusive lock on `lock_path` (created) for the block.

  Runs started side by side on a dataset that is not yet built or cached
  (experiments' --jobs, a user's two shells) build it once: the others wait,
  then find it ready. Where the lock cannot be created or taken (a read-only
  dataset folder with its caches elsewhere, a file system without locks),
  the block runs unlocked.
  """
  try:
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    lock = open(lock_path, 'a')  # pylint: disable=consider-using-with
  except OSError:
    yield
    return
  with lock:
    try:
      fcntl.flock(lock, fcntl.LOCK_EX)
    except OSError:
      yield
      return
    try:
      yield
    finally:
      fcntl.flock(lock, fcntl.LOCK_UN)


@dataclasses.dataclass(frozen=True)
class PreparedDataset:
  """A dataset with complete, up-to-date caches: what pipelines read."""
  dataset: layout.Dataset
  cache: pathlib.Path
  config: ml_collections.ConfigDict
  num_frames: dict[str, int]
  mean: np.ndarray
  std: np.ndarray

  @property
  def frame_rate(self) -> float:
    return audio_lib.frame_rate(self.config)

  def features(self, version: layout.Version) -> np.ndarray:
    """[frames, *feature_shape] memory-mapped, un-normalised features."""
    return np.load(cache_paths(self.cache, version)[0], mmap_mode='r')

  def time_map(self, version: layout.Version) -> alignment.TimeMap:
    """The version's seconds <-> measure map (its CSV was checked on open)."""
    return layout.read_measures(version.measures_path)

  def references(self, version: layout.Version) -> annotations.References:
    with np.load(cache_paths(self.cache, version)[2]) as npz:
      return annotations.References(npz['measures'], npz['instruments'],
                                    npz['pitch_classes'])


def open_cache(data_dir, config: ml_collections.ConfigDict,
               cache_dir: Optional[str] = None,
               derived_annotations: bool = True,
               validation: bool = False) -> PreparedDataset:
  """Opens prepared caches; raises DatasetError if missing, partial or stale.

  The cache always covers every annotated version; `derived_annotations=False`
  leaves out those whose annotation cvrl.data.sync derived. `validation`
  gives the study view (layout.validation_view): train without the
  validation pieces, and those as 'test'. (The normalisation statistics stay
  those of the whole train split: input statistics, no labels.)
  """
  dataset = layout.load_dataset(data_dir)
  root = cache_root(data_dir, config, cache_dir)
  hint = f'run: python -m cvrl.data.prepare --data={data_dir}'
  try:
    index = json.loads((root / INDEX).read_text())
  except (OSError, ValueError):
    raise layout.DatasetError(
        f'{root / INDEX}: no complete feature cache for {data_dir}; {hint}'
    ) from None
  if index.get('splits') != splits_digest(dataset):
    raise layout.DatasetError(f'{root / INDEX}: splits changed; {hint}')
  versions = {v.key: v for v in dataset.versions()}
  if set(versions) != set(index['versions']):
    raise layout.DatasetError(f'{root / INDEX}: versions changed; {hint}')
  for key, version in versions.items():
    entry = index['versions'][key]
    if not audio_unchanged(entry['audio'], version.audio_path):
      raise layout.DatasetError(
          f'{version.audio_path}: changed since the cache was built; {hint}')
    if entry['annotations'] != annotation_digest(dataset, version):
      raise layout.DatasetError(
          f'{version.measures_path} (or its piece\'s references): changed '
          f'since the cache was built; {hint}')
  with np.load(root / STATS) as stats:
    mean, std = stats['mean'], stats['std']
  if not derived_annotations:
    dataset = layout.without_derived(dataset)
  if validation:
    dataset = layout.validation_view(dataset)
  return PreparedDataset(
      dataset=dataset, cache=root, config=config,
      num_frames={v.key: index['versions'][v.key]['num_frames']
                  for v in dataset.versions()},
      mean=mean, std=std)


# ----------------------------------------------------------------------------
# Binary.

FLAGS = flags.FLAGS
DEFAULT_CONFIG = pathlib.Path(__file__).parents[2] / 'configs' / 'features.py'


def feature_section(config: ml_collections.ConfigDict):
  """The feature settings of a features config or of a training config."""
  return config.features if 'features' in config else config


def define_flags():
  """Flags of the binary; defined only when it runs, so modules import freely."""
  flags.DEFINE_string('data', None, 'Dataset folder (any supported layout); '
                      'default: config.data.root of a training config.')
  flags.DEFINE_string('cache_dir', None, 'Where caches go (default DATA/cache).')
  flags.DEFINE_integer('workers', os.cpu_count() or 1,
                       'Processes computing features in parallel.')
  config_flags.DEFINE_config_file(
      'config', str(DEFAULT_CONFIG),
      'Feature config (configs/features.py[:paper]) or a training config '
      'whose `features` section is used.')


def main(argv):
  del argv
  # A training config names its dataset; --data / --cache_dir win.
  data_section = FLAGS.config.get('data', {})
  data = FLAGS.data or data_section.get('root')
  cache_dir = FLAGS.cache_dir or data_section.get('cache_dir') or None
  if not data:
    raise app.UsageError('--data=DIR is required')
  config = feature_section(FLAGS.config)
  root = prepare(data, config, cache_dir, FLAGS.workers)
  prepared = open_cache(data, config, cache_dir)
  hours = sum(prepared.num_frames.values()) / prepared.frame_rate / 3600
  print(f'{data}: {len(prepared.num_frames)} versions of '
        f'{len(prepared.dataset.pieces)} pieces, {hours:.2f} h; '
        f'cache {root}')


if __name__ == '__main__':
  define_flags()
  cli.run(main)
