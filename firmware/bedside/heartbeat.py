"""Feed the hardware watchdog only while the device is really working.

A watchdog fed by a timer of its own proves only that the event loop runs. Instead each
essential task (the sampler, the network/publisher) calls ``beat(name, now_ms)`` when it
makes progress, and the watchdog task feeds the WDT only if every task beat within its
allowance. A stuck sampler or a publisher wedged for minutes then resets the board, which
is the one recovery a ward device has without a person. Pure: time is passed in. Who calls
it: ``main.py`` on boards.
"""

from .clock import ticks_diff


class Heartbeats:
    def __init__(self, allowances_ms):
        """``allowances_ms``: {task name: longest healthy silence in ms}."""
        self._allow = dict(allowances_ms)
        self._last = {}

    def beat(self, name, now_ms):
        if name not in self._allow:
            raise KeyError("unknown heartbeat %r" % (name,))
        self._last[name] = now_ms

    def stale(self, now_ms):
        """Names of tasks that never beat or have been silent too long (empty = healthy)."""
        out = []
        for name, allow in self._allow.items():
            last = self._last.get(name)
            if last is None or ticks_diff(now_ms, last) > allow:
                out.append(name)
        return out

    def healthy(self, now_ms):
        return not self.stale(now_ms)
