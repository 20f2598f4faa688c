"""The demo dataset builder: real scores, orchestrated, rendered as versions."""

import json

import numpy as np
import pytest
import soundfile as sf

from cvrl import audio
from cvrl.data import alignment
from cvrl.data import demo
from cvrl.data import layout
from cvrl.data import prepare
from helpers import run_python


def run(module, *args):
  return run_python('-m', module, *args)


@pytest.fixture(scope='module')
def demo_root(tmp_path_factory):
  """The demo built by its binary, exactly as the acceptance asks."""
  root = tmp_path_factory.mktemp('demo') / 'DEMO'
  result = run('cvrl.data.demo', f'--out={root}', '--pieces=2', '--versions=3',
               '--max_seconds=30')
  assert result.returncode == 0, result.stderr
  assert '2 pieces x 3 versions' in result.stdout
  return root


def test_demo_is_a_valid_dataset_that_prepares(demo_root):
  dataset = layout.load_dataset(demo_root)
  assert len(dataset.pieces) == 2
  assert all(len(p.versions) == 3 for p in dataset.pieces.values())
  assert dataset.instrument_classes == demo.CLASSES
  result = run('cvrl.data.prepare', f'--data={demo_root}')
  assert result.returncode == 0, result.stderr
  prepared = prepare.open_cache(demo_root, audio.feature_config())
  assert len(prepared.num_frames) == 6


def test_binary_rejects_bad_sizes(tmp_path):
  result = run('cvrl.data.demo', f'--out={tmp_path}', '--pieces=1')
  assert result.returncode != 0
  assert '--pieces >= 2' in result.stderr


def test_measures_monotone_and_frames_round_trip(demo_root):
  dataset = layout.load_dataset(demo_root)
  infos = layout.validate_dataset(dataset)
  rate = 22050 / 512
  for piece in dataset.pieces.values():
    maps = [infos[v.key].time_map for v in piece.versions]
    for time_map in maps:
      assert time_map.end_seconds - time_map.start_seconds <= 30.0
      assert np.all(np.diff(time_map.seconds) > 0)
      assert np.all(np.diff(time_map.measures) > 0)
    for a, b in ((0, 1), (1, 2), (2, 0)):
      lo, hi = alignment.valid_frame_range(maps[a], 10**9, rate)
      frames = np.arange(lo, hi)
      there = alignment.map_frames(frames, maps[a], maps[b], rate)
      back = alignment.map_frames(there, maps[b], maps[a], rate)
      assert np.all(np.isfinite(there))
      assert np.max(np.abs(back - frames)) < 1e-6
      # The frames patches are cut at: at most one frame off (at span edges).
      nearest = alignment.nearest_frames(there, maps[b], rate)
      assert np.max(np.abs(nearest - there)) <= 1.0
      assert np.all(np.abs(nearest - there)[1:-1] <= 0.5 + 1e-9)


def test_versions_differ_like_recordings(demo_root):
  summary = json.loads((demo_root / 'demo.json').read_text())
  for record in summary['pieces']:
    versions = record['versions'].values()
    assert len({v['soundfont'] for v in versions}) == 3
    assert len({round(v['quarters_per_minute'], 3) for v in versions}) == 3
    assert len({round(v['rt60'], 3) for v in versions}) == 3
    assert len({round(v['seconds'], 2) for v in versions}) == 3


def test_annotations_match_the_audio(demo_root):
  """Silence before the annotated first measure, sound right after it."""
  dataset = layout.load_dataset(demo_root)
  infos = layout.validate_dataset(dataset)
  for info in infos.values():
    waveform, rate = sf.read(info.version.audio_path)
    start = int(info.time_map.start_seconds * rate)
    before = np.sqrt(np.mean(waveform[:max(start - rate // 20, 1)] ** 2))
    after = np.sqrt(np.mean(waveform[start:start + 2 * rate] ** 2))
    assert after > 30 * before, (info.version.key, before, after)


def test_instrument_activity_varies_over_time(demo_root):
  dataset = layout.load_dataset(demo_root)
  infos = layout.validate_dataset(dataset)
  from cvrl.data import annotations
  for piece in dataset.pieces.values():
    info = infos[piece.versions[0].key]
    frames = 1 + int(info.duration * 43)
    refs = annotations.version_references(dataset, info, frames, 43.0)
    active = refs.instruments[refs.valid]
    changes = np.sum(np.any(np.diff(active, axis=0) != 0, axis=1))
    assert changes >= 3
    assert len({tuple(row) for row in active}) >= 3


def test_orchestration_covers_the_orchestra():
  rng = np.random.default_rng(0)
  notes = []
  for part, base in enumerate((76, 69, 60, 48)):
    for q in range(0, 400, 2):
      notes.append((q, q + 2, base + (q % 5), part))
  score = demo.Score('synthetic', np.array(notes, float),
                     np.arange(0, 401, 4.0), 4)
  used = set()
  for _ in range(5):
    plan = demo.orchestrate(score, rng)
    used |= {demo.CLASSES[int(c)] for c in plan[:, 3]}
    for name, low, high in ((demo.CLASSES[int(c)], *demo.INSTRUMENTS[
        demo.CLASSES[int(c)]][1:]) for c in np.unique(plan[:, 3])):
      pitches = plan[plan[:, 3] == demo.CLASSES.index(name), 2]
      assert pitches.min() >= low and pitches.max() <= high, name
  assert len(used) >= 10
  for family in demo.FAMILIES.values():
    assert used & set(family)
  assert 'timpani' in used


def test_same_seed_same_files(tmp_path):
  for out in ('a', 'b'):
    demo.build_piece(tmp_path / out, 'bach/bwv66.6', num_versions=2,
                     max_seconds=8, seed=11)
  files = sorted(p.relative_to(tmp_path / 'a')
                 for p in (tmp_path / 'a').rglob('*') if p.is_file())
  assert len(files) == 6  # notes, instruments, 2 x (audio, measures)
  for name in files:
    assert (tmp_path / 'a' / name).read_bytes() == (
        tmp_path / 'b' / name).read_bytes(), name


def test_binary_replaces_a_demo_but_refuses_other_folders(tmp_path):
  other = tmp_path / 'mine'
  other.mkdir()
  (other / 'thesis.tex').write_text('precious')
  result = run('cvrl.data.demo', f'--out={other}', '--pieces=2',
               '--versions=2', '--max_seconds=5')
  assert result.returncode != 0 and 'not empty' in result.stderr
  assert (other / 'thesis.tex').read_text() == 'precious'
  out = tmp_path / 'demo'
  for versions in (3, 2):  # a rebuild with other settings replaces the first
    result = run('cvrl.data.demo', f'--out={out}', '--pieces=2',
                 f'--versions={versions}', '--max_seconds=5')
    assert result.returncode == 0, result.stderr
  assert sorted(p.name for p in (out / 'measures').iterdir()) == [
      'bach_bwv190-7-inst', 'mozart_k80_movement1']
  assert len(list((out / 'audio').rglob('*.flac'))) == 4
  assert not (tmp_path / '.demo.building').exists()


def test_one_soundfont_gives_versions_the_same_timbres(tmp_path):
  record = demo.build_piece(tmp_path, 'bach/bwv66.6', num_versions=3,
                            max_seconds=5, seed=3, soundfonts=('TimGM6mb',))
  assert [v['soundfont'] for v in record['versions'].values()] == [
      'TimGM6mb'] * 3
  with pytest.raises(ValueError, match='--soundfonts=Steinway'):
    demo.build_demo(tmp_path / 'x', pieces=2, soundfonts=('Steinway',))


@pytest.mark.parametrize('draw', ['piece', 'instrument'])
def test_soundfont_draws_change_only_the_samples(demo_root, tmp_path, draw):
  """Same seed: same notes, performances and annotations; other SoundFonts."""
  other = tmp_path / draw
  result = run('cvrl.data.demo', f'--out={other}', '--pieces=2',
               '--versions=3', '--max_seconds=30', f'--soundfont_draw={draw}')
  assert result.returncode == 0, result.stderr
  base = json.loads((demo_root / 'demo.json').read_text())
  drawn = json.loads((other / 'demo.json').read_text())
  assert drawn['soundfont_draw'] == draw
  for a, b in zip(base['pieces'], drawn['pieces']):
    piece = a['piece']
    for name in ('notes', 'instruments'):
      assert ((demo_root / name / f'{piece}.csv').read_text() ==
              (other / name / f'{piece}.csv').read_text())
    for version, va in a['versions'].items():
      vb = b['versions'][version]
      assert va['quarters_per_minute'] == vb['quarters_per_minute']
      assert ((demo_root / 'measures' / piece / f'{version}.csv').read_text()
              == (other / 'measures' / piece / f'{version}.csv').read_text())
    per_version = [set(v['soundfonts'].values())
                   for v in b['versions'].values()]
    if draw == 'piece':  # one SoundFont, the same in every version
      assert all(len(s) == 1 for s in per_version)
      assert len(set.union(*per_version)) == 1
    else:  # each instrument its own draw, so versions mix SoundFonts
      assert any(len(s) > 1 for s in per_version)
  assert all(len(set(v['soundfonts'].values())) == 1
             for p in base['pieces'] for v in p['versions'].values())
