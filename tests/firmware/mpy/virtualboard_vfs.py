# The virtual board's filesystem, in MicroPython: a VFS object mounted at "/" by
# virtualboard.mjs. Its "flash" is a host directory reached through the JS module `hostfs`
# (Node's fs); hostfs answers JSON so that errors arrive as MicroPython errno numbers
# (ENOENT 2, not Emscripten's 44), which is what mpremote maps to "No such file".
#
# Files are read whole when opened and written back whole on flush/close: board files are
# small, and it keeps the host directory consistent across resets (a reset exits Node).
import io
import json
import binascii

import hostfs

S_IFDIR = 0x4000
S_IFREG = 0x8000


def _call(fn, *args):
    """Call a hostfs function; raise OSError(errno) on its {"e": n} answer, else return "v"."""
    r = json.loads(fn(*args))
    if "e" in r:
        raise OSError(r["e"])
    return r.get("v")


class HostFile(io.IOBase):
    """An open file: the whole content in RAM, written back on flush/close when writable.
    Stream protocol through readinto/write/ioctl (io.IOBase), so import and the VFS
    layer can read it like a native file."""

    def __init__(self, path, mode):
        self.path = path
        self.text = "b" not in mode
        self.writable = "w" in mode or "a" in mode or "+" in mode
        self.dirty = "w" in mode  # "w" truncates even if nothing is written
        if "w" in mode:
            self.data = bytearray()
            self.flush()  # "w" creates or truncates the file now, as on a board
        else:
            content = hostfs.read(path)  # a Uint8Array, or None when there is no such file
            if content is None and "a" not in mode:
                raise OSError(2)
            self.data = bytearray(bytes(content)) if content is not None else bytearray()
            if content is None:
                self.dirty = True
                self.flush()  # "a" creates a missing file
        self.pos = len(self.data) if "a" in mode else 0
        self.closed = False

    def _chunk(self, n):
        if n is None or n < 0:
            n = len(self.data) - self.pos
        b = bytes(self.data[self.pos : self.pos + n])
        self.pos += len(b)
        return b

    def read(self, n=-1):
        b = self._chunk(n)
        return b.decode() if self.text else b

    def readinto(self, buf, n=None):
        n = len(buf) if n is None else min(n, len(buf))
        b = self._chunk(n)
        buf[: len(b)] = b
        return len(b)

    def readline(self, limit=-1):
        end = self.data.find(b"\n", self.pos)
        end = len(self.data) if end < 0 else end + 1
        if limit is not None and limit >= 0:
            end = min(end, self.pos + limit)
        return self.read(end - self.pos)

    def readlines(self):
        out = []
        while True:
            line = self.readline()
            if not line:
                return out
            out.append(line)

    def __iter__(self):
        return self

    def __next__(self):
        line = self.readline()
        if not line:
            raise StopIteration
        return line

    def write(self, b):
        if not self.writable:
            raise OSError(9)  # EBADF
        if isinstance(b, str):
            b = b.encode()
        n = len(b)
        if self.pos > len(self.data):
            self.data.extend(bytes(self.pos - len(self.data)))
        self.data[self.pos : self.pos + n] = b
        self.pos += n
        self.dirty = True
        return n

    def seek(self, offset, whence=0):
        base = (0, self.pos, len(self.data))[whence]
        self.pos = max(0, base + offset)
        return self.pos

    def tell(self):
        return self.pos

    def flush(self):
        if self.dirty:
            _call(hostfs.write, self.path, binascii.hexlify(self.data).decode())
            self.dirty = False

    def close(self):
        if not self.closed:
            self.flush()
            self.closed = True

    def ioctl(self, req, arg):
        if req == 3:  # MP_STREAM_FLUSH
            self.flush()
            return 0
        if req == 4:  # MP_STREAM_CLOSE
            self.close()
            return 0
        if req == 11:  # MP_STREAM_GET_BUFFER_SIZE
            return 256
        return -1

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class HostVfs:
    """The VFS protocol MicroPython's `vfs.mount(obj, "/")` calls; paths it passes may be
    relative to the cwd it set with chdir, so every method resolves them first."""

    def __init__(self):
        self.cwd = "/"

    def _abs(self, path):
        if not path.startswith("/"):
            path = self.cwd.rstrip("/") + "/" + path
        parts = []
        for p in path.split("/"):
            if p == "..":
                if parts:
                    parts.pop()
            elif p and p != ".":
                parts.append(p)
        return "/" + "/".join(parts)

    def mount(self, readonly, mkfs):
        pass

    def umount(self):
        pass

    def ilistdir(self, path):
        for name, mode, size in _call(hostfs.listdir, self._abs(path)):
            yield (name, mode, 0, size)

    def stat(self, path):
        mode, size, mtime = _call(hostfs.stat, self._abs(path))
        return (mode, 0, 0, 0, 0, 0, size, mtime, mtime, mtime)

    def open(self, path, mode):
        path = self._abs(path)
        try:
            st = _call(hostfs.stat, path)
        except OSError:
            if "w" not in mode and "a" not in mode:
                raise
            st = None
            parent = path.rsplit("/", 1)[0] or "/"
            if not _call(hostfs.stat, parent)[0] & S_IFDIR:  # ENOENT when it is missing
                raise OSError(20)
        if st and st[0] & S_IFDIR:
            raise OSError(21)
        return HostFile(path, mode)

    def mkdir(self, path):
        _call(hostfs.mkdir, self._abs(path))

    def rmdir(self, path):
        _call(hostfs.rmdir, self._abs(path))

    def remove(self, path):
        _call(hostfs.remove, self._abs(path))

    def rename(self, old, new):
        _call(hostfs.rename, self._abs(old), self._abs(new))

    def chdir(self, path):
        path = self._abs(path)
        if not _call(hostfs.stat, path)[0] & S_IFDIR:
            raise OSError(20)
        self.cwd = path

    def getcwd(self):
        return self.cwd

    def statvfs(self, path):
        # 4 KiB blocks, 2 MiB "flash", as a small ESP32 partition would report
        return (4096, 4096, 512, 400, 400, 0, 0, 0, 0, 255)
