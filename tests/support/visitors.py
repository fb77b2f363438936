"""Visitors of target accounts, as the worker's tests see them."""

from __future__ import annotations

from pathlib import Path

from refract.rules.events import NetworkFields, PageViewEvent
from tests.support.worker import T0, pageview

ACCOUNTS = Path(__file__).resolve().parents[1] / "data" / "accounts-sample.csv"


SALESFORCE: NetworkFields = {"asn": 14340, "org": "Salesforce.com, Inc.", "kind": "business"}


def visit(visitor: str, at: float, tag: str, account: str) -> PageViewEvent:
    view = pageview(visitor, at, f"/{tag}", new_session=at == T0)
    view.update({"tags": [tag], "account": account, "network": SALESFORCE})
    return view
