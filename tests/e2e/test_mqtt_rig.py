"""The MQTT rig and the precinct ACL, proved with real mosquitto and bare paho clients.

Negative ACL checks never sleep-and-hope: after the forbidden message, the same sender sends an
allowed marker; mosquitto delivers one sender's messages to a subscriber in order, so once the
marker has arrived the forbidden one would have arrived too.
"""

from __future__ import annotations

import datetime as dt
import json
import ssl
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.reasoncodes import ReasonCode

from tests.rig.blackhole import Blackhole
from tests.rig.broker import CONSOLE_USER, Broker, BrokerError, mosquitto_path
from tests.rig.mqtt_message import ConnectFailed, PublishRefused
from tests.rig.pki import CertKey, Pki
from tests.rig.subscriber import Subscriber

NOT_AUTHORIZED = 135  # MQTT 5 PUBACK reason code for an ACL refusal
ROOT = "safehouse/v1/p1"


# --- plain broker ------------------------------------------------------------------------------


def test_plain_round_trip_records_topic_payload_retain_and_time(broker: Broker) -> None:
    assert broker.url == f"mqtt://127.0.0.1:{broker.port}"
    with broker.subscriber() as kiosk:
        kiosk.publish(f"{ROOT}/SH-A/status", b'{"state":"online"}', retain=True)
        with broker.subscriber([f"{ROOT}/+/status", f"{ROOT}/+/events"]) as precinct:
            [status] = precinct.wait_for(f"{ROOT}/+/status")
            assert status.retain and status.qos == 1 and status.json() == {"state": "online"}
            kiosk.publish(f"{ROOT}/SH-A/events", json.dumps({"seq": 1}))
            [event] = precinct.wait_for(f"{ROOT}/SH-A/events")
            assert not event.retain and event.received >= status.received
            assert precinct.json(f"{ROOT}/+/events") == [{"seq": 1}]
            assert [m.topic for m in precinct.messages()] == [f"{ROOT}/SH-A/status", f"{ROOT}/SH-A/events"]


def test_mqtt5_response_topic_and_correlation_data_reach_the_receiver(broker: Broker) -> None:
    with broker.subscriber([f"{ROOT}/SH-A/cmd/+"]) as kiosk, broker.subscriber() as console:
        console.publish(f"{ROOT}/SH-A/cmd/ack", b"{}", response_topic=f"{ROOT}/SH-A/cmd/ack/result",
                        correlation_data=b"\x01req-7")
        [cmd] = kiosk.wait_for(f"{ROOT}/SH-A/cmd/ack")
        assert cmd.response_topic == f"{ROOT}/SH-A/cmd/ack/result"
        assert cmd.correlation_data == b"\x01req-7"


def test_mqtt311_subscriber_works_too(broker: Broker) -> None:
    with broker.subscriber(["t/#"], protocol=MQTTProtocolVersion.MQTTv311) as old, broker.subscriber() as pub:
        pub.publish("t/1", b"x")
        [msg] = old.wait_for("t/#")
        assert msg.payload == b"x" and msg.properties is None


@pytest.mark.parametrize("kill", [False, True], ids=["sigterm", "sigkill"])
def test_restart_keeps_the_port_and_subscribers_come_back(broker: Broker, kill: bool) -> None:
    port, url = broker.port, broker.url
    with broker.subscriber(["t/#"]) as sub:
        broker.restart(kill=kill)
        assert (broker.port, broker.url) == (port, url)
        sub.wait_ready(2, timeout=5.0)  # reconnected and resubscribed (no session survives)
        assert sub.disconnects  # the client saw the broker go
        with broker.subscriber() as pub:
            pub.publish("t/after", b"1")
        assert [m.topic for m in sub.wait_for("t/#")] == ["t/after"]


def test_a_broker_that_cannot_start_fails_with_its_log(mqtt_dir: Path) -> None:
    bad = Broker(mqtt_dir / "bad", extra=["no_such_option 1"], mosquitto=mosquitto_path())
    with pytest.raises(BrokerError, match="no_such_option") as err:
        bad.start()
    assert "exited with code" in str(err.value) and not bad.running


def test_blackhole_accepts_tcp_and_never_answers(blackhole: Blackhole) -> None:
    assert blackhole.url == f"mqtt://127.0.0.1:{blackhole.port}"
    with pytest.raises(ConnectFailed, match="no CONNACK"):
        Subscriber(blackhole.port, ["t/#"], timeout=0.5)
    assert blackhole.accepted == 1 and blackhole.received > 0  # the CONNECT went out, unanswered


# --- mutual TLS --------------------------------------------------------------------------------


@dataclass
class Attempt:
    """What a bare paho client saw while trying to connect."""

    connect_rc: MQTTErrorCode | None = None
    raised: OSError | None = None
    loop_rcs: list[MQTTErrorCode] = field(default_factory=list)
    connacks: list[ReasonCode] = field(default_factory=list)
    disconnects: list[ReasonCode] = field(default_factory=list)

    @property
    def connected(self) -> bool:
        return any(not rc.is_failure for rc in self.connacks)


def attempt(port: int, ca: Path, pair: CertKey | None, wait: float = 3.0) -> Attempt:
    """Connect a bare paho 2.x client with ``pair`` (or no certificate) and report what it saw.

    The network loop is run by hand (``loop()``), so no automatic reconnect muddies the picture.
    """
    seen = Attempt()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bare-probe", protocol=mqtt.MQTTv5)
    context = ssl.create_default_context(cafile=str(ca))
    if pair is not None:
        context.load_cert_chain(str(pair.cert), str(pair.key))
    client.tls_set_context(context)
    client.on_connect = lambda c, u, f, rc, p: seen.connacks.append(rc)
    client.on_disconnect = lambda c, u, f, rc, p: seen.disconnects.append(rc)
    try:
        seen.connect_rc = client.connect("127.0.0.1", port)
    except OSError as exc:  # ssl.SSLError included: a handshake refused inside connect()
        seen.raised = exc
        return seen
    deadline = time.monotonic() + wait
    while not (seen.connacks or seen.disconnects) and time.monotonic() < deadline:
        seen.loop_rcs.append(client.loop(timeout=0.05))
    client.disconnect()
    return seen


def test_tls_client_with_the_right_certificate_connects_as_its_cn(tls_broker: Broker, pki: Pki) -> None:
    assert tls_broker.url == f"mqtts://127.0.0.1:{tls_broker.port}"
    seen = attempt(tls_broker.port, pki.ca.cert, pki.client("SH-A"))
    assert seen.connected and seen.connect_rc == MQTTErrorCode.MQTT_ERR_SUCCESS
    tls_broker.wait_for_log("as bare-probe (p5, c1, k60, u'SH-A')")  # use_identity_as_username
    with tls_broker.subscriber(["t/#"], name=CONSOLE_USER) as console, \
            tls_broker.subscriber(name="SH-B") as kiosk:
        kiosk.publish("t/x", b"over TLS")
        assert console.wait_for("t/#")[0].payload == b"over TLS"


def test_tls_near_expiry_client_still_connects(tls_broker: Broker, pki: Pki) -> None:
    assert attempt(tls_broker.port, pki.ca.cert, pki.near_expiry_client).connected


@pytest.mark.parametrize("which", ["no_certificate", "other_ca", "expired"])
def test_tls_broker_refuses_bad_client_certificates(tls_broker: Broker, pki: Pki, which: str) -> None:
    pair = {"no_certificate": None, "other_ca": pki.other_ca_client, "expired": pki.expired_client}[which]
    seen = attempt(tls_broker.port, pki.ca.cert, pair)
    # What the client sees depends on when the broker's TLS alert lands (TLS 1.3 finishes the
    # client's handshake before the server checks the client cert): connect() returns 0 and
    # loop() then returns 7 (MQTT_ERR_CONN_LOST), or connect() itself returns 7 while sending
    # CONNECT. Either way: never a CONNACK, and on_disconnect reports "Unspecified error".
    assert not seen.connacks and seen.raised is None, seen
    lost = MQTTErrorCode.MQTT_ERR_CONN_LOST
    assert seen.connect_rc == lost or (seen.connect_rc == 0 and seen.loop_rcs[-1] == lost), seen
    assert [str(rc) for rc in seen.disconnects] == ["Unspecified error"], seen
    with pytest.raises(ConnectFailed):  # the rig's client says so in one exception
        Subscriber(tls_broker.port, ["t/#"], ca=pki.ca.cert, timeout=2.0,
                   cert=None if pair is None else pair.cert, key=None if pair is None else pair.key)
    reason = "peer did not return a certificate" if pair is None else "certificate verify failed"
    tls_broker.wait_for_log(reason)


def _openssl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["openssl", *args], capture_output=True, text=True, timeout=10, check=False)


def test_pki_certificates_are_what_their_names_say(pki: Pki) -> None:
    for key in [pki.ca.key, pki.server.key, pki.expired_client.key, *(c.key for c in pki.clients.values())]:
        assert key.stat().st_mode & 0o777 == 0o600, key
    server = _openssl("x509", "-in", str(pki.server.cert), "-noout", "-ext", "subjectAltName").stdout
    assert "IP Address:127.0.0.1" in server and "DNS:localhost" in server
    subject = _openssl("x509", "-in", str(pki.client("SH-B").cert), "-noout", "-subject").stdout
    assert subject.strip() == "subject=CN = SH-B"
    # expired: refused only for its dates: the same chain verifies at a moment inside its validity
    expired = _openssl("verify", "-CAfile", str(pki.ca.cert), str(pki.expired_client.cert))
    assert expired.returncode != 0 and "certificate has expired" in expired.stdout + expired.stderr
    start = _openssl("x509", "-in", str(pki.expired_client.cert), "-noout", "-startdate").stdout
    not_before = dt.datetime.strptime(start.strip().split("=", 1)[1], "%b %d %H:%M:%S %Y %Z")
    at = str(int(not_before.replace(tzinfo=dt.UTC).timestamp()) + 3600)
    back_then = _openssl("verify", "-attime", at, "-CAfile", str(pki.ca.cert), str(pki.expired_client.cert))
    assert back_then.returncode == 0, back_then.stdout + back_then.stderr
    other = _openssl("verify", "-CAfile", str(pki.ca.cert), str(pki.other_ca_client.cert))
    assert other.returncode != 0 and "unable to get local issuer certificate" in other.stdout + other.stderr
    near = str(pki.near_expiry_client.cert)
    assert _openssl("x509", "-in", near, "-noout", "-checkend", str(9 * 86400)).returncode == 0
    assert _openssl("x509", "-in", near, "-noout", "-checkend", str(11 * 86400)).returncode != 0


# --- the precinct ACL --------------------------------------------------------------------------


def test_acl_kiosk_events_reach_the_console(acl_broker: Broker) -> None:
    with acl_broker.subscriber(["safehouse/v1/#"], name=CONSOLE_USER) as console, \
            acl_broker.subscriber(name="SH-A") as kiosk:
        for topic in ("status", "events", "evidence/e1/photo.jpg", "telemetry", "cmd/ack/result",
                      "alliance/a1/alert"):
            kiosk.publish(f"{ROOT}/SH-A/{topic}", b"{}")  # raises PublishRefused if the ACL said no
        console.wait_for(f"{ROOT}/SH-A/#", count=6)


def test_acl_kiosk_cannot_publish_into_another_kiosks_subtree(acl_broker: Broker) -> None:
    with acl_broker.subscriber(["safehouse/v1/#"], name=CONSOLE_USER) as console, \
            acl_broker.subscriber(name="SH-A") as kiosk_a, acl_broker.subscriber(name="SH-B") as kiosk_b:
        with pytest.raises(PublishRefused) as refused:
            kiosk_a.publish(f"{ROOT}/SH-B/events", b'{"forged":true}')
        assert refused.value.reason_code.value == NOT_AUTHORIZED
        kiosk_a.publish(f"{ROOT}/SH-A/status", b"marker")
        console.wait_for(f"{ROOT}/SH-A/status")
        assert console.messages(f"{ROOT}/SH-B/#") == []
        kiosk_b.publish(f"{ROOT}/SH-B/events", b'{"real":true}')  # control: the console does see B's own
        assert console.wait_for(f"{ROOT}/SH-B/events")[0].json() == {"real": True}
        acl_broker.wait_for_log(f"Denied PUBLISH from SH-A (d0, q1, r0, m1, '{ROOT}/SH-B/events'")


def test_acl_kiosk_cannot_read_another_kiosks_commands(acl_broker: Broker) -> None:
    with acl_broker.subscriber([f"{ROOT}/SH-B/cmd/#", f"{ROOT}/SH-A/cmd/#"], name="SH-A") as kiosk_a, \
            acl_broker.subscriber([f"{ROOT}/SH-B/cmd/#"], name="SH-B") as kiosk_b, \
            acl_broker.subscriber(name=CONSOLE_USER) as console:
        # mosquitto 2.0 grants the SUBSCRIBE itself; the ACL bites when each message is delivered
        console.publish(f"{ROOT}/SH-B/cmd/ack", b"for B")
        console.publish(f"{ROOT}/SH-A/cmd/ack", b"for A")
        assert [m.payload for m in kiosk_a.wait_for(f"{ROOT}/SH-A/cmd/#")] == [b"for A"]
        assert kiosk_a.messages(f"{ROOT}/SH-B/#") == []
        assert [m.payload for m in kiosk_b.wait_for(f"{ROOT}/SH-B/cmd/#")] == [b"for B"]


def test_acl_kiosk_reads_its_alliances_alerts_from_other_kiosks(acl_broker: Broker) -> None:
    with acl_broker.subscriber([f"{ROOT}/+/alliance/+/alert"], name="SH-A") as kiosk_a, \
            acl_broker.subscriber(name="SH-B") as kiosk_b:
        refused = kiosk_b.publish(f"{ROOT}/SH-B/alliance/a2/alert", b"other alliance", check=False)
        assert refused is not None and refused.value == NOT_AUTHORIZED  # B is not in alliance a2
        kiosk_b.publish(f"{ROOT}/SH-B/alliance/a1/alert", b'{"code":120}')
        [alert] = kiosk_a.wait_for(f"{ROOT}/+/alliance/+/alert")  # A reads its alliance a1 only
        assert (alert.topic, alert.json()) == (f"{ROOT}/SH-B/alliance/a1/alert", {"code": 120})


def test_acl_console_sends_commands_but_cannot_forge_kiosk_output(acl_broker: Broker) -> None:
    with acl_broker.subscriber(name=CONSOLE_USER) as console:
        console.publish(f"{ROOT}/SH-A/cmd/ack", b"{}")
        for forged in ("cmd/ack/result", "events", "status"):
            rc = console.publish(f"{ROOT}/SH-A/{forged}", b"{}", check=False)
            assert rc is not None and rc.value == NOT_AUTHORIZED, forged
