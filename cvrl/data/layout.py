"""The on-disk cross-version dataset: pieces, versions, splits, and validation.

Three layouts are read as they are, without conversion:

* ``cvrl``  -- cvrl's own format (README, "Dataset format"):
  ``pieces.csv``, ``audio/<piece>/<version>.<ext>``,
  ``measures/<piece>/<version>.csv``, score-level ``instruments/<piece>.csv``
  and ``notes/<piece>.csv``, or frame-wise ``references/<piece>/<version>.npz``.
* ``published`` -- the layout of the published cross-version orchestra data:
  ``01_RawData/audio_wav/<piece>_<version>.wav``,
  ``02_Annotations/ann_audio_sync/<piece>_<version>.csv`` (comma, no header,
  seconds then measure) and frame-wise ``ann_audio_instruments_npz`` /
  ``ann_audio_note_npz`` arrays at 22050 Hz / hop 512.
* ``swd`` -- Schubert-Winterreise-style: ``01_RawData/audio_wav`` plus
  ``02_Annotations/ann_audio_measure/<piece>_<version>.csv`` with a
  ``start;measure`` header row.

Any layout may add ``pieces.csv`` (splits) and the score-level ``instruments/``
and ``notes/`` folders of the cvrl format. `load_dataset` only finds files;
`validate_dataset` opens every one of them and raises one `DatasetError`
naming the file, row and value of the first problem.
"""

from __future__ import annotations

import csv
import dataclasses
import difflib
import hashlib
import json
import pathlib
import re
from typing import Iterable, Optional, Sequence

from absl import logging
import numpy as np
import soundfile as sf

from cvrl.data import alignment

AUDIO_EXTENSIONS = ('.wav', '.flac', '.ogg', '.aiff', '.aif', '.mp3')

# Instrument classes of cvrl's own datasets (the demo uses a subset). Names
# are canonical; ALIASES maps the spellings found in scores and annotations.
INSTRUMENTS = (
    'flute', 'piccolo', 'oboe', 'english_horn', 'clarinet', 'bass_clarinet',
    'bassoon', 'contrabassoon', 'french_horn', 'trumpet', 'trombone', 'tuba',
    'timpani', 'percussion', 'glockenspiel', 'celesta', 'harp', 'piano',
    'organ', 'male_voice', 'female_voice', 'violin', 'viola', 'cello',
    'double_bass')
ALIASES = {
    'horn': 'french_horn', 'horns': 'french_horn', 'cor': 'french_horn',
    'contrabass': 'double_bass', 'bass': 'double_bass', 'violoncello': 'cello',
    'cor_anglais': 'english_horn', 'voice': 'female_voice',
}

# The published data: 22050 Hz / hop 512 frame-wise arrays; its probing uses
# 13 classes, taken in this order from these columns of the instrument npz.
PUBLISHED_FRAME_RATE = 22050 / 512
PUBLISHED_CLASSES = ('flute', 'oboe', 'clarinet', 'bassoon', 'french_horn',
                     'trumpet', 'timpani', 'male_voice', 'female_voice',
                     'violin', 'viola', 'cello', 'double_bass')
PUBLISHED_COLUMNS = (6, 7, 8, 9, 10, 11, 3, 13, 12, 14, 15, 16, 17)

# Annotations may end a little after the audio (rounding in annotation tools);
# more than this is an error.
END_TOLERANCE_S = 0.05


class DatasetError(ValueError):
  """A dataset file is missing or malformed; the message names file and row."""


@dataclasses.dataclass(frozen=True)
class Version:
  """One recording of a piece and the files that describe it."""
  piece: str
  name: str
  audio_path: pathlib.Path
  measures_path: pathlib.Path
  # Frame-wise references (optional): npz files and how to read them.
  instruments_npz: Optional[pathlib.Path] = None
  notes_npz: Optional[pathlib.Path] = None

  @property
  def key(self) -> str:
    return f'{self.piece}/{self.name}'


@dataclasses.dataclass(frozen=True)
class Piece:
  """One score with its versions and optional score-level references."""
  name: str
  versions: tuple[Version, ...]
  instruments_csv: Optional[pathlib.Path] = None
  notes_csv: Optional[pathlib.Path] = None


@dataclasses.dataclass(frozen=True)
class Segment:
  """Part of a split: some versions of a piece over a measure range.

  `versions` empty means all versions; `measures` None means the whole piece.
  Holding out a measure range or whole recordings of one work (as the
  published split does for Walkuere) is a Segment per split.
  """
  piece: str
  versions: tuple[str, ...] = ()
  measures: Optional[tuple[float, float]] = None


@dataclasses.dataclass(frozen=True)
class FramewiseFormat:
  """How to read frame-wise reference npz files of a layout."""
  frame_rate: float
  instrument_key: str
  instrument_columns: Optional[tuple[int, ...]]  # None: all, in class order
  pitch_key: str


@dataclasses.dataclass(frozen=True)
class Dataset:
  """Files of a cross-version dataset, found by `load_dataset`."""
  root: pathlib.Path
  layout: str
  pieces: dict[str, Piece]
  splits: dict[str, tuple[Segment, ...]]
  instrument_classes: tuple[str, ...]
  framewise: Optional[FramewiseFormat] = None
  splits_path: Optional[pathlib.Path] = None

  def versions(self) -> list[Version]:
    return [v for p in self.pieces.values() for v in p.versions]

  def version(self, piece: str, name: str) -> Version:
    for v in self.pieces[piece].versions:
      if v.name == name:
        return v
    raise KeyError(f'{piece}/{name}')


# ----------------------------------------------------------------------------
# Reading small CSV files with errors that name file, row and value.


def read_rows(path: pathlib.Path) -> list[tuple[int, list[str]]]:
  """(line number, fields) of a CSV, comma or semicolon, quotes allowed.

  The delimiter is sniffed from the first non-empty line, so cvrl's own files
  (comma) and Winterreise-style ones (semicolon) read the same way.
  """
  try:
    text = path.read_text(encoding='utf-8-sig')
  except (OSError, UnicodeDecodeError) as e:
    raise DatasetError(f'{path}: cannot read: {e}') from e
  # '#' lines are comments (cvrl.data.sync marks derived annotations so).
  lines = ['' if l.lstrip().startswith('#') else l for l in text.splitlines()]
  first = next((l for l in lines if l.strip()), '')
  delimiter = ';' if first.count(';') > first.count(',') else ','
  rows = []
  for number, fields in enumerate(csv.reader(lines, delimiter=delimiter,
                                             skipinitialspace=True), start=1):
    fields = [f.strip() for f in fields]
    if any(fields):
      rows.append((number, fields))
  return rows


def _is_number(text: str) -> bool:
  try:
    float(text)
    return True
  except ValueError:
    return False


def _float(path, line: int, column: str, text: str) -> float:
  try:
    value = float(text)
  except ValueError:
    raise DatasetError(
        f'{path}: row {line}: {column} {text!r} is not a number') from None
  if not np.isfinite(value):
    raise DatasetError(f'{path}: row {line}: {column} {text!r} is not finite')
  return value


def drop_header(path, rows, names: Sequence[str]):
  """Drops a header row (one whose first field is not a number)."""
  if rows and not _is_number(rows[0][1][0]):
    header = [f.lower() for f in rows[0][1]]
    if len(header) < len(names):
      raise DatasetError(
          f'{path}: row {rows[0][0]}: header {rows[0][1]} has fewer than the '
          f'{len(names)} columns {list(names)}')
    return rows[1:]
  return rows


def read_measures(path: pathlib.Path) -> alignment.TimeMap:
  """Measure annotation file -> TimeMap (seconds, measure position).

  Accepts `seconds,measure` without header (published layout),
  `"start";"measure"` with header (Winterreise) and cvrl's `seconds,measure`.
  """
  rows = drop_header(path, read_rows(path), ('seconds', 'measure'))
  if len(rows) < 2:
    raise DatasetError(f'{path}: needs at least two (seconds, measure) rows, '
                       f'found {len(rows)}')
  seconds, measures = [], []
  for line, fields in rows:
    if len(fields) < 2:
      raise DatasetError(f'{path}: row {line}: expected seconds and measure, '
                         f'got {fields}')
    seconds.append(_float(path, line, 'seconds', fields[0]))
    measures.append(_float(path, line, 'measure position', fields[1]))
    if len(seconds) > 1:
      for name, values in (('seconds', seconds), ('measure position', measures)):
        if values[-1] <= values[-2]:
          raise DatasetError(
              f'{path}: row {line}: {name} {values[-1]!r} does not increase '
              f'after {values[-2]!r} (annotations must be monotone)')
  if seconds[0] < 0:
    raise DatasetError(f'{path}: row {rows[0][0]}: seconds {seconds[0]!r} < 0')
  return alignment.TimeMap(np.array(seconds), np.array(measures))


def instrument_index(path, line: int, name: str,
                     classes: Sequence[str]) -> int:
  """Index of an instrument name in `classes`, via ALIASES; error if unknown."""
  key = name.strip().lower().replace(' ', '_').replace('-', '_')
  key = ALIASES.get(key, key)
  if key in classes:
    return classes.index(key)
  close = difflib.get_close_matches(key, classes, n=1)
  hint = f' (did you mean {close[0]!r}?)' if close else ''
  raise DatasetError(f'{path}: row {line}: unknown instrument {name!r}{hint}; '
                     f'known: {", ".join(classes)}')


def _span_rows(path: pathlib.Path, columns: Sequence[str]):
  """Yields (line, start, end, fields) of a start_measure,end_measure,... CSV."""
  for line, fields in drop_header(path, read_rows(path), columns):
    if len(fields) < len(columns):
      raise DatasetError(f'{path}: row {line}: expected {", ".join(columns)}; '
                         f'got {fields}')
    start = _float(path, line, 'start_measure', fields[0])
    end = _float(path, line, 'end_measure', fields[1])
    if end <= start:
      raise DatasetError(f'{path}: row {line}: end_measure {end!r} is not '
                         f'after start_measure {start!r}')
    yield line, start, end, fields


def read_instrument_spans(path: pathlib.Path, classes: Sequence[str]):
  """instruments/<piece>.csv -> (start [N], end [N], class index [N])."""
  starts, ends, labels = [], [], []
  for line, start, end, fields in _span_rows(
      path, ('start_measure', 'end_measure', 'instrument')):
    starts.append(start)
    ends.append(end)
    labels.append(instrument_index(path, line, fields[2], classes))
  return (np.array(starts, np.float64), np.array(ends, np.float64),
          np.array(labels, np.int64))


def read_note_spans(path: pathlib.Path, classes: Sequence[str]):
  """notes/<piece>.csv -> (start, end, midi pitch, class index) arrays [N]."""
  starts, ends, pitches, labels = [], [], [], []
  for line, start, end, fields in _span_rows(
      path, ('start_measure', 'end_measure', 'pitch', 'instrument')):
    pitch = _float(path, line, 'pitch', fields[2])
    if pitch != int(pitch) or not 0 <= pitch <= 127:
      raise DatasetError(f'{path}: row {line}: pitch {fields[2]!r} is not a '
                         'MIDI note number 0..127')
    starts.append(start)
    ends.append(end)
    pitches.append(int(pitch))
    labels.append(instrument_index(path, line, fields[3], classes))
  return (np.array(starts, np.float64), np.array(ends, np.float64),
          np.array(pitches, np.int64), np.array(labels, np.int64))


# ----------------------------------------------------------------------------
# Finding the files of each layout.

_STEM = re.compile(r'^(?P<piece>.+)_(?P<version>[^_]+)$')


def detect_layout(root: pathlib.Path, unannotated: bool = False) -> str:
  """The layout of `root`; `unannotated` also knows it by its audio folder
  alone (recordings that cvrl.data.sync has yet to annotate)."""
  if (root / 'measures').is_dir():
    return 'cvrl'
  if (root / '02_Annotations' / 'ann_audio_sync').is_dir():
    return 'published'
  if (root / '02_Annotations' / 'ann_audio_measure').is_dir():
    return 'swd'
  if unannotated and (root / 'audio').is_dir():
    return 'cvrl'
  if unannotated and (root / '01_RawData' / 'audio_wav').is_dir():
    return 'published'
  raise DatasetError(
      f'{root}: not a cross-version dataset: expected measures/ (cvrl format), '
      '02_Annotations/ann_audio_sync/ (published layout) or '
      '02_Annotations/ann_audio_measure/ (Winterreise-style)')


def _audio_for(folder: pathlib.Path, stem: str,
               measures_path: pathlib.Path) -> pathlib.Path:
  for ext in AUDIO_EXTENSIONS:
    candidate = folder / (stem + ext)
    if candidate.exists():
      return candidate
  extensions = ','.join(e.lstrip('.') for e in AUDIO_EXTENSIONS)
  raise DatasetError(f'{folder / stem}.{{{extensions}}}: missing audio for '
                     f'measure annotation {measures_path}')


def _optional(path: pathlib.Path) -> Optional[pathlib.Path]:
  return path if path.exists() else None


def _find_cvrl(root: pathlib.Path) -> list[Version]:
  versions = []
  for measures_path in sorted((root / 'measures').glob('*/*.csv')):
    piece, name = measures_path.parent.name, measures_path.stem
    # One npz holds both frame-wise arrays (`instruments` and `pitches`).
    references = _optional(root / 'references' / piece / f'{name}.npz')
    versions.append(Version(
        piece=piece, name=name,
        audio_path=_audio_for(root / 'audio' / piece, name, measures_path),
        measures_path=measures_path,
        instruments_npz=references, notes_npz=references))
  return versions


def _find_flat(root: pathlib.Path, measures_dir: str,
               framewise: bool) -> list[Version]:
  versions = []
  annotations = root / '02_Annotations'
  for measures_path in sorted((annotations / measures_dir).glob('*.csv')):
    match = _STEM.match(measures_path.stem)
    if not match:
      raise DatasetError(f'{measures_path}: file name is not '
                         '<piece>_<version>.csv')
    stem = measures_path.stem
    versions.append(Version(
        piece=match['piece'], name=match['version'],
        audio_path=_audio_for(root / '01_RawData' / 'audio_wav', stem,
                              measures_path),
        measures_path=measures_path,
        instruments_npz=_optional(annotations / 'ann_audio_instruments_npz'
                                  / f'{stem}.npz') if framewise else None,
        notes_npz=_optional(annotations / 'ann_audio_note_npz'
                            / f'{stem}.npz') if framewise else None))
  return versions


def _audio_files(root: pathlib.Path, layout: str):
  folder = (root / 'audio') if layout == 'cvrl' else (
      root / '01_RawData' / 'audio_wav')
  return (p for p in folder.rglob('*') if p.suffix.lower() in AUDIO_EXTENSIONS)


def read_classes(root: pathlib.Path, layout: str) -> tuple[str, ...]:
  """Instrument classes: classes.txt if present, else the layout's default."""
  path = root / 'classes.txt'
  if path.exists():
    names = [l.strip() for l in path.read_text().splitlines() if l.strip()]
    if not names:
      raise DatasetError(f'{path}: lists no instrument classes')
    return tuple(names)
  return PUBLISHED_CLASSES if layout == 'published' else INSTRUMENTS


def default_splits(pieces: Iterable[str]) -> dict[str, tuple[Segment, ...]]:
  """Every 4th piece (sorted by name, from the first) is test, the rest train.

  Used only when a dataset has no pieces.csv; deterministic so that runs on the
  same data agree.
  """
  names = sorted(pieces)
  test = {n for i, n in enumerate(names) if i % 4 == 0}
  return {'train': tuple(Segment(n) for n in names if n not in test),
          'test': tuple(Segment(n) for n in names if n in test)}


VALIDATION = 'val'


def validation_pieces(dataset: Dataset) -> list[str]:
  """Pieces that studies choose settings on, never the test split's.

  The `val` split of pieces.csv where there is one; otherwise every 4th
  train piece in name order (from the second), deterministic like the
  default splits.
  """
  if dataset.splits.get(VALIDATION):
    return sorted({s.piece for s in dataset.splits[VALIDATION]})
  pieces = sorted({s.piece for s in dataset.splits.get('train', ())})
  return pieces[1::4] if len(pieces) >= 4 else pieces[-1:]


def validation_view(dataset: Dataset) -> Dataset:
  """The dataset as a study sees it: validation pieces in the role of test.

  'train' keeps the train pieces that are not validation pieces, 'test' holds
  the validation pieces; the real test split is not in the view at all, so
  nothing chosen on it can have looked at test audio.
  """
  held_out = set(validation_pieces(dataset))
  train = tuple(s for s in dataset.splits.get('train', ())
                if s.piece not in held_out)
  if dataset.splits.get(VALIDATION):
    test = dataset.splits[VALIDATION]
  else:
    test = tuple(s for s in dataset.splits.get('train', ())
                 if s.piece in held_out)
  if not train or not test:
    raise DatasetError(f'{dataset.splits_path or dataset.root}: too few train '
                       'pieces for a validation split (train and validation '
                       'both need one)')
  return dataclasses.replace(dataset, splits={'train': train, 'test': test})


def read_splits(path: pathlib.Path) -> dict[str, tuple[Segment, ...]]:
  """pieces.csv: piece, split[, versions][, start_measure, end_measure].

  `versions` is a space-separated list (empty: all); a measure range limits
  the row to that half-open range of the score. A piece may have many rows.
  """
  rows = read_rows(path)
  if not rows:
    raise DatasetError(f'{path}: is empty; expected a header "piece,split"')
  header = [f.lower() for f in rows[0][1]]
  for column in ('piece', 'split'):
    if column not in header:
      raise DatasetError(f'{path}: row {rows[0][0]}: header {rows[0][1]} has '
                         f'no column {column!r}')
  splits: dict[str, list[Segment]] = {}
  for line, fields in rows[1:]:
    row = dict(zip(header, fields + [''] * (len(header) - len(fields))))
    if not row['piece'] or not row['split']:
      raise DatasetError(f'{path}: row {line}: piece and split must be set, '
                         f'got {fields}')
    measures = None
    if row.get('start_measure') or row.get('end_measure'):
      start = _float(path, line, 'start_measure', row.get('start_measure', ''))
      end = _float(path, line, 'end_measure', row.get('end_measure', ''))
      if end <= start:
        raise DatasetError(f'{path}: row {line}: end_measure {end!r} is not '
                           f'after start_measure {start!r}')
      measures = (start, end)
    versions = tuple(row.get('versions', '').split())
    splits.setdefault(row['split'], []).append(
        Segment(row['piece'], versions, measures))
  return {name: tuple(segments) for name, segments in splits.items()}


def measures_path(root: pathlib.Path, layout: str, piece: str,
                  version: str) -> pathlib.Path:
  """Where a version's measure annotation lives in each layout."""
  if layout == 'cvrl':
    return root / 'measures' / piece / f'{version}.csv'
  folder = 'ann_audio_sync' if layout == 'published' else 'ann_audio_measure'
  return root / '02_Annotations' / folder / f'{piece}_{version}.csv'


def find_audio(root: pathlib.Path, layout: str) -> dict[str, dict[str, pathlib.Path]]:
  """{piece: {version: audio path}} of every recording, annotated or not."""
  found: dict[str, dict[str, pathlib.Path]] = {}
  for path in sorted(_audio_files(root, layout)):
    if layout == 'cvrl':
      if path.parent.parent != root / 'audio':
        continue
      piece, version = path.parent.name, path.stem
    else:
      match = _STEM.match(path.stem)
      if not match:
        continue
      piece, version = match['piece'], match['version']
    found.setdefault(piece, {}).setdefault(version, path)
  return found


def sync_record_path(measures: pathlib.Path) -> pathlib.Path:
  """The sidecar that marks a measure annotation as derived by cvrl.data.sync."""
  return measures.with_suffix('.sync.json')


def derived_record(measures: pathlib.Path) -> Optional[dict]:
  """The sync record of a derived annotation; None for a hand-made one.

  An annotation counts as derived only while its sidecar says it was written
  (status 'ok') and it still has the content that was written: a file that a
  person has since replaced is theirs, and is never overwritten.
  """
  record_path = sync_record_path(measures)
  if not record_path.exists() or not measures.exists():
    return None
  try:
    record = json.loads(record_path.read_text())
  except (OSError, ValueError):
    return None
  digest = hashlib.sha1(measures.read_bytes()).hexdigest()
  if record.get('status') != 'ok' or record.get('measures_sha1') != digest:
    return None
  return record


def load_dataset(root, derived_annotations: bool = True) -> Dataset:
  """Finds the pieces, versions, references and splits under `root`.

  `derived_annotations=False` leaves out versions whose measure annotation was
  derived by synchronisation (cvrl.data.sync) rather than made by hand.
  """
  root = pathlib.Path(root)
  if not root.is_dir():
    raise DatasetError(f'{root}: dataset folder does not exist')
  layout = detect_layout(root)
  framewise = None
  if layout == 'cvrl':
    versions = _find_cvrl(root)
    framewise = FramewiseFormat(frame_rate=0.0, instrument_key='instruments',
                                instrument_columns=None, pitch_key='pitches')
  elif layout == 'published':
    versions = _find_flat(root, 'ann_audio_sync', framewise=True)
    framewise = FramewiseFormat(frame_rate=PUBLISHED_FRAME_RATE,
                                instrument_key='arr_0',
                                instrument_columns=PUBLISHED_COLUMNS,
                                pitch_key='arr_0')
  else:
    versions = _find_flat(root, 'ann_audio_measure', framewise=False)
  if not versions:
    raise DatasetError(f'{root}: no measure annotations found ({layout} '
                       'layout)')
  annotated = {v.audio_path for v in versions}
  for path in sorted(_audio_files(root, layout)):
    if path not in annotated:
      logging.warning('%s: audio without a measure annotation, not used '
                      '(python -m cvrl.data.sync derives one)', path)
  by_piece: dict[str, list[Version]] = {}
  for v in versions:
    by_piece.setdefault(v.piece, []).append(v)
  pieces = {
      name: Piece(name, tuple(vs),
                  instruments_csv=_optional(root / 'instruments' / f'{name}.csv'),
                  notes_csv=_optional(root / 'notes' / f'{name}.csv'))
      for name, vs in sorted(by_piece.items())}
  splits_path = root / 'pieces.csv'
  if splits_path.exists():
    splits = read_splits(splits_path)
  else:
    splits, splits_path = default_splits(pieces), None
  dataset = Dataset(root=root, layout=layout, pieces=pieces, splits=splits,
                    instrument_classes=read_classes(root, layout),
                    framewise=framewise, splits_path=splits_path)
  return dataset if derived_annotations else without_derived(dataset)


def without_derived(dataset: Dataset) -> Dataset:
  """The dataset without versions whose annotation cvrl.data.sync derived.

  Pieces left with no version go, and so do their split segments.
  """
  pieces = {}
  for name, piece in dataset.pieces.items():
    kept = tuple(v for v in piece.versions
                 if derived_record(v.measures_path) is None)
    if kept:
      pieces[name] = dataclasses.replace(piece, versions=kept)
  if not pieces:
    raise DatasetError(f'{dataset.root}: no hand-made measure annotations '
                       'found (every one was derived by cvrl.data.sync)')
  splits = {name: tuple(s for s in segments if s.piece in pieces)
            for name, segments in dataset.splits.items()}
  return dataclasses.replace(dataset, pieces=pieces, splits=splits)


# ----------------------------------------------------------------------------
# Validation: open every file once and check it against the others.


@dataclasses.dataclass(frozen=True)
class VersionInfo:
  """What validation learnt about a version: its audio and its time map."""
  version: Version
  num_samples: int
  sample_rate: int
  time_map: alignment.TimeMap

  @property
  def duration(self) -> float:
    return self.num_samples / self.sample_rate


def audio_info(path: pathlib.Path) -> tuple[int, int]:
  """(frames, sample rate) of an audio file; DatasetError if unreadable."""
  if not path.exists():
    raise DatasetError(f'{path}: audio file is missing')
  try:
    info = sf.info(str(path))
  except Exception as e:  # soundfile raises several types for bad files
    raise DatasetError(f'{path}: unreadable audio: {e}') from e
  if info.frames <= 0:
    raise DatasetError(f'{path}: audio file holds no samples')
  return info.frames, info.samplerate


def check_version(version: Version) -> VersionInfo:
  num_samples, sample_rate = audio_info(version.audio_path)
  time_map = read_measures(version.measures_path)
  duration = num_samples / sample_rate
  if time_map.end_seconds > duration + END_TOLERANCE_S:
    rows = drop_header(version.measures_path,
                       read_rows(version.measures_path), ('s', 'm'))
    raise DatasetError(
        f'{version.measures_path}: row {rows[-1][0]}: seconds '
        f'{time_map.end_seconds!r} is beyond the end of the audio '
        f'{version.audio_path} ({duration:.3f} s)')
  return VersionInfo(version, num_samples, sample_rate, time_map)


def check_framewise(dataset: Dataset, info: VersionInfo) -> None:
  """Frame-wise reference arrays must cover exactly the audio's frames."""
  fmt = dataset.framewise
  v = info.version
  for path, key, what in ((v.instruments_npz, fmt.instrument_key, 'instrument'),
                          (v.notes_npz, fmt.pitch_key, 'pitch')):
    if path is None:
      continue
    try:
      with np.load(path) as npz:
        if key not in npz:
          raise DatasetError(f'{path}: has no array {key!r} ({what} '
                             f'activity); arrays: {sorted(npz.files)}')
        array = npz[key]
        rate = float(npz['frame_rate']) if 'frame_rate' in npz else fmt.frame_rate
    except DatasetError:
      raise
    except Exception as e:
      raise DatasetError(f'{path}: unreadable npz: {e}') from e
    if array.ndim != 2:
      raise DatasetError(f'{path}: {key} must be 2-d [frames, columns], got '
                         f'shape {array.shape}')
    if rate <= 0:
      raise DatasetError(f'{path}: no frame_rate stored with the arrays')
    # Centred frames: 1 + floor(duration * rate); conventions differ by one.
    expected = int(np.floor(info.duration * rate)) + 1
    if abs(array.shape[0] - expected) > 1:
      raise DatasetError(
          f'{path}: {key} has {array.shape[0]} frames but the audio '
          f'{v.audio_path} ({info.duration:.3f} s) has {expected} at '
          f'{rate:.3f} frames/s')
    if what == 'instrument':
      needed = (max(fmt.instrument_columns) + 1 if fmt.instrument_columns
                else len(dataset.instrument_classes))
      if array.shape[1] < needed:
        raise DatasetError(f'{path}: {key} has {array.shape[1]} columns, '
                           f'needs {needed} for the instrument classes')
    elif array.shape[1] not in (12, 128):
      raise DatasetError(f'{path}: {key} has {array.shape[1]} columns; '
                         'expected 128 MIDI pitches or 12 pitch classes')


def check_splits(dataset: Dataset,
                 infos: dict[str, VersionInfo]) -> None:
  where = dataset.splits_path or f'{dataset.root} (default split)'
  for required in ('train', 'test'):
    if not dataset.splits.get(required):
      raise DatasetError(f'{where}: split {required!r} is empty; every dataset '
                         'needs pieces in train and test')
  for split, segments in dataset.splits.items():
    for seg in segments:
      if seg.piece not in dataset.pieces:
        raise DatasetError(f'{where}: split {split!r} names unknown piece '
                           f'{seg.piece!r}')
      names = [v.name for v in dataset.pieces[seg.piece].versions]
      for name in seg.versions:
        if name not in names:
          raise DatasetError(f'{where}: split {split!r} names unknown version '
                             f'{name!r} of piece {seg.piece!r} (has {names})')
      if len(seg.versions or names) < 2:
        raise DatasetError(f'{where}: split {split!r} gives piece {seg.piece!r} '
                           f'{len(seg.versions or names)} version(s); '
                           'cross-version pairs need at least two')
      if seg.measures:
        first = infos[f'{seg.piece}/{names[0]}'].time_map
        lo, hi = max(seg.measures[0], first.first_measure), min(
            seg.measures[1], first.last_measure)
        if hi <= lo:
          raise DatasetError(
              f'{where}: split {split!r} measure range {seg.measures} of piece '
              f'{seg.piece!r} lies outside its annotated measures '
              f'[{first.first_measure}, {first.last_measure}]')
  check_no_leak(dataset, where)


def check_no_leak(dataset: Dataset, where) -> None:
  """No audio may be in two splits: same version and overlapping measures.

  Held-out recordings or measure ranges of one piece are fine (the published
  split does both); the same frames in train and test would let the probe
  measure memorisation.
  """
  names = sorted(dataset.splits)
  for i, split_a in enumerate(names):
    for split_b in names[i + 1:]:
      for a in dataset.splits[split_a]:
        for b in dataset.splits[split_b]:
          if a.piece != b.piece:
            continue
          every = {v.name for v in dataset.pieces[a.piece].versions}
          shared = (set(a.versions) or every) & (set(b.versions) or every)
          lo_a, hi_a = a.measures or (-np.inf, np.inf)
          lo_b, hi_b = b.measures or (-np.inf, np.inf)
          if shared and max(lo_a, lo_b) < min(hi_a, hi_b):
            raise DatasetError(
                f'{where}: piece {a.piece!r} versions {sorted(shared)} are in '
                f'both {split_a!r} and {split_b!r} over measures '
                f'[{max(lo_a, lo_b)}, {min(hi_a, hi_b)}): the same audio '
                'must not be in two splits')


def validate_dataset(dataset: Dataset) -> dict[str, VersionInfo]:
  """Opens and checks every file; returns per-version info keyed 'piece/ver'.

  Raises DatasetError naming the file (and row, value) of the first problem.
  """
  infos: dict[str, VersionInfo] = {}
  for piece in dataset.pieces.values():
    if len(piece.versions) < 2:
      raise DatasetError(
          f'{piece.versions[0].measures_path}: piece {piece.name!r} has only '
          'one version; cross-version learning needs at least two')
    first = None
    for version in piece.versions:
      info = check_version(version)
      infos[version.key] = info
      if dataset.framewise:
        check_framewise(dataset, info)
      if first is None:
        first = info
        continue
      for what, a, b in (('first', first.time_map.first_measure,
                          info.time_map.first_measure),
                         ('last', first.time_map.last_measure,
                          info.time_map.last_measure)):
        if abs(a - b) > 1e-6:
          raise DatasetError(
              f'{version.measures_path}: {what} measure {b!r} differs from '
              f'{a!r} in {first.version.measures_path}; all versions of a '
              'piece must annotate the same measure span')
    if piece.instruments_csv:
      read_instrument_spans(piece.instruments_csv, dataset.instrument_classes)
    if piece.notes_csv:
      read_note_spans(piece.notes_csv, dataset.instrument_classes)
  check_splits(dataset, infos)
  return infos
