r"""cvrl's triplet train step against the frameworks a user would otherwise pick.

  .venv/bin/python benchmarks/step_vs_reference.py [--repeats=5] [--skip_published]
      [--published_plain]
  (TensorFlow / PyTorch rows need `pip install -e '.[bench]'`; without them
  those rows are left out and the ratio says n/a.)

Published network (configs/cv.py:paper: 8 triplets of 201 x 252 x 5 HCQT
patches, Adam 2e-3) as
  cvrl fast    cvrl's train step, config.compute.formulation='fast'
  cvrl plain   the same with flax's nn.Conv / nn.max_pool ('plain')
  tensorflow   the same network and step in Keras, written from the
               architecture (the original's framework; tf.function, no XLA)
  pytorch      the same in PyTorch (eager, CPU threads = cores)
and the demo network (configs/cv.py:demo, 16 triplets of 101 x 128) in cvrl
fast and plain. Each contender runs in its own process (as a user runs one
framework), driven one step at a time from here, so the repetitions are
interleaved (one step of each in turn); the median is reported. Every
contender runs with cvrl's allocator setting (cvrl/allocator.py, what the
binaries do), except `cvrl plain, system malloc`: the plain formulation
with glibc's defaults, i.e. the step as it was before the speed work.
GFLOP per step comes from XLA's cost analysis of cvrl's plain step (the
same arithmetic in every framework); "of peak" divides the achieved rate by
this machine's measured float32 matrix-product rate.
Last lines:
  demo, formulation alone (both with cvrl's allocator setting): fast/plain=R4
  published: cvrl/tensorflow=R1 cvrl/pytorch=R2  demo: optimised/plain=R3
where R3 is `cvrl plain, system malloc` over `cvrl fast`.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import subprocess
import sys
import time

from absl import app
from absl import flags
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..'))

import jax  # noqa: E402  pylint: disable=g-import-not-at-top
import jax.numpy as jnp  # noqa: E402

from configs import cv  # noqa: E402
from cvrl import allocator  # noqa: E402
from cvrl import models  # noqa: E402
from cvrl import train  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_integer('repeats', 5, 'Timed steps of each contender.')
flags.DEFINE_bool('skip_published', False, 'Only the demo rows (fast check).')
flags.DEFINE_bool('published_plain', False, 'Also time the published step in '
                  'the plain formulations (~35-45 s each on 2 cores; they '
                  'make each round ~4x longer).')
flags.DEFINE_string('variant', 'paper', 'configs/cv.py variant of the '
                    '"published" rows (tests use a small one).')
flags.DEFINE_string('demo_variant', 'demo', 'configs/cv.py variant of the '
                    '"demo" rows.')
flags.DEFINE_string('child', None, 'Internal: serve one contender '
                    '(variant:formulation) step by step over stdin/stdout.')
SYSTEM_MALLOC = 'cvrl plain, system malloc'


def matmul_peak_gflops(size: int = 2048, repeats: int = 5) -> float:
  """This machine's float32 matrix-product rate through XLA (GFLOP/s)."""
  a = jnp.ones((size, size), jnp.float32)
  f = jax.jit(lambda a: a @ a)
  f(a).block_until_ready()
  start = time.perf_counter()
  for _ in range(repeats):
    f(a).block_until_ready()
  return 2 * size ** 3 * repeats / (time.perf_counter() - start) / 1e9


def plain_gflop(config) -> float:
  """XLA's GFLOP count of the plain formulation's step (compiled, not run)."""
  return cvrl_step(config.copy_and_resolve_references(), 'plain',
                   warm_up=False)[1]


def cvrl_step(config, formulation: str, warm_up: bool = True):
  """(step(), GFLOP per step) of cvrl's triplet step on random patches."""
  config = cv.get_config(config) if isinstance(config, str) else config
  config.compute.formulation = formulation
  model = models.create_model(config, axis_name=train.AXIS)
  one = lambda tree: jax.tree.map(lambda x: jnp.asarray(x)[None], tree)
  state = one(train.create_train_state(jax.random.key(0), config, model))
  shape = (1, config.batch_size) + models.input_shape(config)
  rng = np.random.default_rng(0)
  batch = {r: jnp.asarray(rng.normal(size=shape), jnp.float32)
           for r in ('anchor', 'positive', 'negative')}
  key = one(jax.random.key(1))
  step = jax.jit(jax.vmap(functools.partial(
      train.train_step, method='cv', loss='triplet', margin=1.0,
      temperature=0.1), axis_name=train.AXIS))
  compiled = step.lower(state, batch, key).compile()
  cost = compiled.cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  holder = [state]

  def run():
    holder[0], metrics = compiled(holder[0], batch, key)
    jax.block_until_ready(metrics)
  if warm_up:
    run()
  return run, cost.get('flops', float('nan')) / 1e9


STEPS = {}  # framework -> step(config) factory, filled below


def serve_child(spec: str) -> None:
  """Child process: one step per 'step' line on stdin, 'ok' after each.

  spec: 'framework:variant[:formulation]'. First line: 'ready GFLOP' (XLA's
  count for cvrl, nan otherwise), or 'missing' without the framework.
  """
  framework, variant, *formulation = spec.split(':')
  config = cv.get_config(variant)
  if framework == 'cvrl':
    run, gflop = cvrl_step(config, formulation[0])
  else:
    run, gflop = STEPS[framework](config), float('nan')
  if run is None:
    print('missing', flush=True)
    return
  print(f'ready {gflop}', flush=True)
  for line in sys.stdin:
    if line.strip() != 'step':
      break
    run()
    print('ok', flush=True)


def start_child(spec: str, system_malloc: bool = False) -> subprocess.Popen:
  """A child process serving one contender (`serve_child`); it compiles and
  warms up while the other children start."""
  env = dict(os.environ)
  if system_malloc:
    env['CVRL_SYSTEM_MALLOC'] = '1'
  return subprocess.Popen(
      [sys.executable, os.path.abspath(__file__), f'--child={spec}'],
      stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)


def child_step(child: subprocess.Popen, spec: str):
  """step() of the contender a started child serves (None if missing).

  Every contender runs in its own process, as a user runs one framework:
  in one shared process the frameworks' thread pools and heaps slowed each
  other (cvrl's published step took 14.0 s there, 8.7 s alone). Driven one
  step at a time from here, so the repetitions stay interleaved.
  run.gflop: XLA's count of the step (cvrl), nan for the others.
  """
  first = child.stdout.readline().split()
  if first == ['missing']:
    child.wait()
    return None
  if not first or first[0] != 'ready':
    raise RuntimeError(f'the {spec} child did not start')

  def run():
    child.stdin.write('step\n')
    child.stdin.flush()
    if child.stdout.readline().strip() != 'ok':
      raise RuntimeError(f'the {spec} child stopped')
  run.gflop = float(first[1])
  run.close = lambda: (child.stdin.close(), child.wait())
  return run


def keras_step(config):
  """The published network and triplet step in Keras (None without TF)."""
  try:
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
  except ImportError:
    return None
  m = config.model
  layers = tf.keras.layers

  def block(x, features, kernel, strides=(1, 1), padding='valid'):
    x = layers.Conv2D(features, kernel, strides, padding, use_bias=False)(x)
    x = layers.BatchNormalization(momentum=0.99, epsilon=1e-3)(x)
    return layers.LeakyReLU(0.3)(x)

  inputs = tf.keras.Input(models.input_shape(config))
  x = block(inputs, m.prefilter_features, tuple(m.prefilter_kernel),
            padding='same')
  x = block(x, m.prefilter_features, (1, m.freq_stride), (1, m.freq_stride))
  for features in m.block_features:
    x = block(x, features, (3, 3))
    x = block(x, features, (3, 3))
    x = layers.MaxPooling2D((3, 3))(x)
  x = block(x, m.final_features, tuple(x.shape[1:3]))
  x = layers.Flatten()(x)
  for features in m.dense_features:
    x = layers.Dropout(m.dropout_rate)(x)
    x = layers.Dense(features)(x)
    x = layers.LeakyReLU(0.3)(layers.BatchNormalization(
        momentum=0.99, epsilon=1e-3)(x))
  x = layers.Dropout(m.dropout_rate)(x)
  x = layers.Dense(m.embedding_dim)(x)
  model = tf.keras.Model(inputs, layers.UnitNormalization(axis=-1)(x))
  optimizer = tf.keras.optimizers.Adam(config.optimizer.learning_rate)
  shape = (config.batch_size,) + models.input_shape(config)
  rng = np.random.default_rng(0)
  triplet = [tf.constant(rng.normal(size=shape), tf.float32) for _ in range(3)]

  @tf.function
  def step(a, p, n):
    with tf.GradientTape() as tape:
      out = model(tf.concat([a, p, n], 0), training=True)
      ea, ep, en = tf.split(out, 3)
      loss = tf.reduce_mean(tf.nn.relu(
          tf.reduce_sum((ea - ep) ** 2, -1) -
          tf.reduce_sum((ea - en) ** 2, -1) + 1.0))
    grads = tape.gradient(loss, model.trainable_variables)
    optimizer.apply_gradients(zip(grads, model.trainable_variables))
    return loss

  run = lambda: step(*triplet).numpy()
  run()
  return run


def torch_step(config):
  """The published network and triplet step in PyTorch (None without torch)."""
  try:
    import torch  # pylint: disable=g-import-not-at-top
  except ImportError:
    return None
  torch.set_num_threads(os.cpu_count() or 1)
  nn = torch.nn
  m = config.model
  time_, bins, channels = models.input_shape(config)

  def block(cin, features, kernel, stride=(1, 1), padding=0):
    return [nn.Conv2d(cin, features, kernel, stride, padding, bias=False),
            nn.BatchNorm2d(features, momentum=0.01, eps=1e-3),
            nn.LeakyReLU(0.3)]

  k = tuple(m.prefilter_kernel)
  layers_ = block(channels, m.prefilter_features, k,
                  padding=(k[0] // 2, k[1] // 2))
  layers_ += block(m.prefilter_features, m.prefilter_features,
                   (1, m.freq_stride), (1, m.freq_stride))
  cin = m.prefilter_features
  for features in m.block_features:
    layers_ += block(cin, features, 3) + block(features, features, 3)
    layers_.append(nn.MaxPool2d(3))
    cin = features
  trunk = nn.Sequential(*layers_)
  with torch.no_grad():
    t, f = trunk(torch.zeros(1, channels, time_, bins)).shape[2:]
  head = block(cin, m.final_features, (t, f)) + [nn.Flatten()]
  width = m.final_features
  for features in m.dense_features:
    head += [nn.Dropout(m.dropout_rate), nn.Linear(width, features),
             nn.BatchNorm1d(features, momentum=0.01, eps=1e-3),
             nn.LeakyReLU(0.3)]
    width = features
  head += [nn.Dropout(m.dropout_rate), nn.Linear(width, m.embedding_dim)]
  model = nn.Sequential(trunk, *head).train()
  optimizer = torch.optim.Adam(model.parameters(),
                               lr=config.optimizer.learning_rate)
  shape = (config.batch_size, channels, time_, bins)
  rng = np.random.default_rng(0)
  triplet = [torch.tensor(rng.normal(size=shape), dtype=torch.float32)
             for _ in range(3)]

  def run():
    optimizer.zero_grad()
    out = nn.functional.normalize(model(torch.cat(triplet)), dim=-1)
    ea, ep, en = out.chunk(3)
    loss = torch.relu(((ea - ep) ** 2).sum(-1) - ((ea - en) ** 2).sum(-1)
                      + 1.0).mean()
    loss.backward()
    optimizer.step()
    return float(loss)
  run()
  return run


STEPS.update(tensorflow=keras_step, pytorch=torch_step)


def contender_specs(network: str, variant: str,
                    published_plain: bool) -> dict:
  """{row name: (child spec, system malloc)} of one group of contenders."""
  specs = {f'cvrl {f}': (f'cvrl:{variant}:{f}', False)
           for f in ('fast', 'plain')}
  specs[SYSTEM_MALLOC] = (f'cvrl:{variant}:plain', True)
  if network == 'published':
    if not published_plain:
      specs = {'cvrl fast': specs['cvrl fast']}
    specs.update((name, (f'{name}:{variant}', False))
                 for name, module in (('tensorflow', 'tensorflow'),
                                      ('pytorch', 'torch'))
                 if importlib.util.find_spec(module))  # else: rows left out
  return specs


def timed(contenders: dict, repeats: int) -> dict:
  """Median seconds per step, repetitions interleaved across contenders."""
  times = {name: [] for name in contenders}
  for _ in range(repeats):
    for name, run in contenders.items():
      start = time.perf_counter()
      run()
      times[name].append(time.perf_counter() - start)
  return {name: float(np.median(t)) for name, t in times.items()}


def main(argv):
  del argv
  if FLAGS.child:
    serve_child(FLAGS.child)
    return
  peak = matmul_peak_gflops()
  rows = []  # (network, contender, s/step, triplets per step, GFLOP)
  ratios = {}
  # One group at a time (the demo's children end before the published ones
  # start), so each group's processes have the machine to themselves.
  groups = [('demo', FLAGS.demo_variant)]
  if not FLAGS.skip_published:
    groups.append(('published', FLAGS.variant))
  for network, variant in groups:
    config = cv.get_config(variant)
    specs = contender_specs(network, variant, FLAGS.published_plain)
    children = {name: start_child(*spec) for name, spec in specs.items()}
    # XLA counts a scan's body once, so the fast form's count is too low:
    # the plain program's is the model's arithmetic (compiled here, while
    # the children compile, when no plain contender runs).
    gflop = None if 'cvrl plain' in specs else plain_gflop(config)
    contenders = {name: child_step(child, specs[name][0])
                  for name, child in children.items()}
    contenders = {name: run for name, run in contenders.items() if run}
    gflop = gflop or contenders['cvrl plain'].gflop
    seconds = timed(contenders, FLAGS.repeats)
    for run in contenders.values():
      run.close()
    for name, s in seconds.items():
      rows.append((network, name, s, config.batch_size, gflop))
    best = seconds['cvrl fast']
    if network == 'published':
      for name in ('tensorflow', 'pytorch'):
        ratios[f'cvrl/{name}'] = (seconds[name] / best if name in seconds
                                  else None)
    else:
      ratios['optimised/plain'] = seconds[SYSTEM_MALLOC] / best
      ratios['fast/plain'] = seconds['cvrl plain'] / best
  print(f'float32 matrix-product rate of this machine: {peak:.0f} GFLOP/s '
        f'({os.cpu_count()} cores); {FLAGS.repeats} interleaved steps each, '
        'median; cvrl\'s allocator setting (cvrl/allocator.py) except where '
        'the contender says "system malloc"\n')
  print('| network | contender | s/step | triplets/s | GFLOP/step | '
        'GFLOP/s | of peak |')
  print('|---|---|---|---|---|---|---|')
  for network, name, s, triplets, gflop in sorted(
      rows, key=lambda row: row[0] != 'published'):
    print(f'| {network} | {name} | {s:.3f} | {triplets / s:.1f} | '
          f'{gflop:.1f} | {gflop / s:.1f} | {gflop / s / peak:.1%} |')
  fmt = lambda r: 'n/a' if r is None else f'{r:.2f}'
  published = (f'published: cvrl/tensorflow={fmt(ratios.get("cvrl/tensorflow"))} '
               f'cvrl/pytorch={fmt(ratios.get("cvrl/pytorch"))}'
               if not FLAGS.skip_published else 'published: skipped')
  print('\ndemo, formulation alone (both with cvrl\'s allocator setting): '
        f'fast/plain={fmt(ratios["fast/plain"])}')
  print(f'{published}  demo: optimised/plain='
        f'{fmt(ratios["optimised/plain"])}')


if __name__ == '__main__':
  allocator.keep_freed_memory()  # before JAX starts its threads
  app.run(main)
