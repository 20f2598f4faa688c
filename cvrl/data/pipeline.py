"""grain input pipeline: (seed, example index) -> aligned CV / SV / Sup examples.

Example i of the run is a pure function of (seed, i), and step s holds the
global examples s*B .. (s+1)*B - 1; each JAX process takes its contiguous
block of them. So a resumed run, or one on a different number of hosts, sees exactly
the same global batches as an uninterrupted one.

Examples, as published (docs/protocol.md, "Pretext task"):
  anchor    random train piece (segment), random version a, measure position
            m uniform over the segment's measures;
  positive  SV: version a at the anchor's time + jitter in +-tau_p;
            CV: another version b at measure m (through the measure maps)
            + the same kind of jitter;
  negative  same piece, >= tau_n seconds from where m lies in the chosen
            version (SV: a; CV: any version), or another piece;
  Sup       the anchor patch and the multi-hot instrument activity at its
            centre frame.
Patches are cut from the memory-mapped float16 caches, augmented
(`cvrl/augment.py`), standardised with the training statistics saved in the
cache, and batched as [local_devices, per_device_batch, ...].
"""

from __future__ import annotations

import dataclasses
import threading
from typing import Optional

import grain
import jax
import ml_collections
import numpy as np

from cvrl import augment as augment_lib
from cvrl.data import layout
from cvrl.data import prepare as prepare_lib

NEGATIVES = ('same_version', 'any_version', 'other_version', 'other_piece')
UNBOUNDED_STEPS = 2**40  # a stream nobody reads to its end
MAX_TRIES = 100  # anchors redrawn when a piece is too short for a negative
# grain's reader threads open memory maps lazily; np.load parses .npy headers
# with ast, which CPython 3.11 does not allow from several threads at once
# ("AST constructor recursion depth mismatch"). One open at a time.
_OPEN_LOCK = threading.Lock()


@dataclasses.dataclass(frozen=True)
class VersionEntry:
  """What the sampler needs of one version, small enough to pickle to workers."""
  key: str
  features_path: str
  refs_path: str
  num_frames: int
  seconds: np.ndarray  # the measure map
  measures: np.ndarray

  def seconds_at(self, measure) -> float:
    return float(np.interp(measure, self.measures, self.seconds))


@dataclasses.dataclass(frozen=True)
class SegmentEntry:
  """A split segment: the versions to draw from and their measure range."""
  piece: str
  versions: tuple[VersionEntry, ...]
  first_measure: float
  last_measure: float


def split_segments(prepared: prepare_lib.PreparedDataset,
                   split: str = 'train') -> list[SegmentEntry]:
  """The split's segments with their versions' measure maps and cache paths."""
  by_segment: dict[int, list] = {}
  segments = list(prepared.dataset.splits[split])
  for version, segment in prepare_lib.split_versions(prepared.dataset, split):
    features_path, _, refs_path = prepare_lib.cache_paths(prepared.cache, version)
    time_map = prepared.time_map(version)
    by_segment.setdefault(segments.index(segment), []).append(VersionEntry(
        key=version.key, features_path=str(features_path),
        refs_path=str(refs_path), num_frames=prepared.num_frames[version.key],
        seconds=time_map.seconds, measures=time_map.measures))
  entries = []
  for index, versions in sorted(by_segment.items()):
    segment = segments[index]
    first = max(v.measures[0] for v in versions)
    last = min(v.measures[-1] for v in versions)
    if segment.measures is not None:
      first, last = max(first, segment.measures[0]), min(last, segment.measures[1])
    entries.append(SegmentEntry(segment.piece, tuple(versions), first, last))
  return entries


class ExampleMaker:
  """Global example index -> one training example (a dict of NumPy arrays).

  Picklable for grain's worker processes: memory maps and reference arrays
  are opened lazily in whichever process uses them.
  """

  def __init__(self, segments: list[SegmentEntry], mean: np.ndarray,
               std: np.ndarray, frame_rate: float,
               config: ml_collections.ConfigDict):
    if config.data.negative not in NEGATIVES:
      raise ValueError(f'config.data.negative={config.data.negative!r}: '
                       f'one of {NEGATIVES}')
    if config.method == 'cv':
      for segment in segments:
        if len(segment.versions) < 2:
          raise layout.DatasetError(
              f'piece {segment.piece}: CV needs two versions in the split, '
              f'has {[v.key for v in segment.versions]}')
    if config.data.negative == 'other_piece' and len(segments) < 2:
      raise layout.DatasetError('negative=other_piece needs two train pieces')
    self.segments = segments
    self.mean = np.asarray(mean, np.float32)
    self.std = np.asarray(std, np.float32)
    self.frame_rate = frame_rate
    self.method = config.method
    self.seed = config.seed
    self.patch_frames = config.data.patch_frames
    self.tau_p = config.data.tau_p
    self.tau_n = config.data.tau_n
    self.negative = config.data.negative
    self.augment = config.augment
    self.margin = augment_lib.warp_margin(self.patch_frames, config.augment)
    self.with_negative = config.method in ('cv', 'sv') and \
        config.loss.name == 'triplet'
    self._features: dict[str, np.ndarray] = {}
    self._instruments: dict[str, np.ndarray] = {}

  def __getstate__(self):
    state = dict(self.__dict__)
    state['_features'], state['_instruments'] = {}, {}
    return state

  # -- cache access -----------------------------------------------------------

  def features(self, version: VersionEntry) -> np.ndarray:
    if version.key not in self._features:
      with _OPEN_LOCK:
        self._features[version.key] = np.load(version.features_path,
                                              mmap_mode='r')
    return self._features[version.key]

  def instruments(self, version: VersionEntry) -> np.ndarray:
    if version.key not in self._instruments:
      with _OPEN_LOCK, np.load(version.refs_path) as refs:
        self._instruments[version.key] = refs['instruments']
    return self._instruments[version.key]

  def window(self, version: VersionEntry, centre: int) -> np.ndarray:
    """[2 * margin + 1, bins, channels] dB frames around `centre`, silence outside."""
    features = self.features(version)
    lo, hi = centre - self.margin, centre + self.margin + 1
    out = np.full((hi - lo,) + features.shape[1:], augment_lib.SILENCE_DB,
                  np.float32)
    a, b = max(lo, 0), min(hi, features.shape[0])
    if a < b:
      out[a - lo:b - lo] = features[a:b]
    return out.reshape(out.shape[:2] + (-1,))

  def patch(self, version: VersionEntry, centre: int,
            rng: np.random.Generator) -> np.ndarray:
    """Augmented, standardised [patch_frames, bins, channels] float32 patch."""
    patch = augment_lib.augment(self.window(version, centre),
                                self.patch_frames, self.augment, rng)
    mean = self.mean.reshape(patch.shape[1:])
    std = self.std.reshape(patch.shape[1:])
    return (patch - mean) / std

  # -- sampling ---------------------------------------------------------------

  def frame(self, version: VersionEntry, seconds: float) -> int:
    return int(np.clip(np.rint(seconds * self.frame_rate), 0,
                       version.num_frames - 1))

  def negative_position(self, segment: SegmentEntry, anchor_version: int,
                        measure: float, rng: np.random.Generator):
    """(version index, seconds) >= tau_n from measure m, or None if none exists."""
    if self.negative == 'same_version':
      choice = anchor_version
    elif self.negative == 'other_version':
      others = [i for i in range(len(segment.versions)) if i != anchor_version]
      choice = int(rng.choice(others))
    else:
      choice = int(rng.integers(len(segment.versions)))
    version = segment.versions[choice]
    start = version.seconds_at(segment.first_measure)
    end = version.seconds_at(segment.last_measure)
    reference = version.seconds_at(measure)
    before = max(0.0, reference - self.tau_n - start)
    after = max(0.0, end - reference - self.tau_n)
    if before + after <= 0:
      return None
    u = rng.uniform(0, before + after)
    seconds = start + u if u < before else reference + self.tau_n + (u - before)
    return choice, seconds

  def __call__(self, index: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng([self.seed, int(index)])
    for _ in range(MAX_TRIES):
      example = self._try(rng)
      if example is not None:
        return example
    raise layout.DatasetError(
        f'no negative >= tau_n={self.tau_n} s found in {MAX_TRIES} tries: '
        'train pieces are too short for config.data.tau_n')

  def _try(self, rng: np.random.Generator) -> Optional[dict[str, np.ndarray]]:
    segment_index = int(rng.integers(len(self.segments)))
    segment = self.segments[segment_index]
    anchor_index = int(rng.integers(len(segment.versions)))
    anchor = segment.versions[anchor_index]
    measure = rng.uniform(segment.first_measure, segment.last_measure)
    anchor_seconds = anchor.seconds_at(measure)
    anchor_frame = self.frame(anchor, anchor_seconds)
    if self.method == 'sup':
      return dict(patch=self.patch(anchor, anchor_frame, rng),
                  labels=self.instruments(anchor)[anchor_frame].astype(np.float32),
                  measure=np.float64(measure))

    jitter = rng.uniform(-self.tau_p, self.tau_p)
    if self.method == 'cv':
      positive_index = int(rng.choice(
          [i for i in range(len(segment.versions)) if i != anchor_index]))
    else:
      positive_index = anchor_index
    positive = segment.versions[positive_index]
    positive_frame = self.frame(positive, positive.seconds_at(measure) + jitter)
    example = dict(
        anchor=self.patch(anchor, anchor_frame, rng),
        positive=self.patch(positive, positive_frame, rng),
        measure=np.float64(measure),
        frames=np.array([anchor_frame, positive_frame, -1], np.int64),
        versions=np.array([anchor_index, positive_index, -1], np.int64),
        segment=np.int64(segment_index))
    if not self.with_negative:
      return example
    if self.negative == 'other_piece':
      other = [i for i in range(len(self.segments)) if i != segment_index]
      negative_segment = int(rng.choice(other))
      segment_n = self.segments[negative_segment]
      negative_index = int(rng.integers(len(segment_n.versions)))
      version_n = segment_n.versions[negative_index]
      seconds = version_n.seconds_at(
          rng.uniform(segment_n.first_measure, segment_n.last_measure))
    else:
      found = self.negative_position(segment, anchor_index, measure, rng)
      if found is None:
        return None
      negative_segment, (negative_index, seconds) = segment_index, found
      version_n = segment.versions[negative_index]
    negative_frame = self.frame(version_n, seconds)
    example['negative'] = self.patch(version_n, negative_frame, rng)
    example['frames'][2] = negative_frame
    example['versions'][2] = negative_index
    example['negative_segment'] = np.int64(negative_segment)
    return example


def device_batches(batch: dict[str, np.ndarray],
                   local_devices: int) -> dict[str, np.ndarray]:
  """[per_process_batch, ...] -> [local_devices, per_device_batch, ...]."""
  return {k: v.reshape((local_devices, -1) + v.shape[1:])
          for k, v in batch.items()}


def create_dataset(maker: ExampleMaker, config: ml_collections.ConfigDict,
                   first_step: int, last_step: Optional[int],
                   process_index: Optional[int] = None,
                   process_count: Optional[int] = None,
                   local_devices: Optional[int] = None) -> grain.IterDataset:
  """This process's batches of steps first_step+1 .. last_step (None: no end).

  Step s (counting from 1) holds global examples (s-1)*B .. s*B - 1;
  process p takes the p-th contiguous block of B/P of them, so device d of
  the whole job gets the same examples however devices split into processes.
  """
  process_index = jax.process_index() if process_index is None else process_index
  process_count = jax.process_count() if process_count is None else process_count
  local_devices = jax.local_device_count() if local_devices is None else local_devices
  batch_size = config.batch_size
  if batch_size % (process_count * local_devices):
    raise ValueError(
        f'config.batch_size={batch_size} must divide evenly over '
        f'{process_count} processes x {local_devices} local devices')
  per_process = batch_size // process_count
  if last_step is None:
    last_step = UNBOUNDED_STEPS
  first_index = process_index * per_process

  def global_index(local_index: int) -> int:
    step, offset = divmod(local_index, per_process)
    return step * batch_size + first_index + offset

  dataset = grain.MapDataset.range(first_step * per_process,
                                   last_step * per_process)
  dataset = dataset.map(global_index).map(maker).batch(per_process)
  dataset = dataset.map(lambda b: device_batches(b, local_devices))
  dataset = dataset.to_iter_dataset(grain.ReadOptions(
      num_threads=0 if config.data.workers else 2,
      prefetch_buffer_size=config.data.prefetch))
  if config.data.workers:
    dataset = dataset.mp_prefetch(grain.MultiprocessingOptions(
        num_workers=config.data.workers,
        per_worker_buffer_size=config.data.prefetch))
  return dataset


def example_maker(prepared: prepare_lib.PreparedDataset,
                  config: ml_collections.ConfigDict,
                  split: str = 'train') -> ExampleMaker:
  return ExampleMaker(split_segments(prepared, split), prepared.mean,
                      prepared.std, prepared.frame_rate, config)
