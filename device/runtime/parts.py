"""The kiosk's parts, registered once: every [section] of config.toml and every piece of hardware.

A part declares itself in its own module: its settings dataclass (keys, defaults, checks and
docs, see device.core.settings) and, for hardware, a ``build`` factory that returns the real
or the simulated device. This registry only says which parts the kiosk has: the config loader
walks ``Sections`` (its fields are the [sections], in file order), the JSON Schema is written
from it, ``Hardware`` opens ``HARDWARE`` in order, and the capture service gets ``CAPTURE``
(the evidence parts). Adding a part touches its module, its tests and, here, its import, its
``Sections`` field and its ``HardwarePart`` entry.
Nothing here imports gpiozero, paho, numpy or Pillow: the factories do, when the part is
built, so loading the config (every CLI command) stays light.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from safehouse.device.core.inputs import (
    ButtonChanged,
    Input,
    KeypadFlood,
    KeypadLink,
    KeypadNoise,
    KeyPressed,
    LampChanged,
    TamperChanged,
)
from safehouse.device.core.settings_sections import (
    AlarmSettings,
    AllianceSettings,
    CommandsSettings,
    DeviceSettings,
    LoggingSettings,
)
from safehouse.drivers import (
    buzzer,
    camera,
    keypad,
    lightbox,
    microphone,
    panic_button,
    status_led,
)
from safehouse.drivers.buzzer import BuzzerSettings
from safehouse.drivers.camera import CameraSettings
from safehouse.drivers.gpio_settings import GpioSettings
from safehouse.drivers.keypad import KeypadSettings
from safehouse.drivers.lightbox import LightSettings
from safehouse.drivers.microphone import MicrophoneSettings
from safehouse.drivers.panic_button import ButtonSettings
from safehouse.services.control import ControlSettings
from safehouse.services.evidence_evict import EvidenceSettings
from safehouse.services.mqtt_settings import BrokerSettings
from safehouse.services.outbox_settings import OutboxSettings
from safehouse.services.telemetry import TelemetrySettings

Put = Callable[[Input], None]


@dataclass(frozen=True)
class Sections:
    """One field per [section] of config.toml, in the order ``config check`` prints them."""

    device: DeviceSettings
    broker: BrokerSettings
    control: ControlSettings
    gpio: GpioSettings
    light: LightSettings
    button: ButtonSettings
    alarm: AlarmSettings
    keypad: KeypadSettings
    logging: LoggingSettings
    outbox: OutboxSettings
    telemetry: TelemetrySettings
    alliance: AllianceSettings
    commands: CommandsSettings
    camera: CameraSettings
    microphone: MicrophoneSettings
    evidence: EvidenceSettings
    buzzer: BuzzerSettings


def sections() -> dict[str, type]:
    """Section name -> its settings dataclass, in file order."""
    hints = typing.get_type_hints(Sections)
    return {f.name: hints[f.name] for f in dataclasses.fields(Sections)}


@dataclass(frozen=True)
class Bench:
    """What a hardware factory may need besides the config."""

    pin_factory: Any  # gpiozero's: MockFactory when simulated
    simulated: bool
    local_now: Callable[[], datetime]  # local wall time from the daemon's clock


@dataclass(frozen=True)
class HardwarePart:
    """One piece of hardware: how to open it from the config and what it tells the core loop.

    ``what`` names the part and the config keys it is opened from ("the keypad
    (keypad.port='/dev/ttyUSB0')"): a build that raises is reported as "cannot open <what>:
    <why>; check those keys in the config". ``build`` returns the open device (it must have an
    idempotent ``close()``), or None when the config leaves it out (no keypad port, buzzer
    disabled, an unwired input). ``wire`` turns the device's callbacks into core inputs.
    ``attribute``: the name ``Hardware`` exposes it under, for a part something else uses
    (the effect runner, the self-test); it is declared with its type on ``Hardware`` too.
    Every part is wired or exposed, or it would be opened for nothing.
    """

    what: Callable[[Sections, Bench], str]  # for "cannot open <what>: ..."
    build: Callable[[Sections, Bench], Any]
    wire: Callable[[Any, Put], None] | None = None
    attribute: str | None = None


def _contact(on: Input, off: Input) -> Callable[[Any, Put], None]:
    def wire(device: Any, put: Put) -> None:
        device.when_activated = lambda: put(on)
        device.when_deactivated = lambda: put(off)

    return wire


def _keypad(device: Any, put: Put) -> None:
    device.when_key = lambda key: put(KeyPressed(key))
    device.when_noise = lambda count: put(KeypadNoise(count))
    device.when_flood = lambda started, detail, n: put(KeypadFlood(started, detail, n))
    device.when_lost = lambda reason: put(KeypadLink(False, reason))
    device.when_restored = lambda: put(KeypadLink(True))


HARDWARE: tuple[HardwarePart, ...] = (  # opened in this order, closed in the reverse
    HardwarePart(
        lambda c, b: f"the light box (gpio.red={c.gpio.red}, gpio.blue={c.gpio.blue})",
        lambda c, b: lightbox.build(c.light, red=c.gpio.red, blue=c.gpio.blue,
                                    pin_factory=b.pin_factory, clock=b.local_now),
        attribute="light"),
    HardwarePart(
        lambda c, b: f"the status LED (gpio.status_led={c.gpio.status_led})",
        lambda c, b: status_led.build(c.gpio.status_led, pin_factory=b.pin_factory),
        attribute="status_led"),
    HardwarePart(
        lambda c, b: f"the panic button (gpio.button={c.gpio.button})",
        lambda c, b: panic_button.build(c.button, c.gpio.button, pin_factory=b.pin_factory),
        _contact(ButtonChanged(True), ButtonChanged(False)), attribute="button"),
    HardwarePart(
        lambda c, b: f"the buzzer (gpio.buzzer={c.gpio.buzzer})",
        lambda c, b: buzzer.build(c.buzzer, c.gpio.buzzer, pin_factory=b.pin_factory),
        attribute="buzzer"),
    HardwarePart(
        lambda c, b: f"the keypad (keypad.port={keypad.port_of(c.keypad, simulated=b.simulated)!r})",
        lambda c, b: keypad.build(c.keypad, simulated=b.simulated),
        _keypad, attribute="keypad"),
    HardwarePart(
        lambda c, b: f"the tamper switch (gpio.tamper={c.gpio.tamper})",
        lambda c, b: None if c.gpio.tamper is None else panic_button.build_tamper(
            c.button, c.gpio.tamper, pin_factory=b.pin_factory, simulated=b.simulated),
        _contact(TamperChanged(True), TamperChanged(False))),
    HardwarePart(
        lambda c, b: f"the lamp sensor (gpio.lamp_ok={c.gpio.lamp_ok})",
        lambda c, b: None if c.gpio.lamp_ok is None else panic_button.build_lamp(
            c.button, c.gpio.lamp_ok, pin_factory=b.pin_factory, simulated=b.simulated),
        _contact(LampChanged(True), LampChanged(False))),
)


@dataclass(frozen=True)
class CapturePart:
    """One evidence part (camera, microphone): what the capture service records an alarm with.

    ``name`` is the capture service's keyword for it (and the self-test's name of the part).
    ``build`` returns the device, not yet started (the capture service starts it off the
    start-up path), or None when the config switches it off. Optional, never fatal: a part
    that may be missing at start-up (the simulated microphone without its signal file) logs
    why and returns None, so the kiosk starts without it; a capture part that breaks later
    is reported on the next alarm's ``evidence`` event, never by refusing to start. A build
    that raises is a value the config checker let through (an odd camera width) and stops
    the start, as it always did.
    """

    name: str
    build: Callable[[Sections], Any]


CAPTURE: tuple[CapturePart, ...] = (
    CapturePart("camera", lambda c: camera.build(
        c.camera, simulated=c.device.hardware == "sim", device_id=c.device.id)),
    CapturePart("microphone", lambda c: microphone.build(
        c.microphone, simulated=c.device.hardware == "sim", state_dir=c.device.state_dir)),
)
