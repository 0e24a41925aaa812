"""A stream subject subscribed to an MQTT broker: sensor readings, upserted by sensor.

Readings arrive as JSON on `<topic>/readings`, each message one commit, e.g.
`{"sensor": "greenhouse", "value": 21.5, "measured_at": "2026-03-01T08:00:00Z"}`. A message on
`<topic>/end` ends the stream, and so does Ctrl-C: either way the client disconnects from the
broker and `run()` returns. With the broker on 127.0.0.1:1883:

    python examples/streams/mqtt/sensors.py out/                   # waits for readings
    python examples/streams/mqtt/publish_readings.py               # in a second terminal

The change stream goes to `out/readings.csv` (a temporary folder without `out/`) and is printed
at the end. `--component sensors` also lands each commit in that Headwater component, for
`headwater query`. The broker's address comes from --host / --port, else $MQTT_HOST / $MQTT_PORT.
"""

import argparse
import json
import os
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from headwater import stream

HOST = os.environ.get("MQTT_HOST", "127.0.0.1")
PORT = int(os.environ.get("MQTT_PORT", "1883"))
TOPIC = "headwater/sensors"


class ReadingSchema(stream.Schema):
    sensor: str = stream.column_definition(primary_key=True)
    value: float
    measured_at: str


class MqttSubject(stream.ConnectorSubject):
    """Each JSON message on `<topic>/readings` is a row, until a message on `<topic>/end`."""

    def __init__(self, topic: str = TOPIC, host: str = HOST, port: int = PORT) -> None:
        super().__init__()
        self.host, self.port = host, port
        self.readings, self.end = f"{topic}/readings", f"{topic}/end"
        self.subscribed = threading.Event()  # the broker confirmed the subscription
        self.stopping = threading.Event()  # on_stop() was called
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2)
        self.client.on_connect = self.on_connect
        self.client.on_subscribe = self.on_subscribe
        self.client.on_message = self.on_message
        self.client.on_disconnect = self.on_disconnect

    def run(self) -> None:
        self.client.connect(self.host, self.port)
        self.client.loop_forever()  # calls the on_* methods below; returns after disconnect()

    def on_stop(self) -> None:
        # Called once run() has returned, or from another thread (Ctrl-C) while loop_forever()
        # is still running: disconnecting makes it return.
        self.stopping.set()
        self.client.disconnect()

    # -- paho's callbacks: loop_forever() calls them in run()'s thread ------------------------

    def on_connect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: mqtt.ConnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if reason_code.is_failure:
            raise ConnectionError(f"the broker refused the connection: {reason_code}")
        if self.stopping.is_set():  # on_stop() came while connecting: disconnect() found nothing
            client.disconnect()
            return
        # Subscribing here subscribes again after loop_forever() reconnects on its own.
        client.subscribe([(self.readings, 1), (self.end, 1)])

    def on_subscribe(
        self,
        client: mqtt.Client,
        userdata: Any,
        mid: int,
        reason_codes: list[ReasonCode],
        properties: Properties | None,
    ) -> None:
        if any(code.is_failure for code in reason_codes):
            raise ConnectionError(f"the broker refused the subscription: {reason_codes}")
        print(f"subscribed to {self.readings} on {self.host}:{self.port}", flush=True)
        self.subscribed.set()

    def on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        if message.topic == self.end:
            client.disconnect()  # run() returns, which ends the stream
            return
        print(f"received {message.payload.decode()}", flush=True)
        self.next(**json.loads(message.payload))
        self.commit()  # each message is its own micro-batch: it lands at once

    def on_disconnect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: mqtt.DisconnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        print(f"disconnected from {self.host}:{self.port}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("output", nargs="?", type=Path, help="folder for readings.csv")
    parser.add_argument("--host", default=HOST, help="the MQTT broker (default: %(default)s)")
    parser.add_argument("--port", type=int, default=PORT, help="its port (default: %(default)s)")
    parser.add_argument("--topic", default=TOPIC, help="the topic prefix (default: %(default)s)")
    parser.add_argument("--component", help="also land the stream in this Headwater component")
    args = parser.parse_args(argv)

    status = 0
    with tempfile.TemporaryDirectory() as temporary:
        output = args.output or Path(temporary)
        table = stream.read(
            MqttSubject(args.topic, args.host, args.port),
            schema=ReadingSchema,
            name="sensors",
        )
        stream.write_csv(table, output / "readings.csv")
        if args.component:
            stream.write_component(table, args.component)
        try:
            stream.run()  # the Headwater home: $HEADWATER_HOME, else ./.headwater
        except KeyboardInterrupt:
            print("interrupted: the stream stopped and the client disconnected")
            status = 130
        except OSError as exc:
            print(
                f"sensors.py: the MQTT broker at {args.host}:{args.port}: {exc}; start one "
                "(mosquitto) or pass --host and --port",
                file=sys.stderr,
            )
            return 1
        sys.stdout.write((output / "readings.csv").read_text())
    return status


if __name__ == "__main__":
    sys.exit(main())
