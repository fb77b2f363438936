"""One change to a rule set, made to its files: the same files ``refract check`` reads.

Every function here takes a rule set's files (``RuleFiles``: names and bytes, as
``rules.ruleset`` reads them from a directory and ``rules.publication`` publishes them) and
returns new files with one change applied, validated whole with ``rules_from_files``: an
invalid result raises InvalidFileError with every problem, exactly as ``refract check``
would print them, and nothing of it is kept. Entries are changed in whichever file defines
them, key by key, so comments and layout survive (rules/toml_edit.py); new entries go at the
end of ``experiments.toml`` or ``personalizations.toml``, created if absent.

Statuses move forward only (``TRANSITIONS``): a stopped experiment does not run again (its
results are final: a new experiment, or a new seed, starts afresh), and archived is the end.
Promoting a winner stops the experiment and ships the winning variant's changes as a running
personalization (see ``promote``), never over one that another experiment (or a person)
wrote.
"""

from __future__ import annotations

import hashlib
import tomllib
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Literal, cast

import tomlkit
from tomlkit.items import AoT, Array

from refract.rules import bundle
from refract.rules.ruleset import RuleSet, rules_from_files, rules_version
from refract.rules.schema import Experiment, Personalization
from refract.rules.toml_edit import entry_text, remove_entry, toml_value, update_table, written

Kind = Literal["experiments", "personalizations"]
Entry = Experiment | Personalization
MODELS: dict[Kind, type[Experiment] | type[Personalization]] = {
    "experiments": Experiment,
    "personalizations": Personalization,
}
NEW_ENTRIES_FILE: dict[Kind, str] = {
    "experiments": "experiments.toml",
    "personalizations": "personalizations.toml",
}
# status -> the statuses it may be reached from
TRANSITIONS: dict[Kind, dict[str, frozenset[str]]] = {
    "experiments": {
        "running": frozenset({"draft", "paused"}),
        "paused": frozenset({"running"}),
        "stopped": frozenset({"running", "paused"}),
        "archived": frozenset({"draft", "running", "paused", "stopped"}),
    },
    "personalizations": {
        "running": frozenset({"draft", "paused"}),
        "paused": frozenset({"running"}),
        "archived": frozenset({"draft", "running", "paused"}),
    },
}
PROMOTABLE = frozenset({"running", "paused", "stopped"})
_WINNER_SUFFIX = "-winner"
_KEY_LENGTH = 63  # rules.schema.KEY_PATTERN
_DIGEST_LENGTH = 8  # hex digits of a long experiment key's SHA-256 in its winner's key
_CUT = _KEY_LENGTH - len(_WINNER_SUFFIX) - _DIGEST_LENGTH - 1  # what is kept of a long key: 47


@dataclass(frozen=True)
class RuleFiles:
    """A rule set's files; ``directory`` names them in problems (a path, or the Redis key)."""

    files: dict[str, bytes]
    directory: Path

    @property
    def version(self) -> str:
        return rules_version(self.files)

    @cached_property
    def rules(self) -> RuleSet:
        """The validated rules; InvalidFileError lists every problem."""
        return rules_from_files(self.files, self.directory)

    def with_files(self, files: dict[str, bytes]) -> RuleFiles:
        """These files instead, validated now: an invalid set is refused whole."""
        edited = RuleFiles(files, self.directory)
        edited.rules  # noqa: B018 - validating is the point
        return edited


class UnknownEntryError(LookupError):
    """No experiment or personalization has that key."""


class TransitionError(ValueError):
    """The entry's status cannot move to the one asked for."""


class UnknownVariantError(ValueError):
    """A promotion named a variant the experiment does not have."""


def entries(rules: RuleSet, kind: Kind) -> dict[str, Entry]:
    return cast(dict[str, Entry], getattr(rules, kind))


def entry(base: RuleFiles, kind: Kind, key: str) -> Entry:
    found = entries(base.rules, kind).get(key)
    if found is None:
        raise UnknownEntryError(f"no {kind[:-1]} {key!r}")
    return found


def locations(files: dict[str, bytes], kind: Kind) -> dict[str, tuple[str, int]]:
    """Where each entry of ``kind`` is defined: key -> (file name, index in that file)."""
    found: dict[str, tuple[str, int]] = {}
    for name in sorted(files):
        tables = tomllib.loads(files[name].decode("utf-8")).get(kind, [])
        for index, table in enumerate(tables if isinstance(tables, list) else []):
            if isinstance(table, dict) and isinstance(table.get("key"), str):
                found.setdefault(table["key"], (name, index))
    return found


# --- changes -------------------------------------------------------------------------------


def add(base: RuleFiles, kind: Kind, new: Entry, comment: str = "") -> RuleFiles:
    """``new`` appended to ``NEW_ENTRIES_FILE[kind]`` (created if absent), after a comment."""
    name = NEW_ENTRIES_FILE[kind]
    text = base.files.get(name, b"").decode("utf-8")
    document = tomlkit.parse(text)
    existing = document.get(kind)
    if isinstance(existing, Array):  # written as kind = [...]: an [[kind]] table would clash
        existing.append(tomlkit.parse(f"item = {toml_value(written(new))}\n")["item"])
        return base.with_files({**base.files, name: tomlkit.dumps(document).encode()})
    if text and not text.endswith("\n"):
        text += "\n"
    if text.strip():
        text += "" if text.endswith("\n\n") else "\n"
    text += "".join(f"# {line}\n" for line in comment.splitlines()) + entry_text(kind, new)
    return base.with_files({**base.files, name: text.encode()})


def replace(base: RuleFiles, kind: Kind, key: str, new: Entry) -> RuleFiles:
    """Entry ``key`` becomes ``new``, in the file that defines it; only changed keys move."""
    old = entry(base, kind, key)
    name, index = _location(base, kind, key)
    document = tomlkit.parse(base.files[name].decode("utf-8"))
    update_table(document[kind][index], old, new)
    return base.with_files({**base.files, name: tomlkit.dumps(document).encode()})


def remove(base: RuleFiles, kind: Kind, key: str) -> RuleFiles:
    """Entry ``key`` removed, with the comment lines just above it."""
    entry(base, kind, key)
    name, index = _location(base, kind, key)
    document = tomlkit.parse(base.files[name].decode("utf-8"))
    if isinstance(document[kind], AoT):
        remove_entry(document, kind, index)
    else:
        del document[kind][index]
    text = tomlkit.dumps(document)
    return base.with_files({**base.files, name: (text.rstrip("\n") + "\n").lstrip("\n").encode()})


def set_status(base: RuleFiles, kind: Kind, key: str, status: str) -> RuleFiles:
    current = entry(base, kind, key)
    check_transition(kind, current.status, status)
    return replace(base, kind, key, current.model_copy(update={"status": status}))


def check_transition(kind: Kind, current: str, status: str) -> None:
    allowed = TRANSITIONS[kind].get(status)
    if allowed is None:
        raise TransitionError(f"a {kind[:-1]} cannot be made {status}")
    if current not in allowed:
        sources = " or ".join(sorted(allowed))
        raise TransitionError(f"the {kind[:-1]} is {current}: only a {sources} one can be {status}")


# --- promoting a winner --------------------------------------------------------------------


@dataclass(frozen=True)
class Promoted:
    files: RuleFiles
    personalization: str | None  # its key; None when the winner changes nothing (control)


class WinnerTakenError(ValueError):
    """The personalization a promotion would write exists and is not this experiment's."""


def winner_key(experiment: str) -> str:
    """The key of the personalization promoting ``experiment`` ships: ``<key>-winner``, or,
    for a key too long for that, its first 47 characters, ``-``, 8 hex digits of its SHA-256
    and ``-winner`` (63 characters), so that no two experiments ship to one key."""
    whole = experiment + _WINNER_SUFFIX
    if len(whole) <= _KEY_LENGTH:
        return whole
    digest = hashlib.sha256(experiment.encode()).hexdigest()[:_DIGEST_LENGTH]
    return f"{experiment[:_CUT]}-{digest}{_WINNER_SUFFIX}"


def _former_winner_key(experiment: str) -> str:
    """The key promotions of a long key wrote before winner keys had a digest: cut to 56."""
    return experiment[: _KEY_LENGTH - len(_WINNER_SUFFIX)] + _WINNER_SUFFIX


def shipped_by(personalization: Personalization, experiment: Experiment) -> bool:
    """Whether ``personalization`` is what a promotion of ``experiment`` wrote: its pages, its
    audience and the changes of one of its variants (a key alone could be a hand-written
    personalization's, or another experiment's from before winner keys had a digest)."""
    return (
        personalization.pages == experiment.pages
        and personalization.audience == experiment.audience
        and any(
            variant.changes and variant.changes == personalization.changes
            for variant in experiment.variants
        )
    )


def winner_of(base: RuleFiles, key: str) -> str:
    """The personalization a promotion of experiment ``key`` writes, replaces or archives:
    ``winner_key(key)``, unless only the shorter key of an earlier promotion holds this
    experiment's winner (then that one, so that it is not shipped twice)."""
    experiment = cast(Experiment, entry(base, "experiments", key))
    shipped, now, former = base.rules.personalizations, winner_key(key), _former_winner_key(key)
    if now not in shipped and former in shipped and shipped_by(shipped[former], experiment):
        return former
    return now


def promote(base: RuleFiles, key: str, variant: str) -> Promoted:
    """Ship ``variant`` of experiment ``key`` to everyone it was tested on.

    The experiment stops (its results stay as they were when the decision was made: no
    re-weighting mid-test mixes periods with different splits), and the winner's changes
    become the running personalization ``winner_key(key)`` (``<key>-winner``) on the
    experiment's pages and audience, for every visitor of it (not only the experiment's
    traffic share, and also those without a cookie). Promoting again replaces that
    personalization; one of that key that this experiment did not ship (``shipped_by``) is
    never replaced: WinnerTakenError. A winner that changes nothing (the control) stops the
    experiment and archives an earlier promotion's personalization, if any.
    """
    experiment = cast(Experiment, entry(base, "experiments", key))
    winner = next((one for one in experiment.variants if one.key == variant), None)
    if winner is None:
        known = ", ".join(one.key for one in experiment.variants)
        raise UnknownVariantError(f'"{key}" has no variant "{variant}" (it has {known})')
    if experiment.status not in PROMOTABLE:
        raise TransitionError(
            f"the experiment is {experiment.status}: only a running, paused or stopped one "
            "has a winner to promote"
        )
    stopped = base
    if experiment.status != "stopped":
        stopped = replace(
            base, "experiments", key, experiment.model_copy(update={"status": "stopped"})
        )
    target = winner_of(base, key)
    earlier = stopped.rules.personalizations.get(target)
    ours = earlier is not None and shipped_by(earlier, experiment)
    if not winner.changes:  # the control won: what every visitor sees stays as it is
        return Promoted(_retire(stopped, target) if ours else stopped, None)
    if earlier is not None and not ours:
        raise WinnerTakenError(
            f'personalization "{target}" exists and is not what promoting "{key}" ships (its '
            "changes, pages or audience are not those of one of its variants): it is another's, "
            "or was edited since; rename it in its rule file to promote this experiment"
        )
    shipped = Personalization(
        key=target,
        status="running",
        pages=experiment.pages,
        audience=experiment.audience,
        changes=winner.changes,
    )
    if earlier is not None:
        return Promoted(replace(stopped, "personalizations", target, shipped), target)
    comment = f'The winner of experiment "{key}", variant "{variant}", promoted in the admin API.'
    return Promoted(add(stopped, "personalizations", shipped, comment), target)


def _retire(base: RuleFiles, key: str) -> RuleFiles:
    """An earlier promotion's personalization archived, when a later one ships nothing."""
    shipped = base.rules.personalizations.get(key)
    if shipped is None or shipped.status == "archived":
        return base
    return replace(base, "personalizations", key, shipped.model_copy(update={"status": "archived"}))


# --- the whole set -------------------------------------------------------------------------


def export_document(base: RuleFiles) -> str:
    return bundle.export_document(base.files, base.version)


def import_document(base: RuleFiles, text: str) -> RuleFiles:
    """The set the document holds, replacing ``base`` whole."""
    return base.with_files(bundle.import_document(text))


def _location(base: RuleFiles, kind: Kind, key: str) -> tuple[str, int]:
    found = locations(base.files, kind).get(key)
    if found is None:  # the rules know it, so some file defines it
        raise UnknownEntryError(f"no {kind[:-1]} {key!r}")
    return found
