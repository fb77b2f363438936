"""The `refract` command."""

from __future__ import annotations

import argparse
import logging
import os
import re
import shutil
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Annotated, Any, Literal, cast

from pydantic.fields import FieldInfo
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from refract.admin import attribution_cli, logs, privacy_cli, spend_cli
from refract.admin.supervisor import Child, Supervisor
from refract.rules import keyspace
from refract.rules.config import Config, config_warnings, load_config
from refract.rules.problems import InvalidFileError
from refract.rules.ruleset import checked_rules, load_rules, read_rule_files

log = logging.getLogger("refract")

DEFAULT_CONFIG = "config.toml"
# the report's tests (analytics/stats/engine.Method, not imported here: `refract proxy` starts
# without the statistics' dependencies)
REPORT_METHODS = ("group_sequential", "sequential", "fixed")


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    logs.configure()
    config_path = Path(args.config)
    try:
        config = load_config(config_path)
    except InvalidFileError as error:
        print(error, file=sys.stderr)
        return 2
    if args.workers is not None:  # checked by _workers: within server.workers' bounds
        # Through the environment, so that every child process reads the same value.
        os.environ["REFRACT_SERVER__WORKERS"] = str(args.workers)
        try:
            config = load_config(config_path)
        except InvalidFileError as error:
            print(error, file=sys.stderr)
            return 2
    logs.follow_ip_policy(config.privacy.ip_in_logs)
    command: str = args.command
    if command == "check":
        return _check(config, config_path)
    if config.rules.directory is not None:
        try:
            load_rules(config.rules.directory)  # refuse to start on rules that would not load
        except InvalidFileError as error:
            print(error, file=sys.stderr)
            return 2
    try:
        if not config.redis.url:  # the embedded Valkey lives there, the command's or the node's
            _check_data_dir(config.server.data_dir)
        return _command(command, config, config_path, args)
    except CommandRefusedError as error:
        print(error, file=sys.stderr)
        return 2
    except (RedisConnectionError, RedisTimeoutError) as error:
        print(_unreachable_redis(config, error), file=sys.stderr)
        return 1


class CommandRefusedError(Exception):
    """A setting or argument the command cannot work with: one message naming it."""


def _check_data_dir(data_dir: Path) -> None:
    """Raise CommandRefusedError unless ``data_dir`` exists or can be made, and takes files:
    refused up front, with the setting named, rather than a traceback later."""
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        probe = data_dir / f".write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        raise CommandRefusedError(
            f"server.data_dir: {data_dir}: cannot create it or write in it "
            f"({error.strerror or error})\n    hint: set server.data_dir (or "
            "REFRACT_SERVER__DATA_DIR) to a directory this user can write; in the image, a "
            "bind-mounted one must be writable by uid 10001 (chown -R 10001:10001 DIRECTORY)"
        ) from None


def _unreachable_redis(config: Config, error: Exception) -> str:
    """What a command says when Redis does not answer: the setting, where, why, and a hint."""
    where = _without_password(config.redis.url) if config.redis.url else "the embedded Valkey"
    return (
        f"redis.url: cannot connect to {where} ({error})\n    hint: start Redis there or "
        "correct redis.url (or REFRACT_REDIS__URL); empty, the node's embedded Valkey in "
        "server.data_dir is used"
    )


def _without_password(url: str) -> str:
    """``url`` fit for a terminal: its password, if any, left out."""
    return re.sub(r"(//[^:@/]*):[^@/]*@", r"\1:***@", url)


def _site_key(config: Config, site: str | None, command: str) -> str:
    """The key of the site ``--site`` names (none: the first site's)."""
    found = config.site(site)
    if found is None:
        raise CommandRefusedError(f"refract {command}: no site {site!r} in the configuration")
    return found.key


def _command(command: str, config: Config, config_path: Path, args: argparse.Namespace) -> int:
    """Run ``command`` on a loaded, checked configuration."""
    if command == "rebuild":
        return _rebuild(config)
    if command == "report":
        return _report(config, args)
    if command == "geo":
        return _geo_import(config, args.files)
    if command == "accounts":
        return _accounts_import(config, args.file, _site_key(config, args.site, "accounts"))
    if command == "train":
        return _train(config, args)
    if command == "crm":
        return _crm_pull(config, args)
    if command in ("users", "tokens"):
        return _access(config, args)
    if command == "qa-link":
        return _qa_link(config, args)
    if command == "privacy":
        return _privacy(config, args)
    if command == "attribution":
        return attribution_cli.run(config, args)
    if command == "spend":
        return spend_cli.run(config, args)
    if command == "autopilot" and args.autopilot_command == "evaluate":
        return _autopilot_evaluate(config, args)
    if command == "autopilot":
        return _autopilot_scan(config, args)
    if command in ("run", "proxy") and (refusal := demo_origin_refusal(config)):
        print(refusal, file=sys.stderr)
        return 2
    if command == "demo":
        config = _prepare_demo(config, config_path, args)
    return _run_node(command, config, config_path, args)


DEMO_RULES = "demo-rules"  # the demo's copy of its rules, in data_dir
LOOPBACK = '["127.0.0.1/32", "::1/128"]'


def _prepare_demo(config: Config, config_path: Path, args: argparse.Namespace) -> Config:
    """The demo's state lives in its data directory, never in the repository: its rules are
    copied there once and edited there (the dashboard's editor writes rules.directory). With
    traffic, loopback is a trusted proxy, so the simulator's X-Forwarded-For names the
    visitor (admin/demo_traffic.py); a browser on this machine, which sends none, stays itself."""
    if config.rules.directory is not None:
        copy = config.server.data_dir / DEMO_RULES
        if not copy.is_dir():
            copy.parent.mkdir(parents=True, exist_ok=True)
            shutil.copytree(config.rules.directory, copy)
        os.environ["REFRACT_RULES__DIRECTORY"] = str(copy.resolve())
    if args.traffic and not config.server.trusted_proxies:
        os.environ["REFRACT_SERVER__TRUSTED_PROXIES"] = LOOPBACK
    return load_config(config_path)


def demo_origin_refusal(config: Config) -> str | None:
    """Why a node must not proxy to the demo's origin, which only `refract demo` serves: run
    on the demo's config.toml (as an image with it baked in did), every page would be a 502."""
    from refract.admin.demo import DEMO_ORIGIN

    for index, site in enumerate(config.sites):
        if site.origin.rstrip("/") == DEMO_ORIGIN:
            return (
                f"sites[{index}].origin is {DEMO_ORIGIN}, the demo's origin, which only "
                "`refract demo` starts\n    hint: set your origin in config.toml or with "
                f"REFRACT_SITES__{index}__ORIGIN=https://origin.example.com, or run "
                "`refract demo`"
            )
    return None


def _privacy(config: Config, args: argparse.Namespace) -> int:
    """A data subject's export or erasure (admin/privacy_cli.py)."""
    from refract.admin.embedded_redis import redis_url

    with redis_url(config.redis.url, config.server.data_dir) as url:
        return privacy_cli.run(config, args, url)


def _autopilot_scan(config: Config, args: argparse.Namespace) -> int:
    """What to test on the site's most viewed pages, ranked and kept for approval
    (analytics/autopilot/site_scan.py, runs.py)."""
    import asyncio
    import json

    from refract.admin.autopilot_run import proposing
    from refract.admin.embedded_redis import redis_url
    from refract.analytics.autopilot.runs import Run, model_of, proposals_text, run
    from refract.analytics.autopilot.site_scan import describe
    from refract.rules.redis_client import connect

    site = config.site(args.site)
    if site is None:
        print(
            f"refract autopilot scan: no site {args.site!r} in the configuration", file=sys.stderr
        )
        return 2
    settings = config.autopilot
    model = model_of(settings.llm_url, settings.llm_key, settings.llm_model)

    async def scan(url: str) -> Run | str:
        async with connect(url) as client:
            wanted = await proposing(config, client, site.key, args.metric)
            if args.metric and args.metric not in wanted.rules.metrics:
                known = ", ".join(sorted(wanted.rules.metrics)) or "none"
                return f"no metric {wanted.metric!r} in the rules (known: {known})"
            return await run(client, site, wanted, args.pages, args.path, model)

    with redis_url(config.redis.url, config.server.data_dir) as url:
        done = asyncio.run(scan(url))
    if isinstance(done, str):
        print(f"refract autopilot scan: {done}", file=sys.stderr)
        return 2
    if args.json:
        pages = [page.as_json() for page in done.pages]
        proposals = [proposal.as_json() for proposal in done.proposals]
        print(json.dumps({"site": site.key, "pages": pages, "proposals": proposals}, indent=2))
    else:
        print(describe(done.pages), end="")
        print(f"\nProposals ({len(done.proposals)}, best first; kept for approval):")
        print(proposals_text(done.proposals), end="")
    if not done.pages:
        print(f"refract autopilot scan: no page views recorded for {site.key}", file=sys.stderr)
    scanned = [page for page in done.pages if page.scan is not None and not page.scan.skipped]
    return 0 if scanned else 1


def _autopilot_evaluate(config: Config, args: argparse.Namespace) -> int:
    """A candidate allocation's value from the logged exposures (analytics/autopilot/
    evaluation.py)."""
    import asyncio
    import json

    from refract.admin.embedded_redis import redis_url
    from refract.analytics.archive import Archive, archive_root
    from refract.analytics.autopilot import evaluation
    from refract.analytics.rules_in_force import rules_in_force
    from refract.rules import allocations
    from refract.rules.redis_client import connect

    site = config.site(args.site)
    if site is None:
        print(f"refract autopilot evaluate: no site {args.site!r}", file=sys.stderr)
        return 2

    async def run(url: str) -> evaluation.Summary | str:
        async with connect(url) as client:
            rules = await rules_in_force(config, client)
            experiment = rules.experiments.get(args.experiment)
            if experiment is None:
                return f"no experiment {args.experiment!r} in the rules"
            variants = [variant.key for variant in experiment.variants]
            context = args.context or (experiment.bandit.context if experiment.bandit else "")
            archive = Archive(archive_root(config))
            decisions, none = await asyncio.to_thread(
                evaluation.first_exposures, archive, site.key, experiment.key
            )
            data = await evaluation.logged(
                client, site.key, experiment.key, args.metric or experiment.primary_metric,
                variants, decisions, context, args.reward, none,
            )  # fmt: skip
            if not data.arm:
                return "no logged first exposure with a propensity to evaluate on"
            _, documents = await allocations.published_documents(client, site.key)
            published = None
            if experiment.key in documents:
                published = allocations.decode(documents[experiment.key], variants)
            try:
                weights = evaluation.policy_weights(args.policy, data, published)
            except ValueError as error:
                return str(error)
            return evaluation.Summary(args.policy, data, evaluation.evaluate(data, weights))

    with redis_url(config.redis.url, config.server.data_dir) as url:
        done = asyncio.run(run(url))
    if isinstance(done, str):
        print(f"refract autopilot evaluate: {done}", file=sys.stderr)
        return 1
    print(
        json.dumps(done.as_json(), indent=2, allow_nan=False) if args.json else done.text(),
        end="\n" if args.json else "",
    )
    return 0


def _rebuild(config: Config) -> int:
    """Profiles and aggregates of every site made again from the archive (worker stopped)."""
    import asyncio

    from refract.admin.embedded_redis import redis_url
    from refract.analytics.rebuild import WorkerRunningError, rebuild_all

    try:
        with redis_url(config.redis.url, config.server.data_dir) as url:
            counts = asyncio.run(rebuild_all(config, url))
    except WorkerRunningError as error:
        print(f"refract rebuild: {error}", file=sys.stderr)
        return 1
    for site, count in counts.items():
        print(f"{site}: {count} events applied from the archive")
    return 0


def _geo_import(config: Config, files: list[str]) -> int:
    """IP ranges to network owners, from ip-location-db CSV files or one .mmdb file."""
    from refract.rules.network_import import NetworkImportError, import_csv, import_mmdb
    from refract.rules.networks import table_path

    try:
        mmdb = [name for name in files if name.endswith(".mmdb")]
        table = import_mmdb(mmdb[0]) if mmdb and len(files) == 1 else import_csv(*files)
    except (NetworkImportError, OSError) as error:
        print(f"refract geo import: {error}", file=sys.stderr)
        return 2
    path = table_path(config.server.data_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    table.save(path)
    stats = table.stats()
    print(
        f"{path}: {stats.ipv4_ranges:,} IPv4 and {stats.ipv6_ranges:,} IPv6 ranges, "
        f"{stats.organisations:,} organisations; proxies use it from their next start or "
        "reload (SIGHUP)"
    )
    return 0


def _accounts_import(config: Config, file: str, site: str) -> int:
    """Replace a site's account list with a CRM export; proxies follow within a second."""
    import asyncio

    from refract.admin.embedded_redis import redis_url
    from refract.rules.account_csv import read_accounts_csv
    from refract.rules.account_store import store_accounts
    from refract.rules.redis_client import connect

    try:
        accounts = read_accounts_csv(file)
    except (InvalidFileError, OSError) as error:
        print(error, file=sys.stderr)
        return 2

    async def store(url: str) -> int:
        async with connect(url) as client:
            return await store_accounts(client, site, accounts)

    with redis_url(config.redis.url, config.server.data_dir) as url:
        version = asyncio.run(store(url))
    targets = sum(account.target for account in accounts)
    print(f"{site}: {len(accounts)} accounts ({targets} targets) stored as version {version}")
    return 0


def _crm_pull(config: Config, args: argparse.Namespace) -> int:
    """Pull accounts, owners and closed deals from ``[automations] crm`` now."""
    import asyncio
    import time

    from refract.admin.embedded_redis import redis_url
    from refract.analytics.automations.rate_limit import throttle
    from refract.analytics.automations.ssrf import guarded_session
    from refract.analytics.crm import CrmError
    from refract.analytics.crm.sync import PullReport, outcomes_path, pull
    from refract.rules.industry import load_industry_model
    from refract.rules.redis_client import connect

    site = config.site(args.site)
    name = config.automations.crm
    if site is None or not name:
        why = f"no site {args.site!r} in the configuration" if site is None else "no CRM"
        print(f"refract crm pull: {why}; set [automations] crm", file=sys.stderr)
        return 2
    destination = config.automations.destinations[name]

    async def run(url: str) -> PullReport:
        async with connect(url) as client, guarded_session(config.automations.allow_hosts) as http:

            async def wait_turn() -> None:
                await throttle(client, name, destination.rate_limit, destination.rate_window)

            outcomes = outcomes_path(config.server.data_dir, site.key)
            currency = load_industry_model(site.industry).revenue.currency
            return await pull(
                client,
                http,
                site.key,
                name,
                destination,
                wait_turn,
                time.time(),
                outcomes=outcomes,
                currency=currency,
            )

    try:
        with redis_url(config.redis.url, config.server.data_dir) as url:
            report = asyncio.run(run(url))
    except CrmError as error:
        print(f"refract crm pull: {error.detail}", file=sys.stderr)
        return 1
    print(report.describe(), end="")
    return 0


def _train(config: Config, args: argparse.Namespace) -> int:
    """Fit the site's revenue model to won and lost deals; store it unless --dry-run."""
    import asyncio
    import json

    from refract.admin.embedded_redis import redis_url
    from refract.analytics.revenue.outcomes import read_outcomes_csv
    from refract.analytics.revenue.pipeline import describe, train
    from refract.analytics.revenue.predict import RevenueModel
    from refract.analytics.revenue.store import store_model
    from refract.rules.industry import load_industry_model
    from refract.rules.redis_client import connect

    site = config.site(args.site)
    if site is None:
        print(f"refract train: no site {args.site!r} in the configuration", file=sys.stderr)
        return 2
    try:
        outcomes = read_outcomes_csv(args.outcomes)
    except InvalidFileError as error:
        print(error, file=sys.stderr)
        return 2
    industry = load_industry_model(site.industry)

    async def fit(url: str) -> RevenueModel:
        async with connect(url) as client:
            model = await train(client, site.key, outcomes, site.industry, industry, args.seed)
            if not args.dry_run:
                await store_model(client, site.key, model)
            return model

    with redis_url(config.redis.url, config.server.data_dir) as url:
        model = asyncio.run(fit(url))
    print(describe(model), end="")
    if not (model.close or model.deal_size or model.days_to_close):
        print(
            "refract train: no part fitted with skill or enough deals; priors stay", file=sys.stderr
        )
        return 1
    if args.dry_run:
        print("dry run: not stored")
        return 0
    path = config.server.data_dir / "models" / site.key / f"revenue-{model.version}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(model.to_json(), indent=1))
    print(f"{site.key}: model {model.version} in use (a copy in {path})")
    return 0


def _access(config: Config, args: argparse.Namespace) -> int:
    """Users and API tokens of the admin API (the first admin is made here)."""
    import asyncio

    from refract.admin.embedded_redis import redis_url

    verb = args.users_command if args.command == "users" else args.tokens_command
    command = f"refract {args.command} {verb}"
    try:
        act = _user_action(config, args) if args.command == "users" else _token_action(config, args)
        with redis_url(config.redis.url, config.server.data_dir) as url:
            said = asyncio.run(act(url))
    except ValueError as refusal:
        print(f"{command}: {refusal}", file=sys.stderr)
        return 2
    print(said)
    return 0


AccessAction = Callable[[str], Coroutine[Any, Any, str]]


def _known_sites(config: Config, sites: list[str], role: str) -> list[str]:
    """``--site`` keys checked against config.toml (admins see every site)."""
    if sites and role == "admin":
        raise ValueError("admins see every site: give no --site")
    known = {site.key for site in config.sites}
    unknown = sorted(set(sites) - known)
    if unknown:
        raise ValueError(
            f"no such site: {', '.join(unknown)} (configured: {', '.join(sorted(known))})"
        )
    return sites


def _ask_password(name: str) -> str:
    """The new user's password from the terminal; with none (a script, `docker exec` without
    -it) a refusal that says how to give it instead of a traceback."""
    import getpass

    try:
        return getpass.getpass(f"password for {name}: ")
    except (EOFError, KeyboardInterrupt):
        raise ValueError(
            "no password: set REFRACT_PASSWORD or run in a terminal (docker exec -it)"
        ) from None


def _user_action(config: Config, args: argparse.Namespace) -> AccessAction:
    import re

    from refract.admin import auth, passwords
    from refract.rules.redis_client import connect

    if not re.fullmatch(auth.USER_NAME_PATTERN, args.name):
        raise ValueError("names are lowercase letters, digits, . _ -")
    if args.users_command == "remove":

        async def remove(url: str) -> str:
            async with connect(url) as client:
                removed = await auth.remove_user(client, args.name)
            if removed is None:
                raise ValueError(f"no user {args.name}")
            return f"user {args.name} removed; their sessions are over"

        return remove
    sites = _known_sites(config, args.site, args.role)
    auth.check_rep_fields(args.owner_id, args.territory)
    password = os.environ.get("REFRACT_PASSWORD") or _ask_password(args.name)
    problem = passwords.policy_problem(password, args.name)
    if problem is not None:
        raise ValueError(f"the password {problem}")

    async def add(url: str) -> str:
        async with connect(url) as client:
            new = await auth.add_user(
                client,
                args.name,
                args.role,
                password,
                sites,
                owner_id=args.owner_id,
                territory=args.territory,
            )
        done = "created" if new else "reset (their sessions are over)"
        return f"user {args.name} ({args.role}) {done}"

    return add


def _token_action(config: Config, args: argparse.Namespace) -> AccessAction:
    from refract.admin import auth
    from refract.rules.redis_client import connect

    if args.tokens_command == "revoke":

        async def revoke(url: str) -> str:
            async with connect(url) as client:
                found = await auth.revoke_token(client, args.id)
            if not found:
                raise ValueError(f"no token {args.id}")
            return f"token {args.id} revoked"

        return revoke
    sites = _known_sites(config, args.site, args.role)
    lifetime = None if args.expires is None else auth.lifetime_s(args.expires)
    scope: Literal["read", "write"] = "write" if args.write else "read"

    async def create(url: str) -> str:
        async with connect(url) as client:
            token_id, token = await auth.create_token(
                client, args.name, args.role, scope, lifetime, sites
            )
        until = f", expires in {args.expires}" if args.expires else ""
        return f"token {token_id} ({args.role}, {scope}{until}):\n{token}"

    return create


def _qa_link(config: Config, args: argparse.Namespace) -> int:
    """A signed link that shows one variant of an experiment to whoever opens it, for a while."""
    import asyncio
    import time

    from refract.admin.embedded_redis import redis_url
    from refract.analytics.rules_in_force import rules_in_force
    from refract.rules.qa_links import LinkRefusedError, QaLink, ensure_secret, home_page, issue
    from refract.rules.redis_client import connect

    async def make(url: str) -> QaLink:
        async with connect(url) as client:
            rules = await rules_in_force(config, client)
            return issue(
                await ensure_secret(client),
                rules,
                args.experiment,
                args.variant,
                page=args.url or home_page(config),
                lifetime_s=round(args.hours * 3600),
                scope="preview" if args.preview else "live",
                now=time.time(),
            )

    try:
        with redis_url(config.redis.url, config.server.data_dir) as url:
            link = asyncio.run(make(url))
    except LinkRefusedError as error:
        print(f"refract qa-link: {error}", file=sys.stderr)
        return 2
    until = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(link.expires))
    shows = "whatever its status and schedule" if args.preview else "while it runs"
    print(f"{link.url}\nshows {args.experiment}: {args.variant} {shows}, until {until}")
    return 0


def _report(config: Config, args: argparse.Namespace) -> int:
    """An experiment's report in the terminal (table), or as JSON or CSV."""
    import asyncio
    import json

    from refract.admin.csv_export import csv_text
    from refract.admin.embedded_redis import redis_url
    from refract.analytics.reports import (
        RESULT_COLUMNS,
        UnknownExperimentError,
        as_table,
        experiment_report,
        result_rows,
    )
    from refract.analytics.stats.engine import Settings
    from refract.rules.redis_client import connect

    site = _site_key(config, args.site, "report")
    settings = Settings(alpha=args.alpha, method=args.method, correction=args.correction)

    async def fetch(url: str) -> str:
        async with connect(url) as client:
            report = await experiment_report(client, config, site, args.experiment, settings)
        if args.format == "json":
            return json.dumps(report.as_json(), indent=2) + "\n"
        if args.format == "csv":
            return csv_text(RESULT_COLUMNS, result_rows(report))
        return as_table(report, args.segment)

    try:
        with redis_url(config.redis.url, config.server.data_dir) as url:
            print(asyncio.run(fetch(url)), end="")
    except UnknownExperimentError as error:
        print(f"refract report: {error}", file=sys.stderr)
        return 2
    return 0


def _check(config: Config, config_path: Path) -> int:
    """Validate config.toml and the rule files it names; print every problem."""
    print(f"{config_path}: ok ({len(config.sites)} site{'s' * (len(config.sites) != 1)})")
    for concern in config_warnings(config):  # it loads; these deserve a look
        print(f"warning: {concern}", file=sys.stderr)
    if config.rules.directory is None:
        return 0
    try:
        files = read_rule_files(config.rules.directory)
        rules = checked_rules(files, config.rules.directory, config.automations)
    except InvalidFileError as error:
        print(error, file=sys.stderr)
        return 2
    print(
        f"{config.rules.directory}: ok (version {rules.version}: {len(rules.experiments)} "
        f"experiments, {len(rules.personalizations)} personalizations, "
        f"{len(rules.audiences)} audiences, {len(rules.metrics)} metrics, "
        f"{len(rules.battlecards)} battlecards)"
    )
    for warning in rules.warnings:  # the set loads; these deserve a look
        print(f"warning: {warning}", file=sys.stderr)
    from refract.analytics.reports import power_check  # numpy and scipy: only when needed

    for experiment in rules.experiments.values():
        if experiment.status in ("draft", "running"):
            print(f"note: {power_check(experiment)}")
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="refract", description=__doc__)
    parser.add_argument(
        "--config",
        default=os.environ.get("REFRACT_CONFIG", DEFAULT_CONFIG),
        help="path of config.toml (default: $REFRACT_CONFIG or ./config.toml)",
    )
    parser.add_argument(
        "--workers", type=_workers, help="proxy processes (overrides server.workers)"
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser("run", help="proxy, analytics worker and admin API together (one node)")
    commands.add_parser("proxy", help="the proxy alone")
    commands.add_parser("worker", help="the analytics worker alone")
    commands.add_parser("admin", help="the admin API and dashboard alone")
    demo = commands.add_parser("demo", help="the demo website with Refract in front")
    demo.add_argument(
        "--traffic",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="simulated visitors: weeks of history, then a trickle (default: on)",
    )
    demo.add_argument(
        "--traffic-days",
        type=_traffic_days,
        default=28,
        help="days of history the simulator plays (default 28, at most 90)",
    )
    demo.add_argument(
        "--traffic-daily",
        type=_traffic_daily,
        default=80,
        help="new visitors on a weekday of history (default 80, at most 500)",
    )
    commands.add_parser("check", help="validate config.toml and exit")
    commands.add_parser(
        "rebuild", help="rebuild profiles and aggregates from the event archive (worker stopped)"
    )
    geo = commands.add_parser("geo", help="IP address data: `refract geo import FILE...`")
    geo_commands = geo.add_subparsers(dest="geo_command", required=True, metavar="COMMAND")
    geo_import = geo_commands.add_parser(
        "import", help="network owners from ip-location-db ASN CSV (.csv, .csv.gz) or a .mmdb"
    )
    geo_import.add_argument("files", nargs="+", help="asn-ipv4.csv asn-ipv6.csv, or one .mmdb")
    accounts = commands.add_parser("accounts", help="account lists: `refract accounts import`")
    accounts_commands = accounts.add_subparsers(
        dest="accounts_command", required=True, metavar="COMMAND"
    )
    accounts_import = accounts_commands.add_parser(
        "import", help="replace a site's account list with a CSV export from the CRM"
    )
    accounts_import.add_argument("file", help="CSV: domain, name, industry, ..., target")
    accounts_import.add_argument("--site", help="the site's key (default: the first site)")
    report = commands.add_parser("report", help="an experiment's results and what to do next")
    report.add_argument("experiment", help="the experiment's key")
    report.add_argument("--site", help="the site's key (default: the first site)")
    report.add_argument("--format", choices=("table", "json", "csv"), default="table")
    report.add_argument("--segment", default="all", help="rows of this segment (table only)")
    report.add_argument(
        "--method",
        choices=REPORT_METHODS,
        default="group_sequential",
        help="group_sequential (error spending at the plan's size, the default), sequential "
        "(always valid, any horizon) or fixed (one look at the end)",
    )
    report.add_argument("--correction", choices=("holm", "bh"), default="holm")
    report.add_argument(
        "--alpha", type=_alpha, default=0.05, help="significance level (as the admin API's)"
    )
    roles = ("executive", "sales_manager", "sales_rep", "marketing", "admin")
    users = commands.add_parser("users", help="admin API users: `refract users add|remove NAME`")
    users_commands = users.add_subparsers(dest="users_command", required=True, metavar="COMMAND")
    users_add = users_commands.add_parser(
        "add", help="create or reset a user (password from $REFRACT_PASSWORD or a prompt)"
    )
    users_add.add_argument("name", help="lowercase letters, digits, . _ -")
    users_add.add_argument("--role", choices=roles, required=True)
    users_add.add_argument(
        "--site", action="append", default=[], help="a site the user may see (repeat); none: all"
    )
    users_add.add_argument(
        "--owner-id",
        help="their owner id in the CRM (the account list's owner column): a sales rep sees "
        'the accounts it owns and their leads ("" clears it; absent: kept)',
    )
    users_add.add_argument(
        "--territory", help='their territory\'s key in territories.toml ("" clears it)'
    )
    users_remove = users_commands.add_parser(
        "remove", help="remove a user; their sessions end at once"
    )
    users_remove.add_argument("name")
    tokens = commands.add_parser("tokens", help="admin API tokens: `refract tokens create|revoke`")
    tokens_commands = tokens.add_subparsers(dest="tokens_command", required=True, metavar="COMMAND")
    tokens_create = tokens_commands.add_parser("create", help="a new token, shown once")
    tokens_create.add_argument("name", help="what the token is for")
    tokens_create.add_argument("--role", choices=roles, required=True)
    tokens_create.add_argument("--write", action="store_true", help="may change things")
    tokens_create.add_argument(
        "--expires", metavar="LIFETIME", help='stops working after this long, e.g. "12h", "90d"'
    )
    tokens_create.add_argument(
        "--site", action="append", default=[], help="a site it may see (repeat); none: all"
    )
    tokens_revoke = tokens_commands.add_parser("revoke", help="revoke a token by its id")
    tokens_revoke.add_argument("id")
    qa_link = commands.add_parser(
        "qa-link", help="a signed, expiring link that shows one variant (docs/rules.md)"
    )
    qa_link.add_argument("experiment", help="the experiment's key")
    qa_link.add_argument("variant", help="the variant's key")
    qa_link.add_argument(
        "--hours", type=_hours, default=24.0, help="how long it works (default 24, at most 720)"
    )
    qa_link.add_argument(
        "--preview",
        action="store_true",
        help="show it whatever the experiment's status and schedule (a draft, an embargo)",
    )
    qa_link.add_argument("--url", help="the page it opens (default: the first site's home page)")
    privacy_cli.add_parser(commands)
    attribution_cli.add_parser(commands)
    spend_cli.add_parser(commands)
    autopilot = commands.add_parser(
        "autopilot", help="what to test: `refract autopilot scan` (docs/autopilot.md)"
    )
    autopilot_commands = autopilot.add_subparsers(
        dest="autopilot_command", required=True, metavar="COMMAND"
    )
    autopilot_scan = autopilot_commands.add_parser(
        "scan", help="find headlines, calls to action, pricing, proof and forms on viewed pages"
    )
    autopilot_scan.add_argument("--site", help="the site's key (default: the first site)")
    autopilot_scan.add_argument(
        "--pages", type=_scan_pages, default=20, help="most viewed pages to scan (default 20)"
    )
    autopilot_scan.add_argument(
        "--path", action="append", help="scan this path instead of the most viewed (repeat)"
    )
    autopilot_scan.add_argument(
        "--metric", help="the metric proposals aim at (default: the experiments' usual primary)"
    )
    autopilot_scan.add_argument("--json", action="store_true", help="print the scan as JSON")
    autopilot_evaluate = autopilot_commands.add_parser(
        "evaluate",
        help="what another allocation would have been worth on the visitors already served",
    )
    autopilot_evaluate.add_argument("experiment", help="the experiment's key")
    autopilot_evaluate.add_argument(
        "--policy",
        default="winner",
        help="uniform, winner (each context's best variant), published (the bandit's weights) "
        "or variant=weight,... (default winner)",
    )
    autopilot_evaluate.add_argument("--metric", help="the reward's metric (default: the primary)")
    autopilot_evaluate.add_argument(
        "--reward", choices=("conversion", "revenue"), default="conversion"
    )
    autopilot_evaluate.add_argument(
        "--context", help="a report segment field the policy varies by (default: bandit.context)"
    )
    autopilot_evaluate.add_argument("--site", help="the site's key (default: the first site)")
    autopilot_evaluate.add_argument("--json", action="store_true", help="print JSON")
    crm = commands.add_parser(
        "crm", help="sync with the CRM: `refract crm pull` (docs/automations.md)"
    )
    crm_commands = crm.add_subparsers(dest="crm_command", required=True, metavar="COMMAND")
    crm_pull = crm_commands.add_parser(
        "pull", help="pull accounts, owners and closed deals from [automations] crm now"
    )
    crm_pull.add_argument("--site", help="the site's key (default: the first site)")
    train = commands.add_parser(
        "train", help="fit the revenue model to won and lost deals (docs/intelligence.md)"
    )
    train.add_argument(
        "--outcomes",
        required=True,
        help="CSV: account_domain or visitor_id, outcome (won/lost), amount, created, closed",
    )
    train.add_argument("--site", help="the site's key (default: the first site)")
    train.add_argument("--seed", type=int, default=0, help="seed of the cross-validation folds")
    train.add_argument(
        "--dry-run", action="store_true", help="fit and report, but keep the current model"
    )
    return parser


def _workers(text: str) -> int:
    """--workers: a number of proxy processes within server.workers' bounds (its schema's)."""
    from refract.rules.config import ServerConfig

    return int(_option(ServerConfig.model_fields["workers"], int, text))


def _alpha(text: str) -> float:
    """--alpha: a significance level the admin API accepts (its ReportQuery's bounds), so
    that nan, 2 or -1 is refused, not turned into a report at a nonsensical level."""
    from refract.admin.api_reads import ReportQuery

    return float(_option(ReportQuery.model_fields["alpha"], float, text))


def _option(field: FieldInfo, kind: type, text: str) -> Any:
    """An option's ``text`` validated as ``field`` of a schema is, with its bounds: one home
    for them, and the refusal names the option (argparse adds ``argument --NAME:``)."""
    from pydantic import TypeAdapter, ValidationError

    try:
        return TypeAdapter(cast(Any, Annotated[kind, field])).validate_python(text)
    except ValidationError as error:
        message = error.errors()[0]["msg"]
        signs = {"ge": ">=", "gt": ">", "le": "<=", "lt": "<"}
        bounds = " and ".join(
            f"{sign} {getattr(bound, name)}"
            for bound in field.metadata
            for name, sign in signs.items()
            if hasattr(bound, name)
        )
        raise argparse.ArgumentTypeError(
            f"{text!r}: {message[0].lower()}{message[1:]} (accepted: {bounds})"
        ) from None


def _hours(text: str) -> float:
    """A QA link's lifetime: a number of hours within what links may live."""
    from refract.rules.qa_links import MAX_LIFETIME_S

    try:
        hours = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of hours") from None
    if not 0 < hours <= MAX_LIFETIME_S / 3600:
        raise argparse.ArgumentTypeError(f"between 0 and {MAX_LIFETIME_S // 3600} hours")
    return hours


def _scan_pages(text: str) -> int:
    """How many pages a scan fetches: a few hundred at most (each is a request to the origin)."""
    if not text.isdigit() or not 1 <= int(text) <= 500:
        raise argparse.ArgumentTypeError("a number of pages from 1 to 500")
    return int(text)


def _traffic_days(text: str) -> int:
    from refract.admin.demo_traffic import days_option

    return days_option(text)


def _traffic_daily(text: str) -> int:
    from refract.admin.demo_traffic import daily_option

    return daily_option(text)


def _run_node(
    command: str, config: Config, config_path: Path, args: argparse.Namespace | None = None
) -> int:
    from refract.admin.embedded_redis import STOP_S, EmbeddedRedis
    from refract.admin.node_processes import status_path

    # Written to by every node (process status, spill files, metrics files), with or without
    # the embedded Valkey.
    _check_data_dir(config.server.data_dir)
    embedded = None if config.redis.url else EmbeddedRedis(config.server.data_dir)
    # Started first and stopped last (stage 2): every other child writes to it.
    valkey = (
        None
        if embedded is None
        else Child("valkey", launch=embedded.launch, stage=2, stop_s=STOP_S)
    )
    try:
        if embedded is not None and valkey is not None:
            valkey.start()
            if valkey.process is None or not valkey.process.is_alive():
                print(
                    f"the embedded Valkey did not start: see {embedded.log_path}", file=sys.stderr
                )
                return 1
            os.environ["REFRACT_REDIS__URL"] = embedded.url
        children = _children(command, config, str(config_path))
        if command == "demo":
            _ensure_demo_user(os.environ.get("REFRACT_REDIS__URL") or config.redis.url)
            traffic = args is not None and args.traffic
            if traffic and args is not None:
                options = (args.traffic_days, args.traffic_daily)
                children.append(
                    Child("demo-traffic", demo_traffic_main, (str(config_path), *options))
                )
            listen = config.server.listen[0]
            said = (
                f"  Traffic: {args.traffic_days} simulated days of visitors, then a few a "
                "minute (--no-traffic turns it off).\n"
                if traffic and args is not None
                else ""
            )
            print(
                f"\n  Refract demo: open http://{listen}/ (the site is Northbeam Analytics, a "
                "demo B2B SaaS).\n  Health: "
                f"http://{listen}{config.server.prefix}health   Dashboard: "
                f"http://{config.admin.listen}/ (user {DEMO_USER}, password "
                f"{DEMO_PASSWORD})\n{said}  Rules: {config.rules.directory} (the demo's copy: "
                "edit them there).\n  Stop with Ctrl-C.\n",
                flush=True,
            )
        if valkey is not None:
            children.append(valkey)
        status = status_path(config.server.data_dir)

        def follow_config() -> None:
            """On SIGHUP: a child restarted later falls back on the config.toml that loaded
            last, as the running children keep it (``_child_config``)."""
            try:
                fresh = load_config(config_path)
            except InvalidFileError:
                return  # the children log the refusal
            for child in children:
                if len(child.args) == 2 and isinstance(child.args[1], Config):
                    child.args = (child.args[0], fresh)

        supervisor = Supervisor(
            children, config.server.graceful_timeout, status, on_reload=follow_config
        )
        return supervisor.run()
    finally:
        if embedded is not None and valkey is not None:
            if valkey.process is not None and valkey.process.is_alive():
                valkey.process.kill()  # the node failed before its supervisor ran
                valkey.process.join()
            embedded.forget()


DEMO_USER = "demo"
DEMO_PASSWORD = "refract-demo-password"  # the demo's dashboard listens on localhost only


def _ensure_demo_user(url: str) -> None:
    """The demo's dashboard user (an admin), unless one of that name exists already."""
    import asyncio

    from refract.admin import auth
    from refract.rules.redis_client import connect

    async def ensure() -> None:
        async with connect(url) as client:
            if not await client.exists(keyspace.admin_user(DEMO_USER)):
                await auth.add_user(client, DEMO_USER, "admin", DEMO_PASSWORD)

    asyncio.run(ensure())


def _children(command: str, config: Config, config_path: str) -> list[Child]:
    # Each gets the node's configuration too: restarted while config.toml is being edited
    # (invalid), a child starts with the one that loaded last instead of crash-looping.
    proxies = [
        Child(f"proxy-{index}", proxy_main, (config_path, config), reloads=True)
        for index in range(config.server.workers)
    ]
    if len(proxies) > 1:
        _prepare_metrics_dir(config.server.data_dir / "metrics")
    # Shutdown stages: what takes requests drains first (stage 0), then the worker (1).
    worker = Child("worker", worker_main, (config_path, config), reloads=True, stage=1)
    admin = Child("admin", admin_main, (config_path, config), reloads=True)
    if command == "proxy":
        return proxies
    if command == "worker":
        return [worker]
    if command == "admin":
        return [admin]
    if command == "demo":
        origin = config.sites[0].origin_url
        # the origin stops after the proxies that forward to it have drained
        demo = Child("demo-origin", demo_origin_main, (origin.host, origin.port), stage=1)
        return [demo, *proxies, worker, admin]
    return [*proxies, worker, admin]


def _prepare_metrics_dir(path: Path) -> None:
    """Per-process metric files for prometheus_client; stale ones would be summed in."""
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(path.resolve())


def _child_config(config_path: str, fallback: Config | None = None) -> Config:
    """config.toml as it is now; if it no longer loads (being edited when this child is
    restarted), the node's last valid one, ``fallback``, rather than a crash loop."""
    logs.configure()
    try:
        config = load_config(Path(config_path))
    except InvalidFileError as error:
        if fallback is None:
            raise
        log.error(
            "%s does not load; this process starts with the configuration in force (the "
            "last that loaded) until it is fixed (then SIGHUP):\n%s",
            config_path,
            error,
            extra={"config_invalid": True},
        )
        config = fallback
    logs.follow_ip_policy(config.privacy.ip_in_logs)
    return config


def proxy_main(config_path: str, fallback: Config | None = None) -> None:
    from refract.proxy import server

    server.run(_child_config(config_path, fallback), Path(config_path))


def worker_main(config_path: str, fallback: Config | None = None) -> None:
    from refract.analytics import worker

    worker.run(_child_config(config_path, fallback), Path(config_path))


def admin_main(config_path: str, fallback: Config | None = None) -> None:
    from refract.admin import app

    app.run(_child_config(config_path, fallback), Path(config_path))


def demo_traffic_main(config_path: str, days: int, daily: int) -> None:
    import asyncio

    from refract.admin import demo_traffic

    config = _child_config(config_path)
    options = demo_traffic.Options(days=days, daily=daily)
    asyncio.run(demo_traffic.run_until_stopped(config, config.redis.url, options))


def demo_origin_main(host: str, port: int) -> None:
    from refract.admin import demo

    logs.configure()
    demo.run(host=host, port=port)


if __name__ == "__main__":
    sys.exit(main())
