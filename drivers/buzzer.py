"""The volunteers' buzzer: key clicks, ok/error feedback, and the chimes that summon them.

Sounds are data (``SOUNDS``), so their rhythm can be reviewed in one table. One player
thread follows two timelines: the repeating sound (the alarm ``chime``, the ``rollcall``),
which runs on its own clock until ``stop()`` or until another repeating sound replaces it,
and an optional one-shot (``click``, ``ok``, ``error``) laid over it. While a one-shot lasts
it owns the pin; then the repeating sound carries on where its clock says it is, so a key
click during the alarm chime neither ends the chime nor shifts its rhythm.

A key click must be heard as the key is pressed, so ``play()`` writes the first level itself
under the lock the player also holds, as ``LightBox.play`` does.

The module is the whole part: its [buzzer] settings, the driver and ``build()``. gpiozero is
imported only when a Buzzer opens its pin (and by ``_tone``), so loading the config imports
no driver library.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from safehouse.device.core.closing import Closing
from safehouse.device.core.errors import HardwareError
from safehouse.device.core.settings import setting
from safehouse.device.core.signals import REPEATING, Sound
from safehouse.device.core.threads import Worker

if TYPE_CHECKING:
    from gpiozero.tones import Tone

_LOG = logging.getLogger(__name__)

# A tonal buzzer spans MID_TONE +- one octave (A5-A7, 880-3520 Hz): where piezo discs are loud.
MID_TONE = "A6"
SELFTEST_HZ = 1760.0  # A6: the tone the self-test listens for
DEFAULT_NOTE = MID_TONE  # a beep without a note, on a tonal buzzer


@dataclass(frozen=True)
class BuzzerSettings:
    """[buzzer]: the buzzer and which sounds it makes."""

    enabled: bool = setting(True, "false silences the buzzer entirely")
    tonal: bool = setting(False, "true for a passive piezo driven with tones (TonalBuzzer)")
    click: bool = setting(True, "a click on every key")
    ok: bool = setting(True, "a chirp when an entry is accepted")
    error: bool = setting(True, "three beeps when an entry is refused")
    chime: bool = setting(True, "the chime that summons the volunteer until the alarm is acknowledged")
    rollcall: bool = setting(True, "the roll-call chime")

    def sounds(self) -> dict[str, bool]:
        """Each sound's switch, by the name the buzzer plays it under."""
        return {Sound.CLICK: self.click, Sound.OK: self.ok, Sound.ERROR: self.error,
                Sound.CHIME: self.chime, Sound.ROLLCALL: self.rollcall}


@functools.cache
def _tone(note: str) -> Tone:
    """gpiozero's Tone for ``note``; raises ValueError naming a bad note."""
    from gpiozero.tones import Tone

    return Tone(note)


@dataclass(frozen=True)
class Beep:
    """Sound for ``on`` seconds (at ``note`` on a tonal buzzer), then silence for ``off``.

    Consecutive beeps with ``off == 0`` run together: a plain buzzer hears one long beep,
    a tonal one hears the notes change (a chirp). The note is checked (``_tone``) when a
    buzzer opens, not here: SOUNDS is built on import, which must not load gpiozero.
    """

    on: float
    off: float
    note: str | None = None

    def __post_init__(self) -> None:
        if not self.on > 0:
            raise ValueError(f"beep on must be > 0 seconds, got {self.on!r}")
        if not self.off >= 0:
            raise ValueError(f"beep off must be >= 0 seconds, got {self.off!r}")


# Keyed by the enum, one tune per member (tests/drivers/test_buzzer.py holds that).
SOUNDS: Mapping[Sound, tuple[Beep, ...]] = MappingProxyType(
    {
        # Key feedback: one 30 ms tick.
        Sound.CLICK: (Beep(0.03, 0.0, "A6"),),
        # Accepted (PIN, check-in): a short rising chirp, one 0.2 s beep on a plain buzzer.
        Sound.OK: (Beep(0.06, 0.0, "C6"), Beep(0.06, 0.0, "E6"), Beep(0.08, 0.0, "A6")),
        # Rejected: three short low beeps.
        Sound.ERROR: (Beep(0.1, 0.08, "A5"), Beep(0.1, 0.08, "A5"), Beep(0.1, 0.0, "A5")),
        # The alarm: three beeps, a 2 s pause, again until stop(): summons the volunteer.
        Sound.CHIME: (Beep(0.15, 0.1, "E7"), Beep(0.15, 0.1, "E7"), Beep(0.15, 2.0, "E7")),
        # Duty roll call: two long falling tones, a 3 s pause; unlike the alarm in rhythm too.
        Sound.ROLLCALL: (Beep(0.4, 0.2, "E6"), Beep(0.4, 3.0, "C6")),
        # Self-test: one steady 1760 Hz second for the microphone to find (acoustic loop).
        Sound.SELFTEST: (Beep(1.0, 0.0, "A6"),),
    }
)


def _valid() -> str:
    return ", ".join(sorted(SOUNDS))


def _position(beeps: tuple[Beep, ...], elapsed: float, repeat: bool) -> tuple[Beep | None, float] | None:
    """The beep sounding ``elapsed`` s into ``beeps`` (None: a pause) and when that changes.

    Returns None once a non-repeating sound is over.
    """
    cycle = sum(b.on + b.off for b in beeps)
    base = 0.0
    if repeat:
        laps = elapsed // cycle
        base = laps * cycle
        elapsed -= base
    elif elapsed >= cycle:
        return None
    start = 0.0
    for beep in beeps:
        if elapsed < start + beep.on:
            return beep, base + start + beep.on
        start += beep.on
        if elapsed < start + beep.off:
            return None, base + start + beep.off
        start += beep.off
    return None, base + cycle  # float rounding at the very end of a cycle


class Buzzer(Closing):
    """A piezo buzzer on ``pin``: plain on/off, or ``tonal`` (PWM) playing each beep's note.

    ``enabled`` turns sounds off by name (config), e.g. ``{"click": False}``. A disabled
    one-shot is skipped; a disabled repeating sound still replaces the current one and is
    reported by ``sound``, but stays silent until ``stop()``.
    """

    def __init__(
        self,
        pin: int,
        *,
        pin_factory: Any = None,
        tonal: bool = False,
        enabled: Mapping[str, bool] | None = None,
    ) -> None:
        enabled = dict(enabled or {})
        unknown = sorted(set(enabled) - set(SOUNDS))
        if unknown:
            raise ValueError(f"buzzer: unknown sound(s) {', '.join(unknown)}; valid sounds: {_valid()}")
        self._pin = pin
        self._tonal = tonal
        self._enabled = {name: bool(enabled.get(name, True)) for name in SOUNDS}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._worker = Worker(self._run, name=f"buzzer-{pin}", wake=self._wake.set)
        self._sound: str | None = None
        self._repeat: tuple[tuple[Beep, ...], float] | None = None  # (beeps, started)
        self._oneshot: tuple[tuple[Beep, ...], float] | None = None
        self._level: str | None = None  # the note sounding ("" on a plain buzzer), None silent
        # gpiozero (and pins, which imports it) only here, where the pin opens.
        from gpiozero import Buzzer as _GpioBuzzer
        from gpiozero import TonalBuzzer as _GpioTonalBuzzer

        from safehouse.drivers.pins import opening

        for beeps in SOUNDS.values():  # every note is valid (ValueError), its Tone cached for play()
            for beep in beeps:
                if beep.note is not None:
                    _tone(beep.note)
        with opening("buzzer", pin):
            if tonal:
                self._device: Any = _GpioTonalBuzzer(
                    pin, mid_tone=_tone(MID_TONE), octaves=1, pin_factory=pin_factory
                )
            else:
                self._device = _GpioBuzzer(pin, pin_factory=pin_factory)
        try:
            self._worker.start()
        except BaseException:
            self._device.close()
            raise

    def __repr__(self) -> str:
        kind = "tonal " if self._tonal else ""
        return f"<Buzzer {kind}GPIO{self._pin} sound={self._sound!r}>"

    @property
    def sound(self) -> str | None:
        """The repeating sound playing until ``stop()``, or None."""
        return self._sound

    @property
    def is_active(self) -> bool:
        """True while the buzzer is sounding this instant."""
        return self._level is not None

    def play(self, sound: str) -> None:
        """Start ``sound``; its first beep is on the pin when this returns.

        A one-shot interrupts an earlier one-shot and lays itself over a repeating sound.
        Playing the repeating sound already playing is a no-op (its rhythm is kept).
        """
        try:
            key = Sound(sound)
        except ValueError:
            raise ValueError(f"unknown buzzer sound {sound!r}; valid sounds: {_valid()}") from None
        beeps, repeating = SOUNDS[key], key in REPEATING
        with self._lock:
            if self._worker.stopping.is_set():
                raise HardwareError(f"{self!r} is closed; build a new Buzzer to use the pin")
            now = time.monotonic()
            if repeating:
                if sound == self._sound:
                    return
                self._sound = sound
                self._repeat = (beeps, now) if self._enabled[key] else None
            elif self._enabled[key]:
                self._oneshot = (beeps, now)
            else:
                return
            self._update(now)
            self._wake.set()
        _LOG.debug("buzzer plays %s", sound)

    def stop(self) -> None:
        """End the repeating sound at once; a one-shot already sounding (the "ok" that goes
        with an acknowledgement) is short and plays to its end. ``close()`` silences all."""
        with self._lock:
            if self._worker.stopping.is_set():
                return
            self._sound = None
            self._repeat = None
            self._update(time.monotonic())
            self._wake.set()

    def close(self) -> None:
        """Stop the player, silence the buzzer and release the pin; safe to repeat."""
        with self._lock:  # play() and stop() see the stop under this lock
            if not self._worker.request_stop():
                return
            self._sound = None
            self._repeat = self._oneshot = None
        self._worker.stop()  # a stuck player is logged, not waited for
        with self._lock:
            try:
                self._output(None)
            finally:
                self._device.close()

    def _update(self, now: float) -> float | None:
        """Write what should sound at ``now``; return when that changes. Caller holds the lock."""
        if self._oneshot is not None:
            beeps, started = self._oneshot
            where = _position(beeps, now - started, repeat=False)
            if where is not None:
                self._output(where[0])
                return started + where[1]
            self._oneshot = None
        if self._repeat is not None:
            beeps, started = self._repeat
            where = _position(beeps, now - started, repeat=True)
            assert where is not None
            self._output(where[0])
            return started + where[1]
        self._output(None)
        return None

    def _output(self, beep: Beep | None) -> None:
        level = None if beep is None else (beep.note or DEFAULT_NOTE) if self._tonal else ""
        if level == self._level:
            return
        if level is None:
            if self._tonal:
                self._device.stop()
            else:
                self._device.off()
        elif self._tonal:
            self._device.play(_tone(level))
        else:
            self._device.on()
        self._level = level

    def _run(self) -> None:
        while True:
            with self._lock:
                if self._worker.stopping.is_set():
                    return
                self._wake.clear()
                now = time.monotonic()
                try:
                    until = self._update(now)
                except Exception:
                    _LOG.exception("%r: writing the pin failed", self)
                    until = now + 0.1
            if until is not None:
                until = max(until - time.monotonic(), 0.0005)
            self._wake.wait(until)


def build(settings: BuzzerSettings, pin: int, *, pin_factory: Any) -> Buzzer | None:
    """Open the buzzer on ``pin``, or nothing when [buzzer] enabled = false."""
    if not settings.enabled:
        return None
    return Buzzer(pin, pin_factory=pin_factory, tonal=settings.tonal, enabled=settings.sounds())
