r"""Does an embedding find the corresponding moment in another version?

  .venv/bin/python benchmarks/cross_version_retrieval.py --workdirs=runs/table/sv,runs/table/cv,runs/table/sup [--hop=4]

For every test piece and ordered pair of its versions (a, b): each frame of
a (every `hop`-th, inside the annotated span) retrieves its most cosine-
similar frame of b; the error is the distance in seconds to the frame that
the measure maps say corresponds. Reports the share of frames retrieved
within 1 s and 3 s and the median error, for each workdir's embeddings
(cached by cvrl.embed / cvrl.probe) and for the standardised input features
of each dataset they were trained on.
This is what the CV pretext task trains for, so it tells whether CV learned
its task even where the probes do not separate CV from SV.
"""

from __future__ import annotations

import itertools
import os
import pathlib
import sys

from absl import app
from absl import flags
import numpy as np
from sklearn.preprocessing import normalize

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..'))

from cvrl import embed  # noqa: E402  pylint: disable=g-import-not-at-top
from cvrl import probe  # noqa: E402
from cvrl.data import alignment  # noqa: E402
from cvrl.data import prepare  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_list('workdirs', ['runs/table/sv', 'runs/table/cv'],
                  'Trained workdirs.')
flags.DEFINE_integer('hop', 4, 'Frames between embeddings.')


def retrieval(prepared, features_of, hop):
  errors = []
  rate = prepared.frame_rate / hop
  pieces = {}
  for version, _ in prepare.split_versions(prepared.dataset, 'test'):
    pieces.setdefault(version.piece, []).append(version)
  for versions in pieces.values():
    # Each version's unit rows, annotated rows and time map, read once.
    loaded = {}
    for v in versions:
      rows = normalize(np.asarray(features_of(v), np.float64))
      valid = np.isfinite(prepared.references(v).measures[::hop])[:len(rows)]
      loaded[v.key] = rows, valid, prepared.time_map(v)
    for a, b in itertools.permutations(versions, 2):
      (ea, valid_a, map_a), (eb, valid_b, map_b) = loaded[a.key], loaded[b.key]
      frames_a = np.flatnonzero(valid_a)
      target = alignment.map_seconds(frames_a / rate, map_a, map_b)
      similarity = ea[frames_a] @ eb.T
      similarity[:, ~valid_b] = -np.inf
      found = np.argmax(similarity, axis=1) / rate
      keep = np.isfinite(target)
      errors.append(np.abs(found[keep] - target[keep]))
  errors = np.concatenate(errors)
  return (np.mean(errors <= 1.0), np.mean(errors <= 3.0), np.median(errors),
          len(errors))


def main(argv):
  del argv
  print('| features | within 1 s | within 3 s | median error (s) | queries |')
  print('|---|---|---|---|---|')
  datasets = {}  # root -> (a workdir trained on it, its PreparedDataset)
  for workdir in FLAGS.workdirs:
    encoder = embed.load_encoder(workdir)
    prepared = embed.open_dataset(encoder)
    datasets.setdefault(str(prepared.dataset.root), (workdir, prepared))
    cached = embed.embed_split(workdir, encoder, prepared, 'test', FLAGS.hop,
                               progress=False)
    r1, r3, median, n = retrieval(prepared, lambda v: cached[v.key], FLAGS.hop)
    print(f'| {workdir} | {r1:.3f} | {r3:.3f} | {median:.1f} | {n} |',
          flush=True)
  for root, (workdir, prepared) in datasets.items():
    _, standardised = probe.features_for('input', pathlib.Path(workdir), None,
                                         None, FLAGS.hop)
    r1, r3, median, n = retrieval(prepared, standardised, FLAGS.hop)
    print(f'| input features of {root} | {r1:.3f} | {r3:.3f} | {median:.1f} | {n} |')


if __name__ == '__main__':
  app.run(main)
