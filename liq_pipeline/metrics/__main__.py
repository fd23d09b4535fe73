"""`python -m liq_pipeline.metrics`: the KPI exporter (same as `python -m liq_pipeline.metrics.exporter`)."""

from .exporter import main

raise SystemExit(main())
