"""The commands README.md and docs/ give exist, with the flags they show.

Each binary also runs for real on tiny data in its own module's tests; here
every documented invocation is checked against the binary's own --help, so
a renamed flag or moved script fails CI instead of misleading a reader.
"""

import re

import pytest

import helpers

DOCS = [helpers.ROOT / 'README.md', *sorted((helpers.ROOT / 'docs').glob('*.md'))]
MODULE = re.compile(r'python3? -m ([\w.]+)([^`\n|#]*)')
SCRIPT = re.compile(r'((?:benchmarks|experiments|launch)/\w+\.py)([^`\n|#]*)')
SKIP = {'pytest'}  # the test command itself


def documented_commands():
  """{command: set of flag names shown with it} over README.md and docs/."""
  found = {}
  for path in DOCS:
    text = path.read_text().replace('\\\n', ' ')
    for pattern, kind in ((MODULE, '-m'), (SCRIPT, 'script')):
      for match in pattern.finditer(text):
        name, rest = match.group(1), match.group(2)
        if name in SKIP:
          continue
        rest = rest.split(' -- ')[0]  # launch/local.py passes the rest on
        flags = set(re.findall(r'--([a-z_]\w*)', rest))
        found.setdefault((kind, name), set()).update(flags)
  return found


COMMANDS = documented_commands()


def test_docs_give_the_main_binaries():
  modules = {name for kind, name in COMMANDS if kind == '-m'}
  assert {'cvrl.train', 'cvrl.embed', 'cvrl.probe', 'cvrl.ssm',
          'cvrl.evaluation.retrieval', 'cvrl.data.prepare', 'cvrl.data.demo',
          'cvrl.data.overview', 'cvrl.data.sync'} <= modules


@pytest.mark.parametrize('kind,name', sorted(COMMANDS))
def test_documented_command_has_the_documented_flags(kind, name):
  target = ['-m', name] if kind == '-m' else [str(helpers.ROOT / name)]
  result = helpers.run_python(*target, '--helpfull')
  text = result.stdout + result.stderr
  if 'flags:' in text:  # absl lists its flags and exits 1
    assert result.returncode in (0, 1), text
  else:  # an argparse script
    result = helpers.run_python(*target, '--help')
    text = result.stdout + result.stderr
    assert result.returncode == 0 and 'usage:' in text, text
  for flag in COMMANDS[(kind, name)]:
    assert re.search(rf'--(\[no\])?{flag}\b', text), (
        f'{name}: the docs show --{flag}, its --help does not')
