"""One home per upstream tool: everything we know about it, in one folder.

Each home holds
- `pin.py`: the upstream repository and the commit we checked against, written once (install.sh and the
  scripts/install_*.sh read it, the mirrors and the tests import it);
- the adapter modules: the tool's CLI as argv builders derived from the stage options, its defaults and
  traps, the files it needs and the outputs it must leave;
- `mirror_*.py`: exact copies of the upstream argument parsers, which the contract stand-ins in
  tests/standins/ parse our argv with (tests/test_contracts.py compares them with a real clone when one is
  present, so upstream drift fails a test instead of a user's GPU hour);
- `runtime/`: code that runs *inside the upstream tool's own interpreter* (launchers started as files and
  what they load): standard library and torch only, never an import of this package.

Stages compose these homes; a home never imports a stage.
"""
