"""Load a rules directory into one validated, versioned RuleSet, or refuse all of it.

Every file is parsed and checked on its own (schema), then against the others (unique keys,
references, selectors, markup, exclusion ranges). Any problem anywhere refuses the whole set,
so a running proxy never applies half of a change. The version is a hash of the files'
names and bytes: the same rules give the same version on every node.

``checked_rules`` is the whole check of ``refract check``: the rules as they load, then what
only config.toml can tell (each automation's destination). The admin API saves no set it
refuses, so an edit or import is refused exactly when ``refract check`` would refuse it.
"""

from __future__ import annotations

import difflib
import errno
import hashlib
import os
import stat
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError

from refract.rules import battlecards
from refract.rules.assignment import group_clash, seed_clash
from refract.rules.automations import Automation, destination_problems
from refract.rules.battlecards import Battlecard, PlacedCard
from refract.rules.config import AutomationsConfig
from refract.rules.markup import markup_problem, selector_problem, token_problem
from refract.rules.problems import (
    TOML_REFUSALS,
    InvalidFileError,
    Problem,
    dotted,
    problems_from_validation,
    toml_problem,
)
from refract.rules.schema import (
    HTML_ACTIONS,
    Audience,
    Change,
    Experiment,
    Metric,
    PageRule,
    Personalization,
    Settings,
    Table,
)
from refract.rules.territories import Rep, Territory
from refract.rules.token_contexts import (
    UnsafePlacement,
    check_target,
    first_not_xml_text,
    redirect_problem,
    token_contexts,
)
from refract.rules.toml_lines import KeyPath, TomlLines


class RuleFile(Table):
    """What one file of a rules directory may define (each table's own module checks it)."""

    settings: Settings | None = None
    pages: list[PageRule] = []
    audiences: list[Audience] = []
    metrics: list[Metric] = []
    experiments: list[Experiment] = []
    personalizations: list[Personalization] = []
    automations: list[Automation] = []
    territories: list[Territory] = []
    reps: list[Rep] = []
    # Cards live in battlecards/*.toml; as [[battlecards]] tables they may be in any file, so
    # that a set exported as one document (rules/bundle.py) is one valid rule file.
    battlecards: list[Battlecard] = []


@dataclass(frozen=True)
class RuleSet:
    version: str
    settings: Settings = field(default_factory=Settings)
    pages: tuple[PageRule, ...] = ()
    audiences: dict[str, Audience] = field(default_factory=dict)
    metrics: dict[str, Metric] = field(default_factory=dict)
    experiments: dict[str, Experiment] = field(default_factory=dict)
    personalizations: dict[str, Personalization] = field(default_factory=dict)
    automations: dict[str, Automation] = field(default_factory=dict)
    territories: dict[str, Territory] = field(default_factory=dict)  # in file order: first wins
    reps: dict[str, Rep] = field(default_factory=dict)
    battlecards: tuple[Battlecard, ...] = ()  # battlecards/*.toml's (and others'), in file order
    # what loads but deserves a look (refract check prints them): never a reason to refuse
    warnings: tuple[Problem, ...] = ()


EMPTY = RuleSet(version="empty")


@dataclass(frozen=True)
class _Source:
    path: Path
    lines: TomlLines
    rules: RuleFile
    cards: tuple[PlacedCard, ...] = ()  # the file's battlecards, with where each is

    def problem(self, where: KeyPath, field_name: str, message: str, hint: str = "") -> Problem:
        return Problem(str(self.path), self.lines.line_of(where), field_name, message, hint)


def read_rule_files(directory: Path) -> dict[str, bytes]:
    """The rule files of a rules directory, by name, and of its ``battlecards/`` (named
    ``battlecards/<file>``): every ``*.toml`` entry but hidden ones (editors' lock, swap and
    temporary files), a symlink read as the file it points to (docs/rules.md, "Which files are
    read"). An entry that cannot be read as a file refuses the whole set (InvalidFileError)."""
    if not directory.is_dir():
        raise InvalidFileError(
            [Problem(str(directory), None, "", "is not a directory", "set rules.directory")]
        )
    files: dict[str, bytes] = {}
    problems: list[Problem] = []
    _read_into(files, problems, directory, "")
    if (directory / battlecards.DIRECTORY).is_dir():
        _read_into(files, problems, directory / battlecards.DIRECTORY, f"{battlecards.DIRECTORY}/")
    if problems:
        raise InvalidFileError(problems)
    return files


def is_rule_file_name(name: str) -> bool:
    """``*.toml``, not hidden: ``.#r.toml`` (Emacs' lock), ``.r.toml.swp`` (Vim's swap) and
    ``r.toml~`` (a backup) are not rule files."""
    return name.endswith(".toml") and not name.startswith(".")


def _read_into(
    files: dict[str, bytes], problems: list[Problem], directory: Path, prefix: str
) -> None:
    try:
        names = sorted(entry.name for entry in os.scandir(directory))
    except OSError as error:
        problems.append(
            Problem(str(directory), None, "", f"cannot list: {error.strerror}", _READABLE)
        )
        return
    for name in filter(is_rule_file_name, names):
        try:
            files[prefix + name] = _read_rule_file(directory / name)
        except InvalidFileError as error:
            problems.extend(error.problems)


_READABLE = "make it readable by the user Refract runs as"


def _read_rule_file(path: Path) -> bytes:
    """The bytes of a regular file (or of the one a symlink points to). Opened without waiting,
    so a FIFO named like a rule file is refused rather than read forever."""
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as error:
        raise InvalidFileError([_unreadable(path, error)]) from None
    try:
        mode = os.fstat(descriptor).st_mode
        if stat.S_ISDIR(mode):
            raise InvalidFileError(
                [
                    Problem(
                        str(path),
                        None,
                        "",
                        "is a directory, not a rule file",
                        "rename it so that its name does not end in .toml, or move it out of "
                        "the rules directory",
                    )
                ]
            )
        if not stat.S_ISREG(mode):
            raise InvalidFileError(
                [
                    Problem(
                        str(path),
                        None,
                        "",
                        "is not a regular file (a FIFO, socket or device)",
                        "a rule file is a regular file, or a symlink to one",
                    )
                ]
            )
        with os.fdopen(descriptor, "rb", closefd=False) as file:
            return file.read()
    except OSError as error:
        raise InvalidFileError([_unreadable(path, error)]) from None
    finally:
        os.close(descriptor)


def _unreadable(path: Path, error: OSError) -> Problem:
    if error.errno == errno.ELOOP:
        message, hint = "is a symlink loop", "point the symlink at a rule file, or remove it"
    elif error.errno == errno.ENOENT and path.is_symlink():
        message = f"is a dangling symlink (to {_target(path)})"
        hint = "point it at an existing rule file, or remove it"
    elif error.errno == errno.ENOENT:
        message, hint = "disappeared while being read", "it was being saved or moved: try again"
    else:
        message = f"cannot read: {error.strerror}"
        hint = _READABLE if error.errno in (errno.EACCES, errno.EPERM) else ""
    return Problem(str(path), None, "", message, hint)


def _target(link: Path) -> str:
    try:
        return os.readlink(link)
    except OSError:
        return "?"  # gone meanwhile


def load_rules(directory: Path) -> RuleSet:
    """The rules in ``directory``'s ``*.toml`` files; InvalidFileError lists every problem."""
    return rules_from_files(read_rule_files(directory), directory)


def rules_version(files: dict[str, bytes]) -> str:
    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(name.encode() + b"\0" + files[name] + b"\0")
    return digest.hexdigest()[:12]


def checked_rules(
    files: Mapping[str, bytes], directory: Path, automations: AutomationsConfig
) -> RuleSet:
    """The rules of ``files`` if ``refract check`` accepts them with config.toml's
    ``[automations]``: they load (``rules_from_files``), and every automation's action has a
    destination config.toml defines, of a kind that can do it. InvalidFileError lists every
    problem, as ``refract check`` prints them."""
    rules = rules_from_files(dict(files), directory)
    if unfit := destination_problems(files, directory, automations):
        raise InvalidFileError(unfit)
    return rules


def rules_from_files(files: dict[str, bytes], directory: Path) -> RuleSet:
    """Rules from file contents (read from disk or from Redis); ``directory`` names them."""
    sources, problems = [], []
    for name in sorted(files):
        path = directory / name
        try:
            sources.append(_parse(path, files[name].decode("utf-8"), name))
        except InvalidFileError as error:
            problems.extend(error.problems)
        except UnicodeDecodeError:
            problems.append(Problem(str(path), None, "", "is not UTF-8", "save it as UTF-8"))
    if not problems:
        problems = list(_cross_check(sources))
    if problems:
        raise InvalidFileError(problems)
    return _assemble(sources, rules_version(files), tuple(_contested_elements(sources)))


def _parse(path: Path, text: str, name: str) -> _Source:
    try:
        data = tomllib.loads(text)
    except TOML_REFUSALS as error:
        raise InvalidFileError([toml_problem(str(path), text, error)]) from None
    lines = TomlLines(text)
    if battlecards.is_battlecard_file(name):
        return _Source(path, lines, RuleFile(), battlecards.parse_cards(data, str(path), lines))
    try:
        rules = RuleFile.model_validate(data)
    except ValidationError as error:
        raise InvalidFileError(
            problems_from_validation(error, RuleFile, str(path), lines)
        ) from None
    cards = (
        PlacedCard(card, ("battlecards", index)) for index, card in enumerate(rules.battlecards)
    )
    return _Source(path, lines, rules, tuple(cards))


@dataclass(frozen=True)
class _Names:
    """What rule files may refer to, over the whole directory."""

    tags: set[str]
    audiences: set[str]
    metrics: set[str]
    redirect_hosts: frozenset[str]


def _cross_check(sources: list[_Source]) -> Iterator[Problem]:
    yield from _duplicates(sources)
    settings = next((s.rules.settings for s in sources if s.rules.settings), Settings())
    names = _Names(
        tags={page.tag for source in sources for page in source.rules.pages},
        audiences={a.key for source in sources for a in source.rules.audiences},
        metrics={m.key for source in sources for m in source.rules.metrics},
        redirect_hosts=frozenset(host.lower() for host in settings.redirect_hosts),
    )
    for source in sources:
        for index, experiment in enumerate(source.rules.experiments):
            yield from _experiment_problems(source, ("experiments", index), experiment, names)
        for index, personalization in enumerate(source.rules.personalizations):
            where: KeyPath = ("personalizations", index)
            yield from _targeting_problems(source, where, personalization, names)
            for c_index, change in enumerate(personalization.changes):
                yield from _change_problems(source, (*where, "changes", c_index), change, names)
    yield from _exclusion_overlaps(sources)
    yield from _hash_clashes(sources)
    yield from _territory_problems(sources)
    yield from _automation_problems(sources, names)
    yield from _battlecard_problems(sources, settings)


def _experiment_problems(
    source: _Source, where: KeyPath, experiment: Experiment, names: _Names
) -> Iterator[Problem]:
    yield from _targeting_problems(source, where, experiment, names)
    for role in ("primary_metric", "secondary_metrics", "guardrail_metrics"):
        named = getattr(experiment, role)
        for metric in [named] if isinstance(named, str) else named:
            yield from _references(source, (*where, role), metric, names.metrics, "metric")
    keys = [variant.key for variant in experiment.variants]
    for v_index, variant in enumerate(experiment.variants):
        if variant.key in keys[:v_index]:
            path = (*where, "variants", v_index, "key")
            yield source.problem(path, dotted(path), f'variant "{variant.key}" is defined twice')
        for c_index, change in enumerate(variant.changes):
            yield from _change_problems(
                source, (*where, "variants", v_index, "changes", c_index), change, names
            )


def _targeting_problems(
    source: _Source, where: KeyPath, rule: Experiment | Personalization, names: _Names
) -> Iterator[Problem]:
    yield from _references(source, (*where, "audience"), rule.audience, names.audiences, "audience")
    for tag in rule.pages:
        yield from _references(source, (*where, "pages"), tag, names.tags, "page tag")


def _duplicates(sources: list[_Source]) -> Iterator[Problem]:
    seen: dict[tuple[str, str], Path] = {}
    settings_in: Path | None = None
    for source in sources:
        if source.rules.settings is not None:
            if settings_in is not None:
                yield source.problem(
                    ("settings",),
                    "settings",
                    f"also defined in {settings_in}",
                    "keep one [settings] table in the rules directory",
                )
            settings_in = source.path
        for kind in (
            "audiences",
            "metrics",
            "experiments",
            "personalizations",
            "automations",
            "territories",
            "reps",
        ):
            for index, item in enumerate(getattr(source.rules, kind)):
                first = seen.get((kind, item.key))
                if first is not None:
                    yield source.problem(
                        (kind, index, "key"),
                        f"{kind}[{index}].key",
                        f'"{item.key}" is already defined in {first}',
                        "keys are unique across the rules directory",
                    )
                seen.setdefault((kind, item.key), source.path)


def _references(
    source: _Source, where: KeyPath, name: str, known: set[str], what: str
) -> Iterator[Problem]:
    if not name or name in known:
        return
    close = difflib.get_close_matches(name, known, n=1)
    if close:
        hint = f'did you mean "{close[0]}"?'
    else:
        hint = f"known: {', '.join(sorted(known))}" if known else f"define the {what} first"
    yield source.problem(where, dotted(where), f'unknown {what} "{name}"', hint)


def _change_problems(
    source: _Source, where: KeyPath, change: Change, names: _Names
) -> Iterator[Problem]:
    field_name = dotted(where)
    if change.selector and (problem := selector_problem(change.selector)):
        yield source.problem(
            (*where, "selector"),
            f"{field_name}.selector",
            f'the rewriter cannot run "{change.selector}": {problem}',
            "use tags, #ids, .classes, [attributes], descendant and child (>)",
        )
    if change.action in HTML_ACTIONS and (problem := markup_problem(change.value)):
        yield source.problem(
            (*where, "value"),
            f"{field_name}.value",
            f"unbalanced HTML: {problem}",
            "close every element you open",
        )
    if unwritable := first_not_xml_text(change.value):
        yield source.problem(
            (*where, "value"),
            f"{field_name}.value",
            f"U+{ord(unwritable):04X} is a character an XHTML page cannot hold and an HTML "
            "parser reads as an error (a control, a lone surrogate or a noncharacter)",
            "remove it; pasted text often carries one (a vertical tab, a form feed)",
        )
    if problem := token_problem(change.value):
        yield source.problem((*where, "value"), f"{field_name}.value", problem)
    else:
        yield from _token_placement_problems(source, where, change)
    if change.action == "redirect" and (
        problem := redirect_problem(change.value, names.redirect_hosts)
    ):
        yield source.problem(
            (*where, "value"),
            f"{field_name}.value",
            problem,
            'redirect to a path of this site ("/pricing-b"), or list the host in '
            "[settings] redirect_hosts",
        )


def _token_placement_problems(source: _Source, where: KeyPath, change: Change) -> Iterator[Problem]:
    """A token where no encoding keeps a visitor's value inert (docs/rules.md, "Tokens"): by
    what the value holds, or by the element the selector names (a <script>'s content)."""
    try:
        token_contexts(change.action, change.attribute, change.value)
        check_target(change.action, change.selector, change.value)
    except UnsafePlacement as unsafe:
        yield source.problem(
            (*where, "value"), f"{dotted(where)}.value", unsafe.message, unsafe.hint
        )


def _exclusion_overlaps(sources: list[_Source]) -> Iterator[Problem]:
    claimed: dict[str, list[tuple[float, float, str]]] = {}
    for source in sources:
        for index, experiment in enumerate(source.rules.experiments):
            if not experiment.exclusion_group:
                continue
            low, high = experiment.exclusion_range or (0.0, 100.0)  # no range: the whole group
            for other_low, other_high, other in claimed.get(experiment.exclusion_group, []):
                if low < other_high and other_low < high:
                    path = ("experiments", index, "exclusion_range")
                    yield source.problem(
                        path,
                        dotted(path),
                        f'overlaps {other}\'s range in group "{experiment.exclusion_group}"',
                        "give each experiment of the group its own exclusion_range",
                    )
            claimed.setdefault(experiment.exclusion_group, []).append((low, high, experiment.key))


def _hash_clashes(sources: list[_Source]) -> Iterator[Problem]:
    """Seeds and exclusion groups whose hashed text is another decision's (rules/assignment.py):
    the two would be one draw, so an experiment's arms would follow who is held out, or in a
    group's range, and get unequal, correlated shares of visitors. docs/assignment.md lists
    the reserved forms."""
    for source in sources:
        for index, experiment in enumerate(source.rules.experiments):
            seed = experiment.seed or experiment.key
            if (clash := seed_clash(seed)) is not None:
                name = "seed" if experiment.seed else "key"
                path = ("experiments", index, name)
                yield source.problem(
                    path,
                    dotted(path),
                    f'"{seed}" is the hashed text of {clash}: the variants would be drawn from '
                    "its hash, unequal and tied to it",
                    _RESERVED_SEED_HINT[name],
                )
            if (clash := group_clash(experiment.exclusion_group)) is not None:
                path = ("experiments", index, "exclusion_group")
                yield source.problem(
                    path,
                    dotted(path),
                    f'group "{experiment.exclusion_group}" would hash as {clash}',
                    "name the group otherwise (docs/assignment.md, reserved texts)",
                )


_RESERVED_SEED_HINT = {
    "seed": "choose another seed: not holdout, group.*, *.traffic or *.holdout "
    "(docs/assignment.md, reserved texts)",
    "key": 'choose another key, or set seed to another text (not "holdout")',
}


# --- experiments and personalizations changing the same element ----------------------------

_LIVE_OR_TO_BE = frozenset({"draft", "running", "paused"})
REDIRECT_ELEMENT = "(redirect)"  # a split-URL redirect: one per page, whoever sends it


def shared_elements(experiment: Experiment, personalization: Personalization) -> frozenset[str]:
    """The elements (selectors, whitespace aside; or the page's redirect) an experiment, in any
    variant, and a personalization both change, on pages both may run on. A visitor who gets
    both keeps the experiment's change (rules/decisions.py)."""
    elsewhere = not set(experiment.pages) & set(personalization.pages)
    if experiment.pages and personalization.pages and elsewhere:
        return frozenset()
    tested = frozenset().union(*(_elements(variant.changes) for variant in experiment.variants))
    return tested & _elements(personalization.changes)


def _elements(changes: list[Change]) -> frozenset[str]:
    """What changes touch; styles add to a page and never contend."""
    return frozenset(
        REDIRECT_ELEMENT if change.action == "redirect" else " ".join(change.selector.split())
        for change in changes
        if change.action != "inject_style"
    )


def _contested_elements(sources: list[_Source]) -> Iterator[Problem]:
    """A warning per personalization that changes an element an experiment changes, while
    both may run: where both apply, the experiment's change wins and the personalization is
    suppressed for the experiment's visitors."""
    experiments = [
        experiment
        for source in sources
        for experiment in source.rules.experiments
        if experiment.status in _LIVE_OR_TO_BE
    ]
    for source in sources:
        for index, item in enumerate(source.rules.personalizations):
            if item.status not in _LIVE_OR_TO_BE:
                continue
            for experiment in experiments:
                if shared := shared_elements(experiment, item):
                    path = ("personalizations", index, "changes")
                    yield source.problem(
                        path,
                        dotted(path),
                        f"changes {', '.join(sorted(shared))}, which experiment "
                        f'"{experiment.key}" tests on the same pages: its visitors keep the '
                        "experiment's version and do not get this personalization",
                        "give them different pages or audiences, or pause one of them; "
                        "refract_personalizations_suppressed_total counts the suppressions",
                    )


def _assemble(sources: list[_Source], version: str, warnings: tuple[Problem, ...] = ()) -> RuleSet:
    settings = next((s.rules.settings for s in sources if s.rules.settings), Settings())
    return RuleSet(
        version=version,
        warnings=warnings,
        settings=settings,
        pages=tuple(page for s in sources for page in s.rules.pages),
        audiences={a.key: a for s in sources for a in s.rules.audiences},
        metrics={m.key: m for s in sources for m in s.rules.metrics},
        experiments={e.key: e for s in sources for e in s.rules.experiments},
        personalizations={p.key: p for s in sources for p in s.rules.personalizations},
        automations={a.key: a for s in sources for a in s.rules.automations},
        territories={t.key: t for s in sources for t in s.rules.territories},
        reps={r.key: r for s in sources for r in s.rules.reps},
        battlecards=tuple(placed.card for s in sources for placed in s.cards),
    )


# --- territories.toml: reps that exist, one rep per CRM owner ------------------------------


def _territory_problems(sources: list[_Source]) -> Iterator[Problem]:
    """Territories name defined reps; no two reps claim one CRM owner id (an account's owner
    would route to either); no domain is named by two territories (the first would take it
    silently)."""
    reps = {rep.key for source in sources for rep in source.rules.reps}
    owners: dict[str, str] = {}
    named: dict[str, str] = {}
    for source in sources:
        for index, rep in enumerate(source.rules.reps):
            first = owners.setdefault(rep.owner_id, rep.key) if rep.owner_id else rep.key
            if first != rep.key:
                path = ("reps", index, "owner_id")
                yield source.problem(
                    path, dotted(path), f'rep "{first}" has owner id "{rep.owner_id}" too'
                )
        for index, territory in enumerate(source.rules.territories):
            for r_index, rep_key in enumerate(territory.reps):
                where = ("territories", index, "reps", r_index)
                yield from _references(source, where, rep_key, reps, "rep")
            for domain in territory.accounts:
                claimed = named.setdefault(domain, territory.key)
                if claimed != territory.key:
                    path = ("territories", index, "accounts")
                    yield source.problem(
                        path,
                        dotted(path),
                        f'{domain} is already a named account of territory "{claimed}"',
                        "name an account in one territory",
                    )


# --- automations.toml: page tags that exist ------------------------------------------------


def _automation_problems(sources: list[_Source], names: _Names) -> Iterator[Problem]:
    """A page_tag automation fires on tags the pages define (destinations are config.toml's:
    ``automations.destination_problems``, run by ``refract check``)."""
    for source in sources:
        for index, automation in enumerate(source.rules.automations):
            for tag in automation.tags:
                where = ("automations", index, "tags")
                yield from _references(source, where, tag, names.tags, "page tag")


# --- battlecards/*.toml: competitors the site watches --------------------------------------


def _battlecard_problems(sources: list[_Source], settings: Settings) -> Iterator[Problem]:
    """A card names one of ``[settings] competitors`` (a card for a competitor no research is
    counted for would never meet an account researching it)."""
    for source in sources:
        for placed in source.cards:
            unknown = battlecards.unknown_competitor(placed.card, settings.competitors)
            if unknown is not None:
                where = (*placed.where, "competitor")
                yield source.problem(where, dotted(where), *unknown)
