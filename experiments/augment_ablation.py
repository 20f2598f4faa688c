r"""What each of the seven published augmentations does to CV, in one command.

  .venv/bin/python experiments/augment_ablation.py [--out=runs/augment] \
      [--variant=demo] [--steps=N] [--seeds=3] [--loo_seeds=1] \
      [--first_seed=0] [--probe_seeds=3] [--hop=4] [--jobs=1] \
      [--only=NAME ...] \
      [--include=EARLIER.json] [--report]

Trains CV (configs/cv.py:<variant>, without the validation pieces:
layout.validation_view) with all augmentations and with none,
`--seeds` training seeds each, and with each augmentation left out (its
probability set to 0), `--loo_seeds` training seeds each, for `--steps`
training steps (default: the config's); probes every run
for instruments on the validation pieces (`--on_test`: train on every train
piece, report on test), strong probe, `--probe_seeds` probe seeds, every
`--hop`-th frame; the published probe too. Writes OUT/augment.md (AP / AUC / F1 as
mean ± std over training seeds, and the change against "all"),
OUT/augment.json and OUT/augment.png (bars with error bars). The published
work named this ablation as future work. Every step is a public binary and
is skipped when its output exists, so an interrupted run resumes;
`--report` tabulates what has finished so far. Built on
experiments/compare.py, which compares any config changes this way (and
explains `--only`, `--first_seed` and `--include`). docs/augment.json is the ablation's
report as measured; a report with `--include=docs/augment.json` combines
new runs with it.
"""

import argparse
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from configs import base  # noqa: E402  pylint: disable=g-import-not-at-top
from experiments import compare  # noqa: E402
from experiments import runner  # noqa: E402

# In the published order; configs/base.py holds their settings.
AUGMENTATIONS = ('eq', 'time_warp', 'bin_shift', 'bin_mask', 'time_mask',
                 'noise', 'gain')
assert set(AUGMENTATIONS) == set(base.augment_config(1)) - {'enabled'}


def probabilities(left_out: str = '') -> tuple[str, ...]:
  """Every augmentation at its published probability, `left_out` at 0.

  Spelled out rather than left to the config: a variant's default may drop
  some (the `:demo` SV and CV run without eq and noise, this study's pick),
  and "all" must stay the published set.
  """
  published = base.augment_config(1)
  return tuple(f'--config.augment.{name}.p='
               f'{0 if name == left_out else published[name].p}'
               for name in AUGMENTATIONS)


def settings(args) -> list[compare.Setting]:
  """All, none, and each augmentation left out (its probability set to 0)."""
  out = [compare.Setting('all', probabilities(), args.seeds),
         compare.Setting('none', ('--config.augment.enabled=False',),
                         args.seeds)]
  out += [compare.Setting(f'without {name}', probabilities(name),
                          args.loo_seeds) for name in AUGMENTATIONS]
  return out


def main() -> int:
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  compare.add_flags(parser, 'runs/augment')
  parser.add_argument('--seeds', type=int, default=3,
                      help='training seeds for "all" and "none"')
  parser.add_argument('--loo_seeds', type=int, default=1,
                      help='training seeds for each leave-one-out')
  args = parser.parse_args()
  # Training minutes are left out: these runs share the machine unevenly.
  return compare.run(args, settings(args), 'cv', 'augment', 'CV',
                     minutes=False, contrast=('none',))


if __name__ == '__main__':
  sys.exit(runner.main(main))
