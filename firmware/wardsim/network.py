"""CPython stand-in for MicroPython's ``network`` module: a WLAN that is always connected.

``wardsim.install_stubs()`` puts it into ``sys.modules["network"]``. The host's own network
is what the MQTT client really uses; network outages in scenarios are acted out by
``bedside.app`` (``MQTTClient.set_link``), not here.
"""

STA_IF = 0

STAT_GOT_IP = 3


class WLAN:
    def __init__(self, interface=STA_IF):
        self.interface = interface
        self._active = True
        self.ssid = None

    def active(self, on=None):
        if on is None:
            return self._active
        self._active = bool(on)

    def connect(self, ssid=None, key=None, **kw):
        self.ssid = ssid

    def isconnected(self):
        return True

    def status(self, param=None):
        if param == "rssi":
            return -55
        return STAT_GOT_IP
