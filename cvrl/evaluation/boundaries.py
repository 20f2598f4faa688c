r"""SSM boundary evaluation: do embeddings follow instrumentation (Ref_I) or harmony (Ref_H)?

  python -m cvrl.ssm --workdir=W [--representation=embedding|input|mfcc|chroma]
      [--kernel_seconds=1:60] [--hop=1] [--eval_config.ssm.FIELD=...]

For every test version, the published procedure (docs/protocol.md, "SSM
evaluation"; `--eval_config.ssm.procedure=cvrl-v1` gives cvrl's earlier
one): features, Ref_I and Ref_H are smoothed with a 1 s Hann window and
downsampled to ~5 Hz (upfirdn), rows L2-normalised, S = X X^T; for each
kernel size k, libfmp's Foote novelty with a Gaussian checkerboard kernel of
L = int(k * rate + 0.5) frames a side (variance 1, edges excluded); peaks at
least 6 s apart above max(0.1 * max, a k-second median filter); an
estimated boundary is a hit if a reference boundary of the Ref_I (Ref_H)
SSM lies within 3 s. P / R / F averaged over test versions, per kernel size.
Writes W/ssm/<representation>.json, an F-vs-kernel-size PNG and, per test
version, a PNG of the three SSMs side by side (axes in seconds).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import pathlib
import warnings
from typing import Sequence

from absl import flags
import librosa
import libfmp.c4
import mir_eval
import numpy as np
from scipy import ndimage
from scipy import signal
import tqdm

from cvrl import cli
from cvrl.data import prepare as prepare_lib
from cvrl.evaluation import representations


PROCEDURES = ('published', 'cvrl-v1')


@dataclasses.dataclass(frozen=True)
class SSMSettings:
  """How features become boundaries (configs/evaluation.py, `ssm`).

  procedure 'published' is the original code's, step by step (docs/protocol.md,
  "SSM evaluation"); 'cvrl-v1' is what cvrl did before, kept to compare with
  its earlier numbers: convolve-and-stride smoothing, kernels spanning k
  seconds (L = round(k * rate / 2), var 0.5, no edge exclusion), peaks 0.05
  above a 3 s moving average, one-to-one matching (mir_eval).
  """
  procedure: str = 'published'
  smooth_seconds: float = 1.0  # Hann window
  target_rate: float = 5.0  # Hz after downsampling (integer factor)
  kernel_var: float = 1.0  # libfmp's Gaussian taper parameter
  peak_distance_seconds: float = 6.0
  peak_floor: float = 0.1  # of the novelty's maximum
  local_average_seconds: float = 3.0  # cvrl-v1 only
  tolerance_seconds: float = 3.0

  def __post_init__(self):
    if self.procedure not in PROCEDURES:
      raise ValueError(f'ssm.procedure={self.procedure!r}: one of '
                       f'{PROCEDURES}')


# ----------------------------------------------------------------------------
# Features -> SSM -> novelty -> boundaries.


def smoothing_window(rate: float, settings: SSMSettings) -> np.ndarray:
  """The published Hann window: int(seconds * rate + 0.5) frames made odd,
  hanning(w + 2)[1:-1] (no zero end points), summing to 1."""
  length = int(settings.smooth_seconds * rate + 0.5)
  length += 1 - length % 2
  window = np.hanning(length + 2)[1:-1]
  return window / window.sum()


def downsampling_factor(rate: float, settings: SSMSettings) -> int:
  return max(1, int(rate / settings.target_rate + 0.5))


def smooth_downsample(features: np.ndarray, rate: float,
                      settings: SSMSettings) -> tuple[np.ndarray, float]:
  """[N, D] at `rate` -> ([N', D] Hann-smoothed and downsampled, new rate).

  Published: scipy.signal.upfirdn(h, x, down=d) along time, cut to the
  frames centred like the input's, [c, c + ceil(N / d)) with
  c = (w - 1) // (2 d).
  """
  features = np.asarray(features, np.float64)
  factor = downsampling_factor(rate, settings)
  if settings.procedure == 'cvrl-v1':
    length = max(1, int(round(settings.smooth_seconds * rate)))
    window = signal.windows.hann(length + 2)[1:-1]
    smoothed = signal.convolve(features, window[:, None], mode='same') / length
    return smoothed[::factor], rate / factor
  window = smoothing_window(rate, settings)
  filtered = signal.upfirdn(window, features, up=1, down=factor, axis=0)
  start = (len(window) - 1) // (2 * factor)
  count = int(np.ceil(len(features) / factor))
  return filtered[start:start + count], rate / factor


def self_similarity(features: np.ndarray, rate: float,
                    settings: SSMSettings) -> tuple[np.ndarray, float]:
  """S = X X^T of smoothed, downsampled, L2-normalised frames.

  librosa's normalize with fill=True: near-zero frames become the uniform
  unit vector, so silence is similar to silence.
  """
  x, new_rate = smooth_downsample(features, rate, settings)
  x = librosa.util.normalize(x, norm=2, axis=1, fill=True)
  return x @ x.T, new_rate


def kernel_half(seconds: float, rate: float, settings: SSMSettings) -> int:
  """L of the (2L + 1)-frame kernel for a kernel size of `seconds`.

  Published: L = int(seconds * rate + 0.5), i.e. the kernel spans 2k s;
  cvrl-v1: the kernel spans k s.
  """
  if settings.procedure == 'cvrl-v1':
    return max(1, int(round(seconds * rate / 2)))
  return max(1, int(seconds * rate + 0.5))


def novelty(ssm: np.ndarray, half: int, settings: SSMSettings) -> np.ndarray:
  """libfmp's Foote novelty with its normalised Gaussian checkerboard kernel;
  published: the first and last L values set to 0."""
  kernel = libfmp.c4.compute_kernel_checkerboard_gaussian(
      half, var=settings.kernel_var, normalize=True)
  return libfmp.c4.compute_novelty_ssm(
      np.asarray(ssm, np.float64), kernel=kernel, L=half,
      exclude=settings.procedure == 'published')


def pick_peaks(curve: np.ndarray, rate: float, kernel_seconds: float,
               settings: SSMSettings) -> np.ndarray:
  """Peak positions in seconds.

  Published: at least int(6 s * rate) + 1 frames apart and above
  max(0.1 * max(curve), a kernel_seconds median filter of the curve).
  """
  if curve.size == 0 or np.max(curve) <= 0:
    return np.zeros(0)
  if settings.procedure == 'cvrl-v1':
    curve = curve / np.max(curve)
    width = max(1, int(round(settings.local_average_seconds * rate)))
    local = np.convolve(curve, np.ones(width) / width, mode='same')
    distance = max(1, int(round(settings.peak_distance_seconds * rate)))
    peaks, _ = signal.find_peaks(curve, distance=distance,
                                 height=settings.peak_floor)
    return peaks[curve[peaks] > local[peaks] + settings.peak_floor] / rate
  median = ndimage.median_filter(curve, size=max(1, int(kernel_seconds * rate)),
                                 mode='constant', cval=0.0)
  threshold = np.maximum(settings.peak_floor * np.max(curve), median)
  peaks, _ = signal.find_peaks(
      curve, distance=int(settings.peak_distance_seconds * rate) + 1,
      height=threshold)
  return peaks / rate


def boundary_prf(reference: np.ndarray, estimate: np.ndarray,
                 tolerance: float = 3.0,
                 one_to_one: bool = False) -> tuple[float, float, float]:
  """Precision, recall, F of estimated against reference boundaries (s).

  Published (one_to_one=False): an estimate is a hit if any reference lies
  within `tolerance`; a reference is missed if no estimate does;
  P = hits / estimates, R = hits / (hits + misses). No references: R = 1 and
  P = 1 only without estimates; no estimates: P = 1, R = 0.
  one_to_one=True: mir_eval's matching (cvrl-v1); both empty: (1, 1, 1).
  """
  reference = np.sort(np.asarray(reference, np.float64))
  estimate = np.sort(np.asarray(estimate, np.float64))
  if one_to_one:
    if len(reference) == 0 and len(estimate) == 0:
      return 1.0, 1.0, 1.0
    if len(reference) == 0 or len(estimate) == 0:
      return 0.0, 0.0, 0.0
    with warnings.catch_warnings():
      warnings.simplefilter('ignore')
      f, p, r = mir_eval.onset.f_measure(reference, estimate, window=tolerance)
    return float(p), float(r), float(f)
  if len(reference) == 0:
    precision, recall = (1.0 if len(estimate) == 0 else 0.0), 1.0
  elif len(estimate) == 0:
    precision, recall = 1.0, 0.0
  else:
    distance = np.abs(estimate[:, None] - reference[None, :])
    hits = int(np.sum(distance.min(axis=1) <= tolerance))
    misses = int(np.sum(distance.min(axis=0) > tolerance))
    precision = hits / len(estimate)
    recall = hits / (hits + misses) if hits + misses else 0.0
  f = (2 * precision * recall / (precision + recall)
       if precision + recall > 0 else 0.0)
  return float(precision), float(recall), float(f)


# ----------------------------------------------------------------------------
# Evaluation over versions.


def peaks_per_kernel(ssm: np.ndarray, rate: float,
                     kernel_seconds: Sequence[float], settings: SSMSettings,
                     cache_dir: pathlib.Path | None = None) -> list[np.ndarray]:
  """Novelty peaks (seconds) of one SSM at every kernel size.

  With `cache_dir`, kept on disk under a hash of the SSM itself and the
  settings: the reference SSMs are the same for every representation
  evaluated, and their novelty curves were two thirds of an evaluation's time.
  """
  path = None
  if cache_dir is not None:
    digest = hashlib.sha1(np.ascontiguousarray(ssm, np.float64).tobytes())
    digest.update(repr((float(rate), [float(k) for k in kernel_seconds],
                        dataclasses.asdict(settings))).encode())
    path = pathlib.Path(cache_dir) / f'{digest.hexdigest()}.npz'
    if path.exists():
      with np.load(path) as saved:
        return [saved[str(i)] for i in range(len(kernel_seconds))]
  peaks = [pick_peaks(novelty(ssm, kernel_half(seconds, rate, settings),
                              settings), rate, seconds, settings)
           for seconds in kernel_seconds]
  if path is not None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(f'.{os.getpid()}.npz')  # concurrent writers
    np.savez(partial, **{str(i): p for i, p in enumerate(peaks)})
    partial.replace(path)
  return peaks


def evaluate_version(features: np.ndarray, instruments: np.ndarray,
                     pitch_classes: np.ndarray, rate: float,
                     kernel_seconds: Sequence[float],
                     settings: SSMSettings = SSMSettings(),
                     reference_cache: pathlib.Path | None = None) -> dict:
  """Boundary P/R/F of one version's features against Ref_I and Ref_H SSMs.

  `reference_cache`: a folder for the reference SSMs' peaks (peaks_per_kernel).
  """
  ssms = {}
  for name, values in (('features', features), ('ref_i', instruments),
                       ('ref_h', pitch_classes)):
    ssms[name], ssm_rate = self_similarity(np.asarray(values, np.float64),
                                           rate, settings)
  peaks = {name: peaks_per_kernel(
      s, ssm_rate, kernel_seconds, settings,
      None if name == 'features' else reference_cache)
           for name, s in ssms.items()}
  result = {ref: dict(precision=[], recall=[], f=[]) for ref in ('ref_i', 'ref_h')}
  for i in range(len(kernel_seconds)):
    for ref in ('ref_i', 'ref_h'):
      p, r, f = boundary_prf(peaks[ref][i], peaks['features'][i],
                             settings.tolerance_seconds,
                             one_to_one=settings.procedure == 'cvrl-v1')
      result[ref]['precision'].append(p)
      result[ref]['recall'].append(r)
      result[ref]['f'].append(f)
  return dict(result, rate=ssm_rate, ssms=ssms)


def evaluate(features_of, prepared: prepare_lib.PreparedDataset,
             kernel_seconds: Sequence[float], hop: int = 1,
             settings: SSMSettings = SSMSettings(), split: str = 'test',
             progress: bool = True, keep_ssms: int = 0):
  """Mean boundary P/R/F per kernel size over a split's versions.

  Returns (report, [(version key, ssms, rate)] for the first `keep_ssms`).
  """
  per_version, kept = {}, []
  versions = sorted({v.key: (v, s) for v, s in prepare_lib.split_versions(
      prepared.dataset, split)}.values(), key=lambda vs: vs[0].key)
  for version, segment in tqdm.tqdm(versions, desc='ssm', unit='version',
                                    disable=not progress):
    refs = prepared.references(version)
    frames = np.arange(0, len(refs.measures), hop)
    keep = prepare_lib.split_frame_mask(segment, refs.measures)[frames]
    first, last = np.flatnonzero(keep)[[0, -1]]
    span = slice(first, last + 1)  # the annotated part, contiguous
    result = evaluate_version(
        features_of(version)[:len(frames)][span],
        refs.instruments[frames][span], refs.pitch_classes[frames][span],
        prepared.frame_rate / hop, kernel_seconds, settings,
        reference_cache=prepared.cache / 'ssm_reference_peaks')
    if len(kept) < keep_ssms:
      kept.append((version.key, result['ssms'], result['rate']))
    per_version[version.key] = {k: result[k] for k in ('ref_i', 'ref_h')}
  summary = {}
  for ref in ('ref_i', 'ref_h'):
    summary[ref] = {m: np.mean([v[ref][m] for v in per_version.values()],
                               axis=0).tolist()
                    for m in ('precision', 'recall', 'f')}
  report = dict(kernel_seconds=list(kernel_seconds),
                settings=dataclasses.asdict(settings), hop=hop,
                versions=len(per_version), mean=summary,
                per_version=per_version)
  return report, kept


def summary_columns(report: dict, mid_seconds: float = 20.0) -> dict:
  """F at a mid kernel size and the best F over sizes, per reference."""
  sizes = np.asarray(report['kernel_seconds'])
  mid = int(np.argmin(np.abs(sizes - mid_seconds)))
  out = {}
  for ref in ('ref_i', 'ref_h'):
    f = np.asarray(report['mean'][ref]['f'])
    out[ref] = dict(f_mid=float(f[mid]), mid_seconds=float(sizes[mid]),
                    f_best=float(f.max()), best_seconds=float(sizes[f.argmax()]))
  return out


# ----------------------------------------------------------------------------
# Plots.


def plot_curves(reports: dict[str, dict], path: pathlib.Path,
                title: str = '') -> None:
  """F against kernel size: one line per representation, one panel per reference."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  from matplotlib import pyplot as plt  # pylint: disable=g-import-not-at-top
  fig, axes = plt.subplots(1, 2, figsize=(10, 3.5), sharey=True)
  for ax, ref, label in zip(axes, ('ref_i', 'ref_h'),
                            ('vs Ref_I (instruments)', 'vs Ref_H (pitch classes)')):
    for name, report in reports.items():
      ax.plot(report['kernel_seconds'], report['mean'][ref]['f'], label=name)
    ax.set_title(label)
    ax.set_xlabel('kernel size (s)')
    ax.grid(alpha=0.3)
  axes[0].set_ylabel('boundary F (3 s)')
  axes[0].set_ylim(0, 1)
  axes[1].legend()
  if title:
    fig.suptitle(title)
  fig.tight_layout()
  fig.savefig(path, dpi=90)
  plt.close(fig)


def plot_ssms(ssms: dict, rate: float, path: pathlib.Path, title: str,
              feature_label: str = 'embedding') -> None:
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  from matplotlib import pyplot as plt  # pylint: disable=g-import-not-at-top
  fig, axes = plt.subplots(1, 3, figsize=(12, 4))
  for ax, (key, label) in zip(axes, (('features', feature_label),
                                     ('ref_i', 'Ref_I (instruments)'),
                                     ('ref_h', 'Ref_H (pitch classes)'))):
    ssm = ssms[key]
    extent = (0, len(ssm) / rate, len(ssm) / rate, 0)
    ax.imshow(ssm, cmap='gray_r', extent=extent, aspect='equal')
    ax.set_title(label)
    ax.set_xlabel('time (s)')
  axes[0].set_ylabel('time (s)')
  fig.suptitle(title)
  fig.tight_layout()
  fig.savefig(path, dpi=80)
  plt.close(fig)


# ----------------------------------------------------------------------------
# Binary.

FLAGS = flags.FLAGS


def define_flags():
  representations.define_flags()
  flags.DEFINE_string('kernel_seconds', None,
                      'Kernel sizes in seconds: "a:b" (every second) or a,b,c '
                      '(default: eval_config.ssm.kernel_seconds).')
  flags.DEFINE_integer('plots', None, 'Test versions to draw SSM PNGs of '
                       '(default: eval_config.ssm.plots).')


def parse_sizes(text: str) -> list[float]:
  if ':' in text:
    lo, hi = text.split(':')
    return [float(s) for s in range(int(lo), int(hi) + 1)]
  return [float(s) for s in text.split(',')]


def settings_from_config(config) -> SSMSettings:
  """SSMSettings of an evaluation config's `ssm` section."""
  fields = {f.name for f in dataclasses.fields(SSMSettings)}
  return SSMSettings(**{k: v for k, v in config.items() if k in fields})


def main(argv):
  del argv
  workdir = pathlib.Path(FLAGS.workdir)
  prepared, features_of, config = representations.from_flags(splits=('test',))
  sizes = parse_sizes(FLAGS.kernel_seconds or str(config.ssm.kernel_seconds))
  plots = FLAGS.plots if FLAGS.plots is not None else config.ssm.plots
  report, kept = evaluate(features_of, prepared, sizes, config.hop,
                          settings_from_config(config.ssm), keep_ssms=plots)
  out = workdir / 'ssm'
  out.mkdir(parents=True, exist_ok=True)
  name = representations.flag_name()
  report['layer'] = FLAGS.layer
  report['summary'] = summary_columns(report)
  (out / f'{name}.json').write_text(json.dumps(report, indent=1))
  plot_curves({f'{workdir.name} {name}': report}, out / f'{name}-f.png',
              f'{report["versions"]} test versions')
  for key, ssms, rate in kept:
    plot_ssms(ssms, rate, out / f'{name}-{key.replace("/", "-")}.png', key,
              name)
  for ref, columns in report['summary'].items():
    print(f'{name} vs {ref}: F {columns["f_mid"]:.3f} at '
          f'{columns["mid_seconds"]:.0f} s, best {columns["f_best"]:.3f} at '
          f'{columns["best_seconds"]:.0f} s')
  print(f'wrote {out}/{name}.json and PNGs')


if __name__ == '__main__':
  define_flags()
  cli.run(main)
