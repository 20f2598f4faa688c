"""Audio loading and features: frame counts, bins, and the config key."""

import numpy as np
import soundfile as sf

from cvrl import audio
from conftest import SR


def sine(freq, seconds, sr):
  t = np.arange(int(seconds * sr)) / sr
  return (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def test_load_audio_resamples_and_downmixes(tmp_path):
  stereo = np.stack([sine(440, 2.0, 44100), sine(440, 2.0, 44100)], axis=1)
  sf.write(tmp_path / 'x.flac', stereo, 44100)
  waveform = audio.load_audio(tmp_path / 'x.flac', SR)
  assert waveform.ndim == 1 and waveform.dtype == np.float32
  assert len(waveform) == int(np.ceil(len(stereo) * SR / 44100))


def test_logmel_frames_and_peak(tmp_path):
  config = audio.feature_config()
  sf.write(tmp_path / 'x.wav', sine(1000, 3.0, 48000), 48000)
  waveform = audio.load_audio(tmp_path / 'x.wav', config.sample_rate)
  features = audio.compute_features(waveform, config)
  assert features.shape == (1 + len(waveform) // 512, 128)
  assert len(waveform) == 3 * SR
  import librosa
  mel_freqs = librosa.mel_frequencies(130, fmin=30.0, fmax=11025.0)[1:-1]
  peak = int(np.argmax(features[features.shape[0] // 2]))
  assert abs(mel_freqs[peak] - 1000) < 60


def test_hcqt_shape_harmonic_channels_and_nyquist():
  config = audio.feature_config()
  config.kind = 'hcqt'
  config.hcqt.estimate_tuning = False
  features = audio.compute_features(sine(440, 8.0, SR), config)
  assert features.shape == (1 + 8 * SR // 512, 252, 5)
  middle = features[features.shape[0] // 2]
  # 8 s: long enough for the lowest octaves after librosa's downsampling.
  # 440 Hz sits 3.75 octaves above C1: bin 135 of the fundamental channel,
  # 99 of the 2nd-harmonic channel (from C2), 171 of the 0.5 channel (C0).
  for channel, expected in ((1, 135), (2, 99), (0, 171)):
    assert abs(int(np.argmax(middle[:, channel])) - expected) <= 1
  # Harmonic 4 (from C3) reaches past Nyquist: on white noise its lower bins
  # carry energy and its top bins stay at the floor.
  noise = np.random.default_rng(0).standard_normal(8 * SR).astype(np.float32)
  features = audio.compute_features(0.1 * noise, config)
  assert np.all(features[:, -10:, 4] == -100.0)
  assert np.all(features[5:-5, :200, 4] > -100.0)


def test_feature_key_tracks_only_relevant_settings():
  config = audio.feature_config()
  key = audio.feature_key(config)
  config.hcqt.n_bins = 84  # not the selected kind: same key
  assert audio.feature_key(config) == key
  config.logmel.n_mels = 64
  assert audio.feature_key(config) != key
  config.kind = 'hcqt'
  assert audio.feature_key(config).startswith('hcqt-')
