"""Dataset layouts and validation: every broken input gives one clear error."""

import json
import pathlib
import shutil

import numpy as np
import pytest

import helpers
from cvrl.data import layout
from helpers import make_published_dataset, write_csv


def validate(root):
  return layout.validate_dataset(layout.load_dataset(root))


def test_cvrl_layout_loads_and_validates(cvrl_dataset):
  dataset = layout.load_dataset(cvrl_dataset)
  assert dataset.layout == 'cvrl'
  assert sorted(dataset.pieces) == ['p1', 'p2']
  assert [v.name for v in dataset.pieces['p1'].versions] == ['a', 'b', 'c']
  assert [s.piece for s in dataset.splits['train']] == ['p1']
  assert [s.piece for s in dataset.splits['test']] == ['p2']
  infos = validate(cvrl_dataset)
  assert set(infos) == {f'{p}/{v}' for p in ('p1', 'p2') for v in 'abc'}
  assert infos['p1/a'].time_map.first_measure == 1.0
  assert infos['p1/a'].time_map.last_measure == 9.0


def test_published_layout_loads_without_conversion(published_dataset):
  dataset = layout.load_dataset(published_dataset)
  assert dataset.layout == 'published'
  assert sorted(dataset.pieces) == ['Beethoven_Op055-01', 'Dvorak_Op095-01']
  version = dataset.pieces['Beethoven_Op055-01'].versions[0]
  assert version.name == 'V1'
  assert version.instruments_npz.name == 'Beethoven_Op055-01_V1.npz'
  assert dataset.instrument_classes == layout.PUBLISHED_CLASSES
  # No pieces.csv: the default split still has train and test pieces.
  assert dataset.splits['test'] and dataset.splits['train']
  validate(published_dataset)


def test_winterreise_style_measure_files(tmp_path, cvrl_dataset):
  root = tmp_path / 'swd'
  for piece in ('Schubert_D911-01', 'Schubert_D911-02'):
    for version, source in (('HU33', 'a'), ('SC06', 'b')):
      stem = f'{piece}_{version}'
      audio = root / '01_RawData' / 'audio_wav' / f'{stem}.wav'
      audio.parent.mkdir(parents=True, exist_ok=True)
      shutil.copy(cvrl_dataset / 'audio' / 'p1' / f'{source}.wav', audio)
      rows = layout.read_rows(cvrl_dataset / 'measures' / 'p1' / f'{source}.csv')
      write_csv(root / '02_Annotations' / 'ann_audio_measure' / f'{stem}.csv',
                [f for _, f in rows[1:]], header=('"start"', '"measure"'),
                delimiter=';')
  write_csv(root / 'pieces.csv', [('Schubert_D911-01', 'train'),
                                  ('Schubert_D911-02', 'test')],
            header=('piece', 'split'))
  dataset = layout.load_dataset(root)
  assert dataset.layout == 'swd'
  assert [v.name for v in dataset.pieces['Schubert_D911-01'].versions] == [
      'HU33', 'SC06']
  infos = layout.validate_dataset(dataset)
  assert infos['Schubert_D911-01/SC06'].time_map.last_measure == 9.0


def test_measure_file_with_quoted_header_and_semicolons(tmp_path):
  path = tmp_path / 'm.csv'
  path.write_text('"start";"measure"\n"0.50";"1"\n1.25;2\n2.0;3\n')
  time_map = layout.read_measures(path)
  np.testing.assert_allclose(time_map.seconds, [0.5, 1.25, 2.0])
  np.testing.assert_allclose(time_map.measures, [1, 2, 3])


def test_split_rows_by_version_and_measure_range(cvrl_dataset):
  write_csv(cvrl_dataset / 'pieces.csv', [
      ('p1', 'train', '', '', ''), ('p2', 'train', 'a b', 1, 6),
      ('p2', 'test', 'b c', 6, 9)],
            header=('piece', 'split', 'versions', 'start_measure',
                    'end_measure'))
  dataset = layout.load_dataset(cvrl_dataset)
  assert dataset.splits['train'][1] == layout.Segment('p2', ('a', 'b'),
                                                      (1.0, 6.0))
  assert dataset.splits['test'] == (layout.Segment('p2', ('b', 'c'),
                                                   (6.0, 9.0)),)
  validate(cvrl_dataset)


# ----------------------------------------------------------------------------
# Errors: each names the file (and row, value).


def expect_error(root, *fragments):
  with pytest.raises(layout.DatasetError) as error:
    validate(root)
  for fragment in fragments:
    assert fragment in str(error.value), str(error.value)
  return str(error.value)


def test_error_missing_audio(cvrl_dataset):
  (cvrl_dataset / 'audio' / 'p1' / 'b.wav').unlink()
  expect_error(cvrl_dataset, 'audio/p1/b.{wav,flac,', 'missing audio',
               'measures/p1/b.csv')


def test_error_unreadable_audio(cvrl_dataset):
  (cvrl_dataset / 'audio' / 'p2' / 'a.wav').write_bytes(b'not audio at all')
  expect_error(cvrl_dataset, 'audio/p2/a.wav', 'unreadable audio')


def test_error_non_monotone_measures(cvrl_dataset):
  path = cvrl_dataset / 'measures' / 'p1' / 'a.csv'
  lines = path.read_text().splitlines()
  lines[4], lines[5] = lines[5], lines[4]  # swap two data rows
  path.write_text('\n'.join(lines) + '\n')
  expect_error(cvrl_dataset, 'measures/p1/a.csv', 'row 6', 'does not increase')


def test_error_non_numeric_measure(cvrl_dataset):
  path = cvrl_dataset / 'measures' / 'p2' / 'c.csv'
  lines = path.read_text().splitlines()
  lines[3] = lines[3].split(',')[0] + ',three'
  path.write_text('\n'.join(lines) + '\n')
  expect_error(cvrl_dataset, 'measures/p2/c.csv', 'row 4', "'three'",
               'not a number')


def test_error_annotation_beyond_audio(cvrl_dataset):
  path = cvrl_dataset / 'measures' / 'p1' / 'c.csv'
  path.write_text(path.read_text() + '999.0,9.5\n')
  expect_error(cvrl_dataset, 'measures/p1/c.csv', '999.0',
               'beyond the end of the audio')


def test_error_versions_disagree_on_last_measure(cvrl_dataset):
  path = cvrl_dataset / 'measures' / 'p2' / 'b.csv'
  lines = path.read_text().splitlines()[:-1]  # drops the row of measure 9
  path.write_text('\n'.join(lines) + '\n')
  expect_error(cvrl_dataset, 'measures/p2/b.csv', 'last measure 8.75',
               'measures/p2/a.csv')


def test_error_unknown_instrument(cvrl_dataset):
  write_csv(cvrl_dataset / 'instruments' / 'p2.csv',
            [(1, 3, 'violin'), (2, 4, 'fluet')],
            header=('start_measure', 'end_measure', 'instrument'))
  expect_error(cvrl_dataset, 'instruments/p2.csv', 'row 3', "'fluet'",
               "did you mean 'flute'")


def test_error_piece_with_one_version(cvrl_dataset):
  for v in 'bc':
    (cvrl_dataset / 'measures' / 'p2' / f'{v}.csv').unlink()
  expect_error(cvrl_dataset, 'measures/p2/a.csv', "'p2' has only one version")


def test_error_empty_split(cvrl_dataset):
  write_csv(cvrl_dataset / 'pieces.csv', [('p1', 'train'), ('p2', 'train')],
            header=('piece', 'split'))
  expect_error(cvrl_dataset, 'pieces.csv', "split 'test' is empty")


def test_error_split_names_unknown_piece(cvrl_dataset):
  write_csv(cvrl_dataset / 'pieces.csv', [('p1', 'train'), ('p9', 'test')],
            header=('piece', 'split'))
  expect_error(cvrl_dataset, 'pieces.csv', "unknown piece 'p9'")


def test_error_framewise_length_mismatch(tmp_path):
  root = make_published_dataset(tmp_path / 'pub', frame_error=5)
  expect_error(root, 'ann_audio_instruments_npz/Beethoven_Op055-01_V1.npz',
               'frames but the audio')


def test_error_not_a_dataset(tmp_path):
  (tmp_path / 'empty').mkdir()
  with pytest.raises(layout.DatasetError, match='not a cross-version dataset'):
    layout.load_dataset(tmp_path / 'empty')


def test_error_bad_note_rows(cvrl_dataset):
  path = cvrl_dataset / 'notes' / 'p1.csv'
  write_csv(path, [(1, 3, 60, 'violin'), (2, 4, 130, 'flute')],
            header=('start_measure', 'end_measure', 'pitch', 'instrument'))
  expect_error(cvrl_dataset, 'notes/p1.csv', 'row 3', "pitch '130'")
  write_csv(path, [(3, 2, 60, 'violin')],
            header=('start_measure', 'end_measure', 'pitch', 'instrument'))
  expect_error(cvrl_dataset, 'notes/p1.csv', 'row 2', 'is not after')
  write_csv(path, [(1, 2, 60)],
            header=('start_measure', 'end_measure', 'pitch', 'instrument'))
  expect_error(cvrl_dataset, 'notes/p1.csv', 'row 2', 'expected start_measure')


def test_error_same_audio_in_two_splits(cvrl_dataset):
  header = ('piece', 'split', 'versions', 'start_measure', 'end_measure')
  write_csv(cvrl_dataset / 'pieces.csv', [
      ('p1', 'train', '', '', ''), ('p2', 'train', 'a b', 1, 6),
      ('p2', 'test', 'b c', 5, 9)], header=header)
  expect_error(cvrl_dataset, 'pieces.csv', "piece 'p2' versions ['b']",
               "both 'test' and 'train'", '[5.0, 6.0)')
  # The same versions over other measures are fine.
  write_csv(cvrl_dataset / 'pieces.csv', [
      ('p1', 'train', '', '', ''), ('p2', 'train', 'a b', 1, 6),
      ('p2', 'test', 'c a', 6, 9)], header=header)
  validate(cvrl_dataset)


def test_audio_without_annotation_is_reported(cvrl_dataset, caplog):
  (cvrl_dataset / 'measures' / 'p1' / 'c.csv').unlink()
  with caplog.at_level('WARNING'):
    dataset = layout.load_dataset(cvrl_dataset)
  assert [v.name for v in dataset.pieces['p1'].versions] == ['a', 'b']
  assert 'audio/p1/c.wav: audio without a measure annotation' in caplog.text


def _splits_only(splits):
  return layout.Dataset(root=pathlib.Path('/nowhere'), layout='cvrl', pieces={},
                        splits=splits, instrument_classes=())


def test_validation_view_holds_out_every_4th_train_piece_and_drops_test():
  train = tuple(layout.Segment(f'p{i}') for i in range(8))
  dataset = _splits_only({'train': train, 'test': (layout.Segment('t'),)})
  assert layout.validation_pieces(dataset) == ['p1', 'p5']
  view = layout.validation_view(dataset)
  assert [s.piece for s in view.splits['test']] == ['p1', 'p5']
  assert [s.piece for s in view.splits['train']] == [
      'p0', 'p2', 'p3', 'p4', 'p6', 'p7']
  assert set(view.splits) == {'train', 'test'}  # the test split is gone


def test_validation_view_uses_a_val_split_when_the_dataset_has_one():
  dataset = _splits_only({'train': (layout.Segment('a'), layout.Segment('b')),
                          'val': (layout.Segment('b', ('v1', 'v2')),),
                          'test': (layout.Segment('t'),)})
  view = layout.validation_view(dataset)
  assert view.splits['test'] == (layout.Segment('b', ('v1', 'v2')),)
  assert [s.piece for s in view.splits['train']] == ['a']
  with pytest.raises(layout.DatasetError, match='too few train pieces'):
    layout.validation_view(_splits_only({'train': (layout.Segment('a'),),
                                         'test': ()}))


def test_validation_probe_never_reads_the_test_split(tmp_path):
  root = helpers.make_cvrl_dataset(tmp_path / 'd', pieces=('p1', 'p2', 'p3'))
  from cvrl import audio  # pylint: disable=g-import-not-at-top
  from cvrl.data import prepare  # pylint: disable=g-import-not-at-top
  prepare.prepare(root, audio.feature_config(), progress=False)
  view = prepare.open_cache(root, audio.feature_config(), validation=True)
  assert [s.piece for s in view.dataset.splits['test']] == ['p2']
  assert [s.piece for s in view.dataset.splits['train']] == ['p1']
  result = helpers.run_python('-m', 'cvrl.probe', f'--workdir={tmp_path / "w"}',
                              f'--data={root}', '--representation=mfcc',
                              '--validation', '--seeds=1', '--hop=2')
  assert result.returncode == 0, result.stderr
  report = json.loads((tmp_path / 'w' / 'probe' / 'mfcc-val-instruments.json')
                      .read_text())
  assert report['evaluated_on'] == 'validation pieces'
  assert not (tmp_path / 'w' / 'baselines' / 'mfcc' / 'p3').exists()


def test_audio_and_annotation_paths_of_every_layout(tmp_path, published_dataset):
  """Where cvrl.data.sync finds recordings and writes annotations, per layout."""
  found = layout.find_audio(published_dataset, 'published')
  assert set(found) == {'Beethoven_Op055-01', 'Dvorak_Op095-01'}
  piece, versions = next(iter(sorted(found.items())))
  version, audio = next(iter(sorted(versions.items())))
  assert audio.name == f'{piece}_{version}.wav'
  path = layout.measures_path(published_dataset, 'published', piece, version)
  assert path.exists()  # the published annotation of that very recording
  assert layout.measures_path(tmp_path, 'swd', 'p', 'v') == (
      tmp_path / '02_Annotations' / 'ann_audio_measure' / 'p_v.csv')
  assert layout.measures_path(tmp_path, 'cvrl', 'p', 'v') == (
      tmp_path / 'measures' / 'p' / 'v.csv')
