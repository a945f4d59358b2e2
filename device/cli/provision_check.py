"""``safehouse provision --check``: prove the provisioned identity works, over the broker itself.

Kept apart from writing the files (``device/cli/provisioning.py``) because it is a different
act with a different risk: it opens a connection as the kiosk, which only makes sense with the
daemon stopped, and it needs paho, which provisioning the files does not.
"""

from __future__ import annotations

import queue
import time
import uuid
from pathlib import Path

from safehouse.services.topics import Topics

__all__ = ["round_trip"]


def round_trip(url: str, device_id: str, precinct: str, *, ca: Path | None, cert: Path | None,
               key: Path | None, timeout: float = 10.0) -> float:
    """Connect as the kiosk, subscribe to its probe topic, publish a probe, wait for it back.

    Returns the round trip in seconds (publish to receipt); raises LinkError with the reason.
    A connection of its own: only with the daemon stopped (the precinct broker gives it the
    kiosk's client id, so it would take over a running daemon's session; the daemon's
    selftest uses services/link_probe.py on its own link instead).
    """
    from safehouse.services.mqtt_link import Incoming, LinkError, MqttLink, Tls

    topic = Topics(precinct, device_id).probe
    token = uuid.uuid4().hex.encode()
    got: queue.Queue[bytes] = queue.Queue()
    acks: queue.Queue[str | None] = queue.Queue()
    lost: list[str] = []
    tls = Tls(str(ca), str(cert), str(key)) if url.startswith("mqtts://") and ca and cert and key else None

    def on_message(msg: Incoming) -> None:
        if msg.topic == topic:
            got.put(msg.payload)

    link = MqttLink(url, f"{device_id}-provision-{token[:6].decode()}", tls=tls, on_message=on_message,
                    on_ack=lambda _mid, refusal: acks.put(refusal), on_lost=lost.append)
    link.open(timeout=timeout)
    try:
        link.subscribe([topic])
        time.sleep(0.2)  # let the SUBACK land before the probe; the echo wait covers any slack
        start = time.monotonic()
        link.publish(topic, token, qos=1, retain=False)
        deadline = start + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                why = f" ({lost[0]})" if lost else ""
                raise LinkError(f"connected to {url} but the probe on {topic} did not come back within "
                                f"{timeout:g} s{why}: ACL denies publish/subscribe there?")
            try:
                refusal = acks.get_nowait()
                if refusal is not None:
                    raise LinkError(f"the broker refused the probe on {topic}: {refusal}")
            except queue.Empty:
                pass
            try:
                if got.get(timeout=min(left, 0.05)) == token:
                    return time.monotonic() - start
            except queue.Empty:
                continue
    finally:
        link.close()
