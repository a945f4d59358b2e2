"""The precinct broker as shipped, proved cell by cell: who may write and read every topic family.

A real mosquitto runs ``config/mosquitto-precinct.conf`` (``tests.rig.precinct.PrecinctBroker``:
only paths, port and logging differ) with the ACL ``safehouse acl render`` writes for a fleet
inventory in the Ansible format, and real certificates from ``tests/rig/pki.py``.

How a cell is decided, never by sleeping and hoping (mosquitto 2 drops a denied publish in
silence for MQTT 3.1.1 and grants a denied subscription, then withholds the messages):
- write: the subject publishes to the topic; it is allowed when the auditor (a test-only user
  appended to the ACL with ``readwrite #``) receives it. The wait is bounded by the auditor's own
  echo: it is queued behind anything the subject's (already acknowledged) publishes produced.
- read: the subject subscribes to ``#``; the auditor publishes to the topic; it is allowed when
  the subject receives it. The wait is bounded by a positive control, a message the auditor
  then sends on a topic the subject may read (one sender's messages arrive in order); for a
  subject that may read nothing, by its own QoS 1 round trip (its PUBACK is queued behind any
  message routed to it before).
The expected matrix below is written out by hand from the contract (docs/mqtt.md), not derived
from the renderer, so the test can disagree with it.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from paho.mqtt.enums import MQTTProtocolVersion

from safehouse.services.acl import render_acl
from safehouse.services.inventory import read_fleet
from tests.rig.availability import require_tool
from tests.rig.broker import mosquitto_path
from tests.rig.daemon import DaemonProcess
from tests.rig.kiosk_config import write_config
from tests.rig.mqtt_message import ConnectFailed
from tests.rig.pki import Pki, make_pki
from tests.rig.precinct import PrecinctBroker
from tests.rig.subscriber import Subscriber

P, Q = "safehouse/v1/p1", "safehouse/v1/p2"
V311, V5 = MQTTProtocolVersion.MQTTv311, MQTTProtocolVersion.MQTTv5
NOT_AUTHORIZED = 135

INVENTORY = """\
all:
  children:
    kiosks:
      children:
        p1:
          vars: {precinct: p1, consoles: [console-p1]}
          hosts:
            kiosk-a.lan: {device_id: SH-A, alliance: a1}
            kiosk-b.lan: {device_id: SH-B, alliance: a1}
        p2:
          vars: {precinct: p2, consoles: [console-p2]}
          hosts:
            kiosk-c.lan: {device_id: SH-C, alliance: a1}
"""
AUDITOR = "auditor"  # test-only observer and writer, appended to the rendered ACL
CERTS = ("SH-A", "SH-B", "SH-C", "SH-X", "console-p1", "console-p2", AUDITOR)

# Subjects that connect: (certificate CN, client id asked for). "spoof" is SH-A's certificate
# asking for SH-B's client id: the broker makes it SH-A, so it has exactly SH-A's rights.
SUBJECTS = {"A": ("SH-A", "SH-A"), "B": ("SH-B", "SH-B"), "console": ("console-p1", "console-p1"),
            "stranger": ("SH-X", "SH-X"), "spoof": ("SH-A", "SH-B")}
A_ = {"A", "spoof"}  # SH-A's certificate, whatever client id it asked for

# topic -> (who may write it, who may read it), among the subjects above.
MATRIX: dict[str, tuple[set[str], set[str]]] = {
    f"{P}/SH-A/status": (A_, {"console"}),
    f"{P}/SH-A/events": (A_, {"console"}),
    f"{P}/SH-A/telemetry": (A_, {"console"}),
    f"{P}/SH-A/evidence/e1/snapshot-1.jpg": (A_, {"console"}),
    f"{P}/SH-A/cmd/ping/result": (A_, {"console", *A_}),
    f"{P}/SH-A/provision/check": (A_, {"console", *A_}),
    f"{P}/SH-A/alliance/a1/alert": (A_, {"console", "B", *A_}),
    f"{P}/SH-A/cmd/ack": ({"console"}, {"console", *A_}),  # a forged ack: A's cert may not write it
    f"{P}/SH-A/cmd/resolve": ({"console"}, {"console", *A_}),
    f"{P}/SH-A/alliance/a2/alert": (set(), {"console"}),  # an alliance A is not part of
    f"{P}/SH-B/events": ({"B"}, {"console"}),
    f"{P}/SH-B/cmd/ack": ({"console"}, {"console", "B"}),
    f"{P}/SH-B/cmd/ping/result": ({"B"}, {"console", "B"}),
    f"{P}/SH-B/alliance/a1/alert": ({"B"}, {"console", "B", *A_}),
    f"{P}/SH-X/events": (set(), {"console"}),  # a certificate the inventory does not list
    f"{Q}/SH-A/events": (set(), set()),  # A's id under another precinct
    f"{Q}/SH-C/events": (set(), set()),
    f"{Q}/SH-C/cmd/ping": (set(), set()),  # another precinct's kiosk: not console-p1's to command
    f"{Q}/SH-C/alliance/a1/alert": (set(), set()),  # same alliance name, other precinct
    f"{P}/SH-A": (set(), {"console"}),
    "safehouse/v1/other": (set(), set()),
    "elsewhere/topic": (set(), set()),
}
# For each subject that may read something: a topic it may read, for the positive control.
CONTROL = {"A": f"{P}/SH-A/cmd/ping", "spoof": f"{P}/SH-A/cmd/ping", "B": f"{P}/SH-B/cmd/ping",
           "console": f"{P}/SH-A/status"}


@dataclass
class World:
    pki: Pki
    broker: PrecinctBroker

    def connect(self, cn: str, client_id: str | None = None, topics: tuple[str, ...] = (),
                protocol: MQTTProtocolVersion = V311) -> Subscriber:
        pair = self.pki.client(cn)
        return Subscriber(self.broker.port, topics, ca=self.pki.ca.cert, cert=pair.cert, key=pair.key,
                          client_id=client_id or cn, protocol=protocol)


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    openssl = require_tool("openssl")
    folder = Path(tempfile.mkdtemp(prefix="sh-perm-", dir="/tmp"))
    try:
        pki = make_pki(folder / "pki", clients=CERTS, openssl=openssl)
        fleet = read_fleet(yaml.safe_load(INVENTORY), "inventory.yml")
        acl = folder / "safehouse.acl"
        acl.write_text(render_acl(fleet) + f"\nuser {AUDITOR}\ntopic readwrite #\n", encoding="utf-8")
        broker = PrecinctBroker(folder / "broker", pki=pki, acl_file=acl, mosquitto=mosquitto_path())
        with broker:
            yield World(pki, broker)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _writes(world: World, subject: str, protocol: MQTTProtocolVersion) -> set[str]:
    cn, client_id = SUBJECTS[subject]
    with world.connect(AUDITOR, f"auditor-w-{subject}", ("#",)) as auditor, \
            world.connect(cn, client_id, protocol=protocol) as who:
        for topic in MATRIX:
            who.publish(topic, f"w {subject} {topic}", check=False)  # waits for the PUBACK
        auditor.publish("audit/echo", b"echo")
        auditor.wait_for("audit/echo")
        return {m.topic for m in auditor.messages() if m.payload == f"w {subject} {m.topic}".encode()}


def _reads(world: World, subject: str, protocol: MQTTProtocolVersion) -> set[str]:
    cn, client_id = SUBJECTS[subject]
    with world.connect(cn, client_id, ("#",), protocol=protocol) as who, \
            world.connect(AUDITOR, f"auditor-r-{subject}") as auditor:
        # mosquitto 2.0 grants the subscription to '#' to everyone and withholds at delivery:
        # which is why a read is judged by what arrives, never by the SUBACK
        assert [rc.is_failure for rc in who.granted] == [False]
        for topic in MATRIX:
            auditor.publish(topic, f"r {topic}")
        if subject in CONTROL:
            auditor.publish(CONTROL[subject], b"control")
            who.wait_for(lambda m: m.payload == b"control")
        else:  # it may read nothing: its own round trip is queued behind anything routed to it
            who.publish(f"{P}/{cn}/status", b"round trip", check=False)
        return {m.topic for m in who.messages() if m.payload == f"r {m.topic}".encode()}


@pytest.mark.parametrize("protocol", [V311, V5], ids=["mqtt311", "mqtt5"])
@pytest.mark.parametrize("subject", list(SUBJECTS))
def test_every_topic_family_is_written_and_read_only_by_whom_the_contract_says(
        world: World, subject: str, protocol: MQTTProtocolVersion) -> None:
    wrote, read = _writes(world, subject, protocol), _reads(world, subject, protocol)
    assert {t: t in wrote for t in MATRIX} == {t: subject in w for t, (w, _r) in MATRIX.items()}
    assert {t: t in read for t in MATRIX} == {t: subject in r for t, (_w, r) in MATRIX.items()}


def _code(reason: object) -> int:
    assert reason is not None, "no PUBACK reason code"
    return int(reason.value)  # type: ignore[attr-defined]


@pytest.mark.parametrize("who", ["no certificate", "another CA", "plain TCP"])
def test_a_client_without_a_precinct_certificate_cannot_connect_so_reads_and_writes_nothing(
        world: World, who: str) -> None:
    pki, port = world.pki, world.broker.port
    with world.connect(AUDITOR, "auditor-refusals", ("#",)) as auditor:
        with pytest.raises(ConnectFailed):
            if who == "no certificate":
                Subscriber(port, ("#",), ca=pki.ca.cert, client_id="SH-A", timeout=3.0)
            elif who == "another CA":
                pair = pki.other_ca_client  # CN SH-A, a name the ACL knows: only the signer is wrong
                Subscriber(port, ("#",), ca=pki.ca.cert, cert=pair.cert, key=pair.key, client_id="SH-A",
                           timeout=3.0)
            else:
                Subscriber(port, ("#",), client_id="SH-A", timeout=3.0)
        auditor.publish("audit/echo", b"echo")
        assert [m.topic for m in auditor.wait_for()] == ["audit/echo"]  # nothing got through


def test_a_forged_ack_from_the_kiosks_own_certificate_never_reaches_the_kiosk(world: World) -> None:
    ack = f"{P}/SH-A/cmd/ack"
    with world.connect("SH-A", topics=(f"{P}/SH-A/cmd/+",), protocol=V5) as kiosk, \
            world.connect("SH-B", protocol=V5) as neighbour, \
            world.connect("console-p1", protocol=V5) as console:
        forged = b'{"id":"forged-1","ts":"2026-11-29T12:00:00Z","event_id":"e1"}'
        assert _code(kiosk.publish(ack, forged, check=False)) == NOT_AUTHORIZED
        assert _code(neighbour.publish(ack, forged, check=False)) == NOT_AUTHORIZED
        real = b'{"id":"real-1","ts":"2026-11-29T12:00:00Z","event_id":"e1"}'
        console.publish(ack, real)
        assert [m.payload for m in kiosk.wait_for(ack)] == [real]  # the console's, and only it


def test_a_certificate_cannot_take_over_another_kiosks_client_id(world: World) -> None:
    """SH-A's certificate asking for client id SH-B: the broker names it SH-A, so SH-B stays on."""
    with world.connect("SH-B", topics=(f"{P}/SH-B/cmd/+",), protocol=V5) as real_b, \
            world.connect("SH-A", protocol=V5) as real_a, world.connect("console-p1", protocol=V5) as console:
        for _ in range(3):
            with world.connect("SH-A", client_id="SH-B", protocol=V5):
                pass  # connected (CONNACK success), as SH-A
        console.publish(f"{P}/SH-B/cmd/ping", b"still there?")
        assert [m.payload for m in real_b.wait_for(f"{P}/SH-B/cmd/ping")] == [b"still there?"]
        assert real_b.disconnects == [] and real_b.ready_count == 1  # never kicked off
        # The thief is SH-A to the broker: it took SH-A's own session (a stolen certificate can
        # only disturb the kiosk it was stolen from), never SH-B's.
        log = world.broker.wait_for_log("Client SH-A already connected, closing old connection")
        assert "Client SH-B already connected" not in log
        real_a.wait_ready(2, timeout=5.0)


def test_the_largest_evidence_payload_passes_and_one_byte_over_the_limit_does_not(world: World) -> None:
    limit = int(next(line.split()[1] for line in world.broker.conf.read_text().splitlines()
                     if line.startswith("message_size_limit ")))
    largest_wav = (60 + 300) * 16000 * 2 + 44  # microphone.pre_roll and post_roll maxima, 16-bit mono
    assert largest_wav < limit
    evidence = f"{P}/+/evidence/#"
    with world.connect("console-p1", topics=(evidence,)) as console, \
            world.connect("SH-A", protocol=V5) as kiosk:
        kiosk.publish(f"{P}/SH-A/evidence/e1/audio.wav", b"\0" * largest_wav)
        # paho answers PUBACK 149 (packet too large) by dropping the link and re-sending for ever,
        # so the oversized one goes from a throw-away connection, and the broker's log says when.
        with world.connect("SH-B", protocol=V5) as other:
            other.publish(f"{P}/SH-B/evidence/e2/audio.wav", b"\1" * (limit + 1), wait=False)
            world.broker.wait_for_log("Dropped too large PUBLISH from SH-B")
        kiosk.publish(f"{P}/SH-A/evidence/e1/end", b"end")
        console.wait_for(lambda m: m.payload == b"end")
        assert [(m.topic.split("/")[3], len(m.payload)) for m in console.messages()] == [
            ("SH-A", largest_wav), ("SH-A", 3)]


def test_a_kiosk_removed_from_the_inventory_loses_its_rights_at_reload_on_its_open_connection(
        world: World, tmp_path: Path) -> None:
    """Revoking a stolen certificate: render without it, SIGHUP, and its open link can do nothing."""
    without_b = yaml.safe_load(INVENTORY)
    del without_b["all"]["children"]["kiosks"]["children"]["p1"]["hosts"]["kiosk-b.lan"]
    acl = tmp_path / "safehouse.acl"
    acl.write_text(render_acl(read_fleet(yaml.safe_load(INVENTORY), "inventory.yml")), encoding="utf-8")
    broker = PrecinctBroker(tmp_path / "broker", pki=world.pki, acl_file=acl, mosquitto=mosquitto_path())
    with broker:
        port, pki = broker.port, world.pki

        def connect(cn: str, topics: tuple[str, ...] = ()) -> Subscriber:
            pair = pki.client(cn)
            return Subscriber(port, topics, ca=pki.ca.cert, cert=pair.cert, key=pair.key, client_id=cn)

        with connect("console-p1", (f"{P}/#",)) as console, connect("SH-B", (f"{P}/SH-B/cmd/+",)) as b:
            b.publish(f"{P}/SH-B/events", b"before")
            console.wait_for(lambda m: m.payload == b"before")
            acl.write_text(render_acl(read_fleet(without_b, "inventory.yml")), encoding="utf-8")
            assert "SH-B" not in acl.read_text(encoding="utf-8")
            broker.log_path.write_bytes(b"")
            assert broker.pid is not None
            os.kill(broker.pid, signal.SIGHUP)
            broker.wait_for_log("Reloading config")
            assert _code(b.publish(f"{P}/SH-B/events", b"after", check=False)) == NOT_AUTHORIZED
            console.publish(f"{P}/SH-B/cmd/ping", b"for B")
            console.publish(f"{P}/SH-A/cmd/ping", b"control")  # the console reads its own publish
            console.wait_for(lambda m: m.payload == b"control")
            b.publish(f"{P}/SH-B/status", b"round trip", check=False)  # bounds what B could still get
            assert [m.payload for m in console.messages()] == [b"before", b"for B", b"control"]
            assert b.messages() == [] and b.disconnects == []


def test_the_kiosks_own_selftest_does_not_knock_its_link_off(world: World, tmp_path: Path) -> None:
    """The broker check goes over the daemon's own link: with use_username_as_clientid a second
    connection with the kiosk's certificate would take its session over (a false offline/lost)."""
    pair = world.pki.client("SH-A")
    tls = f'ca = "{world.pki.ca.cert}"\ncert = "{pair.cert}"\nkey = "{pair.key}"\n'
    config = write_config(tmp_path, f'[broker]\nurl = "{world.broker.url}"\n{tls}', id="SH-A", precinct="p1")
    with world.connect("console-p1", topics=(f"{P}/SH-A/status",)) as console:
        log_from = len(world.broker.log_text())
        proc = DaemonProcess(config, tmp_path / "ctl.sock").start()
        try:
            console.wait_for(lambda m: m.json().get("state") == "online", timeout=10.0)
            res = proc.cli("selftest", "--json")  # through the control socket: inside the daemon
            assert res.returncode == 0, res.stdout + res.stderr
            body = json.loads(res.stdout)
            [broker] = [c for c in body["checks"] if c["name"] == "broker"]
            assert body["through_daemon"] and broker["ok"], broker
            assert "round trip" in broker["detail"] and "uplink's own connection" in broker["detail"]
            proc.ok("test-alarm")  # anything after the selftest: its status changes come first
            deadline = time.monotonic() + 10.0
            while proc.status()["outbox"]["depth"]["events"] and time.monotonic() < deadline:
                time.sleep(0.05)
            states = [(m.json()["state"], m.json().get("reason")) for m in console.messages()]
        finally:
            proc.kill()  # its last will says offline/lost now, which is right and not counted
        assert states == [("online", None)], states
        log = world.broker.log_text()[log_from:]
        # the probe really went through the broker, on the daemon's one and only connection
        assert log.count(" as SH-A ") == 1, log
        assert f"{P}/SH-A/provision/check" in log and "already connected" not in log, log


def test_a_console_away_while_telemetry_piles_up_still_gets_the_alarm_sent_after_it(world: World) -> None:
    """max_queued_messages: mosquitto's default (1000) would drop what comes after the pile."""
    pair = world.pki.client("console-p1")

    def console() -> Subscriber:  # a persistent session, as docs/mqtt.md asks of a console
        return Subscriber(world.broker.port, (f"{P}/SH-B/#",), ca=world.pki.ca.cert, cert=pair.cert,
                          key=pair.key, client_id="console-p1", session_expiry=3600)

    console().close()
    with world.connect("SH-B") as kiosk:
        for n in range(1500):
            kiosk.publish(f"{P}/SH-B/telemetry", f"t{n}", wait=False)
        kiosk.publish(f"{P}/SH-B/events", b"panic")
    with console() as back:
        back.wait_for(f"{P}/SH-B/events", timeout=20.0)
        assert len(back.messages(f"{P}/SH-B/telemetry")) == 1500


def test_every_listener_of_the_shipped_config_carries_its_own_security_settings() -> None:
    """With per_listener_settings, a listener without its own acl_file would grant everything."""
    conf = (Path(__file__).resolve().parents[2] / "config" / "mosquitto-precinct.conf").read_text()
    lines = [line.split() for line in conf.splitlines() if line.strip() and not line.startswith("#")]
    assert ["per_listener_settings", "true"] in lines
    starts = [i for i, words in enumerate(lines) if words[0] == "listener"]
    assert starts, "no listener"
    required = {"require_certificate": "true", "use_identity_as_username": "true",
                "use_username_as_clientid": "true", "allow_anonymous": "false"}
    for first, end in zip(starts, [*starts[1:], len(lines)], strict=True):
        block = {words[0]: words[1:] for words in lines[first + 1:end]}
        assert {key: (block.get(key) or [""])[0] for key in required} == required, lines[first]
        assert "acl_file" in block and "cafile" in block, lines[first]
