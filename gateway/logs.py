"""The gateway's log lines: one JSON object per line (journald, log shippers), and warnings
that would repeat per message limited to one line per interval with a count of the rest.

Who calls it: ``service.run`` (``setup_logging``), ingest (rejects) and the InfluxDB writer
(database and spool trouble). Secrets never reach a log line: the config is logged
``redacted()``.
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter


class JsonFormatter(logging.Formatter):
    """One JSON object per line, with any ``extra=`` fields; for journald and log shippers."""

    _skip = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}

    def format(self, record: logging.LogRecord) -> str:
        data = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in self._skip:
                data[key] = value
        if record.exc_info:
            data["exc"] = self.formatException(record.exc_info)
        return json.dumps(data, default=str)


def setup_logging(level: str, fmt: str) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # urllib3 logs every failed connection at WARNING; our own messages say it once.
    logging.getLogger("urllib3").setLevel(logging.ERROR)


class RateLimitedLog:
    """At most one log line per key per ``interval_s``; the rest are counted and summarised."""

    def __init__(self, logger: logging.Logger, interval_s: float = 10.0):
        self.logger = logger
        self.interval = interval_s
        self._last: dict[str, float] = {}
        self._suppressed: Counter = Counter()

    def warning(self, key: str, msg: str, *args, now: float | None = None, **extra) -> bool:
        now = time.monotonic() if now is None else now
        if now - self._last.get(key, -1e18) < self.interval:
            self._suppressed[key] += 1
            return False
        suppressed = self._suppressed.pop(key, 0)
        self._last[key] = now
        self.logger.warning(msg, *args, extra={**extra, "suppressed": suppressed})
        return True
