"""A minimal sim kiosk ``config.toml`` for tests that run the daemon, in process or as a subprocess."""

from __future__ import annotations

from pathlib import Path


def write_config(folder: Path, extra: str = "", *, capture: bool = False, alarm: str = "",
                 staffed: bool = True, **device: str) -> Path:
    """A minimal sim kiosk config whose state and socket live in ``folder``.

    Evidence capture (camera, microphone) is off unless ``capture``: most tests are about
    alarms and links, and a 20 s audio clip per alarm would only slow them down. ``staffed``
    turns off the at-once escalation of alarms while nobody is on duty (keypad tests check
    in for real); ``alarm`` adds lines to the [alarm] table.
    """
    dev = {"id": "SH-TEST-0001", "precinct": "test", "hardware": "sim", **device}
    lines = ["[device]"] + [f'{k} = "{v}"' for k, v in dev.items()]
    lines += [f'state_dir = "{folder / "state"}"', "", "[control]", f'socket = "{folder / "ctl.sock"}"', ""]
    if not capture:
        lines += ["[camera]", "enabled = false", "[microphone]", "enabled = false", ""]
    lines += ["[alarm]", f"escalate_unstaffed = {'false' if staffed else 'true'}", alarm, ""]
    path = folder / "config.toml"
    path.write_text("\n".join(lines) + "\n" + extra, encoding="utf-8")
    return path
