"""cvrl/allocator.py: freed memory is reused without new page faults."""

import os
import subprocess
import sys

import pytest

from helpers import ROOT

pytestmark = pytest.mark.skipif(not sys.platform.startswith('linux'),
                                reason='glibc only')

# Run in a child process (the setting is process-wide): allocate, touch and
# free 64 MiB twice, and print the page faults of the second round.
TOUCH = '''
import ctypes, resource
libc = ctypes.CDLL('libc.so.6')
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, (ctypes.c_size_t,)
libc.free.argtypes = (ctypes.c_void_p,)
SIZE = 64 * 1024 * 1024

def touch():
  block = libc.malloc(SIZE)
  ctypes.memset(block, 1, SIZE)
  libc.free(block)

def second_round_faults():
  touch()
  before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
  touch()
  return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
'''
DIRECT = TOUCH + '''
from cvrl import allocator
print(allocator.keep_freed_memory(), second_round_faults())
'''
BINARY = TOUCH + '''
from cvrl import cli
cli.run(lambda argv: print(None, second_round_faults()))
'''


def run(script, **env):
  """(whether keep_freed_memory took effect, page faults of the 2nd round)."""
  result = subprocess.run([sys.executable, '-c', script], cwd=ROOT,
                          env=dict(os.environ, **env), capture_output=True,
                          text=True, check=True)
  took_effect, faults = result.stdout.split()
  return took_effect, int(faults)


def test_freed_memory_is_reused_without_page_faults():
  took_effect, faults = run(DIRECT)
  assert took_effect == 'True'
  assert faults < 100  # 64 MiB is 16,384 pages of 4 KiB


def test_binaries_keep_freed_memory():
  _, faults = run(BINARY)
  assert faults < 100


def test_system_malloc_opts_out():
  took_effect, faults = run(DIRECT, CVRL_SYSTEM_MALLOC='1')
  assert took_effect == 'False'
  assert faults > 1000  # glibc maps a block this large afresh each time
  _, faults = run(BINARY, CVRL_SYSTEM_MALLOC='1')
  assert faults > 1000
