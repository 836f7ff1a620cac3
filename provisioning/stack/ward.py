"""A whole simulated ward on a Stack: device credentials, registry, gateway, simulator.

Who calls it: the demo, the end-to-end tests and bench. Everything it starts it stops.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

from .. import broker
from .gateway_proc import GatewayProcess, write_registry
from .services import Stack, terminate, wait_until

REPO = Path(__file__).resolve().parents[2]
SCENARIOS = REPO / "firmware" / "wardsim" / "scenarios"


def sim_device_ids(ward: str, beds: int) -> list[str]:
    """The simulator's device ids: ``sim-<ward>-<NN>``, NN = bed number."""
    return [f"sim-{ward}-{n:02d}" for n in range(1, beds + 1)]


def write_credentials(path: Path, devices: list[str]) -> dict[str, str]:
    """A random password per device, in ``user:password`` lines (0600); returns the map."""
    creds = {dev: secrets.token_urlsafe(18) for dev in devices}
    broker.save_credentials(path, creds)
    return creds


class SimProcess:
    """``wardwatch sim`` as a child process; ``summary()`` reads its exit summary."""

    def __init__(self, stack: Stack, workdir: Path, ward: str, beds: int, credentials: Path, *extra: str):
        self.workdir = Path(workdir)
        self.summary_file = self.workdir / f"sim-{ward}.json"
        self.log = self.workdir / f"sim-{ward}.log"
        self.argv = [
            sys.executable, "-m", "gateway.cli", "sim", "--ward", ward, "--beds", str(beds),
            "--broker", f"127.0.0.1:{stack.mosquitto.port}", "--credentials", str(credentials),
            "--summary", str(self.summary_file), *extra,
        ]
        self.proc: subprocess.Popen | None = None

    def start(self) -> "SimProcess":
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        return self

    def wait(self, timeout: float) -> int:
        assert self.proc is not None
        rc = self.proc.wait(timeout=timeout)
        if rc != 0:
            raise RuntimeError(f"simulator exited {rc}:\n{self.log.read_text()[-3000:]}")
        return rc

    def stop(self) -> None:
        terminate(self.proc)

    def summary(self) -> dict:
        return json.loads(self.summary_file.read_text())


class Ward:
    """Stack + gateway + simulator for one ward of ``beds`` simulated devices."""

    def __init__(self, workdir: Path, ward: str = "w1", beds: int = 12, gateway_settings: dict | None = None):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.ward = ward
        self.beds = beds
        self.credentials = self.workdir / "devices.credentials"
        creds = write_credentials(self.credentials, sim_device_ids(ward, beds))
        self.registry = write_registry(self.workdir / "devices.toml", ward, beds)
        self.stack = Stack(self.workdir / "stack", users=creds)
        self.gateway = GatewayProcess(self.stack, self.workdir / "gateway", self.registry, **(gateway_settings or {}))
        self.sim: SimProcess | None = None

    def start(self) -> "Ward":
        try:
            self.stack.start()
            self.gateway.start()
        except BaseException:
            self.close()
            raise
        return self

    def start_sim(self, *extra: str) -> SimProcess:
        self.sim = SimProcess(self.stack, self.workdir, self.ward, self.beds, self.credentials, *extra).start()
        return self.sim

    def admit_all(self, user: str = "demo") -> None:
        """Admit a patient (``<ward>-bed-NN``) to every bed, as the operator account."""
        from gateway import config
        from gateway.cli import alarm_client

        cfg = config.load(None, env=self.gateway.operator_env())
        for n in range(1, self.beds + 1):
            bed = f"{n:02d}"
            alarm_client.send(cfg, self.ward, {"op": "admit", "user": user, "bed": bed, "patient": f"{self.ward}-bed-{bed}"})

    def write_operator_env(self) -> Path:
        """A 0600 shell file exporting the operator's connection settings for ``wardwatch``."""
        path = self.workdir / "operator.env"
        env = self.gateway.operator_env()
        keys = ("WARDWATCH_MQTT_HOST", "WARDWATCH_MQTT_PORT", "WARDWATCH_MQTT_USERNAME", "WARDWATCH_MQTT_PASSWORD")
        path.write_text("".join(f"export {k}={env[k]}\n" for k in keys))
        os.chmod(path, 0o600)
        return path

    def wait_for_beds(self, timeout: float = 60) -> None:
        wait_until(
            lambda: len(self.stack.influx.rows("SELECT last(seq) FROM vitals GROUP BY device")) >= self.beds,
            timeout,
            f"readings from all {self.beds} beds",
        )

    def close(self) -> None:
        if self.sim:
            self.sim.stop()
        self.gateway.stop()
        self.stack.close()

    def __enter__(self) -> "Ward":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()
