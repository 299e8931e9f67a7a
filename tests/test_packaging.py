"""The install the runbook describes: `python -m build` makes a wheel that a fresh venv installs, with one
version everywhere (`anyon --version`, the wheel's metadata, anyon.__version__) and the packaged defaults
and deploy kit found from the installed copy."""

from __future__ import annotations

import shutil
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

import anyon

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("build", reason="the build package (dev extra) makes the wheel")
    source = tmp_path_factory.mktemp("source")
    for name in ("anyon", "settings", "deploy"):
        shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    out = tmp_path_factory.mktemp("dist")
    # --no-isolation: the test machine's setuptools, no download; the runbook's plain `python -m build`
    # fetches the build backend into an isolated environment instead
    result = subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(out), str(source)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    (found,) = out.glob("anyon-*.whl")
    return found


def test_the_wheel_carries_one_version_the_defaults_and_the_deploy_kit(wheel: Path) -> None:
    assert wheel.name == f"anyon-{anyon.__version__}-py3-none-any.whl"
    names = zipfile.ZipFile(wheel).namelist()
    data = f"anyon-{anyon.__version__}.data/data/share/anyon"
    for wanted in (
        "settings/defaults.toml",
        "deploy/RUNBOOK.md",
        "deploy/systemd/anyon.service",
        "deploy/etc/settings.toml",
        "deploy/etc/anyon.env.example",
        "deploy/etc/Caddyfile",
        "deploy/gcp/bootstrap.sh",
        "deploy/image/Dockerfile",
    ):
        assert f"{data}/{wanted}" in names, wanted
    metadata = zipfile.ZipFile(wheel).read(f"anyon-{anyon.__version__}.dist-info/METADATA").decode()
    assert f"\nVersion: {anyon.__version__}\n" in metadata


def test_a_fresh_venv_installs_the_wheel_and_runs_anyon(wheel: Path, tmp_path: Path) -> None:
    prefix = tmp_path / "opt-anyon" / "venv"
    # the machine's site-packages stand in for the dependencies pip would download on a VM
    venv.create(prefix, system_site_packages=True, with_pip=True)
    pip = [str(prefix / "bin" / "python"), "-m", "pip", "install", "-q", "--no-deps", "--no-index"]
    subprocess.run([*pip, str(wheel)], check=True, timeout=300)
    anyon_bin = prefix / "bin" / "anyon"
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path / "home")}
    version = subprocess.run(
        [str(anyon_bin), "--version"], capture_output=True, text=True, timeout=60, env=env, check=True
    )
    assert version.stdout.strip() == f"anyon {anyon.__version__}"
    # the installed copy finds its packaged defaults (not this checkout's): cloud paths resolve
    shown = subprocess.run(
        [str(anyon_bin), "config", "show", "--mode", "cloud", "--origin", "paths.base_dir"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=tmp_path,
    )
    assert shown.returncode == 0, shown.stderr
    assert 'base_dir = "/var/opt/anyon"  # default [cloud]' in shown.stdout
    located = subprocess.run(
        [str(prefix / "bin" / "python"), "-c", "import anyon.config.loader as l; print(l.defaults_file())"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=tmp_path,
        check=True,
    )
    assert located.stdout.strip() == str(prefix / "share" / "anyon" / "settings" / "defaults.toml")
    assert (prefix / "share" / "anyon" / "deploy" / "systemd" / "anyon.service").is_file()
