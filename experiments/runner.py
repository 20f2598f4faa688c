"""Runs the steps of an experiment driver: public binaries as subprocesses.

Every step is a command line of cvrl's own binaries, so a driver does nothing a
user could not do by hand, and its outputs are files the step writes. A step
that fails stops the driver with one line naming the step, and what finished
before it stays on disk for the next run to skip.
"""

import concurrent.futures
import contextlib
import json
import os
import pathlib
import queue
import subprocess
import sys
import tarfile
import threading
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cvrl import cli  # noqa: E402  pylint: disable=g-import-not-at-top


class StepFailed(RuntimeError):
  """A driver step exited non-zero; the message names the step and the exit."""


def run(*args, capture: bool = False, log: pathlib.Path | None = None,
        cores: tuple[int, ...] | None = None) -> str:
  """Runs `python *args` in the checkout; returns stdout when `capture`.

  With `log`, its stdout and stderr go to that file (parallel steps would
  interleave on the terminal). With `cores`, it runs on those CPU cores only.
  Raises StepFailed naming the command (and the log) when it fails, a native
  crash included.
  """
  command = [sys.executable, *map(str, args)]
  shown = ' '.join(command[1:])
  print('$', shown + (f'  (log: {log})' if log else ''), flush=True)
  env = None
  if cores is not None and len(cores) == 1:  # one core: no Eigen thread pool
    env = dict(os.environ, XLA_FLAGS=' '.join(filter(None, (
        os.environ.get('XLA_FLAGS', ''),
        '--xla_cpu_multi_thread_eigen=false'))))
  stdout = open(log, 'a') if log else None  # pylint: disable=consider-using-with
  try:
    with subprocess.Popen(
        command, cwd=ROOT, text=True, env=env,
        stdout=subprocess.PIPE if capture else stdout,
        stderr=subprocess.STDOUT if log else None) as process:
      if cores is not None:
        # Set from here, not in a preexec_fn (unsafe beside the driver's
        # threads); the child inherits it to every thread and process it
        # starts, as Python is still starting up.
        try:
          os.sched_setaffinity(process.pid, cores)
        except ProcessLookupError:  # it has already exited
          pass
      output, _ = process.communicate()
  finally:
    if stdout:
      stdout.close()
  if process.returncode != 0:
    where = f' (its output: {log})' if log else ''
    raise StepFailed(f'step failed ({cli.describe_exit(process.returncode)}): '
                     f'{shown}{where}')
  return output if capture else ''


def main(driver) -> int:
  """Calls `driver()`; a failed step becomes one error line and exit 1."""
  try:
    return driver()
  except StepFailed as e:
    print(f'error: {e}; finished steps are kept, re-run to resume',
          file=sys.stderr)
    return 1


def add_run_flags(parser) -> None:
  """--dry_run and --jobs, which every driver that calls run_pending takes."""
  parser.add_argument('--dry_run', action='store_true',
                      help='print the steps still to run, run nothing')
  parser.add_argument('--jobs', type=int, default=1,
                      help='runs (workdirs) side by side, each on its own '
                      'CPU cores, its output in OUT/logs/; for CPU machines '
                      '(2 on 2 cores: 1.3x the throughput of 1)')


def run_pending(commands, finished, dry_run: bool = False,
                out: pathlib.Path | None = None, jobs: int = 1,
                carry: str | None = None) -> None:
  """Runs each command whose `finished(command)` is False, in order, one
  workdir's steps after another (`chains`: an interrupted study leaves
  whole runs, trained and evaluated, not a row of unevaluated ones).

  With `dry_run` it prints them instead. Drivers list every step of an
  experiment and say which are done, so an interrupted one resumes. Each
  finished step's seconds are added to OUT/seconds.json as it ends, so a
  study interrupted (or run over several sessions) still reports its time.
  With `carry` (an archive, see `carried`), OUT's reports are packed into it
  as each step ends, so a machine that goes away loses only the running
  steps. With `jobs` > 1, see run_parallel.
  """
  pending = [c for chain in chains(commands) for c in chain
             if not finished(c)]
  if dry_run:
    for command in pending:
      print('python', ' '.join(map(str, command)))
    return
  if jobs > 1:
    run_parallel(pending, jobs, out, carry)
    return
  for command in pending:
    start = time.time()
    run(*command)
    step_ended(out, start, carry)


def finished_when_outputs_exist(commands, output_of):
  """`run_pending`'s `finished` for drivers whose steps each write one file.

  `output_of(step)` is that file, or None for a training step, which writes
  checkpoints and resumes from them: it counts as finished once every other
  step of its workdir has its file, so a run whose reports were carried here
  from another machine (`carried`) is not trained again from scratch;
  otherwise it runs (and returns at once when it has finished before).
  """
  by_workdir = {}
  for command in commands:
    by_workdir.setdefault(flag_values(command).get('workdir'), []).append(
        tuple(command))

  def finished(command) -> bool:
    path = output_of(command)
    if path is not None:
      return path.exists()
    others = [output_of(c) for c in by_workdir[flag_values(command).get(
        'workdir')] if c != tuple(command)]
    return bool(others) and all(p is not None and p.exists() for p in others)

  return finished


def chains(commands) -> list[list[tuple]]:
  """Commands grouped by their --workdir, each group in the given order.

  A step reads only what earlier steps of its own workdir wrote (a probe
  reads its run's checkpoint), so different workdirs may run side by side.
  """
  groups = {}
  for i, command in enumerate(commands):
    key = flag_values(command).get('workdir', f'step {i}')
    groups.setdefault(key, []).append(tuple(command))
  return list(groups.values())


def core_slots(jobs: int) -> list[tuple[int, ...]]:
  """This process's CPU cores split into `jobs` disjoint, non-empty slots."""
  cores = sorted(os.sched_getaffinity(0))
  jobs = max(1, min(jobs, len(cores)))
  return [tuple(cores[k::jobs]) for k in range(jobs)]


def run_parallel(commands, jobs: int, out: pathlib.Path | None,
                 carry: str | None = None) -> None:
  """Runs the commands' workdir chains `jobs` at a time, each on its own cores.

  On a CPU machine, two single-core training runs side by side went 1.3x
  faster in total than one after the other on both cores (2 cores, 2026-12):
  XLA's convolutions do not use a second core fully. Each step's output goes
  to OUT/logs/. The first failure stops new steps from starting; the running
  ones finish, then it is raised. Wall time is counted once, not per job.
  """
  slots = queue.Queue()
  for cores in core_slots(jobs):
    slots.put(cores)
  logs = (out or ROOT) / 'logs'
  logs.mkdir(parents=True, exist_ok=True)
  lock = threading.Lock()
  clock = [time.time()]
  failures = []
  done = [0]

  def run_chain(chain):
    cores = slots.get()
    try:
      for command in chain:
        if failures:
          return
        workdir = flag_values(command).get('workdir', 'step')
        name = pathlib.Path(workdir).relative_to(out) if out and str(
            workdir).startswith(str(out)) else pathlib.Path(workdir).name
        log = logs / (str(name).replace(os.sep, '_') + '.log')
        try:
          run(*command, log=log, cores=cores)
        except StepFailed as e:
          failures.append(e)
          return
        finally:
          with lock:
            done[0] += 1
            print(f'[{done[0]}/{len(commands)} steps ended, '
                  f'{len(failures)} failed] {command[1]} {workdir}',
                  flush=True)
            # The time since the last step ended, by any job: counted once.
            step_ended(out, clock[0], carry)
            clock[0] = time.time()
    finally:
      slots.put(cores)

  with concurrent.futures.ThreadPoolExecutor(slots.qsize()) as pool:
    list(pool.map(run_chain, chains(commands)))
  if failures:
    raise failures[0]


def wall_time(out: pathlib.Path) -> float:
  """Seconds the steps of OUT's experiment took, over all invocations."""
  clock = out / 'seconds.json'
  return json.loads(clock.read_text()) if clock.exists() else 0.0


def step_ended(out: pathlib.Path | None, start: float,
               carry: str | None) -> None:
  """What a driver records as each step ends: its seconds since `start`, and
  OUT's reports packed into the `carry` archive (if any)."""
  if out is None:
    return
  add_wall_time(out, start)
  if carry:
    pack_reports(out, pathlib.Path(carry))


def add_wall_time(out: pathlib.Path, start: float) -> float:
  """Seconds since `start` added to OUT/seconds.json; returns the total."""
  total = wall_time(out) + time.time() - start
  out.mkdir(parents=True, exist_ok=True)
  (out / 'seconds.json').write_text(json.dumps(total))
  return total


# What `carried` keeps of a study: its reports, metrics and configs. Their
# checkpoints, embedding caches, logs and plots stay behind (large; a table's
# plot is drawn again from the reports).
CARRIED_SUFFIXES = ('.json', '.jsonl', '.md')
LEFT_BEHIND = frozenset(('checkpoints', 'embeddings', 'logs', 'tensorboard'))


def add_carry_flag(parser) -> None:
  parser.add_argument(
      '--carry', default=None, metavar='ARCHIVE.tar.gz',
      help='a study spread over machines whose disks do not last: its '
      'reports are unpacked from ARCHIVE into OUT first and packed back into '
      'it as each step ends and at the end, after a failure too; runs whose '
      'reports it holds are not trained again (commit the archive between '
      'sessions)')


def carried_files(out: pathlib.Path) -> list[pathlib.Path]:
  """OUT's files that `carried` packs, as paths relative to OUT."""
  if not out.is_dir():
    return []
  return sorted(p.relative_to(out) for p in out.rglob('*')
                if p.suffix in CARRIED_SUFFIXES and p.is_file() and
                not LEFT_BEHIND & set(p.relative_to(out).parts[:-1]))


def unpack_reports(archive: pathlib.Path, out: pathlib.Path) -> int:
  """ARCHIVE's files extracted into OUT, except where OUT has the file
  already (this machine's copy is the newer); returns how many."""
  out.mkdir(parents=True, exist_ok=True)
  try:
    with tarfile.open(archive, 'r:gz') as tar:
      members = [m for m in tar.getmembers()
                 if m.isfile() and not (out / m.name).exists()]
      tar.extractall(out, members=members, filter='data')
  except (OSError, tarfile.TarError) as e:
    raise SystemExit(f'error: --carry={archive}: not a readable .tar.gz of '
                     f'a study\'s reports ({e})') from e
  return len(members)


def pack_reports(out: pathlib.Path, archive: pathlib.Path) -> int:
  """OUT's carried files written to ARCHIVE (replaced whole, never left
  half-written); returns how many."""
  files = carried_files(out)
  archive.parent.mkdir(parents=True, exist_ok=True)
  partial = archive.with_name(archive.name + '.partial')
  with tarfile.open(partial, 'w:gz') as tar:
    for name in files:
      tar.add(out / name, arcname=str(name))
  partial.replace(archive)
  return len(files)


@contextlib.contextmanager
def carried(archive: str | None, out: pathlib.Path, pack: bool = True):
  """A driver's body between unpacking ARCHIVE into OUT and packing OUT's
  reports back into it (also when a step fails or the driver is stopped;
  not with `pack` False, e.g. for a dry run). No ARCHIVE: nothing is
  carried."""
  if not archive:
    yield
    return
  archive = pathlib.Path(archive).resolve()
  if archive.exists():
    print(f'{archive}: {unpack_reports(archive, out)} report files unpacked '
          f'into {out}', flush=True)
  try:
    yield
  finally:
    if pack:
      print(f'{archive}: {pack_reports(out, archive)} report files of {out} '
            'packed', flush=True)


def save_figure(fig, title: str, path: pathlib.Path) -> None:
  """Titles, lays out, writes (90 dpi) and closes a driver's matplotlib figure."""
  from matplotlib import pyplot as plt  # pylint: disable=g-import-not-at-top
  fig.suptitle(title)
  fig.tight_layout()
  fig.savefig(path, dpi=90)
  plt.close(fig)


def flag_values(command) -> dict[str, str]:
  """{flag: value} of a step's command line ('' for a bare --flag)."""
  return dict((a[2:] + '=').split('=')[:2] for a in map(str, command)
              if a.startswith('--'))


def write_report(out: pathlib.Path, name: str, text: str, results) -> None:
  """OUT/<name>.md and OUT/<name>.json, and the text on stdout."""
  out.mkdir(parents=True, exist_ok=True)
  (out / f'{name}.md').write_text(text)
  (out / f'{name}.json').write_text(json.dumps(results, indent=1))
  print(text)
