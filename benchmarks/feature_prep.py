r"""Feature-prep speed as multiples of real time, for log-mel and HCQT.

  python benchmarks/feature_prep.py --data=DEMO [--kinds=logmel,hcqt]
                                    [--workers=1,2] [--max_versions=N]

Times `cvrl.data.prepare.prepare` from an empty cache (audio decoding,
resampling, features, references, atomic writes, statistics) and prints a
Markdown table of audio seconds per wall-clock second. Without --data it
builds a small demo dataset first.
"""

import os
import pathlib
import platform
import shutil
import sys
import tempfile
import time

from absl import app
from absl import flags

from cvrl import audio
from cvrl.data import demo
from cvrl.data import layout
from cvrl.data import prepare

FLAGS = flags.FLAGS
flags.DEFINE_string('data', None, 'Dataset to prepare (default: a fresh demo).')
flags.DEFINE_list('kinds', ['logmel', 'hcqt'], 'Feature kinds to time.')
flags.DEFINE_list('workers', ['1', str(os.cpu_count() or 1)],
                  'Worker counts to time.')


def main(argv):
  del argv
  scratch = pathlib.Path(tempfile.mkdtemp(prefix='cvrl-bench-'))
  try:
    data = FLAGS.data
    if data is None:
      data = scratch / 'demo'
      demo.build_demo(data, pieces=4, versions=3, max_seconds=60, workers=2)
    infos = layout.validate_dataset(layout.load_dataset(data))
    seconds = sum(i.duration for i in infos.values())
    print(f'dataset {data}: {len(infos)} versions, {seconds / 3600:.2f} h; '
          f'{os.cpu_count()} CPUs, {platform.processor() or platform.machine()}')
    print()
    print('| feature | workers | wall s | x real time |')
    print('|---|---|---|---|')
    for kind in FLAGS.kinds:
      for workers in sorted({int(w) for w in FLAGS.workers}):
        config = audio.feature_config()
        config.kind = kind
        cache = scratch / f'cache-{kind}-{workers}'
        start = time.perf_counter()
        prepare.prepare(data, config, cache_dir=str(cache), workers=workers,
                        progress=False)
        wall = time.perf_counter() - start
        print(f'| {kind} | {workers} | {wall:.1f} | {seconds / wall:.0f} |')
        sys.stdout.flush()
        shutil.rmtree(cache)
  finally:
    shutil.rmtree(scratch, ignore_errors=True)


if __name__ == '__main__':
  app.run(main)
