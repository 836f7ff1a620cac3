"""The outbox: a bounded RAM ring of encoded readings waiting to be confirmed.

The ring is preallocated (``capacity`` slots, and one for each item's seq) so that a long
outage costs no allocation. Items leave in the order they entered: the app sends
``peek(i)`` for growing ``i`` and ``pop()``s the head once it is confirmed (the broker's
PUBACK, or the gateway's watermark: see ``bedside.app``). When the ring is full, ``push``
drops the oldest item that is not protected and counts it in ``dropped``: the first
``protect`` items are in flight in the MQTT session, which will deliver them, so dropping
them would both lose nothing and miscount. Who calls it: ``bedside.app`` only.
"""


class Outbox:
    def __init__(self, capacity):
        if capacity < 1:
            raise ValueError("outbox capacity must be >= 1")
        self._buf = [None] * capacity
        self._seqs = [0] * capacity
        self._cap = capacity
        self._head = 0
        self._n = 0
        self.dropped = 0  # items dropped because the ring was full, since creation

    def __len__(self):
        return self._n

    def push(self, item, protect=0, seq=0):
        """Append ``item`` (reading number ``seq``). When full, drop the oldest item at
        index >= ``protect`` (the oldest overall when ``protect`` is 0) and count it. If all
        items are protected the new item itself is dropped. Returns True when something was
        dropped."""
        buf = self._buf
        seqs = self._seqs
        cap = self._cap
        if self._n < cap:
            j = (self._head + self._n) % cap
            buf[j] = item
            seqs[j] = seq
            self._n += 1
            return False
        self.dropped += 1
        if protect >= cap:
            return True
        self._close(protect)
        j = (self._head + self._n) % cap
        buf[j] = item
        seqs[j] = seq
        self._n += 1
        return True

    def remove(self, i):
        """Remove item ``i`` (not counted as dropped: the caller knows why it goes)."""
        if i < 0 or i >= self._n:
            raise IndexError("outbox index out of range")
        self._close(i)

    def _close(self, i):
        # Close the gap at index i by moving the items before it one slot on.
        buf, seqs, cap, head = self._buf, self._seqs, self._cap, self._head
        while i > 0:
            buf[(head + i) % cap] = buf[(head + i - 1) % cap]
            seqs[(head + i) % cap] = seqs[(head + i - 1) % cap]
            i -= 1
        buf[head] = None
        self._head = (head + 1) % cap
        self._n -= 1

    def seq(self, i=0):
        """The seq of item ``i`` (0 = oldest). IndexError if absent."""
        if i < 0 or i >= self._n:
            raise IndexError("outbox index out of range")
        return self._seqs[(self._head + i) % self._cap]

    def peek(self, i=0):
        """The item ``i`` places after the head (0 = oldest). IndexError if absent."""
        if i < 0 or i >= self._n:
            raise IndexError("outbox index out of range")
        return self._buf[(self._head + i) % self._cap]

    def pop(self):
        """Remove and return the oldest item. IndexError when empty."""
        if not self._n:
            raise IndexError("pop from empty outbox")
        buf = self._buf
        item = buf[self._head]
        buf[self._head] = None
        self._head = (self._head + 1) % self._cap
        self._n -= 1
        return item

    def clear(self):
        """Forget every item (RAM lost at power-off); ``dropped`` is kept."""
        for i in range(self._cap):
            self._buf[i] = None
        self._head = 0
        self._n = 0
