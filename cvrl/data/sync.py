r"""Measure annotations for versions that have none, by audio-to-audio sync.

  python -m cvrl.data.sync --data=DIR [--reference=VERSION] [--pieces=a,b]
      [--check_annotated] [--workers=N] [--config=configs/sync.py]

For every piece, each version without a measure annotation is synchronised
to the piece's reference version (--reference, else its first annotated
version) with synctoolbox's audio-audio pipeline (chroma + DLNCO features at
50 Hz, tuning estimated per recording, the optimal chroma shift, MrMsDTW, a
strictly monotonic path), and the reference's measure positions are carried
through the warping path into a measure annotation of the dataset's own
layout. A piece with no annotated version uses its reference's time axis
(one "measure" per second): CV positives only need corresponding positions.

A derived annotation is marked by a sidecar `<annotation>.sync.json` (in the
cvrl layout also by a leading `#` comment) holding its reference, inputs and
quality. Hand-made annotations are never overwritten; a re-run only redoes
versions whose inputs changed. A version whose alignment fails the quality
checks (configs/sync.py: not the same piece, a long repeat or cut) is left
out with a message naming it, and any annotation an earlier run derived for
it is removed. `--check_annotated` also synchronises annotated versions and
reports their error against the hand annotation, writing nothing for them.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import hashlib
import io
import json
import multiprocessing
import os
import pathlib
from typing import Optional, Sequence

from absl import app
from absl import flags
import librosa
import ml_collections
from ml_collections import config_flags
import numpy as np
import tqdm

from configs import sync as sync_config
from cvrl import audio as audio_lib
from cvrl import cli
from cvrl.data import alignment
from cvrl.data import layout
from cvrl.data.prepare import audio_fingerprint
from cvrl.data.prepare import write_atomic

REPORT = 'sync_report.json'


class SyncError(layout.DatasetError):
  """A piece cannot be synchronised as asked; the message names it."""


# ----------------------------------------------------------------------------
# Features and alignment (synctoolbox).


@dataclasses.dataclass(frozen=True)
class SyncFeatures:
  """What synctoolbox aligns, for one recording.

  Attributes:
    chroma: [12, N] quantised chroma at `config.feature_rate`.
    dlnco: [12, N] decaying locally adaptive normalised chroma onsets.
    tuning_cents: the recording's estimated tuning deviation.
    duration: seconds of audio.
    music: (start, end) seconds of the non-silent part.
  """
  chroma: np.ndarray
  dlnco: np.ndarray
  tuning_cents: int
  duration: float
  music: tuple[float, float]


@contextlib.contextmanager
def _quiet():
  """synctoolbox prints progress on stdout; keep it off the user's console."""
  with contextlib.redirect_stdout(io.StringIO()):
    yield


def compute_features(audio: np.ndarray,
                     config: ml_collections.ConfigDict) -> SyncFeatures:
  """synctoolbox's features of mono audio at `config.sample_rate`."""
  # pylint: disable=g-import-not-at-top
  from synctoolbox.feature.chroma import pitch_to_chroma, quantize_chroma
  from synctoolbox.feature.dlnco import pitch_onset_features_to_DLNCO
  from synctoolbox.feature.pitch import audio_to_pitch_features
  from synctoolbox.feature.pitch_onset import audio_to_pitch_onset_features
  from synctoolbox.feature.utils import estimate_tuning
  rate, fs = config.feature_rate, config.sample_rate
  audio = np.asarray(audio, np.float64)
  with _quiet():
    tuning = int(estimate_tuning(audio, fs))
    pitch = audio_to_pitch_features(f_audio=audio, Fs=fs, tuning_offset=tuning,
                                    feature_rate=rate, verbose=False)
    chroma = quantize_chroma(f_chroma=pitch_to_chroma(f_pitch=pitch))
    onsets = audio_to_pitch_onset_features(f_audio=audio, Fs=fs,
                                           tuning_offset=tuning, verbose=False)
    dlnco = pitch_onset_features_to_DLNCO(
        f_peaks=onsets, feature_rate=rate,
        feature_sequence_length=chroma.shape[1], visualize=False)
  _, (start, end) = librosa.effects.trim(audio, top_db=config.silence_top_db)
  return SyncFeatures(chroma=chroma, dlnco=dlnco, tuning_cents=tuning,
                      duration=len(audio) / fs, music=(start / fs, end / fs))


def _cens(chroma: np.ndarray, config, rate: float) -> np.ndarray:
  from synctoolbox.feature.chroma import quantized_chroma_to_CENS  # pylint: disable=g-import-not-at-top
  factor = int(round(config.feature_rate / rate))
  return quantized_chroma_to_CENS(chroma, 4 * factor + 1, factor,
                                  config.feature_rate)[0]


def _frames(seconds: float, rate: float, length: int) -> int:
  return int(np.clip(round(seconds * rate), 0, length))


def locate(reference: SyncFeatures, span: tuple[float, float],
           other: SyncFeatures, config) -> tuple[float, float]:
  """(start, end) seconds in `other` of the reference's `span`.

  Subsequence DTW of the reference's span (CENS at `config.locate_rate`) within
  the whole other recording: its ends are free, so whatever precedes or follows
  the music there (silence, applause, talk) costs nothing.
  """
  rate = config.locate_rate
  ref = _cens(reference.chroma, config, rate)
  query = ref[:, _frames(span[0], rate, ref.shape[1]):
              max(_frames(span[1], rate, ref.shape[1]),
                  _frames(span[0], rate, ref.shape[1]) + 2)]
  database = _cens(other.chroma, config, rate)
  _, path = librosa.sequence.dtw(X=query, Y=database, subseq=True,
                                 metric='cosine')
  return float(path[-1, 1]) / rate, float(path[0, 1] + 1) / rate


@dataclasses.dataclass(frozen=True)
class Alignment:
  """A strictly monotonic warping path and what it says about its quality.

  Attributes:
    path: [2, K] seconds in the reference (row 0) and the other version.
    chroma_shift: semitones the other version's chroma was rolled by.
    cost_per_step: mean chroma cosine distance (0..2) along the path.
    cost_ratio: cost_per_step / median distance between unrelated frames.
    slope_range: (min, max) seconds-per-second of the other version over
      windows of `slope_window_seconds` of the reference.
  """
  path: np.ndarray
  chroma_shift: int
  cost_per_step: float
  cost_ratio: float
  slope_range: tuple[float, float]


def _unit(chroma: np.ndarray) -> np.ndarray:
  return chroma / np.maximum(np.linalg.norm(chroma, axis=0, keepdims=True),
                             1e-9)


def path_quality(ref_chroma: np.ndarray, other_chroma: np.ndarray,
                 frames: np.ndarray, config,
                 seed: int = 0) -> tuple[float, float, tuple[float, float]]:
  """(cost per step, cost ratio, slope range) of a path of frame pairs [2, K]."""
  a, b = _unit(ref_chroma), _unit(other_chroma)
  cost = float(np.mean(1.0 - np.sum(a[:, frames[0]] * b[:, frames[1]], 0)))
  rng = np.random.default_rng(seed)
  i = rng.integers(0, a.shape[1], 20000)
  j = rng.integers(0, b.shape[1], 20000)
  unrelated = float(np.median(1.0 - np.sum(a[:, i] * b[:, j], 0)))
  rate = config.feature_rate
  window = config.slope_window_seconds
  ref_s, other_s = frames[0] / rate, frames[1] / rate
  starts = np.arange(ref_s[0], max(ref_s[-1] - window, ref_s[0]) + 1e-9,
                     window / 4)
  other_start = np.interp(starts, ref_s, other_s)
  other_end = np.interp(np.minimum(starts + window, ref_s[-1]), ref_s, other_s)
  spans = np.minimum(starts + window, ref_s[-1]) - starts
  slopes = (other_end - other_start) / np.maximum(spans, 1e-9)
  return cost, cost / max(unrelated, 1e-9), (float(slopes.min()),
                                             float(slopes.max()))


def align(reference: SyncFeatures, span: tuple[float, float],
          other: SyncFeatures, config) -> Alignment:
  """Synchronises `other` to the reference over the reference's `span`."""
  # pylint: disable=g-import-not-at-top
  from synctoolbox.dtw.mrmsdtw import sync_via_mrmsdtw
  from synctoolbox.dtw.utils import compute_optimal_chroma_shift
  from synctoolbox.dtw.utils import make_path_strictly_monotonic
  from synctoolbox.dtw.utils import shift_chroma_vectors
  rate, margin = config.feature_rate, config.margin_seconds
  other_span = locate(reference, span, other, config)
  n_ref, n_other = reference.chroma.shape[1], other.chroma.shape[1]
  r0, r1 = (_frames(span[0] - margin, rate, n_ref),
            _frames(span[1] + margin, rate, n_ref))
  o0, o1 = (_frames(other_span[0] - margin, rate, n_other),
            _frames(other_span[1] + margin, rate, n_other))
  if r1 - r0 < 2 * rate or o1 - o0 < 2 * rate:
    raise SyncError(f'reference span {span} or located span {other_span} is '
                    'under 2 s of audio')
  ref_chroma, ref_dlnco = reference.chroma[:, r0:r1], reference.dlnco[:, r0:r1]
  chroma, dlnco = other.chroma[:, o0:o1], other.dlnco[:, o0:o1]
  with _quiet():
    # The optimal shift on 1 Hz CENS, as synctoolbox's own pipeline does.
    shift = int(compute_optimal_chroma_shift(
        _cens(ref_chroma, config, 1), _cens(chroma, config, 1)))
    chroma = shift_chroma_vectors(chroma, shift)
    dlnco = shift_chroma_vectors(dlnco, shift)
    path = sync_via_mrmsdtw(
        f_chroma1=ref_chroma, f_onset1=ref_dlnco, f_chroma2=chroma,
        f_onset2=dlnco, input_feature_rate=rate,
        step_weights=np.asarray(config.step_weights, np.float64),
        threshold_rec=config.threshold_rec, alpha=config.alpha, verbose=False)
    path = make_path_strictly_monotonic(path).astype(np.int64)
  cost, ratio, slopes = path_quality(ref_chroma, chroma, path, config)
  offsets = np.array([[r0], [o0]])
  return Alignment(path=(path + offsets) / rate, chroma_shift=shift,
                   cost_per_step=cost, cost_ratio=ratio, slope_range=slopes)


def transfer(reference_map: alignment.TimeMap,
             path: np.ndarray) -> alignment.TimeMap:
  """The other version's time map: the reference's rows through the path."""
  seconds = np.interp(reference_map.seconds, path[0], path[1])
  return alignment.TimeMap(seconds, reference_map.measures)


def time_axis_map(features: SyncFeatures) -> alignment.TimeMap:
  """One "measure" per second over a recording's non-silent part."""
  start, end = features.music
  seconds = np.append(np.arange(start, end, 1.0), end)
  if seconds[-1] - seconds[-2] < 1e-3:
    seconds = seconds[:-1]
  return alignment.TimeMap(seconds, 1.0 + seconds - start)


def problems(result: Alignment, config) -> list[str]:
  """Why an alignment is not to be trusted (empty: it is)."""
  found = []
  if result.cost_ratio > config.max_cost_ratio:
    found.append(f'cost ratio {result.cost_ratio:.2f} > '
                 f'{config.max_cost_ratio} (not the same piece?)')
  low, high = result.slope_range
  if low < 1 / config.max_slope or high > config.max_slope:
    found.append(f'tempo ratio {low:.2f}..{high:.2f} over '
                 f'{config.slope_window_seconds:g} s windows leaves '
                 f'1/{config.max_slope:g}..{config.max_slope:g} (a long repeat '
                 'or cut?)')
  return found


def annotation_error_ms(derived: alignment.TimeMap,
                        truth: alignment.TimeMap) -> np.ndarray:
  """|derived - true| time in ms at every row of the derived map."""
  true_seconds = truth.seconds_at(derived.measures)
  inside = np.isfinite(true_seconds)
  return 1000 * np.abs(derived.seconds[inside] - true_seconds[inside])


def error_summary(errors_ms: np.ndarray) -> dict:
  if errors_ms.size == 0:
    return {}
  return dict(median_ms=float(np.median(errors_ms)),
              p95_ms=float(np.percentile(errors_ms, 95)),
              within_50ms=float(np.mean(errors_ms <= 50)),
              within_100ms=float(np.mean(errors_ms <= 100)),
              within_250ms=float(np.mean(errors_ms <= 250)),
              positions=int(errors_ms.size))


# ----------------------------------------------------------------------------
# Files: derived annotations and their sidecars.


def _digest(config) -> str:
  return hashlib.sha1(config.to_json(sort_keys=True).encode()).hexdigest()


def _csv_bytes(time_map: alignment.TimeMap, comment: Optional[str]) -> bytes:
  """A measure annotation in cvrl's CSV form, with an optional # comment."""
  lines = [f'# {comment}'] if comment else []
  lines.append('seconds,measure')
  lines += [f'{s:.6f},{m:.6f}'
            for s, m in zip(time_map.seconds, time_map.measures)]
  return ('\n'.join(lines) + '\n').encode()


def write_derived(path: pathlib.Path, time_map: alignment.TimeMap,
                  comment: Optional[str], record: dict) -> None:
  """Writes a derived annotation and its sync record, both atomically.

  The record goes first: were the CSV written first and the run killed in
  between, the CSV would look hand-made.
  """
  data = _csv_bytes(time_map, comment)
  record = dict(record, measures_sha1=hashlib.sha1(data).hexdigest())
  _write_record(path, record)
  write_atomic(path, lambda f: f.write(data))


def _write_record(path: pathlib.Path, record: dict) -> None:
  data = json.dumps(record, indent=1).encode()
  write_atomic(layout.sync_record_path(path), lambda f: f.write(data))


def remove_derived(path: pathlib.Path) -> None:
  """Removes a derived annotation: the CSV first, so none is left unmarked."""
  if layout.derived_record(path) is not None:
    path.unlink()


@dataclasses.dataclass(frozen=True)
class Job:
  """One piece: its reference and the versions to synchronise to it."""
  root: str
  layout: str
  piece: str
  reference: str
  reference_measures: Optional[str]  # None: the reference's time axis
  audio: dict  # version -> audio path (reference included)
  targets: tuple[str, ...]  # versions to derive annotations for
  checks: tuple[str, ...]  # annotated versions to check, nothing written
  config: dict


def _inputs(job: Job, version: str, ref_digest: str) -> dict:
  return dict(reference=job.reference,
              reference_audio=audio_fingerprint(
                  pathlib.Path(job.audio[job.reference])),
              reference_measures_sha1=ref_digest,
              audio=audio_fingerprint(pathlib.Path(job.audio[version])),
              config_sha1=_digest(ml_collections.ConfigDict(job.config)))


def _up_to_date(path: pathlib.Path, inputs: dict) -> bool:
  record_path = layout.sync_record_path(path)
  try:
    record = json.loads(record_path.read_text())
  except (OSError, ValueError):
    return False
  if record.get('inputs') != inputs:
    return False
  return (record.get('status') != 'ok'
          or layout.derived_record(path) is not None)


def sync_piece(job: Job) -> list[dict]:
  """Synchronises one piece's versions; returns one report row per version."""
  config = ml_collections.ConfigDict(job.config)
  root = pathlib.Path(job.root)
  path_of = lambda v: layout.measures_path(root, job.layout, job.piece, v)
  features = {}

  def feats(version):
    if version not in features:
      audio = audio_lib.load_audio(job.audio[version], config.sample_rate)
      features[version] = compute_features(audio, config)
    return features[version]

  rows = []
  if job.reference_measures is None:
    ref_path = path_of(job.reference)
    inputs = _inputs(job, job.reference, 'time axis')
    status = 'ok (up to date)'
    if _up_to_date(ref_path, inputs):  # no features needed
      reference_map = layout.read_measures(ref_path)
    else:
      reference_map = time_axis_map(feats(job.reference))
      comment = (f'derived by cvrl.data.sync: the time axis of {job.reference} '
                 '(one measure per second); see the .sync.json beside it')
      write_derived(ref_path, reference_map,
                    comment if job.layout == 'cvrl' else None,
                    dict(status='ok', kind='time_axis', inputs=inputs))
      status = 'ok'
    rows.append(dict(piece=job.piece, version=job.reference, status=status,
                     kind='time_axis', reference=job.reference))
  else:
    reference_map = layout.read_measures(pathlib.Path(job.reference_measures))
  ref_digest = hashlib.sha1(path_of(job.reference).read_bytes()).hexdigest()
  span = (reference_map.start_seconds, reference_map.end_seconds)

  for version in job.targets + job.checks:
    path = path_of(version)
    inputs = _inputs(job, version, ref_digest)
    row = dict(piece=job.piece, version=version, reference=job.reference)
    if version in job.targets and _up_to_date(path, inputs):
      record = json.loads(layout.sync_record_path(path).read_text())
      rows.append(dict(row, **record.get('quality', {}),
                       status=record['status'] + ' (up to date)',
                       problems=record.get('problems', [])))
      continue
    try:
      result = align(feats(job.reference), span, feats(version), config)
    except SyncError as e:
      result, found = None, [str(e)]
    else:
      found = problems(result, config)
    quality = {} if result is None else dict(
        cost_per_step=result.cost_per_step, cost_ratio=result.cost_ratio,
        slope_min=result.slope_range[0], slope_max=result.slope_range[1],
        chroma_shift=result.chroma_shift,
        tuning_cents=feats(version).tuning_cents)
    derived = None if result is None else transfer(reference_map, result.path)
    if version in job.checks:
      truth = layout.read_measures(path)
      errors = (annotation_error_ms(derived, truth) if derived is not None
                else np.zeros(0))
      rows.append(dict(row, **quality, status='checked', problems=found,
                       **error_summary(errors)))
      continue
    if found:
      remove_derived(path)
      _write_record(path, dict(status='left out', problems=found,
                               inputs=inputs, quality=quality))
      rows.append(dict(row, **quality, status='left out', problems=found))
      continue
    comment = (f'derived by cvrl.data.sync from {job.reference}; quality in '
               'the .sync.json beside it')
    write_derived(path, derived, comment if job.layout == 'cvrl' else None,
                  dict(status='ok', kind='synchronised', inputs=inputs,
                       quality=quality))
    rows.append(dict(row, **quality, status='ok', problems=[]))
  return rows


# ----------------------------------------------------------------------------
# The dataset.


def plan(root, reference: Optional[str] = None,
         pieces: Sequence[str] = (), check_annotated: bool = False,
         config: Optional[ml_collections.ConfigDict] = None) -> list[Job]:
  """One Job per piece that has something to synchronise."""
  root = pathlib.Path(root)
  if not root.is_dir():
    raise layout.DatasetError(f'{root}: dataset folder does not exist')
  if config is None:
    config = sync_config.get_config()
  kind = layout.detect_layout(root, unannotated=True)
  audio = layout.find_audio(root, kind)
  unknown = sorted(set(pieces) - set(audio))
  if unknown:
    raise SyncError(f'{root}: no audio for piece(s) {unknown} (--pieces); '
                    f'pieces with audio: {sorted(audio)}')
  if reference is not None and not any(
      reference in versions for piece, versions in audio.items()
      if not pieces or piece in pieces):
    raise SyncError(f'{root}: no piece has a version {reference!r} '
                    '(--reference)')
  jobs = []
  for piece, versions in sorted(audio.items()):
    if pieces and piece not in pieces:
      continue
    path_of = lambda v, piece=piece: layout.measures_path(root, kind, piece, v)
    # Hand-made: an annotation that no sync record claims (layout.derived_record).
    hand = sorted(v for v in versions if path_of(v).exists()
                  and layout.derived_record(path_of(v)) is None)
    if reference in versions:
      ref = reference
    else:  # pieces without the asked-for version use their default
      ref = hand[0] if hand else sorted(versions)[0]
    if len(versions) < 2:
      continue
    ref_measures = str(path_of(ref)) if ref in hand else None
    if ref_measures is None and hand:
      raise SyncError(f'{path_of(ref)}: the reference {ref!r} of piece '
                      f'{piece!r} has no hand-made measure annotation, but '
                      f'{hand} do: choose one of them as --reference')
    targets = tuple(v for v in sorted(versions) if v != ref and v not in hand)
    checks = tuple(v for v in hand if v != ref) if check_annotated else ()
    if targets or checks or ref_measures is None:
      jobs.append(Job(root=str(root), layout=kind, piece=piece, reference=ref,
                      reference_measures=ref_measures,
                      audio={v: str(p) for v, p in versions.items()},
                      targets=targets, checks=checks,
                      config=config.to_dict()))
  return jobs


def warm_up(config: ml_collections.ConfigDict) -> None:
  """Compiles synctoolbox's numba code once, before workers run in parallel.

  Its DTW core caches compiled code on disk, and processes compiling it at the
  same time can corrupt that cache (as with librosa's, see cvrl.audio.warm_up).
  """
  rng = np.random.default_rng(0)
  t = np.arange(int(8 * config.sample_rate)) / config.sample_rate
  pitches = 220.0 * 2 ** (rng.integers(0, 12, 8) / 12)
  audio = np.sin(2 * np.pi * pitches[np.minimum((t // 1).astype(int), 7)] * t)
  features = compute_features(0.3 * audio, config)
  with contextlib.suppress(SyncError):
    align(features, (1.0, 7.0), features, config)


def run(jobs: Sequence[Job], workers: int = 1,
        progress: bool = True) -> list[dict]:
  """Runs every job (in `workers` processes); returns all report rows."""
  bar = tqdm.tqdm(total=sum(len(j.targets) + len(j.checks) for j in jobs),
                  desc='sync', unit='version', disable=not progress)
  rows = []
  if workers <= 1 or len(jobs) <= 1:
    for job in jobs:
      bar.set_postfix_str(job.piece)
      rows += sync_piece(job)
      bar.update(len(job.targets) + len(job.checks))
  else:
    warm_up(ml_collections.ConfigDict(jobs[0].config))
    context = multiprocessing.get_context('spawn')
    with concurrent.futures.ProcessPoolExecutor(workers,
                                                mp_context=context) as pool:
      futures = {pool.submit(sync_piece, job): job for job in jobs}
      for future in concurrent.futures.as_completed(futures):
        job = futures[future]
        rows += future.result()
        bar.update(len(job.targets) + len(job.checks))
  bar.close()
  return sorted(rows, key=lambda r: (r['piece'], r['version']))


def format_report(rows: Sequence[dict]) -> str:
  """A Markdown table of the report rows."""
  lines = ['| piece | version | reference | status | cost ratio | tempo ratio '
           '| error median / p95 (ms) |', '|---|---|---|---|---|---|---|']
  for r in rows:
    ratio = f"{r['cost_ratio']:.2f}" if 'cost_ratio' in r else ''
    slope = (f"{r['slope_min']:.2f}..{r['slope_max']:.2f}"
             if 'slope_min' in r else '')
    error = (f"{r['median_ms']:.0f} / {r['p95_ms']:.0f}"
             if 'median_ms' in r else '')
    status = r['status'] + ''.join(f'; {p}' for p in r.get('problems', []))
    lines.append(f"| {r['piece']} | {r['version']} | {r['reference']} | "
                 f'{status} | {ratio} | {slope} | {error} |')
  return '\n'.join(lines)


# ----------------------------------------------------------------------------
# Binary.

FLAGS = flags.FLAGS
DEFAULT_CONFIG = pathlib.Path(__file__).parents[2] / 'configs' / 'sync.py'


def define_flags():
  flags.DEFINE_string('data', None, 'Dataset folder (any supported layout).')
  flags.DEFINE_string('reference', None, 'Version each piece is synchronised '
                      'to where the piece has it (default: its first annotated '
                      'version, else its first version).')
  flags.DEFINE_list('pieces', [], 'Only these pieces (default: all).')
  flags.DEFINE_bool('check_annotated', False, 'Also synchronise annotated '
                    'versions and report the error against their annotation '
                    '(nothing is written for them).')
  flags.DEFINE_integer('workers', os.cpu_count() or 1,
                       'Pieces synchronised in parallel.')
  config_flags.DEFINE_config_file('config', str(DEFAULT_CONFIG),
                                  'Sync settings (configs/sync.py).')


def main(argv):
  del argv
  if not FLAGS.data:
    raise app.UsageError('--data=DIR is required')
  jobs = plan(FLAGS.data, FLAGS.reference, FLAGS.pieces, FLAGS.check_annotated,
              FLAGS.config)
  if not jobs:
    print(f'{FLAGS.data}: every version has a measure annotation; nothing to '
          'synchronise')
    return
  rows = run(jobs, FLAGS.workers)
  report_path = pathlib.Path(FLAGS.data) / REPORT
  data = json.dumps(rows, indent=1).encode()
  write_atomic(report_path, lambda f: f.write(data))
  print(format_report(rows))
  left_out = [r for r in rows if r['status'].startswith('left out')]
  for r in left_out:
    print(f"left out: {r['piece']}/{r['version']}: {'; '.join(r['problems'])}")
  written = sum(r['status'] == 'ok' for r in rows)
  kept = sum(r['status'] == 'ok (up to date)' for r in rows)
  print(f'{FLAGS.data}: {written} annotation(s) derived, {kept} up to date, '
        f'{len(left_out)} version(s) left out; report {report_path}')


if __name__ == '__main__':
  define_flags()
  cli.run(main)
