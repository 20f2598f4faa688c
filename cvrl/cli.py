"""What every cvrl binary does around its work: logging, multi-host, one error exit.

  if __name__ == '__main__':
    define_flags()
    cli.run(main)

Bad input (a dataset error, an unreadable audio file, a missing workdir or
checkpoint, a run that cannot go on) ends a binary with one line on stderr,
`error: <file>: <what is wrong>`, and exit status 1, never a traceback.
"""

from __future__ import annotations

import faulthandler
import signal
import sys

from absl import app
from absl import flags
from absl import logging

from cvrl import allocator


class UserError(RuntimeError):
  """Bad input a user can fix; the message names the file and the value."""


def user_errors() -> tuple[type[BaseException], ...]:
  """Every error type that is the user's input, not a bug of ours."""
  # Imported here so that importing cli stays cheap for every binary.
  from cvrl import audio  # pylint: disable=g-import-not-at-top
  from cvrl import checkpoints  # pylint: disable=g-import-not-at-top
  from cvrl.data import layout  # pylint: disable=g-import-not-at-top
  return (UserError, layout.DatasetError, checkpoints.CheckpointError,
          audio.AudioError)


def describe_exit(code) -> str:
  """A child process's exit status in words: 'exit code 1', 'killed by SIGSEGV'."""
  if code is not None and code < 0:
    try:
      return f'killed by {signal.Signals(-code).name}'
    except ValueError:
      return f'killed by signal {-code}'
  return f'exit code {code}'


def quiet_logging() -> None:
  """WARNING unless --verbosity is given: orbax and grain log a lot at INFO."""
  if not flags.FLAGS['verbosity'].present:
    logging.set_verbosity(logging.WARNING)


def initialize_distributed(coordinator=None, num_processes=None,
                           process_id=None) -> None:
  """jax.distributed for multi-host runs (see launch/)."""
  import jax  # pylint: disable=g-import-not-at-top
  # Collectives between CPU processes (tests, the local launcher) need gloo;
  # the setting is ignored on GPU/TPU.
  jax.config.update('jax_cpu_collectives_implementation', 'gloo')
  jax.distributed.initialize(coordinator_address=coordinator,
                             num_processes=num_processes,
                             process_id=process_id)


def exit_on_user_error(main):
  """Wraps an absl main: user errors become one `error:` line and exit 1."""
  def wrapped(argv):
    quiet_logging()
    faulthandler.enable()  # a native crash still says where it happened
    try:
      return main(argv)
    except user_errors() as e:
      print(f'error: {e}', file=sys.stderr)
      sys.exit(1)
  return wrapped


def run(main) -> None:
  """absl's app.run with cvrl's logging and error exit.

  Before anything starts JAX's threads, freed memory is kept for reuse
  (cvrl/allocator.py: ~40 % of a CPU train step was page faults).
  """
  allocator.keep_freed_memory()
  app.run(exit_on_user_error(main))
