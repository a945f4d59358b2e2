"""Load the kiosk's TOML config into frozen dataclasses, or fail with every problem at once.

Nothing downstream sees a dict: drivers and services get typed, immutable settings, so a
typo in a key can only ever surface here, at start-up, before any pin or socket is touched.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import asdict, dataclass
from datetime import time
from pathlib import Path
from typing import Any

from safehouse.device.core.errors import ConfigError
from safehouse.device.runtime.config_schema import check_tree

DEFAULT_PATH = Path("/etc/safehouse/config.toml")
ENV_VAR = "SAFEHOUSE_CONFIG"
EX_CONFIG = 78  # sysexits.h: configuration error


@dataclass(frozen=True)
class DeviceConfig:
    id: str
    precinct: str
    alliance: str
    hardware: str
    state_dir: Path


@dataclass(frozen=True)
class BrokerConfig:
    url: str
    ca: str
    cert: str
    key: str
    keepalive: int
    protocol: str
    username: str
    password: str
    window: int


@dataclass(frozen=True)
class OutboxConfig:
    events_cap: int
    telemetry_keep: int
    delivered_retention: float
    alarm_reserve_mb: float


@dataclass(frozen=True)
class TelemetryConfig:
    interval: float


@dataclass(frozen=True)
class AllianceConfig:
    show_seconds: float


@dataclass(frozen=True)
class CommandsConfig:
    freshness: float


@dataclass(frozen=True)
class CameraConfig:
    enabled: bool
    offsets: tuple[float, ...]
    width: int
    height: int
    quality: int
    timeout: float


@dataclass(frozen=True)
class MicrophoneConfig:
    enabled: bool
    pre_roll: float
    post_roll: float
    device: str


@dataclass(frozen=True)
class EvidenceConfig:
    quota_mb: float
    hard_limit_mb: float
    retention_days: float


@dataclass(frozen=True)
class ControlConfig:
    socket: Path
    max_clients: int = 16
    idle_timeout: float = 10.0


@dataclass(frozen=True)
class GpioConfig:
    red: int
    blue: int
    button: int
    buzzer: int
    status_led: int
    tamper: int | None
    lamp_ok: int | None


@dataclass(frozen=True)
class LightConfig:
    active_high: bool
    day_brightness: float
    night_brightness: float
    night_from: time
    night_until: time


@dataclass(frozen=True)
class ButtonConfig:
    debounce_ms: int
    trigger: str
    hold_seconds: float
    stuck_after: float


@dataclass(frozen=True)
class AlarmConfig:
    ack_timeout: float
    escalate_unstaffed: bool


@dataclass(frozen=True)
class KeypadConfig:
    port: str
    baud: int
    entry_timeout: float
    volunteers: Path
    lockout_after: int
    lockout_seconds: float
    rollcall_window: float
    rollcall_times: tuple[str, ...]
    lockout_max_seconds: float
    flood_keys: int
    flood_entries: int
    noise_ignore_seconds: float


@dataclass(frozen=True)
class BuzzerConfig:
    enabled: bool
    tonal: bool
    click: bool
    ok: bool
    error: bool
    chime: bool
    rollcall: bool


@dataclass(frozen=True)
class LoggingConfig:
    level: str


@dataclass(frozen=True)
class Config:
    source: str
    device: DeviceConfig
    broker: BrokerConfig
    control: ControlConfig
    gpio: GpioConfig
    light: LightConfig
    button: ButtonConfig
    alarm: AlarmConfig
    keypad: KeypadConfig
    logging: LoggingConfig
    outbox: OutboxConfig
    telemetry: TelemetryConfig
    alliance: AllianceConfig
    commands: CommandsConfig
    camera: CameraConfig
    microphone: MicrophoneConfig
    evidence: EvidenceConfig
    buzzer: BuzzerConfig

    def as_dict(self) -> dict[str, Any]:
        """The effective config as plain TOML-able values (for `config check` and digests)."""
        out = asdict(self)
        out.pop("source")
        if out["broker"]["password"]:
            out["broker"]["password"] = "********"  # never echo a secret to a terminal or log
        for section in out.values():
            for name, value in list(section.items()):
                if isinstance(value, Path):
                    section[name] = str(value)
                elif isinstance(value, tuple):
                    section[name] = list(value)
                elif isinstance(value, time):
                    section[name] = value.strftime("%H:%M")
                elif value is None:
                    del section[name]
        return out


def resolve_path(explicit: str | os.PathLike[str] | None) -> Path:
    """--config wins, then $SAFEHOUSE_CONFIG, then /etc/safehouse/config.toml."""
    if explicit:
        return Path(explicit)
    env = os.environ.get(ENV_VAR)
    return Path(env) if env else DEFAULT_PATH


def load(path: str | os.PathLike[str] | None = None, *, hardware: str | None = None) -> Config:
    """Read and validate a config file; ``hardware`` overrides device.hardware (``run --sim``)."""
    file = resolve_path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(str(file), [f"cannot read the file: {exc.strerror or exc}"]) from exc
    try:
        tree = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(str(file), [f"not valid TOML: {exc}"]) from exc
    if hardware is not None:
        tree.setdefault("device", {})["hardware"] = hardware
    return from_tree(tree, source=str(file), base=file.parent)


def from_tree(tree: dict[str, Any], *, source: str = "<config>", base: Path | None = None) -> Config:
    """Validate a parsed tree; relative paths are taken from the config file's folder."""
    values, problems = check_tree(tree)
    if problems:
        raise ConfigError(source, problems)
    root = base or Path.cwd()

    def path(p: str) -> Path:
        return (root / p).resolve() if p and not os.path.isabs(p) else Path(p)

    broker = dict(values["broker"])
    for name in ("ca", "cert", "key"):
        broker[name] = str(path(broker[name])) if broker[name] else ""
    light = dict(values["light"])
    for name in ("night_from", "night_until"):
        hh, mm = light[name].split(":")
        light[name] = time(int(hh), int(mm))
    return Config(
        source=source,
        device=DeviceConfig(**{**values["device"], "state_dir": path(values["device"]["state_dir"])}),
        broker=BrokerConfig(**broker),
        control=ControlConfig(socket=path(values["control"]["socket"]),
                              max_clients=values["control"]["max_clients"],
                              idle_timeout=values["control"]["idle_timeout"]),
        gpio=GpioConfig(**values["gpio"]),
        light=LightConfig(**light),
        button=ButtonConfig(**values["button"]),
        alarm=AlarmConfig(**values["alarm"]),
        keypad=KeypadConfig(**{**values["keypad"], "volunteers": path(values["keypad"]["volunteers"])
                               if values["keypad"]["volunteers"] else (root / "volunteers.toml").resolve()}),
        logging=LoggingConfig(**values["logging"]),
        outbox=OutboxConfig(**values["outbox"]),
        telemetry=TelemetryConfig(**values["telemetry"]),
        alliance=AllianceConfig(**values["alliance"]),
        commands=CommandsConfig(**values["commands"]),
        camera=CameraConfig(**values["camera"]),
        microphone=MicrophoneConfig(**values["microphone"]),
        evidence=EvidenceConfig(**values["evidence"]),
        buzzer=BuzzerConfig(**values["buzzer"]),
    )


def to_toml(values: dict[str, Any]) -> str:
    """Render the effective config (flat tables of scalars) back as TOML for humans."""
    lines: list[str] = []
    for section, keys in values.items():
        lines.append(f"[{section}]")
        for name, value in keys.items():
            if isinstance(value, bool):
                rendered = "true" if value else "false"
            elif isinstance(value, list):
                rendered = "[" + ", ".join(repr(v) for v in value) + "]"
            elif isinstance(value, int | float):
                rendered = repr(value)
            else:
                rendered = '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'
            lines.append(f"{name} = {rendered}")
        lines.append("")
    return "\n".join(lines)
