"""`refract privacy export|erase`: a data subject's rights from the command line.

``--visitor`` takes the ``rf_vid`` cookie value or the handle the admin shows; ``--account``
an account's domain; ``--email-domain`` a domain the visitors' forms reported. Export prints
JSON (or writes it to ``--output``); erase prints the receipt. Both are audited (``via:
cli``, by the operating-system user), a refused erasure too (``privacy.erase.failed``, with
the reason), and the audit names visitors by handle only.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from refract.rules.config import Config

if TYPE_CHECKING:  # imported when the command runs: every other command starts without them
    from refract.analytics.archive import Archive
    from refract.analytics.data_rights import SubjectKind


def add_parser(commands: Any) -> None:
    """The ``privacy`` command and its two verbs, on ``refract``'s subcommands."""
    privacy = commands.add_parser(
        "privacy", help="data subjects' rights: `refract privacy export|erase --visitor ID`"
    )
    verbs = privacy.add_subparsers(dest="privacy_command", required=True, metavar="COMMAND")
    for verb, help_text in (
        ("export", "everything kept of a subject, as JSON (GDPR Art. 15)"),
        ("erase", "remove a subject everywhere but anonymous aggregates (GDPR Art. 17)"),
    ):
        parser = verbs.add_parser(verb, help=help_text)
        subject = parser.add_mutually_exclusive_group(required=True)
        subject.add_argument("--visitor", help="rf_vid cookie value, or the vh_ handle shown")
        subject.add_argument("--account", metavar="DOMAIN", help="an account's visitors and keys")
        subject.add_argument(
            "--email-domain", metavar="DOMAIN", help="visitors whose forms reported this domain"
        )
        parser.add_argument("--site", help="one site's key (default: every site)")
        if verb == "export":
            parser.add_argument("--output", help="write the JSON here instead of stdout")


def run(config: Config, args: argparse.Namespace, url: str) -> int:
    from refract.analytics import data_rights
    from refract.analytics.archive import Archive, archive_root

    kind: SubjectKind
    if args.visitor:
        kind, value = "visitor", args.visitor
    elif args.account:
        kind, value = "account", args.account
    else:
        kind, value = "email_domain", args.email_domain
    sites = [site.key for site in config.sites]
    command = f"refract privacy {args.privacy_command}"
    if args.site is not None and args.site not in sites:
        print(f"{command}: no site {args.site!r} (configured: {', '.join(sites)})", file=sys.stderr)
        return 2
    archive = Archive(archive_root(config))
    chosen = [args.site] if args.site else sites
    try:
        if args.privacy_command == "erase":
            answer = asyncio.run(_erase(url, archive, chosen, kind, value))
        else:
            answer = asyncio.run(_export(url, archive, chosen, kind, value))
    except data_rights.SubjectError as error:
        print(f"{command}: {error}", file=sys.stderr)
        return 2
    document = json.dumps(answer, indent=2, ensure_ascii=False, default=str)
    output = getattr(args, "output", None)
    if output:
        Path(output).write_text(document + "\n", encoding="utf-8")
    else:
        print(document)
    return 0


async def _erase(
    url: str, archive: Archive, sites: list[str], kind: SubjectKind, value: str
) -> dict[str, Any]:
    from refract.admin import audit
    from refract.analytics import data_rights
    from refract.rules.redis_client import connect

    async with connect(url) as client:
        try:
            receipt = await data_rights.erase(client, archive, sites, kind, value)
        except data_rights.SubjectError as error:
            refused = {"error": str(error), "sites": sites}
            subject = data_rights.attempted_subject(kind, value)
            await audit.record_as(
                client,
                getpass.getuser(),
                "cli",
                "privacy.erase.failed",
                f"{kind}:{subject}",
                None,
                refused,
            )
            raise
        answer = receipt.as_dict()
        await audit.record_as(
            client,
            getpass.getuser(),
            "cli",
            "privacy.erase",
            f"{kind}:{receipt.subject}",
            None,
            answer,
        )
    return answer


async def _export(
    url: str, archive: Archive, sites: list[str], kind: SubjectKind, value: str
) -> dict[str, Any]:
    from refract.admin import audit
    from refract.analytics import data_rights
    from refract.rules.redis_client import connect

    async with connect(url) as client:
        found = await data_rights.export(client, archive, sites, kind, value)
        subject = data_rights.subject_of(kind, value) or ",".join(_handles(found))
        after = {"sites": [site["site"] for site in found["sites"]]}
        await audit.record_as(
            client, getpass.getuser(), "cli", "privacy.export", f"{kind}:{subject}", None, after
        )
    return found


def _handles(found: dict[str, Any]) -> list[str]:
    return [one["handle"] for site in found["sites"] for one in site.get("visitors", [])]
