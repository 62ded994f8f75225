#!/usr/bin/env python3
"""Make an installed sk-video / scikit-video work with NumPy >= 1.24 (NumPy 2 included).

sk-video 1.1.10 and scikit-video 1.1.11 (the last releases, 2017/2018) break twice on current NumPy:
- they call np.float, np.int, np.bool and np.object, removed in NumPy 1.24: Practical-RIFE's
  `skvideo.io.vreader()` fails with "AttributeError: module 'numpy' has no attribute 'float'"
  (hzwer/Practical-RIFE#89, #140). Those were plain aliases of the builtins: `np.float` → `float`, etc.
  (np.float64, np.bool_ and the like are left alone);
- they decode every frame with the binary mode of np.fromstring, removed in NumPy 2.3 ("The binary mode
  of fromstring is removed, use frombuffer instead"): `np.fromstring(` → `np.frombuffer(` (same result,
  read-only, which neither skvideo nor Practical-RIFE writes to).
The package's .py files are rewritten in place.

    python scripts/patch_skvideo_numpy2.py            # patch the skvideo this Python imports
    python scripts/patch_skvideo_numpy2.py --check    # only report (exit 1 when a patch is needed)
    python scripts/patch_skvideo_numpy2.py --path DIR # patch the skvideo package folder DIR

Idempotent: a second run finds nothing to change. The toolkit itself does not need it (its Practical-RIFE
launcher restores the aliases at run time); it is for running Practical-RIFE by hand.
"""

from __future__ import annotations

import argparse
import importlib.util
import re
import sys
from pathlib import Path

# `np.float` but not `np.float64`/`np.float_`: the name must end at a non-identifier character.
REMOVED_ALIAS = re.compile(r"\b(np|numpy)\.(float|int|bool|object)\b(?![\w])")
BINARY_FROMSTRING = re.compile(r"\b(np|numpy)\.fromstring\(")


def package_dir(given: str | None) -> Path:
    if given:
        return Path(given)
    spec = importlib.util.find_spec("skvideo")  # found without importing it
    if spec is None or not spec.submodule_search_locations:
        sys.exit(
            "skvideo is not installed in this Python; pip install sk-video (see "
            "scripts/requirements_practical_rife_py312.txt)"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def patch(folder: Path, *, write: bool) -> list[tuple[Path, int]]:
    changed = []
    for path in sorted(folder.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        new, aliases = REMOVED_ALIAS.subn(lambda m: m.group(2), text)
        new, buffers = BINARY_FROMSTRING.subn(lambda m: f"{m.group(1)}.frombuffer(", new)
        count = aliases + buffers
        if count:
            changed.append((path, count))
            if write:
                path.write_text(new, encoding="utf-8")
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--path", help="the skvideo package folder (default: the one this Python imports)")
    parser.add_argument("--check", action="store_true", help="report what would change, write nothing")
    args = parser.parse_args(argv)
    folder = package_dir(args.path)
    if not folder.is_dir():
        sys.exit(f"{folder}: not a folder")
    changed = patch(folder, write=not args.check)
    for path, count in changed:
        print(f"{'needs' if args.check else 'patched'} {count:3d} × {path.relative_to(folder.parent)}")
    if not changed:
        print(f"{folder}: nothing to patch (already works with current NumPy)")
    return 1 if args.check and changed else 0


if __name__ == "__main__":
    sys.exit(main())
