"""Write assets/whitepaper.pdf, a three-page report, with the standard library only."""

from __future__ import annotations

from pathlib import Path

TITLE = "The State of Data Pipeline Reliability 2026"
PAGES = [
    [
        (24, TITLE),
        (12, "Northbeam Analytics research report"),
        (12, ""),
        (12, "We surveyed 400 data teams about the incidents that reached their business users."),
        (12, "Silent failures (loads that succeed with wrong data) were found after a median of"),
        (12, "eleven days; loud failures (jobs that crash) after four hours."),
    ],
    [
        (18, "1. What breaks"),
        (12, "Late or partial vendor files caused 31% of incidents; schema changes 24%;"),
        (12, "code deploys 19%; infrastructure 14%; the rest had several causes."),
        (12, ""),
        (18, "2. Who notices"),
        (12, "In one incident out of three, someone outside the data team noticed first."),
    ],
    [
        (18, "3. What works"),
        (12, "Teams with learned baselines on every decision-critical table had 71% fewer"),
        (12, "incidents reaching business users, and resolved them in 4.2 hours (median)."),
        (12, ""),
        (12, "This report is part of the Refract demo website; Northbeam is fictional."),
    ],
]


def escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def content(lines: list[tuple[int, str]]) -> bytes:
    commands, y = ["BT"], 760
    for size, text in lines:
        commands.append(f"/F1 {size} Tf 1 0 0 1 72 {y} Tm ({escape(text)}) Tj")
        y -= size + 12
    commands.append("ET")
    return "\n".join(commands).encode("latin-1")


def pdf() -> bytes:
    page_ids = [4 + 2 * index for index in range(len(PAGES))]
    kids = " ".join(f"{page_id} 0 R" for page_id in page_ids)
    objects: list[bytes] = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        f"<< /Type /Pages /Kids [{kids}] /Count {len(PAGES)} >>".encode(),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    for page_id, lines in zip(page_ids, PAGES, strict=True):
        stream = content(lines)
        objects.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
            f"/Resources << /Font << /F1 3 0 R >> >> /Contents {page_id + 1} 0 R >>".encode()
        )
        objects.append(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream")
    output = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(output))
        output += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(output)
    output += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    output += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    output += (
        b"trailer\n<< /Size %d /Root 1 0 R /Info << /Title (%s) >> >>\nstartxref\n%d\n%%%%EOF\n"
        % (len(objects) + 1, escape(TITLE).encode(), xref)
    )
    return bytes(output)


if __name__ == "__main__":
    target = Path(__file__).resolve().parents[1] / "assets" / "whitepaper.pdf"
    target.write_bytes(pdf())
