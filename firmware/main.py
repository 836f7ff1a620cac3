"""Board entry point, flashed as /main.py next to /lib/bedside/ and /config.json.

It loads the config, picks the board profile (``bedside.board``), brings up Wi-Fi and runs
the app. Sensors are simulated (``bedside.simvitals``) until the sensor drivers and the
ESP32/Pico W profiles land; that is the seam: ``board.profile(cfg)`` and ``App(sensors=..)``.
On the host, ``wardsim.install_stubs()`` supplies ``machine`` and ``network``.
"""

import json

CONFIG = "/config.json"


def load_config(path=CONFIG):
    with open(path) as f:
        return json.load(f)


async def _sync_time(board):
    # NTP once the link is up, then twice a day; until then readings carry tq=0.
    import asyncio

    from bedside import clock

    while True:
        ok = False
        if board.link_up is None or board.link_up():
            try:
                ok = board.sync_time(clock)
            except Exception as e:
                print("ntp:", repr(e))
        await asyncio.sleep(43200 if ok else 30)


async def _main(cfg):
    import asyncio

    from bedside import board as board_mod
    from bedside.app import App

    board = board_mod.profile(cfg)
    wifi = cfg.get("wifi")
    if wifi and hasattr(board, "connect_wifi"):
        board.connect_wifi(wifi["ssid"], wifi.get("key"))
    if hasattr(board, "sync_time"):
        asyncio.create_task(_sync_time(board))
    app = App(cfg, board=board, log=print)
    await app.run()


def main(path=CONFIG):
    import asyncio

    cfg = load_config(path)
    try:
        asyncio.run(_main(cfg))
    except KeyboardInterrupt:
        raise
    except Exception as e:
        # A crashed board helps nobody: report and reboot (the outbox is lost, seq kept
        # only where the board profile persists it).
        print("fatal:", repr(e))
        import machine
        import time

        time.sleep(5)
        machine.reset()


if __name__ == "__main__":
    main()
