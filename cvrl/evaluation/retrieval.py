r"""Cross-version retrieval: does a representation find the corresponding moment?

  python -m cvrl.evaluation.retrieval --workdir=W [--representation=embedding|input|mfcc|chroma] [--hop=4]

For every test piece and ordered pair of its versions (a, b): each frame of
a (every `hop`-th, inside the annotated span) retrieves its most cosine-
similar frame of b; the error is the distance in seconds to the frame that
the measure maps say corresponds. Reports the share of queries retrieved
within 1 s and 3 s (eval_config.retrieval.within_seconds) and the median
error, in W/retrieval/<representation>.json.
This is what the CV pretext task trains for, so it tells whether CV learned
its task even where the probes do not separate CV from SV.
"""

from __future__ import annotations

import itertools
import json
import pathlib
from typing import Sequence

from absl import flags
import numpy as np
from sklearn.preprocessing import normalize

from cvrl import cli
from cvrl.data import alignment
from cvrl.data import prepare as prepare_lib
from cvrl.evaluation import representations

FLAGS = flags.FLAGS


def retrieval_errors(prepared: prepare_lib.PreparedDataset, features_of,
                     hop: int, split: str = 'test') -> np.ndarray:
  """Seconds between retrieved and corresponding frames, every query."""
  errors = []
  rate = prepared.frame_rate / hop
  pieces = {}
  for version, _ in prepare_lib.split_versions(prepared.dataset, split):
    pieces.setdefault(version.piece, {})[version.key] = version
  for versions in pieces.values():
    # Each version's unit rows, annotated rows and time map, read once.
    loaded = {}
    for v in versions.values():
      rows = normalize(np.asarray(features_of(v), np.float64))
      valid = np.isfinite(prepared.references(v).measures[::hop])[:len(rows)]
      loaded[v.key] = rows, valid, prepared.time_map(v)
    for a, b in itertools.permutations(versions.values(), 2):
      (ea, valid_a, map_a), (eb, valid_b, map_b) = loaded[a.key], loaded[b.key]
      frames_a = np.flatnonzero(valid_a)
      target = alignment.map_seconds(frames_a / rate, map_a, map_b)
      similarity = ea[frames_a] @ eb.T
      similarity[:, ~valid_b] = -np.inf
      found = np.argmax(similarity, axis=1) / rate
      keep = np.isfinite(target)
      errors.append(np.abs(found[keep] - target[keep]))
  return np.concatenate(errors) if errors else np.zeros(0)


def summarise(errors: np.ndarray, within_seconds: Sequence[float]) -> dict:
  return dict(
      within={f'{s:g}': float(np.mean(errors <= s)) for s in within_seconds},
      median_seconds=float(np.median(errors)) if errors.size else float('nan'),
      queries=int(errors.size))


def define_flags():
  representations.define_flags()


def main(argv):
  del argv
  workdir = pathlib.Path(FLAGS.workdir)
  prepared, features_of, config = representations.from_flags(splits=('test',))
  within = [float(s) for s in config.retrieval.within_seconds]
  report = dict(representation=FLAGS.representation, layer=FLAGS.layer,
                hop=config.hop,
                dataset=str(prepared.dataset.root),
                **summarise(retrieval_errors(prepared, features_of,
                                             config.hop), within))
  out = workdir / 'retrieval'
  out.mkdir(parents=True, exist_ok=True)
  path = out / f'{representations.flag_name()}.json'
  path.write_text(json.dumps(report, indent=1))
  shares = ', '.join(f'{v:.3f} within {k} s'
                     for k, v in report['within'].items())
  print(f'{workdir} {representations.flag_name()}: {shares}, median error '
        f'{report["median_seconds"]:.1f} s over {report["queries"]} queries; '
        f'wrote {path}')


if __name__ == '__main__':
  define_flags()
  cli.run(main)
