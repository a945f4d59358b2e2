"""Reading gpiozero's mock pins as a person sees them: when a light was lit, when a buzzer sounded.

A ``MockPin`` records every level it went through as (seconds since the previous change, level)
in ``pin.states`` (reset by ``clear_states()``); these turn that into absolute times and spans.
"""

from __future__ import annotations

from gpiozero.pins.mock import MockPin

Timeline = list[tuple[float, float]]


def timeline(pin: MockPin) -> Timeline:
    """(seconds since clear_states(), level) for every level the pin went through."""
    t, out = 0.0, []
    for delta, state in list(pin.states):
        t += delta
        out.append((t, float(state)))
    return out


def on_spans(line: Timeline, end: float) -> list[tuple[float, float]]:
    """(start, stop) of every stretch where the level was above zero, up to ``end``."""
    spans: list[tuple[float, float]] = []
    for i, (t, level) in enumerate(line):
        stop = line[i + 1][0] if i + 1 < len(line) else end
        if level > 0:
            if spans and spans[-1][1] == t:
                spans[-1] = (spans[-1][0], stop)
            else:
                spans.append((t, stop))
    return spans
