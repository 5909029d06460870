"""Text PDFs written with fpdf2 for parser tests and benchmarks: a title, numbered bold
headings, wrapped paragraphs and bullet lists, as many pages as asked."""

from __future__ import annotations

import random
from pathlib import Path

WORDS = (
    "deploy release database migration latency budget customer invoice roadmap incident review "
    "kubernetes cluster canary rollback alert dashboard metric quarterly revenue forecast hiring "
    "design document api schema token cache queue worker batch storage backup restore audit "
    "policy retention compliance security patch upgrade version branch merge test flaky build"
).split()
TITLE = "Quarterly engineering report"


def sentence(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n)).capitalize() + "."


def write_report_pdf(path: Path, pages: int, *, seed: int = 7) -> Path:
    """A report of ``pages`` pages (at least one): ``TITLE`` in 18 pt bold, then sections of
    a 14 pt bold heading ("<n>. <words>"), paragraphs of five sentences in 11 pt and a few
    "- " bullets, until the last page is full."""
    from fpdf import FPDF

    rng = random.Random(seed)
    pdf = FPDF()
    pdf.set_title(TITLE)
    pdf.add_page()
    pdf.set_font("Helvetica", "B", 18)
    pdf.multi_cell(0, 10, TITLE, new_x="LMARGIN", new_y="NEXT")
    section = 0
    while pdf.page_no() < pages or section == 0:
        section += 1
        pdf.ln(3)
        pdf.set_font("Helvetica", "B", 14)
        pdf.multi_cell(0, 8, f"{section}. {sentence(rng, 4)[:-1]}", new_x="LMARGIN", new_y="NEXT")
        pdf.set_font("Helvetica", "", 11)
        for _ in range(rng.randrange(2, 5)):
            pdf.multi_cell(0, 6, " ".join(sentence(rng, rng.randrange(8, 20)) for _ in range(5)), new_x="LMARGIN")
            pdf.ln(2)
        for _ in range(rng.randrange(0, 4)):
            pdf.multi_cell(0, 6, "- " + sentence(rng, 10), new_x="LMARGIN", new_y="NEXT")
    path.parent.mkdir(parents=True, exist_ok=True)
    pdf.output(str(path))
    return path
