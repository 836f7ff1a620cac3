"""Keep ``seq`` across reboots without wearing out flash.

Writing the counter on every reading would cost one flash write per second, forever. We
write a *reservation* instead: the file holds a value ``r`` and promises that no seq at or
above ``r`` has been used yet. At boot the device starts at the stored ``r`` (skipping at
most ``block`` numbers it never used) and immediately reserves ``r + block``; while running
it reserves the next block when ``seq`` reaches the reservation. With ``block`` = 3600 at
1 Hz that is one small write an hour. Seq stays strictly increasing across reboots, which is
all the gateway needs (gaps are fine; reuse is not).

Two files are written alternately (``a`` then ``b``), each with a checksum, so a power cut
during a write leaves the other valid. Who calls it: ``bedside.app`` on boards with a
filesystem (``cfg["seq_file"]``); the host simulator does not persist.
"""

MASK = 0xFFFFFFFF


def _encode(value):
    return "%d %d\n" % (value, (value * 2654435761 + 12345) & MASK)


def _decode(text):
    try:
        value, check = text.split()
        value, check = int(value), int(check)
    except (ValueError, AttributeError):
        return None
    if check != (value * 2654435761 + 12345) & MASK or not 0 <= value <= MASK:
        return None
    return value


class SeqStore:
    """``start()`` -> first seq to use; ``note(seq)`` after each reading (cheap when no
    write is due). ``writes`` counts flash writes."""

    def __init__(self, path, block=3600, opener=open):
        if block < 1:
            raise ValueError("block must be >= 1")
        self.paths = (path + ".a", path + ".b")
        self.block = block
        self._open = opener
        self._reserved = 0
        self._next_file = 0
        self.writes = 0

    def _read(self, path):
        try:
            with self._open(path) as f:
                return _decode(f.read())
        except OSError:
            return None

    def _write(self, value):
        with self._open(self.paths[self._next_file], "w") as f:
            f.write(_encode(value))
        self._next_file ^= 1
        self._reserved = value
        self.writes += 1

    def start(self):
        """Read the newest valid reservation, reserve the next block, return the first seq."""
        values = [self._read(p) for p in self.paths]
        valid = [(v, i) for i, v in enumerate(values) if v is not None]
        if valid:
            first, newest = max(valid)
            self._next_file = newest ^ 1
        else:
            first = 0
        self._write((first + self.block) & MASK)
        return first

    def note(self, seq, margin=1):
        """Call with the seq just used (or poll with the latest one and a ``margin`` larger
        than the readings made between polls); reserves the next block in time."""
        # Compare on the 32-bit circle so the wrap at 2**32 keeps working.
        if ((self._reserved - seq) & MASK) <= margin or ((seq - self._reserved) & MASK) < 0x80000000:
            self._write((seq + 1 + self.block) & MASK)
