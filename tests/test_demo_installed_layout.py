"""The demo's traffic from an installed (not editable) package, as in the image's demo target:
no examples/ beside the package, so the demo's CSVs are found where the Dockerfile copies them
and names them (REFRACT_DEMO_DATA), or demo traffic fails at start and the node stops."""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from tests.support.processes import REPOSITORY
from tests.test_image_layout import stages

# Each CSV demo traffic reads, read the way it reads it (admin/demo_traffic.py).
READ_THE_DEMOS_CSVS = """
from refract.admin import demo_traffic as d
from refract.analytics.marketing.spend import read_spend_csv
from refract.analytics.revenue.outcomes import read_outcomes_csv
from refract.rules.account_csv import read_accounts_csv
assert read_accounts_csv(d.ACCOUNTS_CSV)
assert read_outcomes_csv(d.OUTCOMES_CSV)
assert read_spend_csv(d.SPEND_CSV, "USD")
print(d.EXAMPLES)
"""


def demo_stage_env() -> dict[str, str]:
    """The demo target's ENV, as one mapping."""
    env: dict[str, str] = {}
    for line in stages()["demo"]:
        if line.startswith("ENV "):
            pairs = (word.split("=", 1) for word in shlex.split(line[len("ENV ") :]))
            env.update(pair for pair in pairs if len(pair) == 2)  # type: ignore[misc]
    return env


def demo_stage_copies() -> dict[str, Path]:
    """What the demo target copies from the build context: source -> destination file."""
    copies: dict[str, Path] = {}
    for line in stages()["demo"]:
        words = line.split()
        if words[0] != "COPY" or any(w.startswith("--from") for w in words):
            continue
        sources, destination = [w for w in words[1:-1] if not w.startswith("--")], words[-1]
        for source in sources:
            into = Path(destination)
            copies[source] = into / Path(source).name if destination.endswith("/") else into
    return copies


def installed(tmp_path: Path) -> Path:
    """The package as a wheel installs it: real directories, nothing of the repository."""
    site_packages = tmp_path / "site-packages"
    shutil.copytree(REPOSITORY / "refract", site_packages / "refract", symlinks=False)
    return site_packages


def test_demo_traffic_reads_its_csvs_where_the_image_copies_them(tmp_path: Path) -> None:
    env = demo_stage_env()
    data = Path(env["REFRACT_DEMO_DATA"])
    image_root = tmp_path / "image"
    for name in ("demo-accounts.csv", "demo-outcomes.csv", "demo-spend.csv"):
        assert demo_stage_copies()[f"examples/{name}"] == data / name
        copied = image_root / (data / name).relative_to("/")
        copied.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPOSITORY / "examples" / name, copied)
    done = subprocess.run(
        [sys.executable, "-c", READ_THE_DEMOS_CSVS],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={
            "PYTHONPATH": str(installed(tmp_path)),
            "PYTHONDONTWRITEBYTECODE": "1",
            "REFRACT_DEMO_DATA": str(image_root / data.relative_to("/")),
        },
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(image_root / data.relative_to("/"))


def test_an_editable_install_reads_the_repositorys_examples() -> None:
    done = subprocess.run(
        [sys.executable, "-c", READ_THE_DEMOS_CSVS],
        capture_output=True,
        text=True,
        cwd=REPOSITORY,
        env={"PYTHONPATH": str(REPOSITORY), "PYTHONDONTWRITEBYTECODE": "1"},  # nothing written
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(REPOSITORY / "examples")
