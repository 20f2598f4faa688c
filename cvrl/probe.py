"""`python -m cvrl.probe`: probing frozen features (cvrl/evaluation/probe.py)."""

from cvrl import cli
from cvrl.evaluation import probe

__doc__ = probe.__doc__  # what --help shows

if __name__ == '__main__':
  probe.define_flags()
  cli.run(probe.main)
