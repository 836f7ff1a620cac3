"""Board config validation (bedside.app.check_config) on fixed configs: valid ones with their
defaults filled in, and each kind of error with its message. Run on MicroPython and CPython
by tests/firmware/test_micropython.py."""

import json
from bedside.app import check_config
out = []
for cfg in [
    {"dev": "bed-01", "ward": "w1", "broker": {"host": "h"}},
    {"dev": "bed-01", "ward": "w1", "broker": {"host": "h", "tls": True}, "rate_hz": 2.5},
    {"dev": "BAD", "ward": "w1", "broker": {"host": "h"}},
    {"dev": "bed-01", "ward": "w1", "broker": {}},
    {"dev": "bed-01", "ward": "w1", "broker": {"host": "h"}, "rate_hz": 0},
    {"dev": "bed-01", "ward": "w1", "broker": {"host": "h"}, "outbox_cap": 3},
    {"dev": "bed-01", "ward": "w1", "broker": {"host": "h"}, "board": "pdp11"},
    # issue 9 item 10: the prefix must make valid topic names
    {"dev": "bed-01", "ward": "w1", "broker": {"host": "h"}, "prefix": "site-2/wardwatch/v1"},
    {"dev": "bed-01", "ward": "w1", "broker": {"host": "h"}, "prefix": "wardwatch/+"},
    {"dev": "bed-01", "ward": "w1", "broker": {"host": "h"}, "prefix": "wardwatch/#"},
    {"dev": "bed-01", "ward": "w1", "broker": {"host": "h"}, "prefix": ""},
    {"dev": "bed-01", "ward": "w1", "broker": {"host": "h"}, "prefix": "wardwatch/"},
    {"dev": "bed-01", "ward": "w1", "broker": {"host": "h"}, "prefix": "ward\x00watch"},
    {"dev": "bed-01", "ward": "w1", "broker": {"host": "h"}, "prefix": "$SYS/wardwatch"},
    {"dev": "bed-01", "ward": "w1", "broker": {"host": "h"}, "prefix": 7},
]:
    try:
        c = check_config(cfg)
        out.append(["ok", c["broker"]["port"], c["broker"]["user"], c["rate_hz"]])
    except ValueError as e:
        out.append(["error", str(e)])
print("RESULT " + json.dumps(out))
