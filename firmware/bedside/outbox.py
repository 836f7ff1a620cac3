"""The outbox: a bounded RAM ring of encoded readings waiting for their PUBACK.

The ring is preallocated (``capacity`` slots) so that a long outage costs no allocation.
Items leave in the order they entered: the app sends ``peek(i)`` for growing ``i`` and
``pop()``s the head only once the broker acknowledged it. When the ring is full, ``push``
drops the oldest item that is not protected and counts it in ``dropped``: the first
``protect`` items are in flight in the MQTT session, which will deliver them, so dropping
them would both lose nothing and miscount. Who calls it: ``bedside.app`` only.
"""


class Outbox:
    def __init__(self, capacity):
        if capacity < 1:
            raise ValueError("outbox capacity must be >= 1")
        self._buf = [None] * capacity
        self._cap = capacity
        self._head = 0
        self._n = 0
        self.dropped = 0  # items dropped because the ring was full, since creation

    def __len__(self):
        return self._n

    def push(self, item, protect=0):
        """Append ``item``. When full, drop the oldest item at index >= ``protect`` (the
        oldest overall when ``protect`` is 0) and count it. If all items are protected the
        new item itself is dropped. Returns True when something was dropped."""
        buf = self._buf
        cap = self._cap
        if self._n < cap:
            buf[(self._head + self._n) % cap] = item
            self._n += 1
            return False
        self.dropped += 1
        if protect >= cap:
            return True
        head = self._head
        # Close the gap at index `protect` by moving the protected items one slot on.
        i = protect
        while i > 0:
            buf[(head + i) % cap] = buf[(head + i - 1) % cap]
            i -= 1
        buf[head] = None
        self._head = head = (head + 1) % cap
        buf[(head + self._n - 1) % cap] = item
        return True

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
