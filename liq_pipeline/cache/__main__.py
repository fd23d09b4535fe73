"""python -m liq_pipeline.cache start|status|stop|url [DATA_DIR]: manage the embedded Redis by hand."""

import logging

from .server import main

logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
raise SystemExit(main())
