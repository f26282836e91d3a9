"""One node's JVM: its folder (server.properties, data, server.log, pid file), formatting its
storage, starting it, and finding it again later by its pid file, from any `herald` command."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

from herald.tools.localkafka.nodes import (
    CLUSTER_ID,
    JVM_OPTIONS,
    KafkaLaunchError,
    Node,
    java_command,
)
from herald.tools.localkafka.secure import write_argfile

logger = logging.getLogger(__name__)


class NodeProcess:
    def __init__(self, node: Node, folder: Path, libs_dir: Path, log4j_config: Path) -> None:
        self.node = node
        self.folder = folder
        self._libs_dir = libs_dir
        self._log4j_config = log4j_config
        # The JVM this object started, if any: it is waited on directly, not polled.
        self._child: subprocess.Popen[bytes] | None = None

    @property
    def data_dir(self) -> Path:
        return self.folder / "data"

    @property
    def config(self) -> Path:
        return self.folder / "server.properties"

    def format(
        self, settings: dict[str, str], secret_args: Sequence[str] = (), secrets: Sequence[str] = ()
    ) -> None:
        """Write its server.properties and, if its storage is new, format it.

        `secret_args` (SCRAM credentials) reach StorageTool through an owner-only argfile,
        never its command line, where `ps` would show them to every user; `secrets` are
        blanked from the output a failure reports.
        """
        self.folder.mkdir(parents=True, exist_ok=True)
        # It names key files; only the owner needs to read it.
        self.config.touch(mode=0o600)
        self.config.chmod(0o600)
        self.config.write_text("".join(f"{key}={value}\n" for key, value in settings.items()))
        if (self.data_dir / "meta.properties").exists():
            return
        arguments = [
            "kafka.tools.StorageTool",
            "format",
            "--cluster-id",
            CLUSTER_ID,
            "--config",
            str(self.config),
            *secret_args,
        ]
        # No perf data: it would publish the expanded arguments (`jcmd`, `jps -m`).
        jvm_options = ("-Xmx256m", "-XX:-UsePerfData")
        argfile = self.folder / "format.args"
        try:
            if secret_args:
                write_argfile(argfile, arguments)
                command = self._java(f"@{argfile}", jvm_options=jvm_options)
            else:
                command = self._java(*arguments, jvm_options=jvm_options)
            result = subprocess.run(command, capture_output=True, text=True, check=False)
        finally:
            argfile.unlink(missing_ok=True)
        if result.returncode != 0:
            output = result.stdout + result.stderr
            for secret in secrets:
                output = output.replace(secret, "***")
            raise KafkaLaunchError(f"formatting node {self.node.node_id} failed:\n{output}")

    def spawn(self) -> None:
        with (self.folder / "server.log").open("ab") as log:
            child = subprocess.Popen(
                self._java("kafka.Kafka", str(self.config), jvm_options=JVM_OPTIONS),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                # Its own session: Ctrl-C in the user's terminal reaches Herald, which then
                # stops the broker in order, instead of hitting the JVM directly.
                start_new_session=True,
            )
        self._child = child
        (self.folder / "pid").write_text(str(child.pid))
        node = self.node
        logger.info("started Kafka node %d (pid %d) on %s", node.node_id, child.pid, node.address)

    def running_pid(self) -> int | None:
        """The pid of this node's JVM if it is alive (and really is this node's JVM)."""
        try:
            pid = int((self.folder / "pid").read_text())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            stat = Path(f"/proc/{pid}/stat").read_text()
        except (FileNotFoundError, ValueError, ProcessLookupError):
            return None
        # A pid can be reused after a reboot; only our node's command line counts. A zombie
        # ("Z") has exited and only waits to be reaped.
        if str(self.config).encode() not in cmdline or stat.rsplit(")", 1)[1].split()[0] == "Z":
            return None
        return pid

    def exit_code(self) -> int | None:
        """The exit code of the JVM this object started, once it has exited."""
        return None if self._child is None else self._child.poll()

    def signal(self, signum: signal.Signals) -> int | None:
        """Send `signum` to the running JVM; its pid, or None if none was running."""
        pid = self.running_pid()
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):  # it exited on its own meanwhile
                os.kill(pid, signum)
        return pid

    def wait_exit(self, pid: int, timeout_s: float) -> bool:
        """Wait until the JVM with `pid` has exited; False if it still runs at the timeout."""
        if self._child is not None and self._child.pid == pid:
            try:
                self._child.wait(timeout_s)
            except subprocess.TimeoutExpired:
                return False
            return True
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.running_pid() is None:
                return True
            time.sleep(0.1)
        return False

    def reap(self) -> None:
        """Collect the exit status of a JVM this object started, so no zombie is left."""
        if self._child is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._child.wait(1)

    def log_tail(self, lines: int = 40) -> str:
        log = self.folder / "server.log"
        if not log.exists():
            return "(no log)"
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])

    def _java(self, main_class: str, *args: str, jvm_options: tuple[str, ...] = ()) -> list[str]:
        return java_command(
            self._libs_dir, self._log4j_config, main_class, *args, jvm_options=jvm_options
        )
