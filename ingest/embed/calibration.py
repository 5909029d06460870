"""Generated English text for NVFP4 calibration and quality checks (no corpus needed).

Sentences are built from templates over several registers (chat, tickets, policy text,
reports, plain facts) so that calibration sees punctuation, numbers, questions and casing
the way real chunks have them. ``seed`` picks a reproducible, disjoint-enough sample: the
quality checks use a different seed from calibration.
"""

from __future__ import annotations

import random

_SUBJECTS = [
    "The team", "Our customer", "The on-call engineer", "Finance", "The auditor", "Legal",
    "The new intern", "Marketing", "The database", "The vendor", "Everyone", "My manager",
    "The board", "Support", "The release", "This policy", "The server", "A contractor",
]
_VERBS = [
    "reviewed", "approved", "rejected", "updated", "migrated", "deleted", "archived",
    "shared", "escalated", "scheduled", "postponed", "restarted", "encrypted", "audited",
    "documented", "forgot", "requested", "signed",
]
_OBJECTS = [
    "the quarterly budget", "the VPN credentials", "the onboarding checklist",
    "the retention schedule", "the incident report", "the invoice from March",
    "the pull request", "the backup of the payroll system", "the customer contract",
    "the access control list", "the product roadmap", "the holiday calendar",
    "the security patch", "the sales forecast", "the data processing agreement",
    "the meeting notes", "the marketing deck", "the Kubernetes cluster",
]
_TAILS = [
    "before Friday.", "last night.", "after the outage.", "without telling anyone.",
    "as requested by compliance.", "for the third time this week.", "on 12 March 2024.",
    "because the deadline moved.", "and nobody noticed.", "in the shared drive.",
    "ahead of the audit.", "so we can close the ticket.", "during the maintenance window.",
]
_QUESTIONS = [
    "How do I reset my password?", "Who owns the billing service?",
    "Can someone restart the staging database?", "Where is the latest version of the handbook?",
    "Is the office closed on Monday?", "What is the refund policy for annual plans?",
    "Why did the deploy fail at 3am?", "When does the contract with the vendor expire?",
]
_FACTS = [
    "Water boils at 100 degrees Celsius at sea level.", "The quick brown fox jumps over the lazy dog.",
    "Revenue grew 12% year over year, driven by enterprise renewals.",
    "Employees must complete security training every twelve months.",
    "Personal data is deleted 30 days after the account is closed.",
    "Error 504: gateway timeout while calling the payments API.",
    "Thanks everyone, great work on the launch! :tada:",
    "The museum opens at nine and the guided tour lasts two hours.",
    "She plays the violin in the city orchestra on weekends.",
    "Lunch is on me today, thanks for the help with the migration.",
]


def generated_texts(n: int, seed: int = 0) -> list[str]:
    """``n`` generated texts of one to four sentences, reproducible for a given ``seed``."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        parts = []
        for _ in range(rng.randint(1, 4)):
            kind = rng.random()
            if kind < 0.6:
                parts.append(
                    f"{rng.choice(_SUBJECTS)} {rng.choice(_VERBS)} {rng.choice(_OBJECTS)} {rng.choice(_TAILS)}"
                )
            elif kind < 0.8:
                parts.append(rng.choice(_QUESTIONS))
            else:
                parts.append(rng.choice(_FACTS))
        out.append(" ".join(parts))
    return out
