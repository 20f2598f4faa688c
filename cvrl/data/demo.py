r"""Builds cvrl's demo cross-version dataset from real scores.

  python -m cvrl.data.demo --out=DEMO [--pieces=24 --versions=3
                                       --max_seconds=180 --seed=0
                                       --soundfont_draw=version]

Scores come from music21's bundled corpus (string quartets by Beethoven,
Mozart, Haydn and Schumann, and Bach chorales played instrumentally). Each
piece gets a seeded orchestration plan: the score's parts are played by
orchestral instruments that change every few measures, so instrument activity
varies over time. Each version of a piece keeps the notes and the plan and
differs as recordings do: SoundFont (rendered with FluidSynth), tempo curve
(global tempo and rubato), dynamics, tuning, room reverb, microphone EQ, noise
floor and level. The renderer knows where every measure is, so the measure
annotations and score-level references it writes are exact.

Output is cvrl's own dataset format (README, "Dataset format").
"""

from __future__ import annotations

import concurrent.futures
import csv
import dataclasses
import json
import multiprocessing
import os
import pathlib
import shutil
import subprocess
import tempfile
import time

from absl import app
from absl import flags
import numpy as np
import scipy.signal
import soundfile as sf
import tqdm

from cvrl import cli

SAMPLE_RATE = 22050

SOUNDFONTS = {
    'FluidR3_GM': '/usr/share/sounds/sf2/FluidR3_GM.sf2',
    'TimGM6mb': '/usr/share/sounds/sf2/TimGM6mb.sf2',
    'MuseScore_General': '/usr/share/sounds/sf3/MuseScore_General_Lite.sf3',
}

# Scores in the order pieces are taken; short ones first so tiny demos build
# fast. Paths are music21 corpus names.
CORPUS = (
    'bach/bwv190.7-inst', 'mozart/k80/movement1', 'haydn/opus74no1/movement1',
    'beethoven/opus18no1/movement1.mxl', 'schumann_robert/opus41no1/movement2',
    'bach/bwv66.6', 'mozart/k155/movement1', 'haydn/opus1no1/movement1',
    'beethoven/opus59no1/movement1', 'schumann_robert/opus41no1/movement3',
    'mozart/k156/movement1', 'haydn/opus74no1/movement2',
    'beethoven/opus18no1/movement3.mxl', 'bach/bwv244.62',
    'mozart/k458/movement1', 'haydn/opus74no1/movement3',
    'beethoven/opus59no2/movement1', 'schumann_robert/opus41no1/movement4',
    'mozart/k80/movement3', 'haydn/opus1no1/movement3',
    'beethoven/opus59no3/movement1', 'bach/bwv40.8', 'mozart/k155/movement3',
    'haydn/opus74no1/movement4', 'beethoven/opus18no1/movement4.mxl',
    'mozart/k458/movement4', 'beethoven/opus59no1/movement4',
    'schumann_robert/opus41no1/movement5', 'mozart/k156/movement4',
    'beethoven/opus59no2/movement4',
)

# Demo instrument classes: General-MIDI program and playable (sounding) range.
INSTRUMENTS = {
    'violin': (40, 55, 100), 'viola': (41, 48, 88), 'cello': (42, 36, 76),
    'double_bass': (43, 28, 60), 'flute': (73, 60, 96), 'oboe': (68, 58, 91),
    'clarinet': (71, 50, 91), 'bassoon': (70, 34, 72),
    'french_horn': (60, 41, 77), 'trumpet': (56, 55, 82),
    'trombone': (57, 40, 72), 'tuba': (58, 28, 58), 'timpani': (47, 41, 55),
    'harp': (46, 36, 96), 'piano': (0, 28, 100),
}
CLASSES = tuple(INSTRUMENTS)
FAMILIES = {
    'strings': ('violin', 'viola', 'cello', 'double_bass'),
    'woodwinds': ('flute', 'oboe', 'clarinet', 'bassoon'),
    'brass': ('french_horn', 'trumpet', 'trombone', 'tuba'),
    'keyboard': ('harp', 'piano'),
}
# Who may play a part by its register (0 = highest part .. 3 = bass).
REGISTER = (
    ('violin', 'flute', 'oboe', 'clarinet', 'trumpet', 'piano', 'harp'),
    ('violin', 'viola', 'clarinet', 'oboe', 'french_horn', 'trumpet', 'piano'),
    ('viola', 'cello', 'french_horn', 'bassoon', 'trombone', 'clarinet', 'harp'),
    ('cello', 'double_bass', 'bassoon', 'tuba', 'trombone', 'piano'),
)
TEXTURES = {  # texture: (families allowed, probability)
    'strings': (('strings',), 0.25), 'woodwinds': (('woodwinds',), 0.15),
    'brass': (('brass',), 0.1), 'mixed': (tuple(FAMILIES), 0.3),
    'tutti': (tuple(FAMILIES), 0.2),
}
MAX_PARTS = 6


@dataclasses.dataclass(frozen=True)
class Score:
  """Notes of a score in quarter notes, with its measure grid.

  notes: [N, 4] float64 rows (start quarter, end quarter, midi pitch, part).
  measure_starts: [M + 1] quarter offset of each measure start and the end.
  """
  name: str
  notes: np.ndarray
  measure_starts: np.ndarray
  num_parts: int

  def measure_at(self, quarters) -> np.ndarray:
    """Measure position (1 = start of the first measure) of quarter offsets."""
    return np.interp(quarters, self.measure_starts,
                     np.arange(1, len(self.measure_starts) + 1, dtype=float))


def piece_name(corpus_path: str) -> str:
  stem = corpus_path.replace('.mxl', '').replace('.krn', '')
  return stem.replace('/', '_').replace('.', '-')


def load_score(corpus_path: str) -> Score:
  """Parses a corpus score into notes per distinct part and its measure grid."""
  from music21 import corpus  # heavy import, only where scores are read
  score = corpus.parse(corpus_path)
  measures = list(score.parts[0].getElementsByClass('Measure'))
  starts = [float(m.offset) for m in measures]
  starts.append(starts[-1] + float(measures[-1].duration.quarterLength))

  parts, seen = [], set()
  for part in score.parts:
    rows = []
    for note in part.flatten().stripTies().notes:
      start, length = float(note.offset), float(note.quarterLength)
      if length <= 0:
        continue  # grace notes have no duration
      for pitch in note.pitches:
        rows.append((start, start + length, pitch.midi))
    signature = tuple(sorted(rows))
    if rows and signature not in seen:  # chorales double voices by instruments
      seen.add(signature)
      parts.append(np.array(rows, np.float64))
  if len(parts) > MAX_PARTS:  # keep parts spread over the register
    order = np.argsort([-np.median(p[:, 2]) for p in parts])
    parts = [parts[i] for i in
             sorted(order[np.linspace(0, len(parts) - 1, MAX_PARTS).astype(int)])]
  notes = np.concatenate([np.column_stack([p, np.full(len(p), i)])
                          for i, p in enumerate(parts)])
  return Score(piece_name(corpus_path), notes, np.array(starts), len(parts))


def cut_score(score: Score, max_quarters: float) -> Score:
  """The score's whole measures up to `max_quarters` (at least one measure)."""
  keep = max(2, int(np.searchsorted(score.measure_starts, max_quarters,
                                    side='right')))
  starts = score.measure_starts[:keep]
  notes = score.notes[score.notes[:, 0] < starts[-1]].copy()
  notes[:, 1] = np.minimum(notes[:, 1], starts[-1])
  parts, notes[:, 3] = np.unique(notes[:, 3], return_inverse=True)
  return Score(score.name, notes, starts, len(parts))


def fit_to_duration(score: Score, performances, max_seconds: float) -> Score:
  """Longest excerpt of whole measures that no version plays for > max_seconds."""
  def longest(excerpt):
    end = float(excerpt.measure_starts[-1])
    return max(tempo_map(p, end)[1][-1] - p.lead_in for p in performances)

  quarters = max_seconds * min(p.quarters_per_minute
                               for p in performances) / 60.0
  while True:
    excerpt = cut_score(score, quarters)
    seconds = longest(excerpt)
    if seconds <= max_seconds or len(excerpt.measure_starts) <= 2:
      return excerpt
    quarters = min(excerpt.measure_starts[-2],
                   excerpt.measure_starts[-1] * max_seconds / seconds)


def orchestrate(score: Score, rng: np.random.Generator) -> np.ndarray:
  """Seeded orchestration plan -> [N', 5] rows (start q, end q, pitch, class, part).

  Sections of 2-6 measures each get a texture; within it each part is played
  by one register-appropriate instrument (sometimes doubled), transposed by
  octaves into the instrument's range; parts sometimes rest for a section.
  """
  num_measures = len(score.measure_starts) - 1
  medians = [np.median(score.notes[score.notes[:, 3] == p, 2])
             for p in range(score.num_parts)]
  rank = np.argsort(np.argsort(-np.array(medians)))
  role = np.minimum((rank * 4) // max(score.num_parts, 1), 3)
  if score.num_parts > 1:
    role[np.argmax(rank)] = 3  # the lowest part is always the bass
  textures = list(TEXTURES)
  weights = np.array([TEXTURES[t][1] for t in textures])
  rows = []
  section_start = 0
  while section_start < num_measures:
    length = int(rng.integers(2, 7))
    lo_q = score.measure_starts[section_start]
    hi_q = score.measure_starts[min(section_start + length, num_measures)]
    texture = textures[rng.choice(len(textures), p=weights / weights.sum())]
    allowed = {i for f in TEXTURES[texture][0] for i in FAMILIES[f]}
    resting = rng.random(score.num_parts) < 0.15
    resting[rng.integers(score.num_parts)] = False  # never all silent
    for part in range(score.num_parts):
      if resting[part]:
        continue
      section = score.notes[(score.notes[:, 3] == part) &
                            (score.notes[:, 0] >= lo_q) &
                            (score.notes[:, 0] < hi_q)]
      if not len(section):
        continue
      candidates = [i for i in REGISTER[role[part]] if i in allowed] or list(
          REGISTER[role[part]])
      players = [candidates[rng.integers(len(candidates))]]
      if texture == 'tutti' and rng.random() < 0.5:
        players.append(REGISTER[role[part]][rng.integers(
            len(REGISTER[role[part]]))])
      if texture in ('tutti', 'brass') and role[part] == 3 and rng.random() < 0.6:
        players.append('timpani')
      for name in dict.fromkeys(players):
        _, low, high = INSTRUMENTS[name]
        pitches = section[:, 2].copy()
        pitches += 12 * np.round((0.5 * (low + high) - np.median(pitches)) / 12)
        pitches += 12 * np.ceil(np.maximum(low - pitches, 0) / 12)
        pitches -= 12 * np.ceil(np.maximum(pitches - high, 0) / 12)
        ends = section[:, 1]
        if name == 'timpani':  # struck: short notes, onsets only
          ends = np.minimum(ends, section[:, 0] + 0.5)
        rows.append(np.column_stack([
            section[:, 0], ends, pitches,
            np.full(len(section), CLASSES.index(name)), section[:, 3]]))
    section_start += length
  return np.concatenate(rows)


# ----------------------------------------------------------------------------
# One version: performance parameters and rendering.


@dataclasses.dataclass(frozen=True)
class Performance:
  """What makes a version sound like another recording of the same score."""
  soundfont: str
  quarters_per_minute: float
  rubato: tuple  # (amplitude, period in quarters, phase) of log-tempo waves
  dynamics: tuple  # (amplitude, period, phase) of velocity waves
  level: float  # velocity scale
  balance: tuple  # per-class velocity scale
  tuning_cents: float
  lead_in: float
  tail: float
  rt60: float
  wet: float
  eq_db: tuple  # (centre Hz, gain dB, width octaves) bumps
  tilt_db_per_octave: float
  noise_db: float
  peak: float


def sample_performance(rng: np.random.Generator, soundfont: str,
                       base_qpm: float) -> Performance:
  waves = lambda n, amp: tuple(
      (float(rng.uniform(0.3, 1.0) * amp), float(rng.uniform(6, 40)),
       float(rng.uniform(0, 2 * np.pi))) for _ in range(n))
  return Performance(
      soundfont=soundfont,
      quarters_per_minute=float(base_qpm * rng.uniform(0.8, 1.25)),
      rubato=waves(3, 0.08), dynamics=waves(2, 0.25),
      level=float(rng.uniform(0.7, 1.05)),
      balance=tuple(float(b) for b in rng.uniform(0.8, 1.15, len(CLASSES))),
      tuning_cents=float(rng.uniform(-30, 30)),
      lead_in=float(rng.uniform(0.3, 2.5)), tail=float(rng.uniform(1.5, 3.0)),
      rt60=float(rng.uniform(0.3, 2.4)), wet=float(rng.uniform(0.08, 0.45)),
      eq_db=tuple((float(np.exp(rng.uniform(np.log(80), np.log(8000)))),
                   float(rng.uniform(-7, 7)), float(rng.uniform(0.5, 2.0)))
                  for _ in range(3)),
      tilt_db_per_octave=float(rng.uniform(-1.5, 1.0)),
      noise_db=float(rng.uniform(-75, -55)), peak=float(rng.uniform(0.35, 0.9)))


def _waves(x, waves) -> np.ndarray:
  return sum(a * np.sin(2 * np.pi * x / period + phase)
             for a, period, phase in waves)


def tempo_map(perf: Performance, end_quarter: float):
  """(quarter grid, seconds at each grid point) of a performance's tempo curve.

  Tempo = global tempo x exp(rubato waves), with a ritardando over the last
  four quarters; seconds are its integral over score time.
  """
  grid = np.linspace(0.0, end_quarter, int(end_quarter * 48) + 2)
  log_tempo = _waves(grid, perf.rubato)
  log_tempo -= 0.35 * np.clip((grid - (end_quarter - 4)) / 4, 0, 1) ** 2
  seconds_per_quarter = 60.0 / (perf.quarters_per_minute * np.exp(log_tempo))
  seconds = np.concatenate([[0.0], np.cumsum(
      0.5 * (seconds_per_quarter[1:] + seconds_per_quarter[:-1])
      * np.diff(grid))])
  return grid, seconds + perf.lead_in


def write_midi(path: pathlib.Path, plan: np.ndarray, perf: Performance,
               grid: np.ndarray, seconds: np.ndarray) -> None:
  """The orchestrated notes at performance times as a MIDI file.

  Built with pretty_midi from our own note list rather than music21's MIDI
  export, whose 10080 ticks/quarter and part programs pretty_midi mis-reads.
  """
  import pretty_midi  # only the builder needs it
  midi = pretty_midi.PrettyMIDI(resolution=960, initial_tempo=120)
  bend = int(np.clip(perf.tuning_cents / 200 * 8192, -8191, 8191))
  velocity_curve = np.exp(_waves(plan[:, 0], perf.dynamics))
  for index in np.unique(plan[:, 3]).astype(int):
    name = CLASSES[index]
    track = pretty_midi.Instrument(program=INSTRUMENTS[name][0], name=name)
    track.pitch_bends.append(pretty_midi.PitchBend(bend, 0.0))
    rows = np.flatnonzero(plan[:, 3] == index)
    starts = np.interp(plan[rows, 0], grid, seconds)
    ends = np.maximum(np.interp(plan[rows, 1], grid, seconds), starts + 0.03)
    velocity = np.clip(80 * perf.level * perf.balance[index] *
                       velocity_curve[rows], 20, 127).astype(int)
    for s, e, p, v in zip(starts, ends, plan[rows, 2].astype(int), velocity):
      track.notes.append(pretty_midi.Note(int(v), int(p), float(s), float(e)))
    midi.instruments.append(track)
  midi.write(str(path))


def render(midi_path: pathlib.Path, soundfont: str, wav_path: pathlib.Path):
  """FluidSynth's offline renderer; its own reverb/chorus off (we add a room)."""
  subprocess.run(
      ['fluidsynth', '-ni', '-q', '-R', '0', '-C', '0', '-g', '0.5',
       '-r', str(SAMPLE_RATE), '-F', str(wav_path), SOUNDFONTS[soundfont],
       str(midi_path)], check=True, capture_output=True)
  audio, rate = sf.read(str(wav_path), dtype='float32', always_2d=True)
  assert rate == SAMPLE_RATE, rate
  return audio.mean(axis=1)


def room_and_microphone(audio: np.ndarray, perf: Performance,
                        rng: np.random.Generator) -> np.ndarray:
  """Synthetic room (decaying-noise impulse response) and microphone EQ.

  Written here rather than with a reverb/EQ plug-in library: a seeded impulse
  response and a smooth zero-phase gain curve are a few lines, render
  byte-identically everywhere, and need no further system package.
  """
  length = int(perf.rt60 * SAMPLE_RATE)
  t = np.arange(length) / SAMPLE_RATE
  impulse = rng.standard_normal(length) * np.exp(-6.9 * t / perf.rt60)
  impulse = scipy.signal.lfilter([1.0], [1.0, -0.6], impulse)  # darker tail
  impulse *= perf.wet / np.sqrt(np.sum(impulse ** 2))
  impulse[0] += 1.0 - perf.wet
  wet = scipy.signal.fftconvolve(audio, impulse)[:len(audio)]

  spectrum = np.fft.rfft(wet)
  freqs = np.maximum(np.fft.rfftfreq(len(wet), 1 / SAMPLE_RATE), 1.0)
  octaves = np.log2(freqs / 1000.0)
  gain_db = perf.tilt_db_per_octave * octaves
  for centre, gain, width in perf.eq_db:
    gain_db += gain * np.exp(-0.5 * (np.log2(freqs / centre) / width) ** 2)
  gain = 10 ** (gain_db / 20) / np.sqrt(1 + (40.0 / freqs) ** 4)  # rumble cut
  coloured = np.fft.irfft(spectrum * gain, n=len(wet))
  coloured /= np.max(np.abs(coloured)) + 1e-9
  coloured += 10 ** (perf.noise_db / 20) * rng.standard_normal(len(coloured))
  return (coloured * perf.peak).astype(np.float32)


# ----------------------------------------------------------------------------
# A piece: score, plan, versions, and the files of cvrl's format.


def _spans(starts, ends, gap=1e-6):
  """Merges [start, end) intervals that touch or overlap."""
  order = np.argsort(starts)
  merged = []
  for s, e in zip(starts[order], ends[order]):
    if merged and s <= merged[-1][1] + gap:
      merged[-1][1] = max(merged[-1][1], e)
    else:
      merged.append([s, e])
  return merged


def _write_csv(path: pathlib.Path, header, rows) -> None:
  path.parent.mkdir(parents=True, exist_ok=True)
  with open(path, 'w', newline='') as f:
    writer = csv.writer(f)
    writer.writerow(header)
    writer.writerows(rows)


def draw_soundfonts(draw: str, soundfonts: tuple[str, ...],
                    version_soundfonts: list[str], seed: int
                    ) -> list[dict[str, str]]:
  """{instrument class: SoundFont} of every version, as `draw` says.

  version     each version one SoundFont (cycling through them per piece)
  piece       one SoundFont for every version of a piece
  instrument  per version, each instrument class draws its own SoundFont:
              versions differ in their instrument samples while an
              instrument stays itself within a version, as orchestras do

  A separate generator draws them, so notes, orchestration and performances
  are the same whichever `draw` a demo is built with: demos differing only
  in this can be compared run for run.
  """
  if draw == 'version':
    return [dict.fromkeys(CLASSES, sf) for sf in version_soundfonts]
  if draw == 'piece':
    return [dict.fromkeys(CLASSES, version_soundfonts[0])
            for _ in version_soundfonts]
  if draw == 'instrument':
    rng = np.random.default_rng([seed, 1])
    return [{c: soundfonts[int(rng.integers(len(soundfonts)))]
             for c in CLASSES} for _ in version_soundfonts]
  raise ValueError(f'soundfont draw {draw!r}: one of {SOUNDFONT_DRAWS}')


SOUNDFONT_DRAWS = ('version', 'piece', 'instrument')


def build_piece(out: pathlib.Path, corpus_path: str, num_versions: int,
                max_seconds: float, seed: int,
                soundfonts: tuple[str, ...] = tuple(SOUNDFONTS),
                soundfont_draw: str = 'version') -> dict:
  """Writes every version of one piece; returns its provenance record.

  Which SoundFont plays which instrument: `draw_soundfonts`.
  """
  rng = np.random.default_rng(seed)
  base_qpm = float(rng.uniform(76, 120))
  soundfonts = [soundfonts[i] for i in rng.permutation(len(soundfonts))]
  performances = [sample_performance(rng, soundfonts[v % len(soundfonts)],
                                     base_qpm) for v in range(num_versions)]
  score = fit_to_duration(load_score(corpus_path), performances, max_seconds)
  plan = orchestrate(score, rng)
  assignments = draw_soundfonts(soundfont_draw, tuple(soundfonts),
                                [p.soundfont for p in performances], seed)
  name = score.name
  measure = score.measure_at

  _write_csv(out / 'notes' / f'{name}.csv',
             ('start_measure', 'end_measure', 'pitch', 'instrument'),
             [(f'{measure(s):.6f}', f'{measure(e):.6f}', int(p), CLASSES[int(c)])
              for s, e, p, c, _ in plan])
  activity = []
  for index in np.unique(plan[:, 3]).astype(int):
    rows = plan[plan[:, 3] == index]
    for s, e in _spans(measure(rows[:, 0]), measure(rows[:, 1])):
      activity.append((f'{s:.6f}', f'{e:.6f}', CLASSES[index]))
  _write_csv(out / 'instruments' / f'{name}.csv',
             ('start_measure', 'end_measure', 'instrument'), activity)

  end_quarter = float(score.measure_starts[-1])
  # Annotation rows on every measure start and every quarter in between.
  quarters = np.union1d(score.measure_starts, np.arange(0.0, end_quarter, 1.0))
  record = dict(piece=name, score=corpus_path, measures=len(
      score.measure_starts) - 1, versions={})
  with tempfile.TemporaryDirectory() as tmp:
    for v, perf in enumerate(performances):
      version = f'v{v + 1}'
      grid, seconds = tempo_map(perf, end_quarter)
      # One render per SoundFont in use, each with its instruments' notes.
      audio = np.zeros(0, np.float32)
      used = sorted(set(assignments[v][CLASSES[int(c)]]
                        for c in np.unique(plan[:, 3])))
      for soundfont in used:
        rows = np.array([assignments[v][CLASSES[int(c)]] == soundfont
                         for c in plan[:, 3]])
        midi_path = pathlib.Path(tmp) / f'{version}-{soundfont}.mid'
        write_midi(midi_path, plan[rows], perf, grid, seconds)
        part = render(midi_path, soundfont,
                      pathlib.Path(tmp) / f'{version}-{soundfont}.wav')
        length = max(len(audio), len(part))
        audio = (np.pad(audio, (0, length - len(audio))) +
                 np.pad(part, (0, length - len(part))))
      total = int((seconds[-1] + perf.tail) * SAMPLE_RATE)
      audio = np.pad(audio, (0, max(0, total - len(audio))))[:total]
      audio = room_and_microphone(audio, perf, rng)
      audio_path = out / 'audio' / name / f'{version}.flac'
      audio_path.parent.mkdir(parents=True, exist_ok=True)
      sf.write(str(audio_path), audio, SAMPLE_RATE)
      _write_csv(out / 'measures' / name / f'{version}.csv',
                 ('seconds', 'measure'),
                 [(f'{s:.6f}', f'{m:.6f}') for s, m in zip(
                     np.interp(quarters, grid, seconds), measure(quarters))])
      record['versions'][version] = dict(
          dataclasses.asdict(perf), seconds=len(audio) / SAMPLE_RATE,
          soundfonts={CLASSES[int(c)]: assignments[v][CLASSES[int(c)]]
                      for c in np.unique(plan[:, 3])})
  return record


def _build_piece_job(args):
  return build_piece(*args)


def build_demo(out, pieces: int = 24, versions: int = 3,
               max_seconds: float = 180.0, seed: int = 0,
               workers: int = 1,
               soundfonts: tuple[str, ...] = tuple(SOUNDFONTS),
               soundfont_draw: str = 'version') -> dict:
  """Builds the demo dataset into `out`; returns its provenance record.

  `soundfonts`: the SoundFonts versions are rendered with; `soundfont_draw`
  (`draw_soundfonts`): one per version, one per piece, or one per instrument
  and version. With one SoundFont, or one per piece, the versions of a piece
  share their instrument samples and differ only in performance and
  recording (tempo, rubato, dynamics, tuning, room, EQ, noise), as
  recordings of one orchestra would.

  The dataset is built beside `out` and renamed into place when complete, so
  an interrupted build never leaves a half dataset; a previous demo in `out`
  (one with demo.json) is replaced, any other non-empty folder is refused.
  """
  out = pathlib.Path(out)
  if out.exists() and any(out.iterdir()) and not (out / 'demo.json').exists():
    raise ValueError(f'--out={out} exists, is not empty and holds no demo '
                     'dataset; choose another folder')
  if pieces > len(CORPUS):
    raise ValueError(f'--pieces={pieces}: the demo corpus has {len(CORPUS)}')
  if pieces < 2 or versions < 2:
    raise ValueError('the demo needs --pieces >= 2 (train and test) and '
                     '--versions >= 2 (cross-version pairs)')
  if soundfont_draw not in SOUNDFONT_DRAWS:
    raise ValueError(f'--soundfont_draw={soundfont_draw}: one of '
                     f'{", ".join(SOUNDFONT_DRAWS)}')
  unknown = sorted(set(soundfonts) - set(SOUNDFONTS))
  if unknown or not soundfonts:
    raise ValueError(f'--soundfonts={",".join(soundfonts)}: expected some of '
                     f'{", ".join(SOUNDFONTS)}')
  missing = [SOUNDFONTS[s] for s in soundfonts
             if not os.path.exists(SOUNDFONTS[s])]
  if missing or not shutil.which('fluidsynth'):
    raise RuntimeError(
        f'FluidSynth or SoundFonts missing ({missing or "fluidsynth"}): run '
        'scripts/install_system_packages.sh')
  building = out.parent / f'.{out.name}.building'
  shutil.rmtree(building, ignore_errors=True)
  building.mkdir(parents=True)
  start = time.time()
  jobs = [(building, path, versions, max_seconds, seed * 1000 + i,
           tuple(soundfonts), soundfont_draw)
          for i, path in enumerate(CORPUS[:pieces])]
  records = []
  # spawn, not fork: the trainer calls this after JAX has started threads.
  with concurrent.futures.ProcessPoolExecutor(
      max(1, workers), mp_context=multiprocessing.get_context('spawn')) as pool:
    for record in tqdm.tqdm(pool.map(_build_piece_job, jobs), total=len(jobs),
                            desc='demo pieces', unit='piece'):
      records.append(record)

  rng = np.random.default_rng(seed)
  names = [r['piece'] for r in records]
  test = set(rng.choice(names, max(1, round(0.2 * len(names))), replace=False))
  _write_csv(building / 'pieces.csv', ('piece', 'split'),
             [(n, 'test' if n in test else 'train') for n in names])
  (building / 'classes.txt').write_text('\n'.join(CLASSES) + '\n')
  seconds = sum(v['seconds'] for r in records for v in r['versions'].values())
  summary = dict(pieces=records, seed=seed, soundfont_draw=soundfont_draw,
                 hours=seconds / 3600,
                 build_seconds=time.time() - start)
  (building / 'demo.json').write_text(json.dumps(summary, indent=1))
  if out.exists():
    shutil.rmtree(out)
  os.replace(building, out)
  return summary


FLAGS = flags.FLAGS


def define_flags():
  """Flags of the binary; defined only when it runs, so modules import freely."""
  flags.DEFINE_string('out', None, 'Folder to write the demo dataset into.')
  flags.DEFINE_integer('pieces', 24, 'Number of pieces (scores).')
  flags.DEFINE_integer('versions', 3, 'Versions (renderings) per piece.')
  flags.DEFINE_float(
      'max_seconds', 180.0,
      'Longest music of any version, in seconds: each score is cut to the '
      'whole measures its slowest version plays within this (lead-in and '
      'tail silence come on top).')
  flags.DEFINE_integer('seed', 0, 'Seed of orchestration and performances.')
  flags.DEFINE_integer('workers', os.cpu_count() or 1, 'Pieces built in parallel.')
  flags.DEFINE_list('soundfonts', list(SOUNDFONTS),
                    'SoundFonts to render versions with (one: versions share '
                    'their instrument timbres).')
  flags.DEFINE_enum('soundfont_draw', 'version', SOUNDFONT_DRAWS,
                    'Who draws a SoundFont: each version (default), each '
                    'piece (its versions share it), or each instrument of '
                    'each version.')


def main(argv):
  del argv
  if not FLAGS.out:
    raise app.UsageError('--out=DIR is required')
  try:
    summary = build_demo(FLAGS.out, FLAGS.pieces, FLAGS.versions,
                         FLAGS.max_seconds, FLAGS.seed, FLAGS.workers,
                         tuple(FLAGS.soundfonts), FLAGS.soundfont_draw)
  except (ValueError, RuntimeError) as e:  # missing SoundFont, FluidSynth
    raise cli.UserError(str(e)) from None
  print(f'{FLAGS.out}: {len(summary["pieces"])} pieces x {FLAGS.versions} '
        f'versions, {summary["hours"]:.2f} h of audio, built in '
        f'{summary["build_seconds"]:.0f} s')


if __name__ == '__main__':
  define_flags()
  cli.run(main)
