"""cvrl.embed: dense embeddings, the binary, checkpoints of older code."""

import numpy as np
import soundfile as sf

import helpers
from cvrl import checkpoints
from cvrl import embed


def test_fast_embeddings_equal_one_patch_at_a_time(trained_workdir):
  encoder = checkpoints.restore_model(trained_workdir)
  prepared = embed.open_dataset(encoder)
  version = prepared.dataset.versions()[0]
  features = np.asarray(prepared.features(version), np.float32)[:70]
  fast = embed.embed_features(encoder, features, hop=1, batch_size=16)
  assert fast.shape == (70, encoder.config.model.embedding_dim)
  half = encoder.patch_frames // 2
  padded = np.concatenate([np.full((half, features.shape[1]), -100.0),
                           features, np.full((half, features.shape[1]), -100.0)])
  padded = (padded - encoder.mean) / encoder.std
  for frame in (0, 33, 69):
    patch = padded[frame:frame + encoder.patch_frames][None, ..., None]
    one = encoder.model.apply(encoder.variables, patch)['embedding'][0]
    np.testing.assert_allclose(fast[frame], one, atol=1e-5)
  hopped = embed.embed_features(encoder, features, hop=4, batch_size=16)
  np.testing.assert_allclose(hopped, fast[::4], atol=1e-5)


def test_embed_binary_on_an_audio_file(trained_workdir, tmp_path):
  audio = tmp_path / 'tone.wav'
  sf.write(audio, helpers.tone(3.0), helpers.SR)
  result = helpers.run_python('-m', 'cvrl.embed', f'--workdir={trained_workdir}',
                               f'--audio={audio}', f'--out={tmp_path / "e.npy"}')
  assert result.returncode == 0, result.stderr
  embedding = np.load(tmp_path / 'e.npy')
  assert embedding.shape == (1 + 3 * helpers.SR // helpers.HOP, 8)
  np.testing.assert_allclose(np.linalg.norm(embedding, axis=1), 1, rtol=1e-4)


def test_embed_binary_gives_any_layer(trained_workdir, tmp_path):
  audio = tmp_path / 'tone.wav'
  sf.write(audio, helpers.tone(2.0), helpers.SR)
  result = helpers.run_python('-m', 'cvrl.embed', f'--workdir={trained_workdir}',
                              f'--audio={audio}', f'--out={tmp_path / "f.npy"}',
                              '--layer=final')
  assert result.returncode == 0, result.stderr
  encoder = checkpoints.restore_model(trained_workdir)
  final = np.load(tmp_path / 'f.npy')
  assert final.shape == (1 + 2 * helpers.SR // helpers.HOP,
                         encoder.config.model.final_features)
