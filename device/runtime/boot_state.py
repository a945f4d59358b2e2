"""The state the core starts from: the config's policy, plus what the last run left on disk.

Who is on duty (the daily counts), the precinct command ids already executed (a restart forgets
no id), an alarm the previous run left open (resumed, device/core/recovery.py) and a keypad
lockout (a restart keeps it).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import replace

from safehouse.device.core.alarm import light_for, sound_for
from safehouse.device.core.clock import Clock
from safehouse.device.core.errors import EventLogError
from safehouse.device.core.executed_commands import ExecutedCommands
from safehouse.device.core.recovery import recover_alarm
from safehouse.device.core.state import CoreState, Policy, initial_state
from safehouse.device.runtime.config import Config
from safehouse.services.lockout_store import LockoutStore
from safehouse.services.outbox import Outbox

_LOG = logging.getLogger(__name__)
RECOVERY_WINDOW = 500  # events looked back through for an alarm left open


def policy_from(config: Config) -> Policy:
    return Policy(
        ack_timeout=config.alarm.ack_timeout,
        stuck_after=config.button.stuck_after,
        trigger=config.button.trigger,
        hold_seconds=config.button.hold_seconds,
        entry_timeout=config.keypad.entry_timeout,
        command_freshness=config.commands.freshness,
        neighbor_seconds=config.alliance.show_seconds,
        device_id=config.device.id,
        escalate_unstaffed=config.alarm.escalate_unstaffed,
        lockout_after=config.keypad.lockout_after,
        lockout_seconds=config.keypad.lockout_seconds,
        lockout_max_seconds=config.keypad.lockout_max_seconds,
        rollcall_window=config.keypad.rollcall_window,
    )


def starting_state(config: Config, *, on_duty: Iterable[str], executed_commands: ExecutedCommands,
                   outbox: Outbox, lockouts: LockoutStore, boot_id: str, clock: Clock) -> CoreState:
    state = initial_state(policy_from(config), on_duty=frozenset(on_duty))
    state = replace(state, executed_commands=executed_commands)  # a restart forgets no id
    state = _recover(state, outbox, config.alarm.ack_timeout, boot_id, clock)
    return replace(state, keypad=lockouts.restore(state.keypad))  # a restart keeps a lockout


def _recover(state: CoreState, outbox: Outbox, ack_timeout: float, boot_id: str, clock: Clock) -> CoreState:
    """Resume an alarm the previous run left open (see device/core/recovery.py)."""
    try:
        recent = outbox.events(since_seq=max(0, outbox.last_seq - RECOVERY_WINDOW))
    except (EventLogError, ValueError, OverflowError) as exc:  # storage failing or garbled: start anyway
        _LOG.error("cannot look for an alarm left open by the previous run: %s", exc)
        return state
    alarm = recover_alarm(recent, boot_id=boot_id, mono=clock.mono(), wall=clock.wall(),
                          ack_timeout=ack_timeout)
    if alarm is None:
        return state
    _LOG.warning("resuming alarm %s (%s) left open by the previous run", alarm.event_id, alarm.phase.value)
    resumed = replace(state, alarm=alarm)
    return replace(resumed, light=light_for(resumed), sound=sound_for(resumed))
