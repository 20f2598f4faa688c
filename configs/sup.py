"""Supervised (Sup) reference: the same encoder trained to classify instruments.

  python -m cvrl.train --config=configs/sup.py[:paper|:demo] --workdir=W
"""

from configs import base


def get_config(variant: str = ''):
  return base.get_config('sup', variant)
