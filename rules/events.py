"""Events: the contract between the proxy, which writes them, and the worker, which reads them.

Two shapes live here. ``Batch`` is what the beacon POSTs to ``/_refract/collect`` (schema
``v`` 1, short keys to keep the script small); it is validated strictly, with unknown fields
dropped. ``Event`` is what goes into a site's Redis stream, msgpack-encoded: every event has
an id, a type, the site, visitor and session (empty when the visitor is not tracked), a time
in seconds since the epoch and the schema version; the rest depends on the type.

A site's stream is split in shards by visitor (``rf:{site}:events:{shard}``); keys carry the
site in a hash tag (``rf:{site}:...``), so a site's keys share a Redis Cluster slot and the
worker's multi-key scripts run there.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable, Mapping
from typing import Annotated, Any, Literal

import mmh3
import msgpack
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from rules.networks import Network, NetworkKind

SCHEMA_VERSION = 1
EVENT_FIELD = b"e"  # the one field of a stream entry: the msgpack-encoded event
CLOCK_SKEW_S = 24 * 3600
_SHARD_SEED = 0x5EED  # a client clock further off than this is not believed

Event = dict[str, Any]

# Networks whose visitors' addresses a page view may carry (``ip``) for the worker to match an
# organisation by: an organisation's own. Never an ISP's or a mobile carrier's (a residential
# address is personal data, and its PTR name is the ISP's), a hosting company's (VPNs, proxies,
# bots: the name is the host's) or an unknown network (it may be any of those).
MATCHABLE_NETWORKS: frozenset[NetworkKind] = frozenset({"business", "education", "government"})
# Fields that live in the streams only (events.retention_days): the worker uses them and drops
# them; never in a profile, never in the archive.
STREAM_ONLY_FIELDS = frozenset({"ip"})

SERVER_TYPES = frozenset({"pageview", "exposure", "redirect"})
BEACON_TYPES = frozenset({"engage", "scroll", "click", "outbound", "download", "form", "track"})
TYPES = SERVER_TYPES | BEACON_TYPES


def stream_key(site: str, shard: int) -> str:
    return f"rf:{{{site}}}:events:{shard}"


def shard_of(visitor: str, shards: int) -> int:
    """A visitor's events all go to one shard of the site's stream, so that the one worker
    holding that shard sees them in order (anonymous events share shard 0)."""
    return mmh3.hash(visitor, _SHARD_SEED, signed=False) % shards if visitor else 0


def dead_letter_key(site: str) -> str:
    return f"rf:{{{site}}}:dead"


def new_id() -> str:
    return uuid.uuid4().hex


class InvalidEvent(ValueError):
    """An event that cannot be accepted; the message is the reason given back."""


# --- the beacon's batch (wire schema v1) -----------------------------------------------

Text = Annotated[str, StringConstraints(max_length=256)]
Url = Annotated[str, StringConstraints(max_length=2048)]
Name = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.:-]{1,64}$")]
PropValue = Annotated[str, StringConstraints(max_length=256)] | float | bool


class _BeaconEvent(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)
    ts: int = Field(default=0, description="client time, milliseconds since the epoch")


class Engage(_BeaconEvent):
    t: Literal["engage"]
    ms: int = Field(ge=0, le=86_400_000, description="visible, engaged milliseconds")


class Scroll(_BeaconEvent):
    t: Literal["scroll"]
    d: Literal[25, 50, 75, 100]


class Click(_BeaconEvent):
    t: Literal["click"]
    s: Text = Field(description="a short selector path of the clicked element")
    h: Url = ""
    m: list[Name] = Field(default=[], max_length=16, description="click metrics it matched")


class Outbound(_BeaconEvent):
    t: Literal["outbound"]
    h: Url


class Download(_BeaconEvent):
    t: Literal["download"]
    h: Url
    x: Annotated[str, StringConstraints(pattern=r"^[a-z0-9]{1,8}$")]


class Form(_BeaconEvent):
    t: Literal["form"]
    id: Text = ""
    a: Url = ""
    f: list[Annotated[str, StringConstraints(max_length=64)]] = Field(default=[], max_length=64)
    m: list[Name] = Field(default=[], max_length=16, description="form metrics it matched")
    dom: Annotated[str, StringConstraints(pattern=r"^([a-z0-9-]{1,63}\.)+[a-z]{2,63}$|^$")] = ""


class Track(_BeaconEvent):
    t: Literal["track"]
    n: Name
    p: dict[Name, PropValue] = Field(default={}, max_length=20)


AnyBeaconEvent = Engage | Scroll | Click | Outbound | Download | Form | Track
BeaconEvent = Annotated[AnyBeaconEvent, Field(discriminator="t")]


class Batch(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)
    v: Literal[1]
    u: Url = Field(description="the page's path and query")
    e: list[BeaconEvent] = Field(min_length=1, max_length=50)


def parse_batch(body: bytes) -> Batch:
    """The beacon's batch, or InvalidEvent naming the first problem."""
    try:
        return Batch.model_validate_json(body)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "body"
        raise InvalidEvent(f"{where}: {first['msg']}") from None


def from_beacon(
    batch: Batch,
    site: str,
    visitor: str,
    session: str,
    now: float,
    email_domains: bool,
) -> list[Event]:
    """Stream events for a validated batch; identity comes from cookies, never the body."""
    path = _path_only(batch.u)
    events = []
    for item in batch.e:
        fields = _beacon_fields(item, email_domains)
        event = _event(item.t, site, visitor, session, _clamp(item.ts, now), url=path)
        event.update(fields)
        events.append(event)
    return events


def _beacon_fields(item: AnyBeaconEvent, email: bool) -> dict[str, Any]:
    match item:
        case Engage():
            return {"ms": item.ms}
        case Scroll():
            return {"depth": item.d}
        case Click():
            return {"selector": item.s, "href": _path_only(item.h), "metrics": item.m}
        case Outbound():
            return {"href": _path_only(item.h)}
        case Download():
            return {"href": _path_only(item.h), "ext": item.x}
        case Form():
            fields: dict[str, Any] = {
                "form": item.id,
                "action": _path_only(item.a),
                "fields": item.f,
                "metrics": item.m,
            }
            if email and item.dom:
                fields["email_domain"] = item.dom
            return fields
        case Track():
            return {"name": item.n, "props": dict(item.p)}


def _clamp(client_ms: int, now: float) -> float:
    """The client's time when it is believable (and not in the future), else the server's."""
    client = client_ms / 1000
    if abs(client - now) > CLOCK_SKEW_S:
        return now
    return min(client, now)


def _path_only(url: str) -> str:
    """A URL without its query string or fragment, where personal data tends to hide."""
    return url.split("#", 1)[0].split("?", 1)[0]


# --- events the proxy records itself ------------------------------------------------------


def _event(kind: str, site: str, visitor: str, session: str, at: float, **fields: Any) -> Event:
    return {
        "id": new_id(),
        "type": kind,
        "site": site,
        "visitor": visitor,
        "session": session,
        "time": at,
        "schema": SCHEMA_VERSION,
        **fields,
    }


def pageview(
    site: str,
    visitor: str,
    session: str,
    *,
    url: str,
    tags: Iterable[str],
    referrer: str,
    utm: Mapping[str, str],
    status: int,
    origin_ms: float,
    device: str,
    new_session: bool,
    network: Network | None = None,
    account: str = "",
    ip: str = "",
) -> Event:
    """A page served; ``network`` is who owns the visitor's address, ``account`` the domain of
    the target account that address belongs to, and ``ip`` the address itself, only when the
    worker may match it (``MATCHABLE_NETWORKS``, docs/events.md) and for the stream alone."""
    return _event(
        "pageview",
        site,
        visitor,
        session,
        time.time(),
        url=url,
        tags=sorted(tags),
        referrer=_path_only(referrer),
        utm=dict(utm),
        status=status,
        origin_ms=round(origin_ms, 2),
        device=device,
        new_session=new_session,
        **({"network": _network_fields(network)} if network is not None else {}),
        **({"account": account} if account else {}),
        **({"ip": ip} if ip else {}),
    )


def _network_fields(network: Network) -> dict[str, Any]:
    return {"asn": network.asn, "org": network.org, "kind": network.kind}


def exposure(
    site: str,
    visitor: str,
    session: str,
    *,
    experiment: str,
    variant: str,
    rules_version: str,
    url: str,
) -> Event:
    return _event(
        "exposure",
        site,
        visitor,
        session,
        time.time(),
        experiment=experiment,
        variant=variant,
        rules_version=rules_version,
        url=url,
    )


def redirect(
    site: str,
    visitor: str,
    session: str,
    *,
    experiment: str,
    variant: str,
    rules_version: str,
    url: str,
    target: str,
) -> Event:
    """A split-URL test sending the visitor elsewhere (the exposure is recorded too)."""
    event = exposure(
        site,
        visitor,
        session,
        experiment=experiment,
        variant=variant,
        rules_version=rules_version,
        url=url,
    )
    event.update(type="redirect", target=_path_only(target))
    return event


# --- the stream's encoding ----------------------------------------------------------------

_REQUIRED = (("id", str), ("type", str), ("site", str), ("visitor", str), ("session", str))


def encode(event: Event) -> bytes:
    return msgpack.packb(event, use_bin_type=True)  # type: ignore[no-any-return]


def decode(data: bytes) -> Event:
    """An event read from a stream, or InvalidEvent (the worker dead-letters it)."""
    try:
        event = msgpack.unpackb(data, raw=False)
    except (ValueError, msgpack.UnpackException) as error:
        raise InvalidEvent(f"not msgpack: {error}") from None
    if not isinstance(event, dict):
        raise InvalidEvent("not a map")
    for name, kind in _REQUIRED:
        if not isinstance(event.get(name), kind):
            raise InvalidEvent(f"{name}: missing or not a {kind.__name__}")
    if not isinstance(event.get("time"), int | float):
        raise InvalidEvent("time: missing or not a number")
    if event["type"] not in TYPES:
        raise InvalidEvent(f"type: unknown type {event['type']!r}")
    if event.get("schema") != SCHEMA_VERSION:
        raise InvalidEvent(f"schema: version {event.get('schema')!r} is not {SCHEMA_VERSION}")
    return event
