r"""SSM boundary evaluation: do embeddings follow instrumentation (Ref_I) or harmony (Ref_H)?

  python -m cvrl.ssm --workdir=W [--representation=embedding|input|mfcc|chroma]
      [--kernel_seconds=1:60] [--hop=1] [--eval_config.ssm.FIELD=...]

For every test version: features (and Ref_I, Ref_H) are smoothed with a 1 s
Hann window, downsampled to ~5 Hz and L2-normalised; S = X X^T; Foote's
novelty with Gaussian checkerboard kernels of each size; peaks above a local
average and a floor, at least 6 s apart; boundary precision / recall / F
(mir_eval, 3 s tolerance) against the peaks the same procedure finds in the
Ref_I and Ref_H SSMs. Averaged over test versions, per kernel size. Writes
W/ssm/<representation>.json, an F-vs-kernel-size PNG and, per test version,
a PNG of the three SSMs side by side (axes in seconds).

The novelty is libfmp's (`libfmp.c4.compute_novelty_ssm`, the reference;
tests match it to 1e-6), computed differently: libfmp's loop multiplies an
M x M block per frame. The checkerboard kernel is separable, K = v v^T / Z,
so novelty[n] = v^T S[n:n+M, n:n+M] v / Z = sum_i v_i (S v)[n+i, n] / Z:
one FFT correlation of the rows with v and M diagonal sums.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import warnings
from typing import Sequence

from absl import flags
import mir_eval
import numpy as np
from scipy import signal
import tqdm

from cvrl import cli
from cvrl.data import prepare as prepare_lib
from cvrl.evaluation import representations


@dataclasses.dataclass(frozen=True)
class SSMSettings:
  smooth_seconds: float = 1.0  # Hann window
  target_rate: float = 5.0  # Hz after downsampling (integer factor)
  kernel_var: float = 0.5  # libfmp's taper parameter
  peak_distance_seconds: float = 6.0
  local_average_seconds: float = 3.0
  peak_floor: float = 0.05  # of the novelty's maximum
  tolerance_seconds: float = 3.0


# ----------------------------------------------------------------------------
# Features -> SSM -> novelty -> boundaries.


def smooth_downsample(features: np.ndarray, rate: float,
                      settings: SSMSettings) -> tuple[np.ndarray, float]:
  """[N, D] at `rate` -> ([N', D] Hann-smoothed and downsampled, new rate)."""
  length = max(1, int(round(settings.smooth_seconds * rate)))
  window = signal.windows.hann(length + 2)[1:-1]  # no zero end points
  smoothed = signal.convolve(np.asarray(features, np.float64),
                             window[:, None], mode='same') / length
  factor = max(1, int(round(rate / settings.target_rate)))
  return smoothed[::factor], rate / factor


def normalise_rows(features: np.ndarray, threshold: float = 1e-3) -> np.ndarray:
  """L2-normalise frames; near-zero frames become the uniform unit vector
  (libfmp's convention), so silence is similar to silence."""
  norms = np.linalg.norm(features, axis=1, keepdims=True)
  uniform = np.full(features.shape[1], 1 / np.sqrt(features.shape[1]))
  return np.where(norms > threshold, features / np.maximum(norms, 1e-12),
                  uniform)


def self_similarity(features: np.ndarray, rate: float,
                    settings: SSMSettings) -> tuple[np.ndarray, float]:
  x, new_rate = smooth_downsample(features, rate, settings)
  x = normalise_rows(x)
  return x @ x.T, new_rate


def checkerboard_vector(half: int, var: float = 0.5) -> np.ndarray:
  """v with libfmp's kernel = outer(v, v) / sum|outer(v, v)|, length 2L+1."""
  taper = np.sqrt(1 / 2) / (half * var)
  axis = np.arange(-half, half + 1)
  return np.sign(axis) * np.exp(-taper ** 2 * axis ** 2)


def novelty(ssm: np.ndarray, half: int, var: float = 0.5) -> np.ndarray:
  """Foote novelty of an [N, N] SSM with a (2*half+1) Gaussian checkerboard.

  Equals libfmp.c4.compute_novelty_ssm(ssm, L=half, var=var) (zero padding,
  exclude=False), in O(N^2 log N) instead of O(N M^2).
  """
  v = checkerboard_vector(half, var)
  size = len(v)
  n = ssm.shape[0]
  padded = np.pad(np.asarray(ssm, np.float64), half)
  # rows[a, k] = sum_j v_j padded[a, k + j]
  rows = signal.fftconvolve(padded, v[None, ::-1], mode='valid', axes=1)
  out = np.zeros(n)
  for i in range(size):
    out += v[i] * rows[i + np.arange(n), np.arange(n)]
  return out / np.sum(np.abs(v)) ** 2


def pick_peaks(curve: np.ndarray, rate: float,
               settings: SSMSettings) -> np.ndarray:
  """Peak positions in seconds: above a local average plus a floor, >= 6 s apart."""
  if curve.size == 0 or np.max(curve) <= 0:
    return np.zeros(0)
  curve = curve / np.max(curve)
  width = max(1, int(round(settings.local_average_seconds * rate)))
  local = np.convolve(curve, np.ones(width) / width, mode='same')
  distance = max(1, int(round(settings.peak_distance_seconds * rate)))
  peaks, _ = signal.find_peaks(curve, distance=distance,
                               height=settings.peak_floor)
  peaks = peaks[curve[peaks] > local[peaks] + settings.peak_floor]
  return peaks / rate


def boundary_prf(reference: np.ndarray, estimate: np.ndarray,
                 tolerance: float = 3.0) -> tuple[float, float, float]:
  """Precision, recall, F with one-to-one matching within `tolerance` s.

  Both empty: a perfect (1, 1, 1) answer; one empty: 0 where undefined.
  """
  if len(reference) == 0 and len(estimate) == 0:
    return 1.0, 1.0, 1.0
  if len(reference) == 0 or len(estimate) == 0:
    return 0.0, 0.0, 0.0
  with warnings.catch_warnings():
    warnings.simplefilter('ignore')
    f, p, r = mir_eval.onset.f_measure(np.sort(reference), np.sort(estimate),
                                       window=tolerance)
  return float(p), float(r), float(f)


def kernel_half(seconds: float, rate: float) -> int:
  """L of a kernel spanning `seconds` (M = 2L + 1 frames), at least 1."""
  return max(1, int(round(seconds * rate / 2)))


# ----------------------------------------------------------------------------
# Evaluation over versions.


def evaluate_version(features: np.ndarray, instruments: np.ndarray,
                     pitch_classes: np.ndarray, rate: float,
                     kernel_seconds: Sequence[float],
                     settings: SSMSettings = SSMSettings()) -> dict:
  """Boundary P/R/F of one version's features against Ref_I and Ref_H SSMs."""
  ssms = {}
  for name, values in (('features', features), ('ref_i', instruments),
                       ('ref_h', pitch_classes)):
    ssms[name], ssm_rate = self_similarity(np.asarray(values, np.float64),
                                           rate, settings)
  result = {ref: dict(precision=[], recall=[], f=[]) for ref in ('ref_i', 'ref_h')}
  for seconds in kernel_seconds:
    half = kernel_half(seconds, ssm_rate)
    peaks = {name: pick_peaks(novelty(s, half, settings.kernel_var), ssm_rate,
                              settings) for name, s in ssms.items()}
    for ref in ('ref_i', 'ref_h'):
      p, r, f = boundary_prf(peaks[ref], peaks['features'],
                             settings.tolerance_seconds)
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
        prepared.frame_rate / hop, kernel_seconds, settings)
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
  name = FLAGS.representation
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
