"""Outreach: business-initiated messages under the contact rules.

`run_once` plans and sends one pass; `python -m cobrador outreach` loops it.
See docs/outreach.md.
"""

from cobrador.outreach.worker import DecisionRecord, RunReport, SentRecord, decisions, dry_run, run_once, sent_messages

__all__ = ["DecisionRecord", "RunReport", "SentRecord", "decisions", "dry_run", "run_once", "sent_messages"]
