"""Input features: log-mel (cvrl's default) or the published HCQT.

  python -m cvrl.data.prepare --data=DIR --config=configs/features.py:paper
  python -m cvrl.data.prepare --data=DIR --config.logmel.n_mels=96

Training configs embed this as `config.features`; prepare accepts them too.
"""

from cvrl import audio


def get_config(variant: str = ''):
  config = audio.feature_config()
  if variant == 'paper':  # harmonic CQT, 5 x 252 bins, as published
    config.kind = 'hcqt'
  elif variant not in ('', 'logmel'):
    raise ValueError(f"unknown variant {variant!r}: use '' or 'paper'")
  return config
