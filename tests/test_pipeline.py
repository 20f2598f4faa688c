"""The grain pipeline: aligned CV/SV/Sup examples, determinism, sharding."""

import numpy as np
import pytest

import helpers
from configs import cv
from configs import sup
from configs import sv
from cvrl.data import layout
from cvrl.data import pipeline
from cvrl.data import prepare


@pytest.fixture(scope='module')
def prepared(tmp_path_factory):
  root = helpers.make_cvrl_dataset(tmp_path_factory.mktemp('pipe') / 'data',
                                    pieces=('p1', 'p2', 'p3'))
  config = cv.get_config('test')
  prepare.prepare(root, config.features, progress=False)
  return prepare.open_cache(root, config.features)


def versions_by_key(prepared):
  return {v.key: v for v in prepared.dataset.versions()}


def check_geometry(prepared, config, count=150):
  """Every example against the measure maps read independently from disk."""
  maker = pipeline.example_maker(prepared, config)
  rate = prepared.frame_rate
  half_frame = 0.5 / rate + 1e-9
  by_key = versions_by_key(prepared)
  for index in range(count):
    ex = maker(index)
    segment = maker.segments[int(ex['segment'])]
    a, p, n = (segment.versions[i].key if i >= 0 else None
               for i in ex['versions'])
    fa, fp, fn = ex['frames']
    m = float(ex['measure'])
    seconds_in = lambda key, measure: float(
        prepared.time_map(by_key[key]).seconds_at(measure))
    assert abs(fa / rate - seconds_in(a, m)) <= half_frame
    assert abs(fp / rate - seconds_in(p, m)) <= config.data.tau_p + half_frame
    assert abs(fn / rate - seconds_in(n, m)) >= config.data.tau_n - half_frame
    assert by_key[n].piece == by_key[a].piece
    yield a, p, n


def test_cv_positive_is_another_version_at_the_same_measure(prepared):
  config = cv.get_config('test')
  negatives_elsewhere = 0
  for a, p, n in check_geometry(prepared, config):
    assert a != p
    negatives_elsewhere += n != a
  assert negatives_elsewhere > 0  # CV negatives come from any version


def test_sv_positive_and_negative_stay_in_the_anchor_version(prepared):
  for a, p, n in check_geometry(prepared, sv.get_config('test')):
    assert a == p == n


def test_negative_other_version(prepared):
  config = cv.get_config('test')
  config.data.negative = 'other_version'
  for a, _, n in check_geometry(prepared, config, count=50):
    assert n != a


def test_patches_are_standardised_cache_frames(prepared):
  config = cv.get_config('test')
  config.augment.enabled = False
  maker = pipeline.example_maker(prepared, config)
  by_key = versions_by_key(prepared)
  half = config.data.patch_frames // 2
  for index in range(20):
    ex = maker(index)
    segment = maker.segments[int(ex['segment'])]
    for role, i, frame in zip(('anchor', 'positive', 'negative'),
                              ex['versions'], ex['frames']):
      features = np.asarray(
          prepared.features(by_key[segment.versions[i].key]), np.float32)
      lo, hi = frame - half, frame + half + 1
      expected = np.full((hi - lo, features.shape[1]), -100.0, np.float32)
      a, b = max(lo, 0), min(hi, len(features))
      expected[a - lo:b - lo] = features[a:b]
      expected = (expected - prepared.mean) / prepared.std
      np.testing.assert_allclose(ex[role][..., 0], expected, rtol=1e-5,
                                 atol=1e-5)


def test_sup_labels_are_the_instruments_at_the_centre_frame(prepared):
  config = sup.get_config('test')
  maker = pipeline.example_maker(prepared, config)
  by_key = versions_by_key(prepared)
  seen = set()
  for index in range(40):
    ex = maker(index)
    rng = np.random.default_rng([config.seed, index])
    segment = maker.segments[int(rng.integers(len(maker.segments)))]
    version = segment.versions[int(rng.integers(len(segment.versions)))]
    frame = maker.frame(version, version.seconds_at(float(ex['measure'])))
    refs = prepared.references(by_key[version.key])
    np.testing.assert_array_equal(ex['labels'], refs.instruments[frame])
    assert ex['patch'].shape == (31, 32, 1)
    seen.add(tuple(ex['labels']))
  assert len(seen) > 1


def test_examples_depend_only_on_seed_and_index(prepared):
  config = cv.get_config('test')
  one = pipeline.example_maker(prepared, config)
  two = pipeline.example_maker(prepared, config)
  for index in (0, 7, 123):
    a, b = one(index), two(index)
    for key in a:
      np.testing.assert_array_equal(a[key], b[key])
  config.seed = 1
  assert one(0)['measure'] != pipeline.example_maker(prepared, config)(0)['measure']


def test_batches_are_the_same_however_the_processes_split_them(prepared):
  config = cv.get_config('test')
  maker = pipeline.example_maker(prepared, config)
  whole = next(iter(pipeline.create_dataset(
      maker, config, 3, 5, process_index=0, process_count=1,
      local_devices=8)))
  assert whole['anchor'].shape == (8, 1, 31, 32, 1)
  global_measures = whole['measure'].reshape(-1)
  expected = [maker(3 * 8 + j)['measure'] for j in range(8)]
  np.testing.assert_array_equal(global_measures, expected)
  for p in range(2):
    part = next(iter(pipeline.create_dataset(
        maker, config, 3, 5, process_index=p, process_count=2,
        local_devices=2)))
    assert part['anchor'].shape == (2, 2, 31, 32, 1)
    np.testing.assert_array_equal(part['measure'].reshape(-1),
                                  global_measures[4 * p:4 * (p + 1)])


def test_iterator_state_resumes_exactly(prepared):
  config = cv.get_config('test')
  maker = pipeline.example_maker(prepared, config)
  dataset = pipeline.create_dataset(maker, config, 0, 6, 0, 1, 8)
  iterator = iter(dataset)
  next(iterator)
  state = iterator.get_state()
  expected = next(iterator)
  resumed = iter(dataset)
  resumed.set_state(state)
  np.testing.assert_array_equal(next(resumed)['anchor'], expected['anchor'])


def test_batch_must_divide_over_devices(prepared):
  config = cv.get_config('test')
  config.batch_size = 6
  maker = pipeline.example_maker(prepared, config)
  with pytest.raises(ValueError, match='batch_size=6'):
    pipeline.create_dataset(maker, config, 0, 2, 0, 1, 8)


def test_cv_needs_two_versions_per_piece(prepared):
  config = cv.get_config('test')
  segments = pipeline.split_segments(prepared)
  segments[0] = pipeline.SegmentEntry(
      segments[0].piece, segments[0].versions[:1], segments[0].first_measure,
      segments[0].last_measure)
  with pytest.raises(layout.DatasetError, match='two versions'):
    pipeline.ExampleMaker(segments, prepared.mean, prepared.std,
                          prepared.frame_rate, config)


def test_too_large_tau_n_is_a_clear_error(prepared):
  config = sv.get_config('test')
  config.data.tau_n = 1000.0
  with pytest.raises(layout.DatasetError, match='tau_n'):
    pipeline.example_maker(prepared, config)(0)
