"""Keep freed memory in the process: XLA:CPU's buffers otherwise cost page faults.

Measured on the demo train step (2-core CPU, jaxlib 0.10.2): with glibc's
defaults every step maps and unmaps its large buffers afresh (XLA:CPU and
Eigen allocate them with malloc from per-thread arenas, which serve large
requests with mmap), so each step took ~57,000 page faults and ~0.2 s of
system time (plain formulation: ~142,000 and ~0.46 s), about 40 % of the
step. One arena, no mmap for large requests and no trimming make freed
buffers reusable: 0 faults per step. Trimming must be off, not merely rare:
the published step frees more than 2 GiB at once, so with the largest
threshold mallopt takes (2 GiB) it still gave ~966,000 faults and 3.3 s of
system time per 7 s step; untrimmed, 0 after the first steps, 5.5 s. The process keeps its peak
memory instead of returning it to the system between steps, which is what a
training or evaluation process wants anyway.

Binaries call `keep_freed_memory()` first thing (cvrl/cli.py); set
CVRL_SYSTEM_MALLOC=1 to keep glibc's defaults. Elsewhere than glibc it does
nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

# glibc's mallopt parameters (malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_M_ARENA_MAX = -8
_TRIM_THRESHOLD = -1  # never trim (mallopt(3): -1 disables trimming)


def keep_freed_memory() -> bool:
  """Tunes glibc's malloc as above; True when it took effect.

  Call it before the JAX backend starts its threads (the arena setting only
  applies to threads that have not allocated yet).
  """
  if os.environ.get('CVRL_SYSTEM_MALLOC'):
    return False
  name = ctypes.util.find_library('c')
  try:
    libc = ctypes.CDLL(name or 'libc.so.6')
    mallopt = libc.mallopt
  except (OSError, AttributeError):  # not glibc (macOS, musl)
    return False
  mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
  return all(mallopt(param, value) == 1 for param, value in (
      (_M_ARENA_MAX, 1), (_M_MMAP_MAX, 0),
      (_M_TRIM_THRESHOLD, _TRIM_THRESHOLD)))
