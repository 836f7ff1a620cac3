"""Finding boards on serial ports, and pairing them with inventory entries.

Boards are recognised by the USB vendor/product id of their USB interface (pyserial's
``serial.tools.list_ports.comports()``): the ESP32's own USB (Espressif), the USB-UART
bridges of ESP32 DevKits (Silicon Labs CP210x, WCH CH340/CH9102, FTDI) and the RP2040's
MicroPython USB CDC. Pure apart from :func:`scan`, which asks the operating system.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

# (vid, pid or None for any product of the vendor) -> what it is. Sources: the vendors' USB
# ids as listed in the Linux usb.ids database; MicroPython's rp2 port uses 2E8A:0005.
USB_IDS: dict[tuple[int, int | None], str] = {
    (0x303A, None): "Espressif USB",
    (0x10C4, 0xEA60): "Silicon Labs CP210x",
    (0x10C4, 0xEA70): "Silicon Labs CP2105",
    (0x1A86, 0x7523): "WCH CH340",
    (0x1A86, 0x55D4): "WCH CH9102",
    (0x0403, 0x6001): "FTDI FT232R",
    (0x0403, 0x6010): "FTDI FT2232",
    (0x0403, 0x6015): "FTDI FT-X",
    (0x2E8A, 0x0005): "Raspberry Pi RP2040 (MicroPython)",
}


@dataclass(frozen=True)
class FoundBoard:
    port: str  # e.g. /dev/ttyUSB0, /dev/ttyACM0
    serial_number: str  # the USB serial number ("" when the adapter reports none)
    kind: str  # what USB_IDS says it is


def usb_kind(vid: int | None, pid: int | None) -> str | None:
    """The USB_IDS name for a vendor/product pair, or None for anything else."""
    if vid is None:
        return None
    return USB_IDS.get((vid, pid)) or USB_IDS.get((vid, None))


def boards_in(ports: Iterable) -> list[FoundBoard]:
    """The ports (objects with pyserial ``ListPortInfo``'s ``device``, ``vid``, ``pid``,
    ``serial_number``) that look like boards, sorted by port name."""
    found = []
    for p in ports:
        kind = usb_kind(p.vid, p.pid)
        if kind is not None:
            found.append(FoundBoard(p.device, p.serial_number or "", kind))
    return sorted(found, key=lambda b: b.port)


def scan() -> list[FoundBoard]:
    """Boards attached to this host now."""
    from serial.tools import list_ports

    return boards_in(list_ports.comports())


@dataclass(frozen=True)
class Pairing:
    assigned: dict[str, str]  # device id -> port
    missing: list[str]  # inventory devices with a port or serial number that was not found
    unknown: list[FoundBoard]  # boards found that no inventory entry claims


def pair(entries: Iterable, found: list[FoundBoard]) -> Pairing:
    """Match inventory entries (``id``, ``port``, ``serial_number``) to found boards: by USB
    serial number first (it survives replugging into another port), else by fixed port. An
    entry's fixed ``port`` that is not a recognised board (a pseudo-terminal, an unlisted
    adapter) is used as given: the person who wrote it knows the board is there."""
    by_serial = {b.serial_number: b for b in found if b.serial_number}
    assigned: dict[str, str] = {}
    missing: list[str] = []
    used: set[str] = set()
    for e in entries:
        board = by_serial.get(e.serial_number) if e.serial_number else None
        if board is not None:
            assigned[e.id] = board.port
        elif e.port and not e.serial_number:
            assigned[e.id] = e.port
        elif e.serial_number or e.port:
            missing.append(e.id)
            continue
        else:
            continue  # neither given: only `--port` on the command line can place it
        used.add(assigned[e.id])
    unknown = [b for b in found if b.port not in used]
    return Pairing(assigned, missing, unknown)
