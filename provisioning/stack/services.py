"""Real Mosquitto and InfluxDB for tests, demo and benchmarks, on free loopback ports.

Each service runs from the Debian binaries with its own config and data under a directory
the caller owns, and ``stop()`` ends exactly the process it started. Nothing here touches a
system service. Who calls it: ``tests/conftest.py``, ``make demo`` (``provisioning.stack.demo``) and
``bench/``.
"""

from __future__ import annotations

import getpass
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

from gateway.influxql import InfluxQL, quote_ident

from provisioning import broker

from .influx_v2_adapter import V2WriteAdapter

GATEWAY_USER = broker.GATEWAY_USER
# A test-only user that may publish anywhere under the root (hostile payloads, fake devices).
TESTER_USER = "wardwatch-tester"
OPERATOR_USER = "ward-station"  # the operator account of provisioning/mosquitto/acl
STACK_OPERATORS = (broker.Operator(OPERATOR_USER),)  # a station serving every ward


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(predicate, timeout: float, what: str, interval: float = 0.05):
    """Poll ``predicate`` until it returns a truthy value; raise TimeoutError naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def terminate(proc: subprocess.Popen | None, timeout: float = 30, kill: bool = False) -> None:
    """Stop one child we started (SIGTERM, or SIGKILL with ``kill``) and reap it; a child
    still running after ``timeout`` seconds is killed."""
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def _binary(name: str) -> str:
    for candidate in (shutil.which(name), f"/usr/sbin/{name}", f"/usr/bin/{name}"):
        if candidate and os.path.exists(candidate):
            return candidate
    raise FileNotFoundError(f"{name} not found: run 'make deps' (Debian package for {name})")


class _Process:
    """One child process we started and will stop (and only that one)."""

    name = "service"

    def __init__(self, workdir: Path):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.proc: subprocess.Popen | None = None
        self.log = self.workdir / f"{self.name}.log"

    def _spawn(self, argv: list[str]) -> None:
        with open(self.log, "ab") as log:
            # A new session: Ctrl-C in the terminal reaches us, and we stop the child ourselves.
            self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def _check_alive(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            tail = self.log.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n{tail}")

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, kill: bool = False) -> None:
        terminate(self.proc, timeout=15, kill=kill)
        self.proc = None


class Mosquitto(_Process):
    """Mosquitto with password auth, the deployment ACL, persistence and ward-sized queues.

    ``users`` maps username -> password. The gateway and tester users are added always.
    """

    name = "mosquitto"

    def __init__(self, workdir: Path, users: dict[str, str] | None = None, port: int | None = None,
                 autosave: tuple[str, ...] = broker.AUTOSAVE):
        super().__init__(workdir)
        self.port = port or free_port()
        # How persistence is saved (Mosquitto writes its whole database each time); the
        # deployment's setting by default (provisioning.broker.AUTOSAVE).
        self.autosave = autosave
        self.users = dict(users or {})
        self.users.setdefault(GATEWAY_USER, secrets.token_urlsafe(16))
        self.users.setdefault(TESTER_USER, secrets.token_urlsafe(16))
        self.users.setdefault(OPERATOR_USER, secrets.token_urlsafe(16))
        self.conf = self.workdir / "mosquitto.conf"
        # A site broker's bridge to a central one, and a central broker's bridge accounts
        # (their passwords go in ``users``); set before ``start()``.
        self.bridge: broker.Bridge | None = None
        self.bridge_accounts: tuple[broker.BridgeAccount, ...] = ()

    def add_users(self, users: dict[str, str]) -> None:
        """Add device credentials; call before ``start()`` (or restart to apply)."""
        self.users.update(users)

    def _write_config(self) -> None:
        """The broker's files, rendered by the deployment's generator (provisioning.broker)
        with a plain loopback listener on ``port`` and the tester account added."""
        passwd = self.workdir / "passwd"
        broker.write_password_file(passwd, self.users)
        acl = self.workdir / "acl"
        acl.write_text(broker.render_acl(STACK_OPERATORS, GATEWAY_USER,
                                         extra=f"user {TESTER_USER}\ntopic readwrite wardwatch/#\n",
                                         bridges=self.bridge_accounts))
        include_dir = None
        if self.bridge is not None:
            bridges = self.workdir / "bridges"
            bridges.mkdir(mode=0o700, exist_ok=True)
            broker._write_private(bridges / f"{self.bridge.name}.conf", broker.render_bridge(self.bridge))
            include_dir = str(bridges)
        data = self.workdir / "data"
        data.mkdir(exist_ok=True)
        settings = broker.BrokerSettings(
            password_file=str(passwd),
            acl_file=str(acl),
            listeners=(broker.Listener(self.port, "127.0.0.1", comment="The local stack: plain, loopback only."),),
            persistence_location=f"{data}/",
            autosave=tuple(self.autosave),
            # Benchmarks push far more than a ward; the stack never drops for want of queue.
            max_queued_messages=1000000,
            persistent_client_expiration="1d",
            # Run as whoever started us: as root, Mosquitto would otherwise switch to the
            # 'mosquitto' user, which cannot read a test's private files.
            run_as=getpass.getuser() if os.geteuid() == 0 else None,
            sys_interval=2,  # $SYS figures (the gateway reads the stored count) soon
            log_dest="stderr",
            log_types=("error", "warning"),
            header=("The local stack (provisioning/stack/services.py), from provisioning.broker.",),
            include_dir=include_dir,
        )
        self.conf.write_text(broker.render_conf(settings))

    def start(self) -> "Mosquitto":
        self._write_config()
        self._spawn([_binary("mosquitto"), "-c", str(self.conf)])
        wait_until(lambda: self._check_alive() or _port_open(self.port), 20, "mosquitto to listen")
        return self


class InfluxDB(_Process):
    """InfluxDB 1.x (Debian's 1.6) with a v2 write adapter in front of it.

    ``url`` is the adapter (what influxdb-client and the gateway use); ``query()`` runs
    InfluxQL against the database directly.
    """

    name = "influxdb"
    database = "wardwatch"

    def __init__(self, workdir: Path, port: int | None = None):
        super().__init__(workdir)
        self.http_port = port or free_port()
        self.rpc_port = free_port()
        self.conf = self.workdir / "influxdb.conf"
        self.adapter = V2WriteAdapter(f"127.0.0.1:{self.http_port}")
        self.ql = InfluxQL(f"http://127.0.0.1:{self.http_port}", self.database, timeout_s=30)

    @property
    def url(self) -> str:
        return self.adapter.url

    @property
    def bucket(self) -> str:
        return f"{self.database}/autogen"

    def _write_config(self) -> None:
        d = self.workdir
        self.conf.write_text(
            f"""reporting-disabled = true
bind-address = "127.0.0.1:{self.rpc_port}"
[meta]
  dir = "{d}/meta"
[data]
  dir = "{d}/data"
  wal-dir = "{d}/wal"
  query-log-enabled = false
  wal-fsync-delay = "0s"
[http]
  bind-address = "127.0.0.1:{self.http_port}"
  log-enabled = false
  max-body-size = 0
[monitor]
  store-enabled = false
[continuous_queries]
  enabled = false
[logging]
  level = "warn"
"""
        )

    def _ping(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}/ping", timeout=1) as r:
                return r.status == 204
        except (urllib.error.URLError, OSError):
            return False

    def start(self) -> "InfluxDB":
        self._write_config()
        self._spawn([_binary("influxd"), "-config", str(self.conf)])
        wait_until(lambda: self._check_alive() or self._ping(), 60, "influxd to answer /ping")
        self.query(f"CREATE DATABASE {quote_ident(self.database)}", method="POST")
        if not self.adapter._thread.is_alive():
            self.adapter.start()
        return self

    def stop(self, kill: bool = False) -> None:
        """Stop influxd only; the adapter keeps answering (503) as a real endpoint would."""
        super().stop(kill)

    def close(self) -> None:
        self.stop()
        self.adapter.stop()

    def query(self, q: str, method: str = "GET") -> list[dict]:
        """Run InfluxQL on the database itself; the series of the first statement."""
        return self.ql.series(q, method)

    def rows(self, q: str) -> list[dict]:
        """Run InfluxQL and flatten every series into dicts (tags merged into each row)."""
        return self.ql.rows(q)


class Stack:
    """Mosquitto + InfluxDB (+ adapter) under one directory; a context manager.

    Stops everything it started on exit, on error and on Ctrl-C.
    """

    def __init__(self, workdir: Path, users: dict[str, str] | None = None):
        self.workdir = Path(workdir)
        self.mosquitto = Mosquitto(self.workdir / "mosquitto", users)
        self.influx = InfluxDB(self.workdir / "influxdb")

    def start(self) -> "Stack":
        try:
            self.mosquitto.start()
            self.influx.start()
        except BaseException:
            self.close()
            raise
        return self

    def close(self) -> None:
        self.mosquitto.stop()
        self.influx.close()

    def __enter__(self) -> "Stack":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    def password(self, user: str) -> str:
        return self.mosquitto.users[user]


def exit_on_sigterm() -> None:
    """Turn SIGTERM into SystemExit so ``with``/``finally`` blocks stop the services we
    started (Python's default SIGTERM action would leave them running)."""

    def _exit(signum, frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, _exit)
