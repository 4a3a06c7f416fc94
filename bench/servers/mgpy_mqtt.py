"""mgpy's MQTT broker for bench/mqtt_bench.py: one process, one thread, one core.

python bench/servers/mgpy_mqtt.py PORT
"""

from __future__ import annotations

import signal
import sys

import mgpy
from mgpy.mqtt import MqttBroker


def main() -> int:
    port = int(sys.argv[1])
    stop: list[int] = []
    with mgpy.Manager() as mgr:

        def on_signal(*_: object) -> None:
            stop.append(1)
            mgr.wakeup()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        MqttBroker(mgr).listen(f"127.0.0.1:{port}")
        print(f"mgpy MQTT broker on 127.0.0.1:{port}", flush=True)
        while not stop:
            mgr.poll(1000)
    return 0


if __name__ == "__main__":
    sys.exit(main())
