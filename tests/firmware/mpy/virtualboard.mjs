// A virtual MicroPython board: real MicroPython 1.27 (WebAssembly port) whose REPL reads
// stdin and writes stdout as raw serial bytes. tests/firmware/virtualboard.py bridges these
// to a pseudo-terminal, so that real mpremote drives it like a board on a serial port.
//
// Usage: node virtualboard.mjs --flash DIR --uid HEX [--boot hard|soft|soft-raw]
//
// - "/" is a VFS written in MicroPython (virtualboard_vfs.py) over the host directory DIR,
//   the board's flash: files survive resets, errors carry MicroPython errno numbers.
// - `machine` (not on the flash): reset() and unique_id() (the HEX bytes).
// - A hard boot, and a soft reboot from the friendly REPL, run the firmware's config check
//   (`import main; main.check()`) when /main.py exists, printing any exception, as a board
//   runs main.py; then the REPL banner. A soft reboot from the raw REPL comes back in the raw
//   REPL, as MicroPython does (mpremote relies on it).
// - Resets end this process with an exit code; the Python side starts a new one with --boot
//   (a fresh interpreter each time, nothing shared): RESET_EXIT for machine.reset(),
//   SOFT_EXIT / SOFT_RAW_EXIT for Ctrl-D. Keep the codes in step with virtualboard.py.
// - The port's raw-paste mode never completes, so `\x05A\x01` in the raw REPL is answered
//   `R\x00` (understood, not supported) and mpremote falls back to the plain raw REPL.
//   That fallback paces writes (10 ms per 256 bytes): fs_writefile runs at about 8 KiB/s.
// - Code runs synchronously inside one input byte's handling, so Ctrl-C cannot interrupt
//   it: a main.check() that never returns hangs the board.
import { loadMicroPython } from "@micropython/micropython-webassembly-pyscript";
import fs from "node:fs";
import path from "node:path";

const RESET_EXIT = 75;
const SOFT_EXIT = 76;
const SOFT_RAW_EXIT = 77;
const RAW_BANNER = "raw REPL; CTRL-B to exit\r\n";

const opts = { boot: "hard" };
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i += 2) opts[argv[i].replace(/^--/, "")] = argv[i + 1];
const flash = path.resolve(opts.flash);
const vfsSource = fs.readFileSync(new URL("./virtualboard_vfs.py", import.meta.url), "utf8");

// Serial output: bytes are collected and written in one synchronous write per input chunk
// (and before exiting), so nothing is lost when a reset ends the process.
let out = [];
let muted = false;
let capture = null;
function emit(bytes) {
  if (capture) capture.push(...bytes);
  if (muted) return;
  for (const c of bytes) out.push(c);
  if (out.length > 65536) flush();
}
function flush() {
  if (out.length) {
    const buf = Buffer.from(out);
    out = [];
    let off = 0;
    while (off < buf.length) off += fs.writeSync(1, buf, off);
  }
}
function exit(code) {
  flush();
  process.exit(code);
}

// The flash: paths from the VFS are absolute on the board; they must stay inside `flash`.
function hostPath(p) {
  const full = path.resolve(flash, "." + p);
  if (full !== flash && !full.startsWith(flash + path.sep)) throw Object.assign(new Error(p), { code: "EACCES" });
  return full;
}
const ERRNO = { EPERM: 1, ENOENT: 2, EIO: 5, EBADF: 9, EACCES: 13, EBUSY: 16, EEXIST: 17, EXDEV: 18, ENOTDIR: 20, EISDIR: 21, EINVAL: 22, ENOSPC: 28, ENOTEMPTY: 39 };
const answer = (fn) => (...args) => {
  try {
    return JSON.stringify({ v: fn(...args) });
  } catch (e) {
    return JSON.stringify({ e: ERRNO[e.code] ?? 5 });
  }
};
const kind = (st) => (st.isDirectory() ? 0x4000 : 0x8000);
const hostfs = {
  read: (p) => {
    try {
      return new Uint8Array(fs.readFileSync(hostPath(p)));
    } catch {
      return null;
    }
  },
  write: answer((p, hex) => fs.writeFileSync(hostPath(p), Buffer.from(hex, "hex"))),
  stat: answer((p) => {
    const st = fs.statSync(hostPath(p));
    return [kind(st), st.isDirectory() ? 0 : st.size, Math.floor(st.mtimeMs / 1000)];
  }),
  listdir: answer((p) => {
    const dir = hostPath(p);
    return fs.readdirSync(dir).sort().map((name) => {
      const st = fs.statSync(path.join(dir, name));
      return [name, kind(st), st.isDirectory() ? 0 : st.size];
    });
  }),
  mkdir: answer((p) => fs.mkdirSync(hostPath(p))),
  rmdir: answer((p) => fs.rmdirSync(hostPath(p))),
  remove: answer((p) => {
    if (fs.statSync(hostPath(p)).isDirectory()) throw Object.assign(new Error(p), { code: "EISDIR" });
    fs.unlinkSync(hostPath(p));
  }),
  rename: answer((a, b) => fs.renameSync(hostPath(a), hostPath(b))),
};
const board = {
  reset: () => exit(RESET_EXIT),
  uid: opts.uid ?? "",
  vfs_src: vfsSource,
};

// Runs in __main__ at boot and leaves it empty, as on a board.
const SETUP = `
def _setup():
    import sys, vfs, os, binascii, _vboard
    ns = {}
    exec(_vboard.vfs_src, ns)
    vfs.umount("/")  # the Emscripten filesystem: its errno values are not MicroPython's
    vfs.mount(ns["HostVfs"](), "/")
    os.chdir("/")

    class machine:
        @staticmethod
        def reset():
            _vboard.reset()

        @staticmethod
        def unique_id():
            return binascii.unhexlify(_vboard.uid)

    sys.modules["machine"] = machine
_setup()
del _setup
`;
const CHECK = `
def _check():
    import os, sys
    try:
        os.stat("/main.py")
    except OSError:
        return
    try:
        import main
        main.check()
    except BaseException as e:
        sys.print_exception(e)
_check()
del _check
`;

const mp = await loadMicroPython({ heapsize: 4 * 1024 * 1024, stdout: emit, stderr: emit, linebuffer: false });
mp.registerJsModule("hostfs", hostfs);
mp.registerJsModule("_vboard", board);
mp.runPython(SETUP);
if (opts.boot !== "soft-raw") mp.runPython(CHECK);
let raw = opts.boot === "soft-raw";
muted = raw;
mp.replInit();
if (raw) {
  mp.replProcessChar(1); // Ctrl-A: back to the raw REPL, quietly; then its banner alone
  muted = false;
  emit(Buffer.from(RAW_BANNER + ">"));
}
flush();

// Which REPL is active decides what a soft reboot comes back to; MicroPython keeps that in
// C, so follow it from the banners Ctrl-A and Ctrl-B print.
function feed(c) {
  if (c !== 1 && c !== 2) return mp.replProcessChar(c);
  capture = [];
  const ret = mp.replProcessChar(c);
  const said = Buffer.from(capture).toString("latin1");
  capture = null;
  if (c === 1 && said.includes(RAW_BANNER)) raw = true;
  if (c === 2 && said.includes("MicroPython v")) raw = false;
  return ret;
}

const PASTE = [5, 0x41, 1];
let pasteMatched = 0;
function input(c) {
  if (raw && c === PASTE[pasteMatched]) {
    if (++pasteMatched === PASTE.length) {
      pasteMatched = 0;
      emit(Buffer.from("R\x00"));
    }
    return;
  }
  const held = PASTE.slice(0, pasteMatched);
  pasteMatched = 0;
  for (const h of [...held, c]) {
    if (feed(h)) {
      // Ctrl-D asked for a soft reboot
      emit(Buffer.from("MPY: soft reboot\r\n"));
      exit(raw ? SOFT_RAW_EXIT : SOFT_EXIT);
    }
  }
}

process.stdin.on("data", (chunk) => {
  for (const c of chunk) input(c);
  flush();
});
process.stdin.on("end", () => exit(0));
