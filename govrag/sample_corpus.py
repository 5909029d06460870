"""Generates the sample corpus: real-text PDFs on three topics, in folders the sample policy
gives different scopes, plus the bad inputs every run must survive (encrypted, corrupt,
image-only, and a PDF no policy rule covers)."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

SAMPLE_POLICY = Path(__file__).parent / "sample" / "policy.yaml"


@dataclass(frozen=True)
class SampleDoc:
    path: str
    title: str
    sections: tuple[tuple[str, str], ...]


DOCS: tuple[SampleDoc, ...] = (
    SampleDoc(
        "finance/q3-revenue-report.pdf",
        "Q3 Revenue Report",
        (
            (
                "Summary",
                "Revenue for the third quarter reached 48.2 million euros, up 12 percent year on year. "
                "Subscription revenue grew faster than services revenue, and gross margin improved to 71 percent "
                "because hosting costs per customer fell after the data centre consolidation.",
            ),
            (
                "Regional results",
                "The Nordic region contributed 19.5 million euros. Southern Europe grew 21 percent "
                "after two large public sector contracts were signed in July. The cobalt-heron forecast "
                "model predicted the regional mix within two percent.",
            ),
            (
                "Outlook",
                "Finance expects fourth quarter revenue between 50 and 52 million euros. The board approved a "
                "share buyback of 5 million euros, to be executed before the end of the fiscal year.",
            ),
        ),
    ),
    SampleDoc(
        "finance/budget-2027.pdf",
        "Budget Plan 2027",
        (
            (
                "Operating budget",
                "The 2027 operating budget is 180 million euros. Personnel costs are 62 percent of the "
                "total. Travel is capped at 2.1 million euros and every trip above 3,000 euros needs "
                "approval from the chief financial officer.",
            ),
            (
                "Capital expenditure",
                "Capital expenditure of 14 million euros covers the new office in Lisbon and the "
                "replacement of storage arrays. Depreciation follows the straight-line method over "
                "five years. The amber-falcon reserve holds 3 million euros for unplanned spending.",
            ),
        ),
    ),
    SampleDoc(
        "engineering/deploy-runbook.pdf",
        "Deployment Runbook",
        (
            (
                "Before you deploy",
                "Check that the release branch is green in continuous integration and that the "
                "database migrations were reviewed. Announce the deployment in the release channel "
                "fifteen minutes before you start.",
            ),
            (
                "Rolling deployment",
                "Deploy to the canary pool first and watch the error rate and the p99 latency for "
                "ten minutes. If the error budget burn rate exceeds two, roll back with the "
                "granite-otter rollback script, which restores the previous container images.",
            ),
            (
                "Kubernetes details",
                "Each service runs as a Deployment with at least three replicas spread over zones. "
                "Readiness probes must pass before traffic shifts. Horizontal pod autoscaling "
                "targets 60 percent CPU utilisation.",
            ),
        ),
    ),
    SampleDoc(
        "engineering/incidents/2026-10-database-outage.pdf",
        "Postmortem: database outage",
        (
            (
                "What happened",
                "On 14 October the primary PostgreSQL database ran out of disk space because write-ahead "
                "log archiving had silently stopped. Writes failed for 37 minutes.",
            ),
            (
                "What we changed",
                "We added an alert on archive lag, doubled the volume size, and wrote the silver-lynx "
                "checklist for on-call engineers so that log archiving is verified every week.",
            ),
        ),
    ),
    SampleDoc(
        "handbook/holidays-and-leave.pdf",
        "Employee Handbook: Holidays and Leave",
        (
            (
                "Annual leave",
                "Every employee receives 27 days of paid annual leave per calendar year, plus public "
                "holidays. Up to five unused days carry over to the first quarter of the next year.",
            ),
            (
                "Parental leave",
                "Parents receive 20 weeks of paid parental leave, which can be split into blocks. "
                "Tell your manager four weeks before your leave starts; the velvet-maple form in the "
                "HR portal records it.",
            ),
        ),
    ),
    SampleDoc(
        "unfiled/board-minutes-draft.pdf",
        "Board minutes (draft)",
        (
            (
                "Draft",
                "These draft board minutes were dropped in a folder no policy rule covers, so govrag must "
                "quarantine them instead of making them searchable. Codename quartz-badger.",
            ),
        ),
    ),
)


def _write_pdf(path: Path, doc: SampleDoc, *, encrypt_with: str | None = None) -> None:
    from fpdf import FPDF

    pdf = FPDF()
    pdf.set_title(doc.title)
    pdf.set_author("govrag sample corpus")
    if encrypt_with:
        pdf.set_encryption(owner_password="owner-" + encrypt_with, user_password=encrypt_with)
    pdf.add_page()
    pdf.set_font("Helvetica", "B", 18)
    pdf.multi_cell(0, 10, doc.title, new_x="LMARGIN", new_y="NEXT")
    for heading, body in doc.sections:
        pdf.ln(4)
        pdf.set_font("Helvetica", "B", 14)
        pdf.multi_cell(0, 8, heading, new_x="LMARGIN", new_y="NEXT")
        pdf.set_font("Helvetica", "", 11)
        pdf.multi_cell(0, 6, body, new_x="LMARGIN", new_y="NEXT")
    path.parent.mkdir(parents=True, exist_ok=True)
    pdf.output(str(path))


def _write_image_only_pdf(path: Path) -> None:
    from fpdf import FPDF
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (800, 300), "white")
    ImageDraw.Draw(img).text((20, 130), "A scanned page: pixels only, no text layer", fill="black")
    pdf = FPDF()
    pdf.add_page()
    pdf.image(img, x=10, y=10, w=180)
    path.parent.mkdir(parents=True, exist_ok=True)
    pdf.output(str(path))


def write_sample_corpus(out: Path, *, with_bad_inputs: bool = True) -> list[Path]:
    """Write the sample corpus under ``out`` (replacing it); returns the PDF paths."""
    out = Path(out)
    if out.exists():
        shutil.rmtree(out)
    written = []
    for doc in DOCS:
        _write_pdf(out / doc.path, doc)
        written.append(out / doc.path)
    if with_bad_inputs:
        bad = out / "finance" / "bad"
        _write_pdf(bad / "encrypted-forecast.pdf", DOCS[0], encrypt_with="s3cret")
        (bad / "corrupt-ledger.pdf").write_bytes(
            b"%PDF-1.7\n1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\ngarbage\x00\xff" * 20
        )
        _write_image_only_pdf(bad / "scanned-receipt.pdf")
        written += [bad / "encrypted-forecast.pdf", bad / "corrupt-ledger.pdf", bad / "scanned-receipt.pdf"]
    return written
