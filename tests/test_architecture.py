"""The architecture's rules, checked on the source: which package may import which, and the one
home of the Redis keyspace."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPOSITORY = Path(__file__).resolve().parents[1]
PACKAGES = ("proxy", "rules", "analytics", "admin")
# What each package may import of the others (dependencies point toward rules).
ALLOWED = {
    "rules": set(),
    "proxy": {"rules"},
    "analytics": {"rules"},
    "admin": {"rules", "analytics", "proxy"},  # the `refract` command starts every process
}


def modules_of(package: str) -> list[Path]:
    return sorted((REPOSITORY / package).rglob("*.py"))


def imported_packages(source: Path) -> set[str]:
    """The refract packages a module imports, at any depth (function-level imports included)."""
    found = set()
    for node in ast.walk(ast.parse(source.read_text(), str(source))):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        for name in names:
            parts = name.split(".")
            if parts[0] == "refract" and len(parts) > 1 and parts[1] in PACKAGES:
                found.add(parts[1])
            elif parts[0] in PACKAGES:
                found.add(f"unnamespaced {parts[0]}")
    return found


@pytest.mark.parametrize("package", PACKAGES)
def test_a_package_imports_only_what_the_architecture_allows(package: str) -> None:
    wrong = {
        str(module.relative_to(REPOSITORY)): sorted(forbidden)
        for module in modules_of(package)
        if (forbidden := imported_packages(module) - ALLOWED[package] - {package})
    }
    assert wrong == {}


@pytest.mark.parametrize("package", PACKAGES)
def test_only_the_keyspace_spells_a_redis_key(package: str) -> None:
    spelled = [
        f"{module.relative_to(REPOSITORY)}:{node.lineno}"
        for module in modules_of(package)
        if module != REPOSITORY / "rules" / "keyspace.py"
        for node in ast.walk(ast.parse(module.read_text()))
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and node.value.startswith("rf:")
    ]
    assert spelled == []


@pytest.mark.parametrize("package", PACKAGES)
def test_every_redis_client_is_built_by_the_factory_with_deadlines(package: str) -> None:
    """rules/redis_client.py gives every client its connect and call timeouts; a client
    built elsewhere would wait forever on a frozen Redis."""
    factory = REPOSITORY / "rules" / "redis_client.py"
    built = [
        f"{module.relative_to(REPOSITORY)}:{node.lineno}"
        for module in modules_of(package)
        if module != factory
        for node in ast.walk(ast.parse(module.read_text()))
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "from_url"
    ]
    assert built == []


# Files CSV is written to for programs, not people: the CRM's outcomes, read back by
# analytics/revenue/outcomes.py, where an apostrophe before a value would change it.
_CSV_FOR_PROGRAMS = {REPOSITORY / "analytics" / "crm" / "sync.py"}


@pytest.mark.parametrize("package", PACKAGES)
def test_only_the_export_module_writes_csv_for_people(package: str) -> None:
    """admin/csv_export.py defuses what a spreadsheet would run as a formula; a writer made
    elsewhere would hand a visitor's campaign name to the spreadsheet as it came."""
    exporter = REPOSITORY / "admin" / "csv_export.py"
    writers = [
        f"{module.relative_to(REPOSITORY)}:{node.lineno}"
        for module in modules_of(package)
        if module != exporter and module not in _CSV_FOR_PROGRAMS
        for node in ast.walk(ast.parse(module.read_text()))
        if isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id == "csv"
        and node.attr in {"writer", "DictWriter"}
    ]
    assert writers == []
