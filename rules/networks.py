"""Who owns the network a visitor comes from, without keeping the visitor's address.

The proxy asks, for every request, which organisation announces the visitor's IP address
(autonomous system number and name) and what kind of organisation that is, so rules can
target "visitors from companies" and reports can count them; the address itself is looked
up and dropped, never stored.

`NetworkTable` holds non-overlapping, sorted address ranges in `array` module arrays, one
index per range into a table of de-duplicated organisations whose `Network` objects are
built once, so a lookup allocates nothing but the parsed integer:

    IPv4:  start[i], end[i] (uint32), org[i] (uint32)
    IPv6:  start_hi[i], start_lo[i], end_hi[i], end_lo[i] (the two uint64 halves), org[i]

A lookup is `bisect` on the starts and one comparison with the range's end. Plain `array`
arrays were chosen over numpy (calling `searchsorted` with a Python scalar costs ~40 us) and
over lists of Python ints (as fast, but ~10x the memory). IPv6 keeps two 64-bit halves
instead of Python ints: bisect on the high half, then, only when several ranges start in the
same /64, on the low half within them.

Tables are imported from ip-location-db CSV or MaxMind/DB-IP `.mmdb` files by
`rules.network_import` and kept in a compact `.npz` file (`save`/`load`); the organisation
kinds are stored too, and recomputed on load when the classifier below has changed.
"""

from __future__ import annotations

import bisect
import hashlib
import os
import re
import socket
import tempfile
from array import array
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, cast

import numpy as np
import numpy.typing as npt

NetworkKind = Literal["business", "isp", "hosting", "education", "government", "unknown"]
KINDS: tuple[NetworkKind, ...] = (
    "business",
    "isp",
    "hosting",
    "education",
    "government",
    "unknown",
)

FILE_FORMAT = "refract-networks"
FILE_VERSION = 1

# --------------------------------------------------------------------------------------
# Organisation kind: a transparent classifier from the AS number and organisation name.
#
# The order of checks is the policy, first match wins:
#   1. empty name                     -> "unknown"
#   2. PINNED_ASNS                    -> the pinned kind (well-known networks whose name
#                                        says little, or says the wrong thing)
#   3. KIND_PATTERNS, in order:
#        business overrides (credit unions, banks: "Federal Credit Union" is no government)
#        education (a university's "Telecom Center" is still a university)
#        government (a "Ministry of Telecommunications" is still a ministry)
#        hosting (hosting firms often call themselves "Telecom"; the reverse is rare)
#        isp (ISPs, mobile carriers, cable and fibre operators, transit carriers)
#   4. anything else                  -> "business"
# Patterns are case-insensitive regular expressions searched in the name; `\b` marks word
# boundaries so "Univ" does not match inside another word.
# --------------------------------------------------------------------------------------

PINNED_ASNS: dict[int, NetworkKind] = {
    # Amazon: AWS (EC2, CloudFront) and Amazon's own services.
    16509: "hosting",
    14618: "hosting",
    # Google's AS15169 also carries Google's corporate network, but what reaches a website
    # from it is overwhelmingly Googlebot, Google's proxies (Gmail images, Translate,
    # Chrome data saver) and Cloud egress, so it counts as hosting: a Google employee
    # browsing from the office is classified "hosting" and that is accepted.
    15169: "hosting",
    396982: "hosting",  # Google Cloud
    19527: "hosting",  # Google (Cloud load balancers, Google Fiber backbone)
    # Microsoft's AS8075 carries Azure as well as Microsoft's corporate traffic: same
    # reasoning as Google.
    8075: "hosting",
    8068: "hosting",  # Microsoft (Azure/Bing)
    31898: "hosting",  # Oracle Cloud Infrastructure
    36351: "hosting",  # IBM Cloud (SoftLayer)
    13335: "hosting",  # Cloudflare (WARP, Workers, iCloud Private Relay egress)
    209242: "hosting",  # Cloudflare (London egress)
    20940: "hosting",  # Akamai International
    16625: "hosting",  # Akamai Technologies
    63949: "hosting",  # Akamai Connected Cloud (Linode)
    54113: "hosting",  # Fastly
    14061: "hosting",  # DigitalOcean
    16276: "hosting",  # OVH
    24940: "hosting",  # Hetzner Online
    20473: "hosting",  # The Constant Company (Vultr)
    # Big ISPs whose names do not say so.
    7922: "isp",  # Comcast Cable
    7018: "isp",  # AT&T
    701: "isp",  # Verizon Business
    6939: "isp",  # Hurricane Electric (transit and tunnel broker)
    3320: "isp",  # Deutsche Telekom
    3215: "isp",  # Orange
    2856: "isp",  # BT
    5089: "isp",  # Virgin Media
    20115: "isp",  # Charter Communications (Spectrum)
    22773: "isp",  # Cox Communications
    209: "isp",  # CenturyLink / Lumen
    3356: "isp",  # Lumen (Level 3)
}

KIND_PATTERNS: tuple[tuple[NetworkKind, tuple[str, ...]], ...] = (
    (
        "business",
        (
            r"\bcredit union\b",
            r"\bbank\b",
            r"\bbanco\b",
        ),
    ),
    (
        "education",
        (
            r"\buniv(ersi|\.|\b)",  # University, Universidad, Universität, Univ. (not Univar)
            r"\bcollege\b",
            r"\bschools?\b",
            r"\bschool district\b",
            r"\binstitute of technology\b",
            r"\binstitut(e|o)? (of|de|für) (science|tecnolog|technolog)",
            r"\bpolytechni",
            r"\bhochschule\b",
            r"\bschule\b",
            r"\bescuela\b",
            r"\b[ée]cole\b",
            r"\bacademy of sciences?\b",
            r"\binstituto federal\b",
            r"\beducation(al)?\b",
            r"\bresearch and education network\b",
            r"\.edu\b",
            r"\bnren\b",
        ),
    ),
    (
        "government",
        (
            r"\bgovernment\b",
            r"\bgov(t|\.)",
            r"\.gov\b",
            r"\bministry\b",
            r"\bminist[eé]r",  # Ministerio, Ministère, Ministerstvo
            r"\bdepartment of\b",
            r"\bdod\b",  # US Department of Defense networks
            r"\bfederal\b",
            r"\bbundes",  # Bundesamt, Bundesministerium, Bundesverwaltung
            r"\bgobierno\b",
            r"\bgoverno\b",
            r"\bgouvernement\b",
            r"\bregierung\b",
            r"\bcity of\b",
            r"\bcounty of\b",
            r"\bstate of\b",
            r"\bmunicipal",
            r"\bparliament\b",
            r"\bpolice\b",
            r"\bpolicia\b",
            r"\bprefecture\b",
        ),
    ),
    (
        "hosting",
        (
            r"\bamazon\b",
            r"\bgoogle\b",  # all Google ASNs, for the reason given at AS15169
            r"\bmicrosoft\b",  # likewise, see AS8075
            r"\baws\b",
            r"\bgoogle cloud\b",
            r"\bazure\b",
            r"\bdigitalocean\b",
            r"\bovh\b",
            r"\bhetzner\b",
            r"\blinode\b",
            r"\bcloudflare\b",
            r"\bakamai\b",
            r"\bfastly\b",
            r"\bvultr\b",
            r"\bleaseweb\b",
            r"\bcontabo\b",
            r"\bscaleway\b",
            r"\brackspace\b",
            r"\bsoftlayer\b",
            r"\balibaba\b",
            r"\btencent\b",
            r"\bhuawei cloud\b",
            r"\boracle cloud\b",
            r"\bionos\b",
            r"\bgodaddy\b",
            r"\bm247\b",
            r"\bzenlayer\b",
            r"\bg-?core\b",
            r"\bcdn77\b",
            r"\bstackpath\b",
            r"\bcolocrossing\b",
            r"\bselectel\b",
            r"hosting",  # also "Webhosting", "Hostinger"
            r"\bhost(ed|s)?\b",
            r"webhost",
            r"\bdata ?cent(er|re)s?\b",
            r"\bdatacent",
            r"\bservers?\b",
            r"\bcloud\b",
            r"\bcolo(cation)?\b",
            r"\bvps\b",
            r"\bdedicated\b",
            r"\bcdn\b",
            r"\bcontent delivery\b",
        ),
    ),
    (
        "isp",
        (
            r"telecom",  # Telecom, Telecommunications, Telecomunicações
            r"telekom",
            r"telecomunica",
            r"\btelco\b",
            r"\btelefonica\b",
            r"\btelefónica\b",
            r"broadband",
            r"\bmobile\b",
            r"\bcable",
            r"\bwireless\b",
            r"\bwi-?fi\b",
            r"\bcellular\b",
            r"\b(a|v)?dsl\b",
            r"\bfib(er|re)",
            r"\bftth\b",
            r"\bisp\b",
            r"\binternet service",
            r"\binternet\b",
            r"\bprovedor\b",
            r"\bcommunications?\b",
            r"\bcomcast\b",
            r"\bvodafone\b",
            r"\bverizon\b",
            r"\bat&t\b",
            r"\bt-mobile\b",
            r"\borange\b",
            r"\btelstra\b",
            r"\bswisscom\b",
            r"\bproximus\b",
            r"\bkpn\b",
            r"\bziggo\b",
            r"\btelia\b",
            r"\btelenor\b",
            r"\btele2\b",
            r"\bliberty global\b",
            r"\bvirgin media\b",
            r"\bcenturylink\b",
            r"\bfrontier\b",
            r"\bwindstream\b",
            r"\bunicom\b",
            r"\bairtel\b",
            r"\bjio\b",
            r"\bclaro\b",
            r"\bmovistar\b",
        ),
    ),
)

_COMPILED_PATTERNS: tuple[tuple[NetworkKind, re.Pattern[str]], ...] = tuple(
    (kind, re.compile("|".join(f"(?:{p})" for p in patterns), re.IGNORECASE))
    for kind, patterns in KIND_PATTERNS
)

# Changes whenever the lists above change, so stored kinds are recomputed on load.
CLASSIFIER_FINGERPRINT = hashlib.sha256(
    repr((sorted(PINNED_ASNS.items()), KIND_PATTERNS)).encode()
).hexdigest()[:16]


def classify(asn: int, org: str) -> NetworkKind:
    """The kind of organisation behind a network, by the policy described above."""
    if not org.strip():
        return "unknown"
    pinned = PINNED_ASNS.get(asn)
    if pinned is not None:
        return pinned
    words = org.replace("_", " ")  # registries' "Vodafone_Iceland": \b needs a non-word
    for kind, pattern in _COMPILED_PATTERNS:
        if pattern.search(words):
            return kind
    return "business"


@dataclass(frozen=True, slots=True)
class Network:
    """The owner of a visitor's network: never the address itself."""

    asn: int
    org: str
    kind: NetworkKind


@dataclass(frozen=True, slots=True)
class TableStats:
    """Sizes of a table, for the import CLI to print."""

    ipv4_ranges: int
    ipv6_ranges: int
    organisations: int
    kinds: dict[str, int]


Range4 = tuple[int, int, int]  # start, end (inclusive), organisation index
Range6 = tuple[int, int, int]  # the same with 128-bit integers

_MASK64 = (1 << 64) - 1
_V4_MAPPED = b"\x00" * 10 + b"\xff\xff"
_INET_PTON = socket.inet_pton
_AF_INET = socket.AF_INET
_AF_INET6 = socket.AF_INET6

if array("I").itemsize != 4 or array("Q").itemsize != 8:  # pragma: no cover
    raise ImportError("rules.networks needs 32-bit array('I') and 64-bit array('Q')")


def _u32(values: Iterable[int]) -> array[int]:
    return array("I", values)


def _u64(values: Iterable[int]) -> array[int]:
    return array("Q", values)


def _from_numpy(values: npt.NDArray[np.generic], typecode: str) -> array[int]:
    """Copy a saved array into an `array` (native byte order) without a Python loop."""
    dtype = np.uint32 if typecode == "I" else np.uint64
    out = array(typecode)
    out.frombytes(np.ascontiguousarray(values, dtype=dtype).tobytes())
    return out


class NetworkError(ValueError):
    """A table file or a set of ranges that cannot be used."""


class NetworkTable:
    """Address ranges to organisations, for lookups in a few microseconds."""

    __slots__ = (
        "_networks",
        "_v4_end",
        "_v4_org",
        "_v4_start",
        "_v6_end_hi",
        "_v6_end_lo",
        "_v6_org",
        "_v6_start_hi",
        "_v6_start_lo",
    )

    def __init__(
        self,
        networks: Sequence[Network],
        v4: tuple[array[int], array[int], array[int]],
        v6: tuple[array[int], array[int], array[int], array[int], array[int]],
    ) -> None:
        """Takes ready arrays; use `from_ranges`, `load` or `empty` to make one."""
        self._networks = tuple(networks)
        self._v4_start, self._v4_end, self._v4_org = v4
        (
            self._v6_start_hi,
            self._v6_start_lo,
            self._v6_end_hi,
            self._v6_end_lo,
            self._v6_org,
        ) = v6

    @classmethod
    def empty(cls) -> NetworkTable:
        """A table that knows no network: every lookup answers None."""
        return cls.from_ranges([], [], [])

    @classmethod
    def from_ranges(
        cls,
        organisations: Sequence[tuple[int, str]],
        v4: Sequence[Range4],
        v6: Sequence[Range6],
        kinds: Sequence[NetworkKind] | None = None,
    ) -> NetworkTable:
        """Build from (asn, org) pairs and sorted, non-overlapping ranges indexing them.

        The importer resolves overlaps and sorts; this only checks, because a lookup by
        bisection silently answers wrong on unsorted or overlapping ranges.
        """
        _check_ranges(v4, len(organisations), 1 << 32)
        _check_ranges(v6, len(organisations), 1 << 128)
        if kinds is None:
            kinds = [classify(asn, org) for asn, org in organisations]
        networks = [
            Network(asn, org, kind) for (asn, org), kind in zip(organisations, kinds, strict=True)
        ]
        return cls(
            networks,
            (_u32(r[0] for r in v4), _u32(r[1] for r in v4), _u32(r[2] for r in v4)),
            (
                _u64(r[0] >> 64 for r in v6),
                _u64(r[0] & _MASK64 for r in v6),
                _u64(r[1] >> 64 for r in v6),
                _u64(r[1] & _MASK64 for r in v6),
                _u32(r[2] for r in v6),
            ),
        )

    def lookup(self, ip: str) -> Network | None:
        """The network owning `ip` (IPv4, IPv6 or IPv4-mapped IPv6), None if unknown.

        Invalid strings answer None rather than raise: the address comes from a socket or
        a forwarding header and a bad one must not fail the request.
        """
        try:
            if ":" not in ip:
                x = int.from_bytes(_INET_PTON(_AF_INET, ip))
                i = bisect.bisect_right(self._v4_start, x) - 1
                if i >= 0 and x <= self._v4_end[i]:
                    return self._networks[self._v4_org[i]]
                return None
            packed = _INET_PTON(_AF_INET6, ip)
        except (OSError, ValueError, TypeError):
            return None
        if packed[:12] == _V4_MAPPED:  # how a dual-stack socket reports an IPv4 client
            return self._lookup_v4(int.from_bytes(packed[12:]))
        return self._lookup_v6(int.from_bytes(packed[:8]), int.from_bytes(packed[8:]))

    def _lookup_v4(self, x: int) -> Network | None:
        i = bisect.bisect_right(self._v4_start, x) - 1
        if i >= 0 and x <= self._v4_end[i]:
            return self._networks[self._v4_org[i]]
        return None

    def _lookup_v6(self, hi: int, lo: int) -> Network | None:
        """Bisect on the high halves; ranges starting in the same /64 are ordered by low."""
        starts_hi = self._v6_start_hi
        i = bisect.bisect_right(starts_hi, hi)
        if i and starts_hi[i - 1] == hi:
            first = bisect.bisect_left(starts_hi, hi, 0, i)
            i = bisect.bisect_right(self._v6_start_lo, lo, first, i)
        i -= 1
        if i < 0:
            return None
        end_hi = self._v6_end_hi[i]
        if hi < end_hi or (hi == end_hi and lo <= self._v6_end_lo[i]):
            return self._networks[self._v6_org[i]]
        return None

    def stats(self) -> TableStats:
        """Counts of ranges, organisations and organisations per kind."""
        kinds = Counter(n.kind for n in self._networks)
        return TableStats(
            ipv4_ranges=len(self._v4_start),
            ipv6_ranges=len(self._v6_start_hi),
            organisations=len(self._networks),
            kinds={kind: kinds.get(kind, 0) for kind in KINDS},
        )

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the table as an uncompressed .npz, atomically (a proxy may be loading it).

        Uncompressed because loading then is a few memory copies; organisation names are
        one NUL-separated UTF-8 blob, so no pickle is needed (or allowed) to read it back.
        """
        path = Path(path)
        names = "\x00".join(n.org for n in self._networks).encode("utf-8")
        arrays: dict[str, npt.NDArray[np.generic]] = {
            "format": np.array(FILE_FORMAT),
            "version": np.array(FILE_VERSION, dtype=np.uint32),
            "classifier": np.array(CLASSIFIER_FINGERPRINT),
            "org_asn": np.array([n.asn for n in self._networks], dtype=np.uint32),
            "org_kind": np.array([KINDS.index(n.kind) for n in self._networks], dtype=np.uint8),
            "org_names": np.frombuffer(names, dtype=np.uint8),
            "v4_start": np.frombuffer(self._v4_start, dtype=np.uint32),
            "v4_end": np.frombuffer(self._v4_end, dtype=np.uint32),
            "v4_org": np.frombuffer(self._v4_org, dtype=np.uint32),
            "v6_start_hi": np.frombuffer(self._v6_start_hi, dtype=np.uint64),
            "v6_start_lo": np.frombuffer(self._v6_start_lo, dtype=np.uint64),
            "v6_end_hi": np.frombuffer(self._v6_end_hi, dtype=np.uint64),
            "v6_end_lo": np.frombuffer(self._v6_end_lo, dtype=np.uint64),
            "v6_org": np.frombuffer(self._v6_org, dtype=np.uint32),
        }
        fd, tmp = tempfile.mkstemp(prefix=path.name, suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as out:
                np.savez(out, allow_pickle=False, **arrays)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> NetworkTable:
        """Read a table written by `save`; NetworkError names the file if it is not one."""
        try:
            with np.load(path, allow_pickle=False) as data:
                arrays = {name: data[name] for name in data.files}
        except (OSError, ValueError) as exc:
            raise NetworkError(f"{path}: not a network table file ({exc})") from exc
        try:
            return cls._from_arrays(arrays)
        except (KeyError, ValueError, IndexError) as exc:
            raise NetworkError(
                f"{path}: damaged or incompatible network table ({exc!r}); import it again"
            ) from exc

    @classmethod
    def _from_arrays(cls, a: dict[str, npt.NDArray[np.generic]]) -> NetworkTable:
        if str(a["format"]) != FILE_FORMAT or int(a["version"]) != FILE_VERSION:
            raise ValueError(f"format {a['format']} version {a['version']}")
        asns = cast(list[int], a["org_asn"].tolist())
        names = a["org_names"].tobytes().decode("utf-8").split("\x00") if asns else []
        if len(names) != len(asns):
            raise ValueError("organisation names and numbers differ in count")
        if str(a["classifier"]) == CLASSIFIER_FINGERPRINT:
            kinds = [KINDS[k] for k in cast(list[int], a["org_kind"].tolist())]
        else:  # the lists changed since the import: classify again
            kinds = [classify(asn, org) for asn, org in zip(asns, names, strict=True)]
        networks = [Network(*row) for row in zip(asns, names, kinds, strict=True)]
        table = cls(
            networks,
            (
                _from_numpy(a["v4_start"], "I"),
                _from_numpy(a["v4_end"], "I"),
                _from_numpy(a["v4_org"], "I"),
            ),
            (
                _from_numpy(a["v6_start_hi"], "Q"),
                _from_numpy(a["v6_start_lo"], "Q"),
                _from_numpy(a["v6_end_hi"], "Q"),
                _from_numpy(a["v6_end_lo"], "Q"),
                _from_numpy(a["v6_org"], "I"),
            ),
        )
        table._check_indexes()
        return table

    def _check_indexes(self) -> None:
        """A damaged file must fail on load, not with IndexError on a visitor's lookup."""
        for orgs in (self._v4_org, self._v6_org):
            if orgs and max(orgs) >= len(self._networks):
                raise ValueError("a range points past the organisation table")
        lengths = {len(self._v4_start), len(self._v4_end), len(self._v4_org)}
        lengths6 = {
            len(a)
            for a in (
                self._v6_start_hi,
                self._v6_start_lo,
                self._v6_end_hi,
                self._v6_end_lo,
                self._v6_org,
            )
        }
        if len(lengths) != 1 or len(lengths6) != 1:
            raise ValueError("range arrays differ in length")


def _check_ranges(ranges: Sequence[tuple[int, int, int]], orgs: int, limit: int) -> None:
    """Sorted, non-overlapping, in the address space, pointing at an organisation."""
    previous_end = -1
    for start, end, org in ranges:
        if not (previous_end < start <= end < limit):
            raise NetworkError(
                f"range {start}-{end} is unsorted, overlapping or out of the address space"
            )
        if not 0 <= org < orgs:
            raise NetworkError(f"range {start}-{end} points at no organisation ({org})")
        previous_end = end


def table_path(data_dir: Path) -> Path:
    """Where ``refract geo import`` keeps the table and the proxies find it."""
    return data_dir / "networks.npz"


def load_table(data_dir: Path) -> NetworkTable:
    """The imported table, or an empty one when none was imported."""
    path = table_path(data_dir)
    return NetworkTable.load(path) if path.exists() else NetworkTable.empty()
