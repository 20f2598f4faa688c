"""`python -m cvrl.ssm`: SSM boundary evaluation (cvrl/evaluation/boundaries.py)."""

from cvrl import cli
from cvrl.evaluation import boundaries

__doc__ = boundaries.__doc__  # what --help shows

if __name__ == '__main__':
  boundaries.define_flags()
  cli.run(boundaries.main)
