"""Cross-version (CV): positives are the same measure position in another version.

  python -m cvrl.train --config=configs/cv.py[:paper|:demo] --workdir=W
"""

from configs import base


def get_config(variant: str = ''):
  return base.get_config('cv', variant)
