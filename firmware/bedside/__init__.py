"""WardWatch bedside firmware: the app that runs on boards (as /lib/bedside/) and, unchanged,
on CPython under the host simulator (package ``wardsim``)."""

VERSION = "0.1.0"
