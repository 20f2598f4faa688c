r"""Runs one training on several local processes, as a multi-host job would.

  python launch/local.py --processes=2 --devices_per_process=2 -- \
      --config=configs/cv.py:test --workdir=runs/mp

Every process runs `python -m cvrl.train --distributed` with the coordinator
on localhost; on CPU each gets `devices_per_process` simulated devices. It
exercises the multi-host code paths (jax.distributed, per-process input
shards, collectives across processes, checkpoints written together) on one
machine, and is what the tests use. Output lines are prefixed with [rank].
Exits non-zero if any process fails; stops the others when one does.
"""

import argparse
import os
import pathlib
import socket
import subprocess
import sys
import threading

ROOT = pathlib.Path(__file__).resolve().parents[1]


def free_port() -> int:
  with socket.socket() as s:
    s.bind(('localhost', 0))
    return s.getsockname()[1]


def relay(rank: int, stream) -> None:
  for line in stream:
    sys.stdout.write(f'[{rank}] {line}')
    sys.stdout.flush()


def main() -> int:
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  parser.add_argument('--processes', type=int, default=2)
  parser.add_argument('--devices_per_process', type=int, default=1,
                      help='simulated CPU devices per process')
  parser.add_argument('train_args', nargs=argparse.REMAINDER,
                      help='arguments for cvrl.train, after --')
  args = parser.parse_args()
  train_args = [a for a in args.train_args if a != '--']
  coordinator = f'localhost:{free_port()}'
  env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep +
             os.environ.get('PYTHONPATH', ''))
  env['XLA_FLAGS'] = (f'{env.get("XLA_FLAGS", "")} --xla_force_host_platform_'
                      f'device_count={args.devices_per_process}').strip()
  processes, threads = [], []
  for rank in range(args.processes):
    command = [sys.executable, '-m', 'cvrl.train', '--distributed',
               f'--coordinator={coordinator}',
               f'--num_processes={args.processes}', f'--process_id={rank}',
               *train_args]
    process = subprocess.Popen(command, cwd=ROOT, env=env, text=True,
                               stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT)
    thread = threading.Thread(target=relay, args=(rank, process.stdout))
    thread.start()
    processes.append(process)
    threads.append(thread)
  failed = 0
  for rank, process in enumerate(processes):
    code = process.wait()
    if code and not failed:
      failed = code
      print(f'launch/local.py: process {rank} exited with {code}; stopping '
            'the others', file=sys.stderr)
      for other in processes:
        if other.poll() is None:
          other.terminate()
  for thread in threads:
    thread.join()
  return failed


if __name__ == '__main__':
  sys.exit(main())
