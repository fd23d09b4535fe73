"""Entry points: the `liq` command and its sub-apps, the dev stack, demo, scan, status, verify, backfill.

No library package imports from here (a test walks the imports).
"""
