"""Evaluation settings: probes, SSM boundaries, retrieval (config data).

  python -m cvrl.probe --workdir=W --eval_config=configs/evaluation.py \
      --eval_config.probe.strong.epochs=50
  python -m cvrl.ssm --workdir=W --eval_config.ssm.kernel_seconds=10,20,30

Every evaluator writes the settings it used into its JSON report.
"""

import ml_collections


def get_config(variant: str = ''):
  del variant
  config = ml_collections.ConfigDict()
  config.hop = 1  # evaluate every hop-th frame (1: all, as published)

  config.probe = ml_collections.ConfigDict()
  config.probe.seeds = 3
  # The published probe: MLP 64 -> 32 -> classes, SGD 1e-4, 10 epochs,
  # batch 32, on the whole train split.
  config.probe.published = ml_collections.ConfigDict(dict(
      name='published', optimizer='sgd', learning_rate=1e-4, epochs=10,
      batch_size=32, patience=None))
  # The same MLP trained to convergence: Adam, early stopping on every 5th
  # train piece (the published probe underfits frame-level data badly).
  config.probe.strong = ml_collections.ConfigDict(dict(
      name='strong', optimizer='adam', learning_rate=1e-3, epochs=100,
      batch_size=256, patience=5))

  config.ssm = ml_collections.ConfigDict()
  # 'published' follows the original code step by step (docs/protocol.md);
  # 'cvrl-v1' is cvrl's earlier procedure (set peak_floor=0.05, kernel_var=0.5
  # with it to reproduce its numbers).
  config.ssm.procedure = 'published'
  config.ssm.kernel_seconds = '1:60'  # "a:b" (every second) or "a,b,c"
  config.ssm.plots = 3  # test versions to draw SSM PNGs of
  config.ssm.smooth_seconds = 1.0  # Hann window
  config.ssm.target_rate = 5.0  # Hz after downsampling (integer factor)
  config.ssm.kernel_var = 1.0  # libfmp's Gaussian taper parameter
  config.ssm.peak_distance_seconds = 6.0
  config.ssm.peak_floor = 0.1  # of the novelty's maximum
  config.ssm.local_average_seconds = 3.0  # cvrl-v1 only
  config.ssm.tolerance_seconds = 3.0

  config.retrieval = ml_collections.ConfigDict()
  config.retrieval.within_seconds = (1.0, 3.0)
  return config
