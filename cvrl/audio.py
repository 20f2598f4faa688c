"""Audio input and time-frequency features (log-mel, harmonic CQT, MFCC, chroma).

Features are plain functions of (waveform, config) -> [frames, bins(, chans)]
on a centred frame grid: frame i sits at i * hop / sample_rate seconds.
"""

from __future__ import annotations

import hashlib
import json

import librosa
import ml_collections
import numpy as np
import soundfile as sf


def feature_config() -> ml_collections.ConfigDict:
  """Default feature settings; `kind` selects the section that is used.

  22050 Hz / hop 512 (~43 frames/s) follow the published method, so the
  frame-wise references of its dataset line up with our frames one to one.
  """
  config = ml_collections.ConfigDict()
  config.kind = 'logmel'  # 'logmel' (cvrl's default) or 'hcqt' (the paper's)
  config.sample_rate = 22050
  config.hop_length = 512
  config.dtype = 'float16'  # cache dtype; halves disk and page-cache traffic
  config.logmel = ml_collections.ConfigDict(
      dict(n_fft=2048, n_mels=128, fmin=30.0, fmax=11025.0))
  config.hcqt = ml_collections.ConfigDict(
      dict(n_bins=252, bins_per_octave=36, fmin_note='C1',
           harmonics=(0.5, 1.0, 2.0, 3.0, 4.0), estimate_tuning=True))
  return config


def feature_key(config: ml_collections.ConfigDict) -> str:
  """Short stable name for a feature config: '<kind>-<hash of its settings>'.

  Only the fields that change the numbers enter the hash, so switching `kind`
  back and forth reuses the caches of both.
  """
  relevant = dict(kind=config.kind, sample_rate=config.sample_rate,
                  hop_length=config.hop_length, dtype=config.dtype,
                  params=config[config.kind].to_dict())
  text = json.dumps(relevant, sort_keys=True, default=list)
  return f'{config.kind}-{hashlib.sha1(text.encode()).hexdigest()[:10]}'


def frame_rate(config: ml_collections.ConfigDict) -> float:
  return config.sample_rate / config.hop_length


class AudioError(ValueError):
  """An audio file cannot be read; the message names it."""


def load_audio(path, sample_rate: int) -> np.ndarray:
  """Any file soundfile reads -> mono float32 at `sample_rate`."""
  try:
    audio, source_rate = sf.read(str(path), dtype='float32', always_2d=True)
  except Exception as e:  # soundfile raises several types for broken files
    raise AudioError(f'{path}: cannot decode audio: {e}') from e
  audio = audio.mean(axis=1)
  if source_rate != sample_rate:
    audio = librosa.resample(audio, orig_sr=source_rate, target_sr=sample_rate,
                             res_type='soxr_hq')
  return np.ascontiguousarray(audio, dtype=np.float32)


def logmel(audio: np.ndarray, config: ml_collections.ConfigDict) -> np.ndarray:
  """[frames, n_mels] log-compressed mel power spectrogram (dB)."""
  params = config.logmel
  mel = librosa.feature.melspectrogram(
      y=audio, sr=config.sample_rate, n_fft=params.n_fft,
      hop_length=config.hop_length, n_mels=params.n_mels, fmin=params.fmin,
      fmax=min(params.fmax, config.sample_rate / 2), power=2.0)
  return librosa.power_to_db(mel, ref=1.0, amin=1e-10, top_db=None).T


def _cqt_bins_below_nyquist(fmin: float, n_bins: int, bins_per_octave: int,
                            sample_rate: int) -> int:
  """How many CQT bins from `fmin` librosa can compute below Nyquist.

  The published HCQT (252 bins from C1 at 22050 Hz) asks harmonics 3 and 4 for
  bins above Nyquist, which librosa refuses; those bins hold no signal, so we
  compute the ones that exist and leave the rest at the floor value.
  """
  freqs = librosa.cqt_frequencies(n_bins, fmin=fmin,
                                  bins_per_octave=bins_per_octave)
  # librosa's relative filter bandwidth for a constant bins-per-octave grid
  # and the upper cutoff of each Hann-windowed wavelet (its Nyquist check).
  ratio = 2.0 ** (2.0 / bins_per_octave)
  alpha = (ratio - 1) / (ratio + 1)
  cutoff = freqs * (1 + 0.5 * librosa.filters.window_bandwidth('hann') * alpha)
  return int(np.sum(cutoff < sample_rate / 2 * 0.999))


def hcqt(audio: np.ndarray, config: ml_collections.ConfigDict) -> np.ndarray:
  """[frames, n_bins, harmonics] log-magnitude harmonic CQT (the paper's input)."""
  params = config.hcqt
  fmin = librosa.note_to_hz(params.fmin_note)
  tuning = (librosa.estimate_tuning(y=audio, sr=config.sample_rate,
                                    bins_per_octave=params.bins_per_octave)
            if params.estimate_tuning else 0.0)
  frames = 1 + len(audio) // config.hop_length
  out = np.full((frames, params.n_bins, len(params.harmonics)), -100.0,
                np.float32)
  for channel, harmonic in enumerate(params.harmonics):
    fmin_h = fmin * harmonic * 2.0 ** (tuning / params.bins_per_octave)
    n_bins = _cqt_bins_below_nyquist(fmin_h, params.n_bins,
                                      params.bins_per_octave,
                                      config.sample_rate)
    if n_bins == 0:
      continue
    magnitude = np.abs(librosa.cqt(
        audio, sr=config.sample_rate, hop_length=config.hop_length,
        fmin=fmin_h, n_bins=n_bins, bins_per_octave=params.bins_per_octave))
    out[:, :n_bins, channel] = librosa.amplitude_to_db(
        magnitude, ref=1.0, amin=1e-5, top_db=None).T[:frames]
  return out


def mfcc(audio: np.ndarray, config: ml_collections.ConfigDict) -> np.ndarray:
  """[frames, 10] MFCC coefficients 4-13: the published timbre baseline.

  The first three coefficients (loudness and spectral tilt) are left out, as
  in the published evaluation.
  """
  out = librosa.feature.mfcc(y=audio, sr=config.sample_rate, n_mfcc=13,
                             hop_length=config.hop_length)[3:13]
  return out.T.astype(np.float32)


def chroma(audio: np.ndarray, config: ml_collections.ConfigDict) -> np.ndarray:
  """[frames, 12] STFT chroma, tuning estimated: the published harmony baseline."""
  out = librosa.feature.chroma_stft(y=audio, sr=config.sample_rate,
                                    hop_length=config.hop_length, tuning=None)
  return out.T.astype(np.float32)


def warm_up(config: ml_collections.ConfigDict | None = None) -> None:
  """Compiles (and caches) librosa's numba code for every feature, here.

  librosa caches its numba functions in site-packages. Two processes that
  compile the same function at once (parallel `prepare` workers, parallel
  test processes on a fresh install) can overwrite each other's cache index,
  and a later load then runs machine code compiled for another signature:
  a segfault in tuning estimation. Calling this once before going parallel
  leaves the workers only reading the cache.
  """
  config = config or feature_config()
  noise = np.random.default_rng(0).standard_normal(
      8 * config.sample_rate).astype(np.float32) * 0.1
  hcqt_config = ml_collections.ConfigDict(config.to_dict())
  hcqt_config.kind = 'hcqt'
  compute_features(noise, hcqt_config)
  logmel(noise, config)
  mfcc(noise, config)
  chroma(noise, config)


def compute_features(audio: np.ndarray,
                     config: ml_collections.ConfigDict) -> np.ndarray:
  """Dispatch on `config.kind`; returns float32 [frames, *feature_shape]."""
  if config.kind == 'logmel':
    return logmel(audio, config).astype(np.float32)
  if config.kind == 'hcqt':
    return hcqt(audio, config)
  raise ValueError(f"unknown feature kind {config.kind!r}: use 'logmel' or 'hcqt'")
