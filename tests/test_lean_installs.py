"""Each role imports only what its extra installs (pyproject.toml): a proxy node installed with
`refract-edge[edge]` has no scipy, scikit-learn, pyarrow or plotly, so `refract proxy` must
never import them, nor the admin's packages; the worker needs the worker's alone."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib

import pytest

from tests.support.processes import REPOSITORY

PROJECT = tomllib.loads((REPOSITORY / "pyproject.toml").read_text())["project"]
EXTRAS: dict[str, list[str]] = PROJECT["optional-dependencies"]

# What `refract proxy` runs (admin/cli.py's path to proxy_main and its probe), what
# `refract worker` runs.
ROLE_IMPORTS = {
    "edge": [
        "refract.admin.cli",
        "refract.admin.embedded_redis",
        "refract.admin.probe",
        "refract.proxy.server",
    ],
    "worker": ["refract.admin.cli", "refract.admin.embedded_redis", "refract.analytics.worker"],
}


def distribution(requirement: str) -> str:
    """``"scikit-learn>=1.5"`` -> ``"scikit-learn"``, normalised as importlib.metadata does."""
    name = re.split(r"[<>=!~\[; ]", requirement, maxsplit=1)[0]
    return re.sub(r"[-_.]+", "-", name).lower()


def role_distributions(role: str) -> set[str]:
    """The distributions an extra adds (an extra naming another extra of Refract counts
    that one's, not Refract itself)."""
    found: set[str] = set()
    for requirement in EXTRAS[role]:
        name = distribution(requirement)
        if name != distribution(PROJECT["name"]):
            found.add(name)
        elif extras := re.search(r"\[(.*)\]", requirement):
            found |= set().union(*(role_distributions(e.strip()) for e in extras[1].split(",")))
    return found


def imported_distributions(modules: list[str]) -> set[str]:
    """The distributions whose modules a fresh interpreter holds after importing ``modules``."""
    script = (
        "import importlib, importlib.metadata, json, re, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "owners = importlib.metadata.packages_distributions()\n"
        "found = {d for m in list(sys.modules) for d in owners.get(m.split('.')[0], [])}\n"
        "print(json.dumps(sorted(re.sub(r'[-_.]+', '-', d).lower() for d in found)))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    return set(json.loads(done.stdout))


@pytest.mark.slow
@pytest.mark.parametrize(
    ("role", "not_installed"),
    [
        ("edge", {"worker", "admin"}),
        ("worker", {"admin"}),
    ],
)
def test_a_role_imports_nothing_its_extra_leaves_out(role: str, not_installed: set[str]) -> None:
    foreign = set().union(*(role_distributions(extra) for extra in not_installed))
    foreign -= role_distributions(role)
    assert foreign, "the extras must leave something out"
    assert imported_distributions(ROLE_IMPORTS[role]) & foreign == set()


def test_the_edge_extra_leaves_out_the_heavy_packages() -> None:
    edge = {distribution(requirement) for requirement in PROJECT["dependencies"]}
    edge |= role_distributions("edge")
    assert edge.isdisjoint({"scipy", "scikit-learn", "pyarrow", "plotly"})
    assert EXTRAS["all"] == ["refract-edge[edge,worker,admin]"]  # the demo's and CI's
    assert "refract-edge[all]" in EXTRAS["dev"]
