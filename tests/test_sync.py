"""cvrl.data.sync on generated audio with known time warps."""

import json
import pathlib
import shutil

import numpy as np
import pytest
import soundfile as sf

import helpers
from cvrl.data import layout
from cvrl.data import sync

SR = helpers.SR
BEATS = 48


def chord_plan(seed: int, beats: int = BEATS) -> list[tuple[int, ...]]:
  """A random chord (3 MIDI pitches) per beat: a 'score' no other seed shares."""
  rng = np.random.default_rng(seed)
  roots = rng.integers(48, 72, beats)
  return [tuple(int(r + i) for i in rng.choice([0, 3, 4, 7, 10, 12], 3,
                                                  replace=False))
          for r in roots]


def beat_seconds(tempo: str, lead_in: float, beats: int = BEATS) -> np.ndarray:
  """Onset time of every beat (and of the end) for a named tempo curve."""
  b = np.arange(beats + 1, dtype=np.float64)
  if tempo == 'steady':
    return lead_in + 0.55 * b
  # Accelerating then slowing: 0.45 .. 0.75 s per beat.
  return lead_in + 0.6 * b + 0.15 * 8 / (2 * np.pi) * np.sin(2 * np.pi * b / 8)


def render(plan, seconds, timbre: np.ndarray, cents: float = 0.0,
           tail: float = 1.0, seed: int = 0) -> np.ndarray:
  """Additive synthesis: each chord a decaying harmonic tone until the next."""
  rng = np.random.default_rng(seed)
  audio = np.zeros(int((seconds[-1] + tail) * SR))
  for pitches, start, end in zip(plan, seconds[:-1], seconds[1:]):
    n0, n = int(start * SR), int((end - start) * SR)
    t = np.arange(n) / SR
    envelope = np.minimum(t / 0.01, 1.0) * np.exp(-3.0 * t)
    for pitch in pitches:
      f0 = 440.0 * 2 ** ((pitch - 69 + cents / 100) / 12)
      for h, weight in enumerate(timbre, start=1):
        if h * f0 < SR / 2:
          audio[n0:n0 + n] += weight * envelope * np.sin(2 * np.pi * h * f0 * t)
  audio += 1e-3 * rng.standard_normal(audio.size)
  return (0.25 * audio / np.abs(audio).max()).astype(np.float32)


def applause(seconds: float, seed: int = 1) -> np.ndarray:
  """Broadband noise in random claps: not silence, and no pitch."""
  rng = np.random.default_rng(seed)
  noise = rng.standard_normal(int(seconds * SR))
  claps = (rng.random(noise.size) < 30 / SR).astype(np.float64)
  envelope = np.convolve(claps, np.exp(-np.arange(400) / 80.0))[:noise.size]
  return (0.1 * noise * (0.3 + envelope)).astype(np.float32)


def write_version(root, piece, version, audio, beats=None):
  path = root / 'audio' / piece / f'{version}.wav'
  path.parent.mkdir(parents=True, exist_ok=True)
  sf.write(str(path), audio, SR)
  if beats is not None:
    helpers.write_csv(root / 'measures' / piece / f'{version}.csv',
                      [(f'{s:.6f}', f'{1 + i / 4:.6f}')
                       for i, s in enumerate(beats)], ('seconds', 'measure'))


STEADY = beat_seconds('steady', 1.0)
WARPED = beat_seconds('warped', 2.5)
HAND = [(1.0, 1.0), (5.0, 3.0), (20.0, 13.0)]


@pytest.fixture(scope='module')
def synced(tmp_path_factory):
  """One dataset, synchronised once; the tests read what it left behind."""
  root = tmp_path_factory.mktemp('sync') / 'data'
  plan = chord_plan(0)
  bright = np.array([1.0, 0.6, 0.4, 0.25, 0.15, 0.1])
  dark = np.array([1.0, 0.3, 0.1, 0.05])
  write_version(root, 'p', 'ref', render(plan, STEADY, bright), STEADY)
  # Other timbre, 20 cents sharp, rubato, 4 s of silence, 15 s of applause.
  warped = render(plan, WARPED, dark, cents=20)
  warped = np.concatenate([np.zeros(4 * SR, np.float32), warped,
                           applause(15.0)])
  write_version(root, 'p', 'warped', warped)
  write_version(root, 'p', 'stranger', render(chord_plan(7), WARPED, dark))
  # Annotated by hand (deliberately not what the audio says): never touched.
  write_version(root, 'p', 'hand', render(plan, WARPED, bright))
  helpers.write_csv(root / 'measures' / 'p' / 'hand.csv', HAND,
                    ('seconds', 'measure'))
  # A piece with no annotation at all.
  write_version(root, 'q', 'x', render(chord_plan(3), STEADY, bright))
  write_version(root, 'q', 'y', render(chord_plan(3), WARPED, dark, cents=-15))
  helpers.write_csv(root / 'pieces.csv', [('p', 'train'), ('q', 'test')],
                    ('piece', 'split'))
  jobs = sync.plan(root, reference='ref', check_annotated=True)
  assert [(j.piece, j.reference) for j in jobs] == [('p', 'ref'), ('q', 'x')]
  # The binary, two pieces in two worker processes.
  result = helpers.run_python('-m', 'cvrl.data.sync', f'--data={root}',
                              '--reference=ref', '--check_annotated',
                              '--workers=2')
  assert result.returncode == 0, result.stderr
  assert 'left out: p/stranger: cost ratio' in result.stdout, result.stdout
  assert ('3 annotation(s) derived, 0 up to date, 1 version(s) left out'
          in result.stdout)
  rows = json.loads((root / sync.REPORT).read_text())
  return root, {f"{r['piece']}/{r['version']}": r for r in rows}


def test_a_known_warp_is_recovered_despite_silence_and_applause(synced):
  root, rows = synced
  assert rows['p/warped']['status'] == 'ok', rows['p/warped']
  derived = layout.read_measures(root / 'measures' / 'p' / 'warped.csv')
  truth = 4.0 + WARPED  # 4 s of silence were put in front
  measures = 1 + np.arange(BEATS + 1) / 4
  np.testing.assert_allclose(derived.measures, measures)
  errors_ms = 1000 * np.abs(derived.seconds - truth)
  assert np.median(errors_ms) <= 30, errors_ms
  assert np.percentile(errors_ms, 95) <= 100, errors_ms
  assert rows['p/warped']['cost_ratio'] < 0.5


def test_a_derived_annotation_is_marked(synced):
  root, _ = synced
  path = root / 'measures' / 'p' / 'warped.csv'
  assert path.read_text().startswith('# derived by cvrl.data.sync from ref')
  record = layout.derived_record(path)
  assert record is not None and record['kind'] == 'synchronised'
  assert record['inputs']['reference'] == 'ref'
  assert {'cost_per_step', 'cost_ratio', 'slope_min', 'slope_max',
          'tuning_cents'} <= set(record['quality'])


def test_a_wrong_piece_is_left_out_by_name(synced):
  root, rows = synced
  row = rows['p/stranger']
  assert row['status'] == 'left out'
  assert any('not the same piece' in p for p in row['problems']), row
  assert not (root / 'measures' / 'p' / 'stranger.csv').exists()
  record = json.loads((root / 'measures' / 'p' / 'stranger.sync.json')
                      .read_text())
  assert record['status'] == 'left out'
  report = sync.format_report(list(rows.values()))
  assert '| p | stranger | ref | left out; cost ratio' in report


def test_a_hand_annotation_is_never_overwritten_but_checked(synced):
  root, rows = synced
  path = root / 'measures' / 'p' / 'hand.csv'
  assert path.read_text() == 'seconds,measure\n1.0,1.0\n5.0,3.0\n20.0,13.0\n'
  assert not layout.sync_record_path(path).exists()
  # --check_annotated synchronised it and measured the (large) disagreement.
  assert rows['p/hand']['status'] == 'checked'
  assert rows['p/hand']['median_ms'] > 500


def test_a_piece_without_annotations_gets_the_reference_time_axis(synced):
  root, rows = synced
  assert rows['q/x']['kind'] == 'time_axis'
  x = layout.read_measures(root / 'measures' / 'q' / 'x.csv')
  np.testing.assert_allclose(np.diff(x.seconds)[:-1], 1.0)
  np.testing.assert_allclose(x.measures - x.measures[0], x.seconds -
                             x.seconds[0])
  assert abs(x.start_seconds - STEADY[0]) < 0.1  # the music, not the silence
  y = layout.read_measures(root / 'measures' / 'q' / 'y.csv')
  # Measure m of x sounds at beat (m - 1 + x0) / 0.55 of the steady tempo.
  beats = (x.seconds - STEADY[0]) / 0.55
  inside = beats <= BEATS
  truth = np.interp(beats[inside], np.arange(BEATS + 1), WARPED)
  assert np.median(np.abs(y.seconds[inside] - truth)) < 0.05


def test_derived_annotations_load_like_hand_made_ones_or_not_at_all(synced):
  root, _ = synced
  dataset = layout.load_dataset(root)
  assert {v.key for v in dataset.versions()} == {
      'p/ref', 'p/warped', 'p/hand', 'q/x', 'q/y'}
  layout.validate_dataset(dataset)
  hand_only = layout.load_dataset(root, derived_annotations=False)
  assert {v.key for v in hand_only.versions()} == {'p/ref', 'p/hand'}


def test_a_rerun_is_incremental_and_an_edited_file_becomes_hand_made(
    synced, tmp_path):
  shared, _ = synced
  root = tmp_path / 'data'  # a copy: the fixture stays as synced for the others
  shutil.copytree(shared, root, copy_function=shutil.copy2)
  path = root / 'measures' / 'p' / 'warped.csv'
  before = path.stat().st_mtime_ns
  rows = sync.run(sync.plan(root, reference='ref'), progress=False)
  by_key = {f"{r['piece']}/{r['version']}": r for r in rows}
  assert by_key['p/warped']['status'] == 'ok (up to date)'
  assert by_key['p/stranger']['status'] == 'left out (up to date)'
  assert by_key['q/x']['status'] == 'ok (up to date)'  # the time axis too
  assert by_key['q/y']['status'] == 'ok (up to date)'
  assert path.stat().st_mtime_ns == before
  # A person edits the derived file: from now on it is theirs.
  path.write_text(path.read_text().replace('# derived', '# checked; derived'))
  assert layout.derived_record(path) is None
  jobs = sync.plan(root, reference='ref', pieces=['p'])
  assert all('warped' not in job.targets for job in jobs)


def test_the_binary_on_a_missing_folder_and_an_unknown_reference(tmp_path):
  result = helpers.run_python('-m', 'cvrl.data.sync',
                              f'--data={tmp_path / "none"}')
  assert result.returncode == 1 and 'does not exist' in result.stderr
  write_version(tmp_path / 'd', 'p', 'a', np.zeros(SR, np.float32))
  write_version(tmp_path / 'd', 'p', 'b', np.zeros(SR, np.float32))
  with pytest.raises(sync.SyncError, match="no piece has a version 'zz'"):
    sync.plan(tmp_path / 'd', reference='zz')


def test_comment_lines_in_measure_files_are_skipped(tmp_path):
  path = tmp_path / 'm.csv'
  path.write_text('# derived\nseconds,measure\n0.5,1\n1.5,2\n')
  time_map = layout.read_measures(path)
  np.testing.assert_allclose(time_map.seconds, [0.5, 1.5])
  assert pathlib.Path(layout.sync_record_path(path)).name == 'm.sync.json'


def test_prepare_caches_derived_versions_and_training_may_leave_them_out(
    synced):
  from cvrl import audio  # pylint: disable=g-import-not-at-top
  from cvrl.data import prepare  # pylint: disable=g-import-not-at-top
  root, _ = synced
  config = audio.feature_config()
  prepare.prepare(root, config, progress=False)
  every = prepare.open_cache(root, config)
  assert set(every.num_frames) == {'p/ref', 'p/warped', 'p/hand', 'q/x', 'q/y'}
  hand_only = prepare.open_cache(root, config, derived_annotations=False)
  assert set(hand_only.num_frames) == {'p/ref', 'p/hand'}
  assert {v.key for v in hand_only.dataset.versions()} == {'p/ref', 'p/hand'}
  assert [s.piece for s in hand_only.dataset.splits['test']] == []


def test_the_accuracy_benchmark_strips_synchronises_and_scores(tmp_path):
  data = tmp_path / 'truth'
  bright = np.array([1.0, 0.6, 0.4, 0.25, 0.15, 0.1])
  dark = np.array([1.0, 0.3, 0.1, 0.05])
  for seed, piece in ((0, 'p'), (5, 'q')):
    plan = chord_plan(seed, beats=24)
    steady, warped = (beat_seconds('steady', 1.0, 24),
                      beat_seconds('warped', 2.0, 24))
    write_version(data, piece, 'v1', render(plan, steady, bright), steady)
    write_version(data, piece, 'v2', render(plan, warped, dark, cents=10),
                  warped)
  helpers.write_csv(data / 'pieces.csv', [('p', 'train'), ('q', 'test')],
                    ('piece', 'split'))
  result = helpers.run_python(
      str(helpers.ROOT / 'benchmarks' / 'sync_accuracy.py'), f'--data={data}',
      f'--out={tmp_path / "out"}', '--wrong=1', '--workers=1')
  assert result.returncode == 0, result.stderr
  assert '| versions | beats | median ms | p95 ms |' in result.stdout
  summary = json.loads((tmp_path / 'out' / 'sync_accuracy.json').read_text()
                       )['summary']
  assert summary['versions'] == 2 and summary['positions'] == 2 * 25
  assert summary['median_ms'] < 30 and summary['p95_ms'] < 100, summary
  assert summary['decoys_left_out'] == summary['decoys'] == ['p/wrong-q']
  assert summary['true_versions_left_out'] == []
  # What it leaves is a dataset: one hand annotation per piece, one derived.
  stripped = layout.load_dataset(tmp_path / 'out' / 'data')
  assert sorted(v.key for v in stripped.versions()) == [
      'p/v1', 'p/v2', 'q/v1', 'q/v2']
  assert layout.derived_record(stripped.version('p', 'v2').measures_path)
