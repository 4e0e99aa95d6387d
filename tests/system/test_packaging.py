"""An installed copy of chatrec (a wheel, not this checkout) carries its prompts and data-free modules."""

from __future__ import annotations

import subprocess
import sys
import zipfile

import pytest

from conftest import ROOT

pytestmark = pytest.mark.slow


@pytest.mark.timeout(300)
def test_the_wheel_ships_the_prompt_files_and_loads_them(tmp_path):
    wheels = tmp_path / "wheels"
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "--no-build-isolation",
                            "-q", "-w", str(wheels)], capture_output=True, text=True, timeout=240)
    assert build.returncode == 0, build.stderr
    wheel = next(wheels.glob("chatrec-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    prompts = sorted(p.name for p in (ROOT / "prompts").glob("*.txt"))
    assert prompts and all(f"chatrec/prompts/{p}" in names for p in prompts)
    site = tmp_path / "site"
    install = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site),
                              str(wheel)], capture_output=True, text=True, timeout=120)
    assert install.returncode == 0, install.stderr
    code = ("import sys, chatrec; from chatrec.llm.prompts import load_prompt\n"
            f"assert chatrec.__file__.startswith({str(site)!r}), chatrec.__file__\n"
            f"print(all(load_prompt(n) for n in {[p[:-4] for p in prompts]!r}))\n")
    # run outside the checkout, with only the installed copy on the path (isolated mode: no cwd, no user site)
    proc = subprocess.run([sys.executable, "-I", "-c", f"import sys; sys.path.insert(0, {str(site)!r})\n" + code],
                          capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "True"
