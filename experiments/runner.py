"""Runs the steps of an experiment driver: public binaries as subprocesses.

Every step is a command line of cvrl's own binaries, so a driver does nothing a
user could not do by hand, and its outputs are files the step writes. A step
that fails stops the driver with one line naming the step, and what finished
before it stays on disk for the next run to skip.
"""

import json
import pathlib
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cvrl import cli  # noqa: E402  pylint: disable=g-import-not-at-top


class StepFailed(RuntimeError):
  """A driver step exited non-zero; the message names the step and the exit."""


def run(*args, capture: bool = False) -> str:
  """Runs `python *args` in the checkout; returns stdout when `capture`.

  Raises StepFailed naming the command when it fails (a native crash included).
  """
  command = [sys.executable, *map(str, args)]
  shown = ' '.join(command[1:])
  print('$', shown, flush=True)
  result = subprocess.run(command, cwd=ROOT, text=True, check=False,
                          stdout=subprocess.PIPE if capture else None)
  if result.returncode != 0:
    raise StepFailed(f'step failed ({cli.describe_exit(result.returncode)}): '
                     f'{shown}')
  return result.stdout if capture else ''


def main(driver) -> int:
  """Calls `driver()`; a failed step becomes one error line and exit 1."""
  try:
    return driver()
  except StepFailed as e:
    print(f'error: {e}; finished steps are kept, re-run to resume',
          file=sys.stderr)
    return 1


def run_pending(commands, finished, dry_run: bool = False,
                out: pathlib.Path | None = None) -> None:
  """Runs, in order, each command whose `finished(command)` is False.

  With `dry_run` it prints them instead. Drivers list every step of an
  experiment and say which are done, so an interrupted one resumes. Each
  finished step's seconds are added to OUT/seconds.json as it ends, so a
  study interrupted (or run over several sessions) still reports its time.
  """
  pending = [c for c in commands if not finished(c)]
  for command in pending:
    if dry_run:
      print('python', ' '.join(map(str, command)))
      continue
    start = time.time()
    run(*command)
    if out is not None:
      add_wall_time(out, start)


def wall_time(out: pathlib.Path) -> float:
  """Seconds the steps of OUT's experiment took, over all invocations."""
  clock = out / 'seconds.json'
  return json.loads(clock.read_text()) if clock.exists() else 0.0


def add_wall_time(out: pathlib.Path, start: float) -> float:
  """Seconds since `start` added to OUT/seconds.json; returns the total."""
  total = wall_time(out) + time.time() - start
  out.mkdir(parents=True, exist_ok=True)
  (out / 'seconds.json').write_text(json.dumps(total))
  return total


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
