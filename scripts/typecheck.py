"""Type-check the pixseek package with mypy, as it is installed: ``pixseek.index`` is the folder ``index/``.

mypy finds modules by folder, and the product folders sit at the top of the repo, mapped into the
``pixseek`` package by setuptools (pyproject.toml, ``[tool.setuptools.package-dir]``). This builds that
package as a tree of links in ``build/typecheck/``, runs mypy on it with the project's settings, and
prints mypy's findings with the repo's own paths. Exit status: mypy's.

Usage: python scripts/typecheck.py [MYPY ARGS...]
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TREE = ROOT / "build" / "typecheck"


def link_tree() -> dict[str, str]:
    """Link every mapped package folder into TREE; returns {path in the tree: path in the repo}."""
    mapping = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
    shutil.rmtree(TREE, ignore_errors=True)
    rewrite = {}
    for package, folder in sorted(mapping.items(), key=lambda kv: kv[0].count(".")):
        dest = TREE.joinpath(*package.split("."))
        dest.mkdir(parents=True, exist_ok=True)
        for item in (ROOT / folder).iterdir():
            if item.suffix in (".py", ".pyi") or item.name == "py.typed":
                os.symlink(item, dest / item.name)
        rewrite[f"{dest.relative_to(TREE)}/"] = f"{folder}/"
    return rewrite


def main() -> int:
    rewrite = link_tree()
    cmd = [sys.executable, "-m", "mypy", "--config-file", str(ROOT / "pyproject.toml"), "-p", "pixseek", *sys.argv[1:]]
    out = subprocess.run(cmd, cwd=TREE, capture_output=True, text=True)
    for line in (out.stdout + out.stderr).splitlines():
        for tree_path, repo_path in sorted(rewrite.items(), key=lambda kv: -len(kv[0])):
            if line.startswith(tree_path):
                line = repo_path + line[len(tree_path) :]
                break
        print(line)
    return out.returncode


if __name__ == "__main__":
    sys.exit(main())
