"""``wardwatch provision device``: flash boards from the inventory, with their credentials.

One board: ``--device ID --port PORT``. A batch: ``--all`` flashes every inventory device
whose board is found (by USB serial number among the boards on serial ports, or by the
entry's fixed ``port``), several at once. For each board, in order:

1. credentials: the device's MQTT password from ``--credentials`` (``user:password`` lines,
   0600, the file ``provision broker`` reads), generated at random when it has none; its
   hashed line added to the broker's password file (``--passwd``) and its bed to the
   gateway's registry (``--registry``) when given. Nothing secret is printed or logged.
2. identify: the board's platform, MicroPython version and ``sys.implementation._mpy``;
   refuse a board whose platform contradicts the inventory.
3. build: the firmware compiled by the mpy-cross that emits the board's ``.mpy`` version,
   with its ``-march`` (``provisioning.firmware_image``), plus ``/config.json`` and the CA.
4. copy: hash every file on the board in one go, copy only those that differ, remove stale
   firmware files (an old ``.py`` would shadow its ``.mpy``), hash again to verify.
5. check: the firmware's config check runs on the board and must print ``check: ok``.
6. reset, and with ``--wait-status S`` wait for the board's first live ``online`` status.

A board that fails stops only itself; the summary names the reason, and the command exits
1. Running it again changes nothing that is already right (files with the same hash are not
copied; credentials and registry entries are kept).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import secrets
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from gateway.config import ConfigError

from . import inventory as inv
from . import serialports
from .board_link import BoardError, BoardInfo, BoardLink
from .broker import _write_private, check_account, read_credentials, save_credentials, write_password_file
from .firmware_image import ImageError, MpyTarget, build, compiler_for, decode_mpy

HELP = "flash boards with mpremote: firmware compiled for each board, config, per-device credentials"

BOARD_CA = "/ca.crt"
# The inventory's board type -> what such a board reports as sys.platform.
PLATFORMS = {"esp32": "esp32", "rp2": "rp2"}
# Stale firmware lives here; anything else on the board (seq files, user files) is left alone.
FIRMWARE_FOLDER = "/lib/bedside"


# ---- pure parts -----------------------------------------------------------------------------

def board_config(e: inv.Entry, site: inv.Site, password: str, wifi_key: str | None) -> bytes:
    """The board's ``/config.json`` (firmware/README.md, "Config"), byte-stable for the
    same input so an unchanged config is not copied again. ``sim`` is always written."""
    broker = {"host": site.broker_host, "user": e.id, "password": password, "tls": site.tls,
              "keepalive": site.keepalive_s}
    if site.broker_port is not None:
        broker["port"] = site.broker_port
    if site.tls and site.cafile:
        broker["cafile"] = BOARD_CA
    cfg: dict = {"dev": e.id, "ward": e.ward, "board": e.board, "sim": e.sim, "broker": broker,
                 "prefix": site.prefix, "rate_hz": site.rate_hz}
    if site.wifi_ssid:
        cfg["wifi"] = {"ssid": site.wifi_ssid, "key": wifi_key or ""}
    if e.sim:
        cfg["scenario"] = e.scenario or "stable"
    else:
        cfg["thermometer"] = e.thermometer
        if e.swap_red_ir:
            cfg["swap_red_ir"] = True
    return (json.dumps(cfg, sort_keys=True, separators=(",", ":")) + "\n").encode()


def platform_problem(expected_board: str, info: BoardInfo) -> str | None:
    """Why this board must not get this inventory entry's firmware, or None. A platform
    this table does not know (an emulated board) is accepted: it cannot contradict."""
    known = set(PLATFORMS.values())
    if info.platform in known and info.platform != PLATFORMS[expected_board]:
        return f"the inventory says {expected_board}, the board reports platform {info.platform}"
    return None


def copy_plan(image: dict[str, bytes], on_board: dict[str, str | None], board_files: list[str]):
    """(paths to copy, paths already identical, stale firmware paths to remove)."""
    copy = [p for p, data in image.items() if on_board.get(p) != hashlib.sha256(data).hexdigest()]
    same = [p for p in image if p not in copy]
    stale = sorted(p for p in board_files if p not in image)
    return copy, same, stale


# ---- credentials, broker password file, registry (host files) ------------------------------

class Credentials:
    """Device passwords in a ``user:password`` file (0600); new ones appended."""

    def __init__(self, path: Path):
        self.path = path
        self.users = read_credentials(path) if path.exists() else {}

    def password_for(self, device: str, rotate: bool = False) -> tuple[str, bool]:
        """(password, True if it is new)."""
        check_account(device)
        if device in self.users and not rotate:
            return self.users[device], False
        self.users[device] = secrets.token_urlsafe(24)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        save_credentials(self.path, self.users)
        return self.users[device], True


def add_to_passwd(passwd: Path, device: str, password: str, replace: bool) -> bool:
    """Add ``device`` to a Mosquitto password file (hashed by mosquitto_passwd); True if the
    file changed. An existing entry is kept unless ``replace`` (a rotated password)."""
    lines = passwd.read_text().splitlines() if passwd.exists() else []
    present = [ln for ln in lines if ln.split(":", 1)[0] == device]
    if present and not replace:
        return False
    with tempfile.TemporaryDirectory() as tmp:
        one = Path(tmp) / "one"
        write_password_file(one, {device: password})
        hashed = one.read_text().strip()
    kept = [ln for ln in lines if ln.split(":", 1)[0] != device]
    _write_private(passwd, "".join(ln + "\n" for ln in kept + [hashed]))
    return True


def add_to_registry(registry: Path, e: inv.Entry) -> bool:
    """Add ``[devices.<id>]`` with its ward and bed to the gateway's registry; True if added.
    A different placement already there is an error: moving a device is a decision for the
    person editing the registry, not for a flashing tool."""
    from gateway.registry import Registry

    if registry.exists():
        current = Registry.load(registry).placement(e.id)
        if current is not None:
            if (current.ward, current.bed) != (e.ward, e.bed):
                raise ConfigError(f"{registry} puts {e.id} in ward {current.ward} bed {current.bed}; "
                                  f"the inventory says ward {e.ward} bed {e.bed}: correct one of them")
            return False
    text = registry.read_text() if registry.exists() else ""
    sep = "" if not text or text.endswith("\n\n") else ("\n" if text.endswith("\n") else "\n\n")
    registry.write_text(f'{text}{sep}[devices.{e.id}]\nward = "{e.ward}"\nbed = "{e.bed}"\n')
    Registry.load(registry)  # still a valid registry
    return True


# ---- one board -------------------------------------------------------------------------------

@dataclass
class Outcome:
    device: str
    port: str
    ok: bool = False
    stage: str = "queued"
    reason: str = ""
    micropython: str = ""
    target: str = ""
    copied: int = 0
    skipped: int = 0
    removed: int = 0
    check: list[str] = field(default_factory=list)
    status: str = ""


class Images:
    """Firmware images built once per .mpy target in a batch (boards share them)."""

    def __init__(self, firmware: Path, workdir: Path):
        self.firmware = firmware
        self.workdir = workdir
        self._lock = threading.Lock()
        self._built: dict[str, dict[str, bytes]] = {}

    def for_board(self, target: MpyTarget, board_version: str) -> dict[str, bytes]:
        with self._lock:
            if target.tag not in self._built:
                compiler = compiler_for(target, board_version)
                self._built[target.tag] = build(self.firmware, target, self.workdir / target.tag, compiler)
            return self._built[target.tag]


class Progress:
    """What the per-board worker reports; the rich view and tests implement it."""

    def stage(self, device: str, stage: str, total: int | None = None) -> None: ...

    def advance(self, device: str, amount: int) -> None: ...


def provision_one(e: inv.Entry, port: str, extra: dict[str, bytes], images: Images, progress: Progress,
                  wait_status=None) -> Outcome:
    """Flash one board; never raises for a board problem (the Outcome says it)."""
    out = Outcome(e.id, port)

    def stage(name: str, total: int | None = None) -> None:
        out.stage = name
        progress.stage(e.id, name, total)

    try:
        stage("connect")
        with BoardLink(port) as link:
            stage("identify")
            info = link.identify()
            out.micropython = info.micropython
            problem = platform_problem(e.board, info)
            if problem:
                raise BoardError(problem)
            target = decode_mpy(info.mpy)
            out.target = target.tag
            stage("build")
            image = dict(images.for_board(target, info.micropython))
            image.update(extra)
            stage("hash")
            on_board = link.hashes(list(image))
            copy, same, stale = copy_plan(image, on_board, link.files_under(FIRMWARE_FOLDER))
            out.skipped = len(same)
            stage("copy", sum(len(image[p]) for p in copy))
            for path in stale:
                link.remove(path)
                out.removed += 1
            for path in copy:
                link.write(path, image[path], lambda n: progress.advance(e.id, n))
                out.copied += 1
            stage("verify")
            after = link.hashes(list(image))
            wrong = [p for p, data in image.items() if after.get(p) != hashlib.sha256(data).hexdigest()]
            if wrong:
                raise BoardError(f"sha256 differs after copying: {', '.join(wrong)}")
            stage("check")
            out.check = [ln.removeprefix("check: ") for ln in link.check() if ln.startswith("check:")]
            if not out.check or out.check[-1] != "ok":
                raise BoardError("config check: " + (out.check[-1] if out.check else "no output"))
            stage("reset")
            watcher = wait_status.watch(e) if wait_status else None
            link.reset()
        if watcher is not None:
            stage("status")
            out.status = watcher.wait()
        out.ok = True
        stage("done")
    except (BoardError, ImageError, OSError) as exc:
        out.reason = f"{out.stage}: {exc}"
        progress.stage(e.id, "FAILED")
    except Exception as exc:  # noqa: BLE001 - one board's surprise must not stop the batch
        out.reason = f"{out.stage}: {type(exc).__name__}: {exc}"
        progress.stage(e.id, "FAILED")
    return out


# ---- the command ---------------------------------------------------------------------------

def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--inventory", required=True, type=Path, help="the device inventory (TOML; see "
                   "provisioning/inventory.example.toml)")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--device", metavar="ID", help="flash this inventory device (with --port, or its own port)")
    which.add_argument("--all", action="store_true",
                       help="flash every inventory device whose board is found (USB serial number or fixed port)")
    which.add_argument("--list", action="store_true", help="list the boards on serial ports and their inventory devices")
    p.add_argument("--port", help="the board's serial port, e.g. /dev/ttyUSB0 (with --device)")
    p.add_argument("--credentials", required=False, type=Path,
                   help="device passwords, user:password lines (0600); new devices get a random one added")
    p.add_argument("--passwd", type=Path, help="the broker's password file: add each device's hashed password")
    p.add_argument("--registry", type=Path, help="the gateway's device registry: add each device's ward and bed")
    p.add_argument("--rotate", action="store_true", help="give the devices new passwords (old ones stop working)")
    p.add_argument("--firmware", type=Path, default=None,
                   help="the firmware folder (main.py, bedside/); default: the one this install came from")
    p.add_argument("--jobs", type=int, default=4, help="boards flashed at once (default %(default)s)")
    p.add_argument("--wait-status", type=float, default=0, metavar="S",
                   help="after the reset, wait up to S seconds for each board's first online status")
    p.add_argument("--status-user", default="wardwatch-gateway",
                   help="MQTT account that may read the devices' status (default %(default)s)")
    p.add_argument("--status-password-file", type=Path, help="that account's password file")
    p.add_argument("--status-host", help="broker host for the status watch (default: the inventory's broker_host)")
    p.add_argument("--status-port", type=int, help="broker port for the status watch (default: the inventory's)")
    p.add_argument("--status-tls", action=argparse.BooleanOptionalAction, default=None,
                   help="TLS for the status watch (default: the inventory's tls, with its cafile)")


def default_firmware() -> Path:
    import bedside

    return Path(bedside.__file__).resolve().parent.parent


class RichProgress(Progress):
    """One bar per board (rich), its stage as the description."""

    def __init__(self, progress, devices: list[str]):
        self._p = progress
        self._tasks = {d: progress.add_task(f"{d}: queued", total=None) for d in devices}

    def stage(self, device: str, stage: str, total: int | None = None) -> None:
        task = self._tasks[device]
        if stage == "copy":
            self._p.update(task, description=f"{device}: copy", total=max(total or 0, 1), completed=0)
        elif stage in ("done", "FAILED"):
            t = self._p.tasks[task].total or 1
            self._p.update(task, description=f"{device}: {stage}", total=t, completed=t)
        else:
            self._p.update(task, description=f"{device}: {stage}")

    def advance(self, device: str, amount: int) -> None:
        self._p.advance(self._tasks[device], amount)


def _select(args, inventory: inv.Inventory) -> tuple[dict[str, str], list[str]]:
    """{device: port} to flash, and problems to report (devices that cannot be placed)."""
    if args.device:
        e = inventory.devices.get(args.device)
        if e is None:
            raise ConfigError(f"{inventory.path}: no [devices.{args.device}]")
        port = args.port or e.port
        if not port:
            pairing = serialports.pair([e], serialports.scan())
            port = pairing.assigned.get(e.id, "")
        if not port:
            raise ConfigError(f"{args.device}: give --port (no fixed port in the inventory and no board found "
                              f"with USB serial number {e.serial_number!r})" if e.serial_number else
                              f"{args.device}: give --port")
        return {e.id: port}, []
    pairing = serialports.pair(inventory.devices.values(), serialports.scan())
    problems = [f"{d}: board not found (port or USB serial number in the inventory)" for d in pairing.missing]
    problems += [f"{b.port}: {b.kind} with USB serial number {b.serial_number or '(none)'} is in no inventory "
                 f"entry: add serial_number = \"{b.serial_number}\" to its device" for b in pairing.unknown]
    return pairing.assigned, problems


def _list(inventory: inv.Inventory, console) -> int:
    from rich.table import Table

    found = serialports.scan()
    pairing = serialports.pair(inventory.devices.values(), found)
    owner = {port: dev for dev, port in pairing.assigned.items()}
    table = Table("port", "adapter", "USB serial number", "device")
    for b in found:
        table.add_row(b.port, b.kind, b.serial_number or "-", owner.get(b.port, "(not in the inventory)"))
    console.print(table)
    return 0


def _summary(outcomes: list[Outcome], problems: list[str], console) -> None:
    from rich.table import Table

    table = Table("device", "port", "MicroPython", ".mpy", "copied", "same", "result")
    for o in outcomes:
        result = ("[green]ok[/green] " + o.status) if o.ok else f"[red]FAILED[/red] {o.reason}"
        table.add_row(o.device, o.port, o.micropython or "-", o.target or "-", str(o.copied), str(o.skipped),
                      result)
    console.print(table)
    for line in problems:
        console.print(f"[yellow]not flashed:[/yellow] {line}")


def run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress as RichBars, TextColumn

    console = Console()
    err = Console(stderr=True)
    try:
        inventory = inv.load(args.inventory)
        if args.list:
            return _list(inventory, console)
        if args.credentials is None:
            raise ConfigError("--credentials FILE is needed (the device passwords; created if missing)")
        targets, problems = _select(args, inventory)
        creds = Credentials(args.credentials)
        wifi_key = None
        if inventory.site.wifi_key_file:
            wifi_key = Path(inventory.site.wifi_key_file).read_text().strip()
        ca = Path(inventory.site.cafile).read_bytes() if inventory.site.tls and inventory.site.cafile else None
        firmware = args.firmware or default_firmware()
        status_password = (args.status_password_file.read_text().strip()
                            if args.status_password_file else os.environ.get("WARDWATCH_STATUS_PASSWORD", ""))
    except (ConfigError, ValueError, OSError) as exc:
        err.print(f"wardwatch provision device: {exc}", markup=False, highlight=False)
        return 2

    # Host files first, in this thread: the broker and the gateway know every device before
    # any board boots with its credentials.
    extras: dict[str, dict[str, bytes]] = {}
    failed: list[Outcome] = []
    reload_broker = False
    for dev in list(targets):
        e = inventory.devices[dev]
        try:
            password, new = creds.password_for(dev, rotate=args.rotate)
            if args.passwd:
                reload_broker |= add_to_passwd(args.passwd, dev, password, replace=new)
            if args.registry:
                add_to_registry(args.registry, e)
        except (ConfigError, ValueError, OSError, RuntimeError) as exc:
            failed.append(Outcome(dev, targets.pop(dev), reason=f"credentials: {exc}"))
            continue
        files = {"/config.json": board_config(e, inventory.site, password, wifi_key)}
        if ca is not None:
            files[BOARD_CA] = ca
        extras[dev] = files

    watch = None
    if args.wait_status and targets:
        from .first_status import StatusWatch

        site = inventory.site
        try:
            watch = StatusWatch(args.status_host or site.broker_host,
                                args.status_port or site.broker_port or (8883 if site.tls else 1883),
                                args.status_user, status_password, site.prefix, args.wait_status,
                                tls=site.tls if args.status_tls is None else args.status_tls,
                                cafile=site.cafile or None)
        except BoardError as exc:
            err.print(f"wardwatch provision device: {exc}", markup=False, highlight=False)
            return 2

    outcomes: list[Outcome] = []
    with tempfile.TemporaryDirectory(prefix="wardwatch-image-") as tmp:
        images = Images(firmware, Path(tmp))
        bars = RichBars(TextColumn("{task.description}"), BarColumn(), DownloadColumn(), console=err,
                        transient=False, disable=not targets)
        with bars:
            view = RichProgress(bars, list(targets))
            with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
                futures = [pool.submit(provision_one, inventory.devices[d], port, extras[d], images, view, watch)
                           for d, port in targets.items()]
                outcomes = [f.result() for f in futures]
    if watch is not None:
        watch.close()
    outcomes = failed + outcomes
    _summary(outcomes, problems, console)
    if reload_broker:
        console.print(f"{args.passwd} changed: reload Mosquitto (systemctl reload mosquitto) so new devices can log in")
    ok = sum(o.ok for o in outcomes)
    console.print(f"{ok} of {len(outcomes)} boards provisioned")
    return 0 if ok == len(outcomes) and not problems else 1
