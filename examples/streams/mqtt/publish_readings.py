"""Publish a few sensor readings to the MQTT broker, then the end message (for sensors.py).

    python examples/streams/mqtt/publish_readings.py
    python examples/streams/mqtt/publish_readings.py --topic lab/sensors --no-end

Messages go out in order at QoS 1, each acknowledged by the broker before the next is sent.
The broker's address comes from --host / --port, else $MQTT_HOST / $MQTT_PORT.
"""

import argparse
import json
import os
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

HOST = os.environ.get("MQTT_HOST", "127.0.0.1")
PORT = int(os.environ.get("MQTT_PORT", "1883"))
TOPIC = "headwater/sensors"

# Readings of three sensors: greenhouse is updated twice and one cellar reading is sent again.
READINGS = [
    {"sensor": "greenhouse", "value": 21.5, "measured_at": "2026-03-01T08:00:00Z"},
    {"sensor": "cellar", "value": 12.0, "measured_at": "2026-03-01T08:00:00Z"},
    {"sensor": "attic", "value": 25.25, "measured_at": "2026-03-01T08:00:00Z"},
    {"sensor": "greenhouse", "value": 23.0, "measured_at": "2026-03-01T08:05:00Z"},
    {"sensor": "cellar", "value": 12.0, "measured_at": "2026-03-01T08:00:00Z"},
    {"sensor": "greenhouse", "value": 24.5, "measured_at": "2026-03-01T08:10:00Z"},
]


def publish_readings(
    readings: list[dict[str, Any]], topic: str, host: str, port: int, *, end: bool = True
) -> None:
    """Publish each reading as JSON on `<topic>/readings`, then (with `end`) `<topic>/end`."""
    messages = [(f"{topic}/readings", json.dumps(reading)) for reading in readings]
    if end:
        messages.append((f"{topic}/end", ""))
    client = mqtt.Client(CallbackAPIVersion.VERSION2)
    client.connect(host, port)
    client.loop_start()  # paho's network thread sends, and receives the acknowledgements
    try:
        for message_topic, payload in messages:
            sent = client.publish(message_topic, payload, qos=1)
            sent.wait_for_publish(timeout=10)
            if not sent.is_published():
                raise TimeoutError(f"{host}:{port} did not acknowledge a message in 10 s")
    finally:
        client.disconnect()
        client.loop_stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default=HOST, help="the MQTT broker (default: %(default)s)")
    parser.add_argument("--port", type=int, default=PORT, help="its port (default: %(default)s)")
    parser.add_argument("--topic", default=TOPIC, help="the topic prefix (default: %(default)s)")
    parser.add_argument("--no-end", action="store_true", help="leave the stream running")
    args = parser.parse_args()
    publish_readings(READINGS, args.topic, args.host, args.port, end=not args.no_end)
    then = "" if args.no_end else f", then {args.topic}/end"
    print(f"published {len(READINGS)} readings to {args.topic}/readings{then}")


if __name__ == "__main__":
    main()
