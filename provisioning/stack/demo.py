"""``make demo``: a 12-bed simulated ward, one patient deteriorating, in a live ward view
with its alarms and NEWS2.

Starts Mosquitto and InfluxDB on free loopback ports with data under ``.run/demo/``, the
gateway, and the simulator running the real firmware for 12 beds; shows the ward view until
Ctrl-C (or ``--duration``), then stops everything it started. When a Grafana server binary is
on the PATH it also starts Grafana on this tree's dashboards (``provisioning.stack.grafana``)
and prints the ward overview's URL; otherwise it prints one line on how to get Grafana.
"""

from __future__ import annotations

import argparse
import shutil
import signal
import sys
from pathlib import Path

from rich.console import Console

from gateway.cli import wardview
from gateway.influxql import InfluxQL

from . import grafana as grafana_mod
from .services import exit_on_sigterm
from .ward import REPO, SCENARIOS, Ward


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m provisioning.stack.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--beds", type=int, default=12)
    parser.add_argument("--ward", default="w1")
    parser.add_argument("--duration", type=float, default=None, metavar="S", help="stop after S seconds")
    parser.add_argument("--dir", type=Path, default=REPO / ".run" / "demo", help="where the demo keeps its data")
    parser.add_argument("--no-grafana", action="store_true", help="do not start Grafana even if it is installed")
    args = parser.parse_args(argv)
    exit_on_sigterm()

    console = Console()
    shutil.rmtree(args.dir, ignore_errors=True)
    console.print("[bold]WardWatch demo[/]: secondary alarm and trend system, [bold]not a medical device[/].")
    console.print(f"Starting Mosquitto, InfluxDB and the gateway under {args.dir} ...")
    ward = Ward(args.dir, args.ward, args.beds)
    grafana = None
    grafana_line = grafana_mod.NOT_FOUND
    try:
        ward.start()
        binary = None if args.no_grafana else grafana_mod.find_binary()
        if binary:
            influx_ = ward.stack.influx
            console.print(f"Starting Grafana ({binary}) ...")
            grafana = grafana_mod.Grafana(args.dir / "grafana", binary, f"http://127.0.0.1:{influx_.http_port}",
                                          influx_.database)
            try:
                grafana.start()
                grafana_line = (f"Grafana         {grafana_mod.overview_url(grafana.port, args.ward)}  "
                                f"(ward overview; anonymous viewer, loopback only; log {grafana.log})")
            except (RuntimeError, TimeoutError, OSError) as exc:
                # The terminal view still works; say why Grafana is missing and where to look.
                grafana_line = f"Grafana         did not start ({str(exc).splitlines()[0]}); see {grafana.log}"
                grafana.stop()
                grafana = None
        elif args.no_grafana:
            grafana_line = "Grafana         not started (--no-grafana)"
        ward.admit_all()
        ward.start_sim("--scenario", str(SCENARIOS / "demo.toml"))
        influx = ward.stack.influx
        operator_env = ward.write_operator_env()
        console.print(
            f"""
Data is flowing:
  MQTT broker     127.0.0.1:{ward.stack.mosquitto.port}  (per-device credentials: {ward.credentials})
  InfluxDB 1.x    http://127.0.0.1:{influx.http_port}  database '{influx.database}'
  gateway health  http://127.0.0.1:{ward.gateway.health_port}/healthz
  logs            {ward.gateway.log}, {ward.sim.log}
  {grafana_line}

Try, in another terminal:
  curl -sG http://127.0.0.1:{influx.http_port}/query --data-urlencode db={influx.database} \\
    --data-urlencode "q=SELECT mean(spo2), min(spo2), max(hr) FROM vitals WHERE time > now() - 5m GROUP BY bed"
  . {operator_env}   # the ward station's MQTT account, then:
  .venv/bin/wardwatch alarms list --ward {args.ward}
  .venv/bin/wardwatch alarms ack --ward {args.ward} --bed 03 --user "your name"
  .venv/bin/wardwatch obs --ward {args.ward} --bed 03 --rr 24 --sbp 105 --acvpu A --air --user "your name"
  .venv/bin/wardwatch alarms report --since 1h --influx http://127.0.0.1:{influx.http_port} --database {influx.database}
"""
        )
        ward.wait_for_beds(timeout=60)
        db = InfluxQL(f"http://127.0.0.1:{influx.http_port}", influx.database)
        wardview.run(db, args.ward, refresh_s=1.0, duration_s=args.duration)
    except KeyboardInterrupt:
        pass
    finally:
        # A second Ctrl-C must not cut the clean-up short and leave services behind.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        console.print("\nStopping " + ("Grafana, " if grafana is not None else "")
                      + "the simulator, gateway, InfluxDB and Mosquitto ...")
        if grafana is not None:
            grafana.stop()
        ward.close()
    console.print("Stopped. The data stays in " + str(args.dir) + " until the next demo.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
