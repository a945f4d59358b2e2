"""`safehouse provision`: checked TLS material, atomic idempotent writes, kept settings, --check."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from safehouse.device.cli.main import main
from safehouse.device.runtime import config as configuration
from tests.rig.broker import Broker
from tests.rig.daemon import DaemonProcess
from tests.rig.kiosk_config import write_config
from tests.rig.pki import CertKey, Pki

URL = "mqtts://broker.example:8883"


def cli(*argv: str) -> int:
    """`safehouse provision ARGV` through the real entry point, in process."""
    return main(["provision", *argv])


def argv(root: Path, pki: Pki, client: CertKey | None = None, *, precinct: str = "p1",
         url: str = URL, extra: tuple[str, ...] = ()) -> tuple[str, ...]:
    ck = client or pki.client("SH-A")
    return ("--device-id", "SH-A", "--precinct", precinct, "--broker", url, "--ca", str(pki.ca.cert),
            "--cert", str(ck.cert), "--key", str(ck.key), "--hardware", "sim", "--root", str(root), *extra)


def files(root: Path) -> dict[str, Path]:
    etc = root / "etc/safehouse"
    return {"config": etc / "config.toml", "ca": etc / "tls/ca.pem", "cert": etc / "tls/client.pem",
            "key": etc / "tls/client.key"}


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def snapshot(root: Path) -> dict[str, tuple[int, bytes]]:
    return {name: (p.stat().st_mtime_ns, p.read_bytes()) for name, p in files(root).items()}


def test_fresh_provision_then_rerun_changes_nothing(tmp_path: Path, pki: Pki,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(*argv(tmp_path, pki)) == 0
    out = capsys.readouterr().out
    assert "device.id" in out and "client.key" in out and "group 'safehouse'" in out
    f = files(tmp_path)
    assert mode(f["config"]) == 0o640 and mode(f["key"]) == 0o600
    assert mode(f["cert"]) == 0o644 and mode(f["ca"]) == 0o644
    assert f["key"].read_bytes() == pki.client("SH-A").key.read_bytes()
    cfg = configuration.load(f["config"])
    assert (cfg.device.id, cfg.device.precinct, cfg.device.hardware) == ("SH-A", "p1", "sim")
    assert cfg.broker.url == URL
    assert (cfg.broker.ca, cfg.broker.cert, cfg.broker.key) == (
        "/etc/safehouse/tls/ca.pem", "/etc/safehouse/tls/client.pem", "/etc/safehouse/tls/client.key")
    before = snapshot(tmp_path)
    assert cli(*argv(tmp_path, pki)) == 0
    assert "no changes" in capsys.readouterr().out
    assert snapshot(tmp_path) == before


def test_changed_precinct_keeps_other_settings(tmp_path: Path, pki: Pki,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(*argv(tmp_path, pki, extra=("--alliance", "a1"))) == 0
    config = files(tmp_path)["config"]
    config.write_text(config.read_text() + "\n[alarm]\nack_timeout = 30\n")
    assert cli(*argv(tmp_path, pki, extra=("--alliance", "a1"))) == 0  # normalises the hand edit
    capsys.readouterr()
    before = snapshot(tmp_path)
    assert cli(*argv(tmp_path, pki, precinct="p2")) == 0
    out = capsys.readouterr().out
    assert "device.precinct: 'p1' -> 'p2'" in out and "device.alliance" not in out
    after = snapshot(tmp_path)
    assert after["config"] != before["config"]
    assert {k: v for k, v in after.items() if k != "config"} == {k: v for k, v in before.items()
                                                                 if k != "config"}
    cfg = configuration.load(config)
    assert (cfg.device.precinct, cfg.device.alliance, cfg.alarm.ack_timeout) == ("p2", "a1", 30)


@pytest.mark.parametrize("case", ["mismatch", "other_ca", "expired", "other_kiosk"])
def test_bad_material_is_refused_and_nothing_written(case: str, tmp_path: Path, pki: Pki,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    a, b = pki.client("SH-A"), pki.client("SH-B")
    client, fragment = {"mismatch": (CertKey(a.cert, b.key), "does not match the key"),
                        "other_ca": (pki.other_ca_client, "not signed by the CA"),
                        "expired": (pki.expired_client, "certificate expired"),
                        # SH-B's own valid certificate on kiosk SH-A: the broker would call it SH-B
                        "other_kiosk": (b, "certificate is for CN=SH-B, not for this kiosk SH-A")}[case]
    assert cli(*argv(tmp_path, pki, client)) == 1
    err = capsys.readouterr().err
    assert fragment in err and str(client.cert) in err
    assert not (tmp_path / "etc").exists()


def test_near_expiry_warns_but_provisions(tmp_path: Path, pki: Pki,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(*argv(tmp_path, pki, pki.near_expiry_client)) == 0
    out = capsys.readouterr().out
    assert "warning:" in out and "expires within 30 days" in out
    assert files(tmp_path)["cert"].read_bytes() == pki.near_expiry_client.cert.read_bytes()


def test_invalid_identity_is_a_config_error(tmp_path: Path, pki: Pki,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    args = list(argv(tmp_path, pki, url="http://nope"))
    args[1] = "bad id!"
    assert cli(*args) == configuration.EX_CONFIG
    err = capsys.readouterr().err
    assert "device.id" in err and "broker.url" in err
    assert not (tmp_path / "etc").exists()


def test_check_round_trips_through_the_broker(tmp_path: Path, pki: Pki, tls_broker: Broker,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(*argv(tmp_path, pki, url=tls_broker.url, extra=("--check",))) == 0
    assert "round trip through" in capsys.readouterr().out
    tls_broker.stop()
    assert cli(*argv(tmp_path, pki, url=tls_broker.url, extra=("--check", "--timeout", "3"))) == 1
    captured = capsys.readouterr()
    assert "no changes" in captured.out
    assert "--check failed: cannot reach the broker" in captured.err


def test_check_is_refused_while_the_daemon_runs_and_opens_no_second_connection(
        short_dir: Path, pki: Pki, tls_broker: Broker, capsys: pytest.CaptureFixture[str]) -> None:
    """With use_username_as_clientid a second connection with the kiosk's certificate would take
    over the running daemon's session: --check says so and what to run instead, and connects not."""
    pair = pki.client("SH-A")
    tls = f'ca = "{pki.ca.cert}"\ncert = "{pair.cert}"\nkey = "{pair.key}"\n'
    etc = short_dir / "etc/safehouse"
    etc.mkdir(parents=True)
    config = write_config(etc, f'[broker]\nurl = "{tls_broker.url}"\n{tls}', id="SH-A", precinct="p1")
    proc = DaemonProcess(config, etc / "ctl.sock").start()
    try:
        tls_broker.wait_for_log("as SH-A")
        connections = tls_broker.log_text().count("New client connected")
        assert cli(*argv(short_dir, pki, url=tls_broker.url, extra=("--check", "--timeout", "3"))) == 1
        err = capsys.readouterr().err
        assert f"--check refused: the daemon is running (it answers on {etc / 'ctl.sock'})" in err
        assert "safehouse selftest --daemon-only" in err
        assert tls_broker.log_text().count("New client connected") == connections
        assert proc.status()["link"]["state"] == "online"
    finally:
        proc.kill()


def test_help_has_an_example(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        cli("--help")
    assert exc.value.code == 0
    assert "example" in capsys.readouterr().out
