"""Audio loading and features: frame counts, bins, and the config key."""

import numpy as np
import soundfile as sf

from cvrl import audio
from helpers import SR, run_python


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


def test_tuning_estimation_runs_in_a_fresh_process():
  """Every feature that estimates tuning, in a child process.

  numba 0.68 with librosa 0.11 segfaults in librosa's tuning estimation; in a
  child the crash is a clear failure instead of a dead test session.
  """
  code = (
      'import numpy as np; from cvrl import audio; '
      'c = audio.feature_config(); c.kind = "hcqt"; '
      'x = np.random.default_rng(0).standard_normal(3 * 22050).astype("f4"); '
      'audio.compute_features(x, c); audio.chroma(x, c); audio.mfcc(x, c); '
      'print("ok")')
  result = run_python('-c', code)
  assert result.returncode == 0 and 'ok' in result.stdout, (
      f'tuning estimation failed (exit {result.returncode}); numba/llvmlite '
      f'not the tested versions of requirements-lock.txt?\n{result.stderr}')


def test_hcqt_with_tuning_estimation_finds_the_pitch():
  config = audio.feature_config()
  config.kind = 'hcqt'
  assert config.hcqt.estimate_tuning  # the published setting
  # A quarter-semitone sharp A4: tuning estimation moves the grid onto it.
  sharp = 440.0 * 2 ** (0.25 / 12)
  features = audio.compute_features(sine(sharp, 8.0, SR), config)
  assert features.shape == (1 + 8 * SR // 512, 252, 5)
  assert np.isfinite(features).all()
  middle = features[features.shape[0] // 2]
  assert abs(int(np.argmax(middle[:, 1])) - 135) <= 1


def test_mfcc_drops_loudness_coefficients():
  config = audio.feature_config()
  x = sine(300, 3.0, SR) + 0.05 * np.random.default_rng(0).standard_normal(
      3 * SR).astype(np.float32)
  features = audio.mfcc(x, config)
  assert features.shape == (1 + 3 * SR // 512, 10)
  # Gain only moves coefficient 0 of a log-mel DCT, which is left out.
  np.testing.assert_allclose(audio.mfcc(4 * x, config), features, atol=1e-2)


def test_chroma_estimates_tuning_and_finds_the_pitch_class():
  config = audio.feature_config()
  # 40 cents sharp of A4: without tuning estimation nearly between A and A#.
  features = audio.chroma(sine(440.0 * 2 ** (0.4 / 12), 4.0, SR), config)
  assert features.shape == (1 + 4 * SR // 512, 12)
  assert np.isfinite(features).all()
  classes = np.argmax(features[10:-10], axis=1)
  assert np.all(classes == 9)  # A, counting from C


def test_installed_packages_satisfy_the_declared_ranges():
  """`pip check`: e.g. numba 0.68 installed by hand beside librosa 0.11.

  The crash it causes depends on the CPU (seen on AVX-512 hosts), so the
  range check is what catches that combination on every machine.
  """
  result = run_python('-m', 'pip', 'check')
  assert result.returncode == 0, result.stdout + result.stderr
