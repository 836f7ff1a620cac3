"""Run the real gateway (``wardwatch gateway``) as a child process against a Stack.

Who calls it: tests, the demo and bench. It writes the gateway's config, secret files and
device registry under ``workdir``; ``kill()`` is a SIGKILL for crash tests.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

from .services import GATEWAY_USER, Stack, free_port, terminate, wait_until


def write_registry(path: Path, ward: str, beds: int) -> Path:
    """Registry for the simulator's devices: ``sim-<ward>-<NN>`` is bed NN of ``ward``."""
    with open(path, "a") as f:
        for n in range(1, beds + 1):
            f.write(f'[devices.sim-{ward}-{n:02d}]\nward = "{ward}"\nbed = "{n:02d}"\n\n')
    return path


class GatewayProcess:
    def __init__(self, stack: Stack, workdir: Path, registry: Path | None = None, env: dict | None = None, **settings):
        self.stack = stack
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.health_port = free_port()
        self.registry = registry
        self.settings = settings
        self.env = {**os.environ, **(env or {})}
        self.proc: subprocess.Popen | None = None
        self.log = self.workdir / "gateway.log"
        self.config = self.workdir / "gateway.toml"
        self._write_config()

    def _write_config(self) -> None:
        secret = self.workdir / "mqtt.password"
        secret.write_text(self.stack.password(GATEWAY_USER) + "\n")
        os.chmod(secret, 0o600)
        s = self.settings
        wards = json.dumps(s.get("wards", ["+"]))
        self.config.write_text(
            f"""state_dir = "{s.get('state_dir', self.workdir / 'state')}"
instance = "{s.get('instance', 'gw1')}"

[mqtt]
host = "127.0.0.1"
port = {self.stack.mosquitto.port}
username = "{GATEWAY_USER}"
password_file = "{secret}"
client_id = "{s.get('client_id', 'wardwatch-gateway')}"
wards = {wards}

[influx]
url = "{self.stack.influx.url}"
org = "wardwatch"
bucket = "{self.stack.influx.bucket}"
token = "unused-by-influxdb-1.x"
batch_size = {s.get('batch_size', 5000)}
flush_interval_ms = {s.get('flush_interval_ms', 50)}
timeout_ms = 5000

[spool]
max_bytes = {s.get('spool_max_bytes', 2 * 1024**3)}

[registry]
file = "{self.registry or ''}"

[health]
listen = "127.0.0.1:{self.health_port}"

[alarms]
enabled = {'true' if s.get('alarms', True) else 'false'}
limits_file = "{s.get('limits_file', '')}"
remind_s = {s.get('remind_s', 120)}

[log]
level = "info"
format = "json"
"""
        )

    def start(self, wait: bool = True) -> "GatewayProcess":
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "gateway.cli", "gateway", "--config", str(self.config)],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env=self.env,
            )
        if wait:
            wait_until(lambda: self._alive() and self.health().get("mqtt_connected"), 30, "gateway to connect")
        return self

    def _alive(self) -> bool:
        if self.proc is None or self.proc.poll() is not None:
            raise RuntimeError(f"gateway exited:\n{self.log.read_text()[-3000:]}")
        return True

    def health(self) -> dict:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.health_port}/healthz", timeout=2) as r:
                return json.load(r)
        except urllib.error.HTTPError as exc:
            return json.load(exc)
        except OSError:
            return {}

    def operator_env(self) -> dict:
        """Environment for ``wardwatch alarms|patients|obs`` as the stack's operator account."""
        from .services import OPERATOR_USER

        return {
            **self.env,
            "WARDWATCH_MQTT_HOST": "127.0.0.1",
            "WARDWATCH_MQTT_PORT": str(self.stack.mosquitto.port),
            "WARDWATCH_MQTT_USERNAME": OPERATOR_USER,
            "WARDWATCH_MQTT_PASSWORD": self.stack.password(OPERATOR_USER),
        }

    def cli(self, *args: str, check: bool = True, env: dict | None = None) -> subprocess.CompletedProcess:
        """Run ``wardwatch <args>`` as the operator (``env`` adds variables); returns the result."""
        proc = subprocess.run(
            [sys.executable, "-m", "gateway.cli", *args], env={**self.operator_env(), **(env or {})},
            capture_output=True, text=True, timeout=60,
        )
        if check and proc.returncode != 0:
            raise RuntimeError(f"wardwatch {' '.join(args)} failed ({proc.returncode}): {proc.stderr}")
        return proc

    def stop(self) -> None:
        terminate(self.proc)
        self.proc = None

    def kill(self) -> None:
        terminate(self.proc, kill=True)
        self.proc = None

    def __enter__(self) -> "GatewayProcess":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
