"""Network owner lookups, organisation kinds, the table file and the importers.

The sample is 209 real lines of the ip-location-db ASN CSV (CC BY 4.0, see
tests/data/asn-sample.NOTICE), so the lookups below check real ranges, including the real
overlap between two DoD ranges that the published data contains.
"""

from __future__ import annotations

import csv
import gzip
import logging
from pathlib import Path

import maxminddb
import pytest

from refract.rules import networks
from refract.rules.network_import import NetworkImportError, import_csv, import_mmdb
from refract.rules.networks import Network, NetworkError, NetworkTable, classify

SAMPLE = Path(__file__).parent / "data" / "asn-sample.csv"
GOOGLE = Network(15169, "Google LLC", "hosting")
CLOUDFLARE = Network(13335, "Cloudflare, Inc.", "hosting")
TELEFONICA_BR = Network(10429, "TELEFONICA BRASIL S.A", "isp")
DOD = Network(749, "United States Department of Defense (DoD)", "government")
DOD_NIC = Network(721, "DoD Network Information Center", "government")


@pytest.fixture(scope="module")
def table() -> NetworkTable:
    return import_csv(SAMPLE)


def test_sample_sizes(table: NetworkTable) -> None:
    stats = table.stats()
    # 133 IPv4 lines (the overlapping DoD pair becomes 749, then 721 merged), 76 IPv6 lines
    assert (stats.ipv4_ranges, stats.ipv6_ranges) == (133, 76)
    assert stats.organisations == len({(r[2], r[3]) for r in csv.reader(SAMPLE.open())})
    assert sum(stats.kinds.values()) == stats.organisations


@pytest.mark.parametrize(
    ("ip", "expected"),
    [
        ("8.8.8.0", GOOGLE),  # first address of 8.8.8.0-8.8.8.255
        ("8.8.8.255", GOOGLE),  # last
        ("8.8.8.8", GOOGLE),  # inside
        ("8.8.9.0", None),  # just after: the next line starts at 8.24.216.0
        ("8.8.7.255", None),  # just before: the previous line ends at 5.9.255.255
        ("1.1.1.1", CLOUDFLARE),
        ("152.65.230.255", Network(19527, "Google LLC", "hosting")),  # adjacent ranges
        ("152.65.231.0", GOOGLE),
        ("209.203.64.191", None),  # a range starting inside a /24
        ("209.203.64.192", Network(13990, "County of Orange", "government")),
        ("128.110.1.1", Network(17055, "University of Utah", "education")),
        ("73.1.2.3", None),  # Comcast, but not in the sample
        ("0.0.0.0", None),
        ("255.255.255.255", None),
        ("::ffff:8.8.8.8", GOOGLE),  # IPv4-mapped, as a dual-stack socket reports it
        ("2606:4700::", CLOUDFLARE),  # first
        ("2606:4700:1:ffff:ffff:ffff:ffff:ffff", CLOUDFLARE),  # last
        ("2606:4700:0:1234::5", CLOUDFLARE),  # inside
        ("2606:4700:2::", None),  # just after
        ("2606:46ff:ffff:ffff:ffff:ffff:ffff:ffff", None),  # just before
        ("2001:4860:4804:ffff:ffff:ffff:ffff:ffff", GOOGLE),
        ("2001:4860:4805::1", Network(43515, "Google Ireland Limited", "hosting")),
        ("2001:4860:480c::5", Network(32381, "Google Access LLC", "hosting")),
        # a range that starts and ends inside /64s: the low halves decide
        ("2804:18:7837:feea:7f:ffff:ffff:ffff", None),
        ("2804:18:7837:feea:80::", TELEFONICA_BR),
        ("2804:18:7837:feea:ffff::1", TELEFONICA_BR),
        ("2804:18:7838:ff37:ffff:ffff:ffff:ffff", TELEFONICA_BR),
        ("2804:18:7838:ff38::", None),
        ("::", None),
        ("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", None),
        ("2001:db8::1", None),
    ],
)
def test_lookup(table: NetworkTable, ip: str, expected: Network | None) -> None:
    assert table.lookup(ip) == expected


@pytest.mark.parametrize(
    "ip",
    [
        "",
        "bad",
        "1.2.3",
        "256.1.1.1",
        "1.2.3.4 ",
        " 1.2.3.4",
        "1.2.3.4/24",
        "1.2.3.4\x00",
        "::g",
        "1::2::3",
        "fe80::1%eth0",
        "[2606:4700::1]",
        "8.8.8.8:443",
    ],
)
def test_invalid_addresses_answer_none(table: NetworkTable, ip: str) -> None:
    assert table.lookup(ip) is None


def test_overlapping_ranges_the_narrowest_wins(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The published data has 214.95.0.0-215.0.255.255 (AS749) and, inside its end,
    # 215.0.0.0-215.1.3.255 (AS721).
    with caplog.at_level(logging.WARNING, logger="refract.rules.network_import"):
        table = import_csv(SAMPLE)
    assert "overlapping" in caplog.text
    assert table.lookup("214.95.0.0") == DOD
    assert table.lookup("214.255.255.255") == DOD
    assert table.lookup("215.0.0.0") == DOD_NIC
    assert table.lookup("215.0.255.255") == DOD_NIC
    assert table.lookup("215.1.3.255") == DOD_NIC
    assert table.lookup("215.1.4.0") is None


def test_several_ipv6_ranges_in_one_slash64(tmp_path: Path) -> None:
    path = tmp_path / "v6.csv"
    path.write_text(
        "2001:db8::,2001:db8::ff,64500,Example Hosting\n"
        "2001:db8::100,2001:db8::1ff,64501,Example University\n"
        "2001:db8::300,2001:db8::3ff,64502,Example Telecom\n"
    )
    table = import_csv(path)
    kinds = {
        ip: (n.kind if (n := table.lookup(ip)) else None)
        for ip in [
            "2001:db7:ffff:ffff:ffff:ffff:ffff:ffff",
            "2001:db8::",
            "2001:db8::ff",
            "2001:db8::100",
            "2001:db8::1ff",
            "2001:db8::200",
            "2001:db8::2ff",
            "2001:db8::300",
            "2001:db8::3ff",
            "2001:db8::400",
            "2001:db8:0:1::",
        ]
    }
    assert list(kinds.values()) == [
        None,
        "hosting",
        "hosting",
        "education",
        "education",
        None,
        None,
        "isp",
        "isp",
        None,
        None,
    ]


def test_adjacent_ranges_of_one_organisation_are_merged(tmp_path: Path) -> None:
    path = tmp_path / "split.csv"
    path.write_text(
        "10.0.0.0,10.0.0.127,64500,Example\n"
        "10.0.0.128,10.0.0.255,64500,Example\n"
        "10.0.1.0,10.0.1.255,64501,Other\n"
    )
    table = import_csv(path)
    assert table.stats().ipv4_ranges == 2
    assert table.lookup("10.0.0.200") == Network(64500, "Example", "business")


@pytest.mark.parametrize(
    ("asn", "org", "kind"),
    [
        (15169, "Google LLC", "hosting"),  # pinned: mostly crawlers and proxies
        (16509, "Amazon.com, Inc.", "hosting"),
        (14618, "Amazon.com, Inc.", "hosting"),
        (8075, "Microsoft Corporation", "hosting"),
        (7922, "Comcast Cable Communications, LLC", "isp"),
        (64512, "", "unknown"),
        (15169, "  ", "unknown"),
        (64512, "Hetzner Online GmbH", "hosting"),
        (64512, "DigitalOcean, LLC", "hosting"),
        (64512, "OVH SAS", "hosting"),
        (64512, "Fastly, Inc.", "hosting"),
        (64512, "IBM Cloud", "hosting"),
        (64512, "RIMU HOSTING LIMITED", "hosting"),
        (64512, "Lifeline Data Centers", "hosting"),
        (64512, "Google Ireland Limited", "hosting"),
        (64512, "Deutsche Telekom AG", "isp"),
        (64512, "Vodafone Libertel B.V.", "isp"),
        (60300, "Vodafone_Iceland Syn hf", "isp"),  # an underscore separates words too
        (64512, "China Mobile", "isp"),
        (64512, "Mega Cable, S.A. de C.V.", "isp"),
        (64512, "Simba Fiber Africa Limited", "isp"),
        (64512, "Orbit Broadband Limited", "isp"),
        (64512, "TELEFONICA BRASIL S.A", "isp"),
        (64512, "Verizon Business", "isp"),
        (64512, "University of Utah", "education"),
        (64512, "Massachusetts Institute of Technology", "education"),
        (64512, "Universidad de Oriente", "education"),
        (64512, "Azle Independent School District", "education"),
        (64512, "Ministry of Education", "education"),  # education is checked first
        (64512, "City of Philadelphia", "government"),
        (64512, "Government of Grenada", "government"),
        (64512, "DoD Network Information Center", "government"),
        (64512, "U. S. Department of Justice", "government"),
        (64512, "Univar Solutions LLC", "business"),  # "Univ" only as a word
        (64512, "ESL Federal Credit Union", "business"),  # not federal government
        (64512, "Apple Inc.", "business"),
        (64512, "Salesforce.com, Inc.", "business"),
        (64512, "Accenture LLP", "business"),
    ],
)
def test_classify(asn: int, org: str, kind: str) -> None:
    assert classify(asn, org) == kind


def test_save_load_round_trip(table: NetworkTable, tmp_path: Path) -> None:
    path = tmp_path / "networks.npz"
    table.save(path)
    loaded = NetworkTable.load(path)
    assert loaded.stats() == table.stats()
    for ip in ["8.8.8.8", "215.0.0.1", "2804:18:7837:feea:80::", "2606:4700::1", "9.9.9.9"]:
        assert loaded.lookup(ip) == table.lookup(ip)
    assert [p.name for p in tmp_path.iterdir()] == ["networks.npz"]  # no temporary left


def test_load_reclassifies_when_the_classifier_changed(
    table: NetworkTable, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "networks.npz"
    table.save(path)
    monkeypatch.setattr(networks, "CLASSIFIER_FINGERPRINT", "changed")
    monkeypatch.setitem(networks.PINNED_ASNS, 15169, "business")
    assert NetworkTable.load(path).lookup("8.8.8.8") == Network(15169, "Google LLC", "business")


def test_empty_table(tmp_path: Path) -> None:
    empty = NetworkTable.empty()
    assert empty.lookup("8.8.8.8") is None
    assert empty.lookup("2606:4700::1") is None
    assert empty.stats().organisations == 0
    empty.save(tmp_path / "empty.npz")
    assert NetworkTable.load(tmp_path / "empty.npz").lookup("1.1.1.1") is None


def test_load_rejects_other_files(tmp_path: Path) -> None:
    path = tmp_path / "not-a-table.npz"
    path.write_bytes(b"hello")
    with pytest.raises(NetworkError, match=r"not-a-table\.npz"):
        NetworkTable.load(path)
    with pytest.raises(NetworkError, match=r"missing\.npz"):
        NetworkTable.load(tmp_path / "missing.npz")


def test_from_ranges_rejects_unsorted_ranges() -> None:
    with pytest.raises(NetworkError, match="unsorted, overlapping"):
        NetworkTable.from_ranges([(1, "A")], [(10, 20, 0), (15, 30, 0)], [])
    with pytest.raises(NetworkError, match="no organisation"):
        NetworkTable.from_ranges([(1, "A")], [(10, 20, 1)], [])


def test_import_gzip(table: NetworkTable, tmp_path: Path) -> None:
    path = tmp_path / "asn-ipv4.csv.gz"
    path.write_bytes(gzip.compress(SAMPLE.read_bytes()))
    assert import_csv(path).stats() == table.stats()
    (tmp_path / "truncated.csv.gz").write_bytes(path.read_bytes()[:-100])
    with pytest.raises(NetworkImportError, match=r"truncated\.csv\.gz:\d+: unreadable"):
        import_csv(tmp_path / "truncated.csv.gz")


def test_import_several_files(table: NetworkTable, tmp_path: Path) -> None:
    lines = SAMPLE.read_text().splitlines(keepends=True)
    (tmp_path / "v4.csv").write_text("".join(line for line in lines if ":" not in line))
    (tmp_path / "v6.csv").write_text("".join(line for line in lines if ":" in line))
    assert import_csv(tmp_path / "v4.csv", tmp_path / "v6.csv").stats() == table.stats()


@pytest.mark.parametrize(
    ("bad_line", "message"),
    [
        ("1.0.0.0,1.0.0.255,13335", "3 fields instead of 4"),
        ("1.0.0.0,1.0.0.999,13335,X", "'1.0.0.999' is not an IP address"),
        ("16777216,16777471,13335,X", "not the -num.csv files"),
        ("1.0.0.9,1.0.0.1,13335,X", "is after its end"),
        ("1.0.0.0,2001:db8::,13335,X", "mixes IPv4 and IPv6"),
        ("1.0.0.0,1.0.0.255,AS13335,X", "'AS13335' is not an integer"),
        ("1.0.0.0,1.0.0.255,4294967296,X", "out of range"),
        ('1.0.0.0,1.0.0.255,13335,"unterminated', "unexpected end of data"),
        ('1.0.0.0,1.0.0.255,13335,"Two\nlines"', "unbalanced quote"),
        ('1.0.0.0,1.0.0.255,13335,"A"B', "unreadable"),
    ],
)
def test_import_errors_name_the_line(tmp_path: Path, bad_line: str, message: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(f"2.0.0.0,2.0.0.255,64500,Fine\n\n{bad_line}\n3.0.0.0,3.0.0.255,64500,Ok\n")
    with pytest.raises(NetworkImportError, match=rf"bad\.csv:3: .*({message})"):
        import_csv(path)


def test_import_error_for_undecodable_and_missing_files(tmp_path: Path) -> None:
    path = tmp_path / "latin1.csv"
    path.write_bytes(b"1.0.0.0,1.0.0.255,1,Cafe\n" * 3000 + b"2.0.0.0,2.0.0.255,1,Caf\xe9\n")
    with pytest.raises(NetworkImportError, match=r"latin1\.csv:3001: not UTF-8"):
        import_csv(path)
    with pytest.raises(NetworkImportError, match=r"nothing\.csv: cannot open"):
        import_csv(tmp_path / "nothing.csv")


# --- .mmdb: a real MaxMind DB file written with mmdb-writer (a dev dependency) ---------


def _write_mmdb(path: Path, rows: list[list[str]], record_of: str = "asn") -> None:
    mmdb_writer = pytest.importorskip("mmdb_writer")
    netaddr = pytest.importorskip("netaddr")
    writer = mmdb_writer.MMDBWriter(
        ip_version=6, database_type="GeoLite2-ASN", ipv4_compatible=True
    )
    for start, end, asn, org in rows:
        record = (
            {"autonomous_system_number": int(asn), "autonomous_system_organization": org}
            if record_of == "asn"
            else {"country": {"iso_code": "US"}}
        )
        writer.insert_network(netaddr.IPSet(netaddr.IPRange(start, end)), record)
    writer.to_db_file(str(path))


def test_import_mmdb_matches_the_csv(tmp_path: Path) -> None:
    # The overlapping DoD pair is left out: an .mmdb tree cannot hold overlaps.
    rows = [r for r in csv.reader(SAMPLE.open()) if r[2] not in ("749", "721")]
    (tmp_path / "sample.csv").write_text(
        "".join(",".join(f'"{f}"' for f in r) + "\n" for r in rows)
    )
    _write_mmdb(tmp_path / "sample.mmdb", rows)
    with maxminddb.open_database(str(tmp_path / "sample.mmdb")) as reader:
        assert reader.metadata().database_type == "GeoLite2-ASN"

    from_mmdb = import_mmdb(tmp_path / "sample.mmdb")
    from_csv = import_csv(tmp_path / "sample.csv")
    # The tree splits ranges into CIDR blocks; the importer merges them back.
    assert from_mmdb.stats() == from_csv.stats()
    for start, end, *_ in rows:
        for ip in (start, end):
            assert from_mmdb.lookup(ip) == from_csv.lookup(ip), ip
    assert from_mmdb.lookup("8.8.8.8") == GOOGLE
    assert from_mmdb.lookup("2804:18:7837:feea:80::") == TELEFONICA_BR
    assert from_mmdb.lookup("2804:18:7837:feea:7f:ffff:ffff:ffff") is None


def test_import_mmdb_rejects_other_databases(tmp_path: Path) -> None:
    _write_mmdb(tmp_path / "city.mmdb", [["1.0.0.0", "1.0.0.255", "0", ""]], "country")
    with pytest.raises(NetworkImportError, match=r"city\.mmdb: network 1\.0\.0\.0/24 has no"):
        import_mmdb(tmp_path / "city.mmdb")
    (tmp_path / "junk.mmdb").write_bytes(b"not a database" * 10)
    with pytest.raises(NetworkImportError, match=r"junk\.mmdb: cannot read"):
        import_mmdb(tmp_path / "junk.mmdb")
    with pytest.raises(NetworkImportError, match=r"absent\.mmdb: cannot read"):
        import_mmdb(tmp_path / "absent.mmdb")
