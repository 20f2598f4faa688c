"""Fixtures shared by the tests; helpers live in helpers.py."""

import os
import shutil
import tempfile

# Eight simulated accelerators, so pmap code paths run on CPU in CI.
os.environ.setdefault('XLA_FLAGS', '--xla_force_host_platform_device_count=8')
# One persistent XLA compilation cache for the test run: made here in the
# controller, inherited by the xdist workers and every binary a test starts.
# Many tests train the same tiny config in a fresh process, and each
# compiled the same train step again.
if 'JAX_COMPILATION_CACHE_DIR' not in os.environ:
  os.environ['JAX_COMPILATION_CACHE_DIR'] = tempfile.mkdtemp(
      prefix='cvrl-test-xla-cache-')

import pytest  # noqa: E402

import helpers  # noqa: E402


def pytest_configure(config):
  """Compile librosa's numba code once, before test processes start.

  With pytest-xdist this runs in the controller before the workers exist, so
  they never compile the same function at once (cvrl.audio.warm_up says why
  that matters).
  """
  if not hasattr(config, 'workerinput'):
    from cvrl import audio  # pylint: disable=g-import-not-at-top
    audio.warm_up()


def pytest_unconfigure(config):
  cache = os.environ.get('JAX_COMPILATION_CACHE_DIR', '')
  if not hasattr(config, 'workerinput') and 'cvrl-test-xla-cache-' in cache:
    shutil.rmtree(cache, ignore_errors=True)


@pytest.fixture
def cvrl_dataset(tmp_path):
  return helpers.make_cvrl_dataset(tmp_path / 'data')


@pytest.fixture
def published_dataset(tmp_path):
  return helpers.make_published_dataset(tmp_path / 'published')


@pytest.fixture(scope='session')
def trained_workdir(tmp_path_factory):
  """A CV workdir trained 2 steps on a 3-piece tiny dataset (shared, read-only
  for the tests but for the outputs evaluators write into it)."""
  from configs import cv  # pylint: disable=g-import-not-at-top
  from cvrl import train  # pylint: disable=g-import-not-at-top
  base = tmp_path_factory.mktemp('trained')
  root = helpers.make_cvrl_dataset(base / 'data', pieces=('p1', 'p2', 'p3'))
  config = cv.get_config('test')
  config.data.root = str(root)
  config.num_train_steps = 2
  train.train(config, base / 'cv', progress=False)
  return base / 'cv'
