"""Single-version (SV) baseline: positives are temporally close excerpts of one recording.

  python -m cvrl.train --config=configs/sv.py[:paper|:demo] --workdir=W
"""

from configs import base


def get_config(variant: str = ''):
  return base.get_config('sv', variant)
