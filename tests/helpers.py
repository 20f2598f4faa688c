"""Test helpers: tiny cross-version datasets generated on the fly, subprocesses."""

import os

import pathlib
import subprocess
import sys

import jax
import numpy as np
import soundfile as sf

SR = 22050
HOP = 512
ROOT = pathlib.Path(__file__).parents[1]


def assert_trees_close(actual, expected, tolerance: float,
                       floor: float = 0.0):
  """Every array of `actual` within `tolerance` of `expected`'s largest value.

  Scale-relative because float32 summation order differs between
  formulations and processes. An array whose largest value is below `floor`
  (zero in exact arithmetic, e.g. a bias before BatchNorm: its values are
  rounding noise) is held to `floor` instead of its own scale.
  """
  def close(path, a, b):
    scale = max(float(np.abs(b).max()), floor) or 1.0
    np.testing.assert_allclose(np.asarray(a) / scale, np.asarray(b) / scale,
                               atol=tolerance, rtol=0,
                               err_msg=jax.tree_util.keystr(path))
  jax.tree_util.tree_map_with_path(close, actual, expected)


def run_python(*args, timeout=600):
  """Runs `python *args` (a -m binary or a script) against this checkout."""
  env = dict(os.environ, PYTHONPATH=str(ROOT))
  return subprocess.run([sys.executable, *args], capture_output=True,
                        text=True, env=env, timeout=timeout)


def tempo_curve_seconds(measures, seconds_per_measure, rubato=0.0,
                        offset=0.0):
  """Seconds at measure positions for a tempo with sinusoidal rubato.

  Exact integral of (seconds per measure) * (1 + rubato * cos(2 pi m / 4)).
  """
  m = np.asarray(measures, dtype=np.float64) - 1.0
  return offset + seconds_per_measure * (
      m + rubato * 4 / (2 * np.pi) * np.sin(2 * np.pi * m / 4))


def tone(seconds, pitch_hz=440.0, sr=SR, seed=0):
  t = np.arange(int(seconds * sr)) / sr
  noise = np.random.default_rng(seed).standard_normal(t.size) * 0.01
  return (0.2 * np.sin(2 * np.pi * pitch_hz * t) + noise).astype(np.float32)


def write_csv(path, rows, header=None, delimiter=','):
  path = pathlib.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  lines = [] if header is None else [delimiter.join(header)]
  lines += [delimiter.join(str(x) for x in row) for row in rows]
  path.write_text('\n'.join(lines) + '\n')


VERSIONS = {  # version: (seconds per measure, rubato, lead-in seconds)
    'a': (2.0, 0.0, 0.5),
    'b': (1.6, 0.15, 1.0),
    'c': (2.4, -0.1, 0.2),
}
NUM_MEASURES = 8  # annotated span: measure 1 .. 9 (end of measure 8)


def measure_rows(version):
  spm, rubato, lead = VERSIONS[version]
  measures = np.arange(1, NUM_MEASURES + 1.001, 0.25)
  seconds = tempo_curve_seconds(measures, spm, rubato, lead)
  return [(f'{s:.6f}', f'{m:.4f}') for s, m in zip(seconds, measures)]


def version_seconds(version):
  spm, rubato, lead = VERSIONS[version]
  return tempo_curve_seconds(NUM_MEASURES + 1, spm, rubato, lead) + 0.7


def make_cvrl_dataset(root, pieces=('p1', 'p2'), versions=('a', 'b', 'c')):
  """cvrl-format dataset with score-level instruments and notes."""
  root = pathlib.Path(root)
  for i, piece in enumerate(pieces):
    for j, v in enumerate(versions):
      path = root / 'audio' / piece / f'{v}.wav'
      path.parent.mkdir(parents=True, exist_ok=True)
      sf.write(path, tone(version_seconds(v), 220 * (i + 1) + 10 * j, seed=j),
               SR)
      write_csv(root / 'measures' / piece / f'{v}.csv', measure_rows(v),
                header=('seconds', 'measure'))
    write_csv(root / 'instruments' / f'{piece}.csv',
              [(1, 5, 'violin'), (3, 9, 'flute'), (5, 7, 'Horn')],
              header=('start_measure', 'end_measure', 'instrument'))
    write_csv(root / 'notes' / f'{piece}.csv',
              [(1, 3, 60, 'violin'), (2, 4, 67, 'flute'), (5, 9, 64, 'horn')],
              header=('start_measure', 'end_measure', 'pitch', 'instrument'))
  write_csv(root / 'pieces.csv',
            [(p, 'test' if k == len(pieces) - 1 else 'train')
             for k, p in enumerate(pieces)], header=('piece', 'split'))
  return root


def published_frames(seconds):
  return int(np.floor(seconds * SR / HOP)) + 1


def make_published_dataset(root, pieces=('Beethoven_Op055-01', 'Dvorak_Op095-01'),
                           versions=('V1', 'V2', 'V3'), frame_error=0):
  """Dataset in the published layout with frame-wise npz references."""
  root = pathlib.Path(root)
  for i, piece in enumerate(pieces):
    for j, (v, version) in enumerate(zip('abc', versions)):
      stem = f'{piece}_{version}'
      seconds = version_seconds(v)
      audio = tone(seconds, 300 + 50 * i, seed=j)
      path = root / '01_RawData' / 'audio_wav' / f'{stem}.wav'
      path.parent.mkdir(parents=True, exist_ok=True)
      sf.write(path, audio, SR)
      write_csv(root / '02_Annotations' / 'ann_audio_sync' / f'{stem}.csv',
                measure_rows(v))
      frames = 1 + len(audio) // HOP + frame_error
      instruments = np.zeros((frames, 20), np.float32)
      instruments[:, 6] = 1  # flute everywhere
      instruments[frames // 2:, 14] = 1  # violin in the second half
      instruments[:, 0] = 1  # a column the published probe ignores
      notes = np.zeros((frames, 128), np.float32)
      notes[:, 60] = 1  # C4
      notes[frames // 2:, 79] = 1  # G5
      for sub, array in (('ann_audio_instruments_npz', instruments),
                         ('ann_audio_note_npz', notes)):
        out = root / '02_Annotations' / sub / f'{stem}.npz'
        out.parent.mkdir(parents=True, exist_ok=True)
        np.savez(out, array)
  return root
