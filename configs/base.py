"""Settings shared by cv.py, sv.py and sup.py: same network, budget and batch.

The three methods differ only in how a training example is made
(`config.method`) and in the negatives that follow from it. Variants:

  ''       cvrl's default: log-mel input, the published network and budget.
  'paper'  the published settings (HCQT 201x252x5, Adam 2e-3, 8 triplets,
           2000 x 500 steps); see docs/protocol.md.
  'demo'   a narrower network on short log-mel patches that learns something
           within ~10 minutes on a 2-core CPU, on the built-in demo dataset.
  'test'   tiny everything, for the tests.
"""

import ml_collections

from cvrl import audio

METHODS = ('cv', 'sv', 'sup')
VARIANTS = ('', 'paper', 'demo', 'test')


def augment_config(max_bins: int) -> ml_collections.ConfigDict:
  """The published augmentations, each with its probability (0 disables it).

  Bin shift and bin mask ranges are in feature bins: 36 HCQT bins are one
  octave; the log-mel variants scale them to their bin count.
  """
  return ml_collections.ConfigDict(dict(
      enabled=True,
      eq=dict(p=1.0, max_db=6.0, max_tilt_db=3.0),
      time_warp=dict(p=0.5, max_stretch=0.1),
      bin_shift=dict(p=0.3, max_bins=max_bins),
      bin_mask=dict(p=0.1, max_bins=max_bins),
      time_mask=dict(p=0.1, max_frames=21),
      noise=dict(p=0.5, max_amplitude=0.05),
      gain=dict(p=0.5, max_change=0.2),
  ))


def get_config(method: str, variant: str = '') -> ml_collections.ConfigDict:
  if method not in METHODS:
    raise ValueError(f'unknown method {method!r}: one of {METHODS}')
  if variant not in VARIANTS:
    raise ValueError(f'unknown variant {variant!r}: one of {VARIANTS}')
  config = ml_collections.ConfigDict()
  config.method = method
  config.variant = variant
  config.seed = 0

  config.features = audio.feature_config()

  config.data = ml_collections.ConfigDict()
  # The built-in demo dataset: built there on first use when `demo` is set.
  config.data.root = 'demo_data'
  config.data.demo = True
  config.data.demo_pieces = 24
  config.data.demo_versions = 3
  config.data.demo_max_seconds = 180.0
  # Comma-separated (cvrl/data/demo.py SOUNDFONTS); one: versions share timbres.
  config.data.demo_soundfonts = 'FluidR3_GM,TimGM6mb,MuseScore_General'
  # Who draws a SoundFont: 'version', 'piece' or 'instrument' (per version).
  config.data.demo_soundfont_draw = 'version'
  config.data.cache_dir = ''  # '' = <root>/cache
  # Train on versions whose measure annotation cvrl.data.sync derived too.
  config.data.derived_annotations = True
  # Studies: train without the validation pieces (layout.validation_view),
  # whose probes then choose settings; the test split stays unseen.
  config.data.validation = False
  config.data.patch_frames = 201  # ~4.7 s at 43 frames/s, centred
  config.data.tau_p = 0.2  # positive jitter, seconds (uniform in +-tau_p)
  config.data.tau_n = 10.0  # negatives at least this far from the anchor, s
  # 'same_version' (published SV), 'any_version' (published CV),
  # 'other_version' or 'other_piece'.
  config.data.negative = 'same_version' if method == 'sv' else 'any_version'
  config.data.workers = 2  # grain worker processes; 0 = in the main process
  config.data.prefetch = 4  # batches buffered per worker

  config.augment = augment_config(max_bins=18)  # 128 mel bins: 36 * 128 / 252

  config.model = ml_collections.ConfigDict(dict(
      prefilter_features=64,
      prefilter_kernel=(15, 15),
      freq_stride=1,  # 3 for HCQT: 3 bins per semitone -> 1
      block_features=(64, 128, 256),
      final_features=512,
      dense_features=(256, 128),
      embedding_dim=128,
      dropout_rate=0.5,
      leaky_slope=0.3,  # Keras' LeakyReLU default, as in the original
  ))

  config.loss = ml_collections.ConfigDict(dict(
      name='bce' if method == 'sup' else 'triplet',  # or 'nt_xent'
      margin=1.0,
      temperature=0.1,
  ))

  # How the model is computed, not what: 'fast' (cvrl/layers.py: convolution
  # and pool gradients that XLA:CPU runs fast) or 'plain' (flax's nn.Conv and
  # nn.max_pool). Same parameters and checkpoints; outputs and gradients
  # equal up to float rounding (tests/test_models.py). 'auto': fast on CPU,
  # where it was measured to win (docs/speed.md), plain on GPU / TPU, whose
  # convolution libraries the fast form's scans would bypass.
  config.compute = ml_collections.ConfigDict(dict(formulation='auto'))

  config.optimizer = ml_collections.ConfigDict(dict(
      name='adam',
      learning_rate=2e-3,
      schedule='constant',  # or 'cosine' (with warmup)
      warmup_steps=0,
      weight_decay=0.0,
  ))

  config.batch_size = 8  # global: triplets (cv, sv) or patches (sup) per step
  config.num_train_steps = 2000 * 500
  config.log_every = 100
  config.checkpoint_every = 2000
  config.keep_checkpoints = 3

  if variant == 'paper':
    config.features.kind = 'hcqt'
    config.augment = augment_config(max_bins=36)
    config.model.freq_stride = 3
  elif variant == 'demo':
    # Sized for XLA:CPU, whose convolutions are slow (docs/speed.md): two
    # conv blocks on half the mel bins, short patches. README, "Training".
    config.data.patch_frames = 101  # ~2.3 s
    config.augment = augment_config(max_bins=18)
    if method != 'sup':
      # The validation split's pick for CV (docs/results.md, "Both left
      # out"): without eq and noise, +0.030 AP over all seven in 3 of 3
      # training seeds. Neutral for SV over 3 seeds, which takes the same
      # set so that SV and CV differ in their positives only. Sup was not
      # ablated and keeps all seven.
      config.augment.eq.p = 0.0
      config.augment.noise.p = 0.0
    config.model.update(dict(
        prefilter_features=8, prefilter_kernel=(3, 3), freq_stride=2,
        block_features=(16, 32), final_features=64,
        dense_features=(128,), dropout_rate=0.1))
    config.batch_size = 16
    # SV and CV: the length the validation split chose (docs/results.md,
    # "training length": SV's probe falls with training, CV's rises, CV > SV
    # in every seed at 6000). Sup's length was not studied; at 1500 it
    # already probes above every self-supervised run.
    config.num_train_steps = 1500 if method == 'sup' else 6000
    config.log_every = 25
    config.checkpoint_every = 250
  elif variant == 'test':
    config.data.demo = False
    config.data.root = ''
    config.data.patch_frames = 31
    config.data.tau_n = 2.0
    config.data.workers = 0
    config.features.logmel.n_mels = 32
    config.augment = augment_config(max_bins=4)
    config.model.update(dict(
        prefilter_features=4, prefilter_kernel=(3, 3),
        block_features=(4, 8), final_features=16,
        dense_features=(16,), embedding_dim=8, dropout_rate=0.1))
    config.batch_size = 8
    config.num_train_steps = 4
    config.log_every = 1
    config.checkpoint_every = 2
  return config
