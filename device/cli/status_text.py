"""The human rendering of `safehouse status`: short, aligned, most urgent first."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def render_status(s: Mapping[str, Any]) -> str:
    alarm = s["alarm"]
    if alarm["state"] == "idle":
        alarm_line = "idle"
    else:
        parts = [alarm["state"].upper(), "TEST" if alarm["test"] else "", f"id {alarm['event_id']}",
                 f"{alarm['age_s']:.0f} s", f"presses {alarm['presses']}"]
        if alarm["acknowledged_by"]:
            parts.append(f"acknowledged by {alarm['acknowledged_by']}")
        if alarm["help_coming"]:
            parts.append("precinct: help coming")
        if alarm["escalates_in_s"] is not None:
            parts.append(f"escalates in {alarm['escalates_in_s']:.0f} s")
        alarm_line = ", ".join(p for p in parts if p)
    link = s["link"]
    link_line = link["state"]
    if link.get("broker"):
        link_line += f" to {link['broker']} for {link.get('since_s', 0):.0f} s"
    if link.get("reason"):
        link_line += f" ({link['reason']})"
    if link.get("refused"):
        link_line += (f"; {link['refused']} message(s) the broker refused, set aside "
                      f"(last: {link.get('last_refused')})")
    box = s["outbox"]
    depth = box["depth"]
    backlog = ", ".join(f"{lane} {n}" for lane, n in depth.items())
    if box.get("oldest_pending_age_s") is not None:
        backlog += f"; oldest waiting {box['oldest_pending_age_s']:.0f} s"
    if box.get("near_full"):
        backlog += "; NEAR FULL"
    faults = [name for name, on in (("BUTTON STUCK", s["button"]["stuck"]),
                                    ("TAMPER OPEN", s["tamper_open"]),
                                    ("LAMP DARK", s["lamp"]["fault"]),
                                    ("KEYPAD UNPLUGGED", s["keypad"]["lost"]),
                                    ("KEYPAD LOCKED", s["keypad"]["locked_for_s"] > 0),
                                    ("KEYPAD LINE NOISE", s["keypad"].get("noise", False)),
                                    ("MICROPHONE FAULT", bool(s.get("microphone", {}).get("fault"))),
                                    ("STORAGE FAULT", bool(s.get("storage", {}).get("fault")))) if on]
    storage = s.get("storage", {})
    rows = [
        ("device", f"{s['device_id']} (precinct {s['precinct']}, {s['hardware']} hardware, "
                   f"v{s['version']})"),
        ("alarm", alarm_line),
        ("light", s["light"]),
        ("on duty", ", ".join(s["on_duty"]) or "NOBODY (alarms escalate at once)"),
        ("faults", ", ".join(faults) or "none"),
        ("link", link_line),
        ("mic", microphone_line(s.get("microphone", {}))),
        ("backlog", backlog),
        ("events", f"last seq {s['last_seq']}, {s['pending_events']} not yet durable"),
        ("storage", "on disk" if not storage.get("fault") else
         f"RUNNING FROM MEMORY: {storage['fault']}; {storage.get('alarms_only_in_memory', 0)} alarm(s) "
         f"only in memory, {storage.get('sent_from_memory', 0)} sent from memory, "
         f"{storage.get('dropped_from_memory', 0)} event(s) dropped"),
        ("uptime", f"{s['uptime_s']:.0f} s"),
    ]
    return "\n".join(f"{k:<8} {v}" for k, v in rows)


def microphone_line(mic: Mapping[str, Any]) -> str:
    """Device, native rate and the rate it is opened at: a USB microphone that only does
    44.1/48 kHz is opened at its own rate and resampled, and the technician sees so."""
    if not mic.get("enabled"):
        return "none (microphone.enabled = false, or it could not be set up: see the journal)"
    if mic.get("device") is None:
        line = "not opened yet"
    else:
        line = f"{mic['device']!r}, native {mic['native_rate']} Hz, opened at {mic['device_rate']} Hz"
        if mic["device_rate"] != mic["rate"]:
            line += f", resampled to {mic['rate']} Hz"
    line += f"; {mic.get('stalls', 0)} stall(s), {mic.get('overflows', 0)} overflow(s)"
    if mic.get("fault"):
        line += f"; FAULT: {mic['fault']}"
    elif not mic.get("capturing"):
        line += "; not capturing"
    return line
