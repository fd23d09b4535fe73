"""Entry points: the `liq` command and its sub-apps (cli.py, devnet.py: options and help only; base.py: the frame
they share), what every command does when it runs (runtime.py: settings, the node or the devnet, exit codes;
redaction.py: no secret in any output), and one implementation module per command or group (status, scan, watch,
backfill, exporter, harness, benches, demo, dev + supervisor, verify, devnet_ops, embedded_redis, config_view).

No library package imports from here (a test walks the imports).
"""
