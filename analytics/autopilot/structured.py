"""What a page says about itself in schema.org terms (JSON-LD and microdata, read by extruct):
the offers it prices (Offer, AggregateOffer), the ratings it shows (AggregateRating) and the
names of its products and organisation. Pricing and social proof are found from these when the
markup alone does not tell, and the names join the page's facts.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import extruct

log = logging.getLogger(__name__)

_MAX_NODES = 2_000  # schema.org objects walked per page
_OFFERS = frozenset({"Offer", "AggregateOffer"})
_NAMED = frozenset(
    {
        "Organization",
        "Corporation",
        "Product",
        "SoftwareApplication",
        "Brand",
        "Service",
        "WebApplication",
    }
)


@dataclass(frozen=True, slots=True)
class Offer:
    name: str
    price: str
    currency: str


@dataclass(frozen=True, slots=True)
class Rating:
    value: str
    best: str
    count: str
    of: str


@dataclass(slots=True)
class Structured:
    offers: list[Offer] = field(default_factory=list)
    ratings: list[Rating] = field(default_factory=list)
    names: list[str] = field(default_factory=list)


def _text(value: object) -> str:
    if isinstance(value, list):
        value = value[0] if value else ""
    if isinstance(value, dict):
        value = value.get("name", "")
    return str(value).strip() if isinstance(value, str | int | float) else ""


def _types(item: dict[str, object]) -> set[str]:
    kinds = item.get("@type", [])
    kinds = kinds if isinstance(kinds, list) else [kinds]
    return {str(kind).rsplit("/", 1)[-1] for kind in kinds}


def read(html: str) -> Structured:
    """The page's offers, ratings and names; nothing when its structured data is unreadable."""
    found = Structured()
    if "application/ld+json" not in html and "itemscope" not in html:
        return found  # most pages: spare the second parse
    try:
        data = extruct.extract(
            html, syntaxes=["json-ld", "microdata"], uniform=True, errors="ignore"
        )
    except Exception as error:  # extruct and its parsers raise what their inputs make them
        log.info("structured data unreadable: %s", error)
        return found
    stack: list[tuple[object, str]] = [(item, "") for items in data.values() for item in items]
    walked = 0
    while stack and walked < _MAX_NODES:
        item, parent_name = stack.pop()
        walked += 1
        if isinstance(item, list):
            stack += [(each, parent_name) for each in item]
            continue
        if not isinstance(item, dict):
            continue
        kinds, name = _types(item), _text(item.get("name"))
        if kinds & _OFFERS:
            price = _text(item.get("price")) or _text(item.get("lowPrice"))
            currency = _text(item.get("priceCurrency"))
            if price:
                found.offers.append(Offer(name or parent_name, price, currency))
        if "AggregateRating" in kinds and (value := _text(item.get("ratingValue"))):
            count = _text(item.get("reviewCount")) or _text(item.get("ratingCount"))
            found.ratings.append(
                Rating(value, _text(item.get("bestRating")) or "5", count, parent_name)
            )
        if kinds & _NAMED and name and name not in found.names:
            found.names.append(name)
        nested = [(k, v) for k, v in item.items() if k[:1] != "@" or k == "@graph"]
        stack += [(value, name or parent_name) for _, value in nested]
    return found
