"""Write the demo's synthetic CRM: extra accounts and a year of won and lost deals.

    python examples/generate_demo_crm.py   # rewrites examples/demo-outcomes.csv and the
                                           # generated rows of examples/demo-accounts.csv

Invented companies (``*.example``) with a made-up truth: bigger companies buy bigger
contracts and take longer to sign, and target accounts close more often. It exists so that
``refract train --outcomes examples/demo-outcomes.csv`` has something to learn on a fresh
demo; its figures say nothing about any real business.
"""

from __future__ import annotations

import csv
import math
import random
from datetime import date, timedelta
from pathlib import Path

HERE = Path(__file__).parent
HAND_WRITTEN = 3  # the first accounts of demo-accounts.csv are written by hand
INDUSTRIES = ("Software", "Manufacturing", "Logistics", "Financial Services", "Healthcare")
WORDS = ("North", "Blue", "Iron", "Bright", "Silver", "Cedar", "Atlas", "Nova", "Delta", "Pine")
KINDS = ("Systems", "Labs", "Works", "Group", "Dynamics", "Analytics")


def demo_range(index: int) -> str:
    """An account's addresses in the demo: a /24 of the shared address space 100.64.0.0/10
    (RFC 6598, never a public network), for `refract demo --traffic` to visit from through
    X-Forwarded-For on loopback (admin/demo_traffic.py)."""
    return f"100.64.{index}.0/24"


def main(seed: int = 7) -> None:
    rng = random.Random(seed)
    accounts_path = HERE / "demo-accounts.csv"
    with accounts_path.open(newline="") as file:
        rows = list(csv.reader(file))
    header, kept = rows[0], rows[1 : 1 + HAND_WRITTEN]
    generated = []
    for index in range(60):
        name = f"{WORDS[index % 10]} {KINDS[index // 10]}"
        domain = name.lower().replace(" ", "-") + ".example"
        employees = int(math.exp(rng.uniform(math.log(8), math.log(20000))))
        revenue = employees * rng.uniform(80_000, 250_000)
        target = "yes" if rng.random() < 0.3 else "no"
        industry = rng.choice(INDUSTRIES)
        generated.append(
            [
                domain,
                name,
                industry,
                str(employees),
                f"{revenue:.0f}",
                "",
                "",
                demo_range(index),
                "",
                "",
                target,
            ]
        )
    with accounts_path.open("w", newline="") as file:
        csv.writer(file, lineterminator="\n").writerows([header, *kept, *generated])

    deals = []
    start = date(2025, 11, 1)
    for row in kept + generated:
        domain, employees, target = row[0], int(row[3]), row[10] == "yes"
        for _ in range(rng.choice((1, 1, 2))):
            odds = -1.6 + 0.25 * math.log(employees) + (1.2 if target else 0.0)
            won = rng.random() < 1 / (1 + math.exp(-odds))
            size = 1500 * employees**0.55 * math.exp(rng.gauss(0, 0.35))
            days = 12 * employees**0.3 * math.exp(rng.gauss(0, 0.3))
            created = start + timedelta(days=rng.randrange(300))
            closed = created + timedelta(days=round(days))
            amount = f"{round(size, -2):.0f}" if won else ""
            deals.append([domain, "won" if won else "lost", amount, str(created), str(closed)])
    with (HERE / "demo-outcomes.csv").open("w", newline="") as file:
        writer = csv.writer(file, lineterminator="\n")
        writer.writerow(["account_domain", "outcome", "amount", "created", "closed"])
        writer.writerows(deals)


if __name__ == "__main__":
    main()
