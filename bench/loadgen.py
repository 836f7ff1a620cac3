"""A lean load generator for the benchmarks: readings at QoS 1 over plain sockets.

``python bench/loadgen.py --port P --devices a,b,c [--connections K]`` (the broker password
in the environment variable PASSWORD_ENV) publishes normal readings round-robin over the
devices, spread over K MQTT 3.1.1 connections (device i on connection i mod K), at the
rate last read from stdin (``rate <n>`` lines, readings/s in total) until stdin closes; then
it waits up to 10 s for the last PUBACKs. Every 0.25 s, and once at the end, it prints one
JSON line ``{"t": epoch s, "sent": n, "acked": n}``; the last line also has ``"next"``:
device -> the next seq it would have sent (it sent seq 0..next-1, each once).

Packets come from the firmware's own encoder (``bedside.mqttpacket``), written with one
``sendall`` per connection per tick: paho spends ~130 us per publish (a thread wake-up
each), which on a 2-core host takes CPU from the gateway being measured. Each connection
keeps at most ``--window`` readings unacknowledged (paho's queue behind its window is
scanned per PUBACK, and a broker's in-flight limit is of the same order).

Readings carry ``low`` = their own seq: the gateway tracks and publishes each device's
watermark, as it does for the real firmware. Who uses it: ``throughput.py`` and
``alarm_latency.py`` (``LoadGen``).
"""

from __future__ import annotations

import argparse
import json
import os
import select
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from bedside import mqttpacket as mp
from provisioning.stack.services import terminate

PASSWORD_ENV = "WARDWATCH_BENCH_MQTT_PASSWORD"
TICK_S = 0.002


def reading(dev: str, seq: int, ts: int, hr: int) -> bytes:
    return (
        f'{{"v":1,"dev":"{dev}","seq":{seq},"low":{seq},"ts":{ts},"tq":1,"hr":{hr},"spo2":97,"temp":36.8,'
        f'"pi":2.1,"sqi":0.9,"probe":"ok","sim":true}}'
    ).encode()


class _Conn:
    """One MQTT connection: its devices, packet ids and unacknowledged count."""

    def __init__(self, port: int, client_id: str, user: str, password: str):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.sendall(mp.connect(client_id, keepalive=60, user=user, password=password))
        buf = b""
        while (found := mp.split(buf)) is None:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise RuntimeError("broker closed the connection before CONNACK")
            buf += chunk
        ptype, _, start, end = found
        if ptype != mp.CONNACK or mp.parse_connack(buf[start:end])[1] != 0:
            raise RuntimeError(f"broker refused the load generator: {buf[:end]!r}")
        self.buf = buf[end:]
        self.sock.setblocking(False)
        self.pid = 0
        self.unacked = 0
        self.out = b""

    def read_acks(self) -> int:
        """Count the PUBACKs that arrived (the broker acknowledges in order)."""
        n = 0
        while True:
            try:
                chunk = self.sock.recv(65536)
            except BlockingIOError:
                break
            if not chunk:
                raise RuntimeError("broker closed the load generator's connection")
            self.buf += chunk
        pos = 0
        buf = self.buf
        while (found := mp.split(buf, pos)) is not None:
            n += found[0] == mp.PUBACK
            pos = found[3]
        self.buf = buf[pos:]
        self.unacked -= n
        return n

    def flush(self) -> None:
        if self.out:
            try:
                sent = self.sock.send(self.out)
            except BlockingIOError:
                sent = 0
            self.out = self.out[sent:]


def worker(args) -> int:
    devices = args.devices.split(",")
    user = args.user
    password = os.environ[PASSWORD_ENV]
    conns = [_Conn(args.port, f"{args.client_prefix}-{k}", user, password) for k in range(min(args.connections, len(devices)))]
    topics = [f"{args.prefix}/{args.ward_of[d] if args.ward_of else args.ward}/{d}/vitals".encode() for d in devices]
    seqs = [0] * len(devices)
    pace = {"rate": 0.0, "t": time.monotonic(), "n": 0}
    lock = threading.Lock()
    stop = threading.Event()

    def control():
        for line in sys.stdin:
            parts = line.split()
            if len(parts) == 2 and parts[0] == "rate":
                with lock:
                    pace.update(rate=float(parts[1]), t=time.monotonic(), n=-1)
        stop.set()

    threading.Thread(target=control, daemon=True).start()
    sent = acked = 0
    window = args.window
    next_status = next_ping = time.monotonic()
    cursor = 0  # the next device, round-robin
    ndev, nconn = len(devices), len(conns)

    def status(final: bool = False):
        doc = {"t": time.time(), "sent": sent, "acked": acked}
        if final:
            doc["next"] = dict(zip(devices, seqs))
        print(json.dumps(doc), flush=True)

    drain_until = 0.0
    try:
        while True:
            now = time.monotonic()
            if stop.is_set():
                drain_until = drain_until or now + 10
                if acked >= sent or now > drain_until:
                    break
            with lock:
                if pace["n"] < 0:
                    pace["n"] = sent
                rate, t_base, n_base = pace["rate"], pace["t"], pace["n"]
            due = int(n_base + (now - t_base) * rate) if rate > 0 and not stop.is_set() else sent
            if due - sent > rate * 0.2:
                # Fell behind (scheduler, broker): carry on at the rate rather than burst.
                with lock:
                    pace.update(t=now, n=sent)
                due = sent
            n = due - sent
            if n > 0:
                ts = int(time.time() * 1000)
                batches: list[list[bytes]] = [[] for _ in conns]
                for _ in range(n):
                    k = cursor
                    c = k % nconn
                    conn = conns[c]
                    if conn.unacked >= window:
                        break  # this connection's window is full: wait for its PUBACKs
                    conn.pid = conn.pid % 65535 + 1
                    conn.unacked += 1
                    batches[c].append(mp.publish(topics[k], reading(devices[k], seqs[k], ts, 60 + k % 30), qos=1, pid=conn.pid))
                    seqs[k] += 1
                    sent += 1
                    cursor = (k + 1) % ndev
                for conn, packets in zip(conns, batches):
                    if packets:
                        conn.out += b"".join(packets)
            for conn in conns:
                conn.flush()
            readable, _, _ = select.select([c.sock for c in conns], [], [], TICK_S)
            if readable:
                for conn in conns:
                    acked += conn.read_acks()
            if now >= next_status:
                status()
                next_status = now + 0.25
            if now >= next_ping:
                for conn in conns:
                    conn.out += mp.PINGREQ_PKT
                next_ping = now + 20
    finally:
        status(final=True)
        for conn in conns:
            try:
                conn.sock.setblocking(True)
                conn.sock.sendall(conn.out + mp.DISCONNECT_PKT)
            except OSError:
                pass
            conn.sock.close()
    return 0


class LoadGen:
    """The load generator as a child process (its own GIL and CPU figure) and its latest status.

    ``devices`` maps device id -> ward. Who uses it: ``throughput.py``."""

    def __init__(self, port: int, user: str, password: str, devices: dict[str, str], log: Path,
                 connections: int = 8, client_prefix: str = "bench-load", prefix: str = "wardwatch/v1"):
        self.log = open(log, "ab")
        wards = sorted(set(devices.values()))
        ward_arg = ["--ward", wards[0]] if len(wards) == 1 else ["--ward-of", json.dumps(devices)]
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--port", str(port), "--user", user, "--devices", ",".join(devices),
             "--connections", str(connections), "--client-prefix", client_prefix, "--prefix", prefix, *ward_arg],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log, env={**os.environ, PASSWORD_ENV: password},
            text=True, start_new_session=True,
        )
        self.last: dict = {"t": time.time(), "sent": 0, "acked": 0}
        self.updated = threading.Event()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            try:
                self.last = json.loads(line)
                self.updated.set()
            except ValueError:
                pass

    def set_rate(self, rate: float) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(f"rate {rate}\n")
        self.proc.stdin.flush()

    def snapshot(self) -> dict:
        """A status line fresher than this call (at most 0.25 s old)."""
        if self.proc.poll() is not None:
            raise RuntimeError(f"load generator exited {self.proc.returncode}")
        self.updated.clear()
        self.updated.wait(2)
        return dict(self.last)

    def close(self) -> None:
        """Stop it whatever state it is in (for a finally: clause); see ``finish`` for the
        final status."""
        try:
            if self.proc.stdin:
                self.proc.stdin.close()
            self.proc.wait(timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            pass
        terminate(self.proc, timeout=5)
        self.reader.join(timeout=2)
        self.log.close()

    def finish(self, timeout: float = 20) -> dict:
        """Stop publishing, wait for the last PUBACKs; the final status (with ``next``)."""
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=timeout)
        self.reader.join(timeout=2)
        self.log.close()
        if "next" not in self.last:
            raise RuntimeError("load generator gave no final status")
        return self.last


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--user", required=True)
    ap.add_argument("--devices", required=True, help="comma-separated device ids")
    ap.add_argument("--ward", default="bench", help="the ward of every device")
    ap.add_argument("--ward-of", type=json.loads, default=None, help="JSON device -> ward, instead of --ward")
    ap.add_argument("--prefix", default="wardwatch/v1")
    ap.add_argument("--connections", type=int, default=8)
    ap.add_argument("--window", type=int, default=500, help="unacknowledged readings per connection at most")
    ap.add_argument("--client-prefix", default="bench-load")
    return worker(ap.parse_args())


if __name__ == "__main__":
    sys.exit(main())
