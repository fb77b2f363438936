"""Target accounts: which companies visit, from the customer's CRM export.

Sales wants to know which of *their* accounts are on the site, so the account list comes from
the CRM as a CSV file (``rules/account_csv.py``). A visitor is matched to an account by

* the IP address (``AccountIndex.by_ip``): the proxy's hot path, a bisect over disjoint
  ranges, about a microsecond;
* a domain (``AccountIndex.by_domain``): a subdomain matches its company, ``eu.acme.com`` is
  ``acme.com``;
* the domain of an e-mail address a visitor typed into a form
  (``AccountIndex.by_email_domain``): free-mail providers never match, a ``gmail.com`` address
  says nothing about the employer;
* the reverse DNS of the IP (analytics/reverse_dns.py): slow and unreliable, so only in the
  worker, with a timeout and a cache.

The parts, each in ``rules`` because proxy and worker both use them:

* this module: ``Account``, one company of the list;
* ``domains.py``: domain names (a company's domain from a CRM's website field, registrable
  domains by the Public Suffix List, free-mail providers); ``ip_ranges.py``: its IP ranges;
* ``account_csv.py``: the CRM's CSV file, every problem reported as ``file:line: column``;
* ``account_index.py``: lookups by IP range, domain and e-mail domain;
* ``account_store.py``: the list in Redis, replaced atomically under a version that proxies
  and workers follow.
"""

from __future__ import annotations

from dataclasses import dataclass

from refract.rules.domains import normalise_domain
from refract.rules.ip_ranges import normalise_ip_range
from refract.rules.problems import FieldError


@dataclass(frozen=True)
class Account:
    """One company of the CRM's account list; values are normalised on construction.

    Normalising here, not only in the CSV reader, means accounts built in code or read back
    from Redis compare and index exactly like imported ones.
    """

    domain: str
    name: str
    industry: str = ""
    employees: int | None = None
    annual_revenue: float | None = None
    location: str = ""
    tech_stack: tuple[str, ...] = ()
    ip_ranges: tuple[str, ...] = ()
    owner: str = ""
    territory: str = ""
    target: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "domain", normalise_domain(self.domain))
        object.__setattr__(self, "tech_stack", tuple(self.tech_stack))
        ranges = tuple(normalise_ip_range(text) for text in self.ip_ranges)
        object.__setattr__(self, "ip_ranges", ranges)
        if not self.name.strip():
            raise FieldError("the name is empty", "the company's name as sales knows it")
