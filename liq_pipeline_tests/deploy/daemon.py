"""The production deployment's Dagster processes, for tests: a code server (`dagster api grpc`, the code location
of liq_pipeline.definitions), `dagster-daemon run` (sensors, schedules, the run queue, backfills, run monitoring)
on a workspace that points at it, both on the instance of DAGSTER_HOME (the production profile on Postgres), and
the UI's GraphQL API served in the test process on the same code server (what the webserver does, without its
HTTP layer).

The daemon's loops are shortened for tests, nothing else: the backfill daemon iterates every 30 s and run-status
sensors (the alerts) tick every 30 s by default (Dagster constants, not instance settings).
`python -m liq_pipeline_tests.deploy.daemon dagster|dagster-daemon ARGS...` sets both to LOOP_SECONDS, then hands
over to Dagster's own command line.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from liq_pipeline.commands.supervisor import Child, Supervisor
from liq_pipeline_tests.fixtures.net import free_port

LOOP_SECONDS = 3
ROOT = Path(__file__).resolve().parents[2]
ENV = {"PYTHONPATH": str(ROOT)}  # `python -m liq_pipeline_tests...` from any working directory
LOCATION = "liq_pipeline"

LAUNCH_BACKFILL = """
mutation LaunchBackfill($params: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $params) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on Error { message }
  }
}
"""


def _fast_loops() -> None:
    import dagster._core.definitions.sensor_definition as sensor_definition
    import dagster._core.remote_representation.external as external
    import dagster._daemon.controller as controller

    sensor_definition.DEFAULT_SENSOR_DAEMON_INTERVAL = LOOP_SECONDS
    external.DEFAULT_SENSOR_DAEMON_INTERVAL = LOOP_SECONDS
    controller.DEFAULT_DAEMON_INTERVAL_SECONDS = LOOP_SECONDS


def main(argv: list[str]) -> int:
    _fast_loops()
    tool, *rest = argv
    sys.argv = [tool, *rest]
    if tool == "dagster-daemon":
        from dagster._daemon.cli import main as cli
    elif tool == "dagster":
        from dagster._cli import main as cli
    else:
        raise SystemExit(f"usage: python -m {__name__} dagster|dagster-daemon ARGS...")
    return cli()


def _serves(port: int) -> bool:
    from dagster._grpc.client import DagsterGrpcClient

    try:
        DagsterGrpcClient(port=port, host="127.0.0.1").ping("ready?")
    except Exception:
        return False
    return True


@dataclass
class Deployment:
    """A code server on `port` and, once `start_daemon()` is called, the daemon; `folder` holds their logs."""

    port: int
    folder: Path
    env: dict[str, str] = field(default_factory=dict)
    supervisor: Supervisor = field(default_factory=lambda: Supervisor(say=lambda _m: None))

    @property
    def workspace(self) -> Path:
        return self.folder / "workspace.yaml"

    def start_daemon(self) -> None:
        argv = [sys.executable, "-m", __name__, "dagster-daemon", "run", "-w", str(self.workspace)]
        self.supervisor.start(
            Child("dagster-daemon", argv, env={**ENV, **self.env}, log_path=self.folder / "daemon.log")
        )

    def check_alive(self) -> None:
        dead = self.supervisor.failed()
        if dead is not None:
            log = (self.folder / f"{dead.name}.log").read_text()[-3000:]
            raise AssertionError(f"{dead.name} exited ({dead.process.returncode}):\n{log}")

    @contextmanager
    def graphql_context(self, instance) -> Iterator:
        """A request context of the UI's GraphQL API over this deployment's code server."""
        from dagster._core.workspace.context import WorkspaceProcessContext
        from dagster._core.workspace.load_target import GrpcServerTarget

        target = GrpcServerTarget(host="127.0.0.1", port=self.port, socket=None, location_name=LOCATION)
        with WorkspaceProcessContext(instance, target) as process_context:
            yield process_context.create_request_context()

    def stop_schedules(self, context) -> list[str]:
        """Every schedule of the code location set to STOPPED in the instance (what the UI's toggle does)."""
        instance = context.instance
        stopped = []
        for repository in context.get_code_location(LOCATION).get_repositories().values():
            for schedule in repository.get_schedules():
                instance.stop_schedule(schedule.get_remote_origin_id(), schedule.selector_id, schedule)
                stopped.append(schedule.name)
        return stopped


def launch_partition_backfill(context, asset_keys, partition_keys: list[str]) -> str:
    """What the UI's "Materialize" of several partitions of several assets (dg.AssetKey) sends:
    `launchPartitionBackfill` over GraphQL; the backfill's id."""
    from dagster_graphql.test.utils import execute_dagster_graphql

    params = {"partitionNames": partition_keys, "assetSelection": [{"path": list(key.path)} for key in asset_keys]}
    result = execute_dagster_graphql(context, LAUNCH_BACKFILL, {"params": params})
    answer = result.data["launchPartitionBackfill"]
    assert answer["__typename"] == "LaunchBackfillSuccess", answer
    return answer["backfillId"]


@contextmanager
def deployment(folder: Path, env: dict[str, str] | None = None) -> Iterator[Deployment]:
    """The code server started (and stopped at the end, with the daemon if started), in the environment of this
    process (DAGSTER_HOME, DAGSTER_PG_*, the platform's settings) updated with `env`."""
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    workspace = {"load_from": [{"grpc_server": {"host": "127.0.0.1", "port": port, "location_name": LOCATION}}]}
    running = Deployment(port, folder, dict(env or {}))
    running.workspace.write_text(yaml.safe_dump(workspace))
    argv = [
        *(sys.executable, "-m", __name__, "dagster", "api", "grpc"),
        *("-m", "liq_pipeline.definitions", "-h", "127.0.0.1", "-p", str(port), "--location-name", LOCATION),
        "--use-python-environment-entry-point",  # run workers: this venv's python -m dagster
    ]
    try:
        running.supervisor.start(
            Child(
                "code-server",
                argv,
                ready=lambda: _serves(port),
                ready_timeout=120,
                env={**ENV, **running.env},
                log_path=folder / "code-server.log",
            )
        )
        yield running
    finally:
        running.supervisor.stop_all()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
