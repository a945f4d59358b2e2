"""`safehouse accept`, step by step: what is checked, in which order, and what counts as passing.

Everything is asked of the daemon the service manager just restarted (its control socket,
its recorded events, its journal), never of parts opened in this process: a check that runs
outside the unit's sandbox proves nothing about the unit. The automatic steps come first,
then the hands-on ones (device/cli/acceptance_hands.py), then the journal of the whole run and
whether the unit stayed up.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from safehouse.device.cli.acceptance import Report, StepResult, scan_journal
from safehouse.device.cli.acceptance_console import Console, EventWatch
from safehouse.device.cli.acceptance_hands import STEPS as HANDS_ON
from safehouse.device.cli.acceptance_hands import HandsOn
from safehouse.device.cli.acceptance_service import ServiceManager
from safehouse.device.core.errors import ControlError, SafehouseError
from safehouse.device.runtime.config import Config
from safehouse.services.control import request

_LOG = logging.getLogger(__name__)
Call = Callable[..., Any]


@dataclass(frozen=True)
class Options:
    ready_timeout: float = 90.0
    step_timeout: float = 120.0
    record_seconds: float = 60.0
    snapshots: int = 3
    selftest_timeout: float = 120.0


class Acceptance:
    def __init__(self, config: Config, service: ServiceManager, console: Console, options: Options,
                 wall: Callable[[], float], call: Call | None = None) -> None:
        self.config, self.service, self.console, self.options = config, service, console, options
        self._wall = wall
        sock = config.control.socket
        self._call: Call = call or (lambda cmd, timeout=30.0, **kw: request(sock, cmd, timeout=timeout, **kw))
        self._watch: EventWatch | None = None
        self._selftest: dict[str, Any] | None = None

    # --- the run ----------------------------------------------------------------------------

    def run(self, device: dict[str, Any]) -> Report:
        report = Report(device={**device, "service": self.service.name}, started=self._wall())
        say = self.console.say
        say(f"safehouse accept: {self.service.name}; report follows at the end")
        try:
            if self._step(report, "restart", "restart, READY=1", self._restart).passed:
                self._watch = EventWatch(self.config.device.state_dir)
                status = self._call("status")  # the record names what really ran
                report.device.update({"daemon_version": status.get("version"),
                                      "boot_id": status.get("boot_id")})
                hands = HandsOn(self.config, self.console, self.options.step_timeout, self._call, self._watch)
                for name, title, fn in self._automatic() + hands.steps():
                    self._step(report, name, title, fn)
            else:
                for name, title in [step[:2] for step in self._automatic()] + list(HANDS_ON):
                    report.steps.append(StepResult(name, title, "not run", "the kiosk did not start"))
            self._step(report, "journal", "journal since the restart", self._journal)
            self._step(report, "stayed-up", "unit stayed up", self._stayed_up)
        finally:
            if self._watch is not None:
                self._watch.close()
        report.finished = self._wall()
        return report

    def _automatic(self) -> list[tuple[str, str, Callable[[], StepResult]]]:
        return [("selftest", "selftest through the daemon", self._run_selftest),
                ("acoustic-loop", "buzzer -> microphone loop", self._loop),
                ("snapshots", f"{self.options.snapshots} snapshots at the configured size", self._snapshots),
                ("recording", f"{self.options.record_seconds:g} s recording, no overflows", self._record)]

    def _step(self, report: Report, name: str, title: str, fn: Callable[[], StepResult]) -> StepResult:
        t0 = time.monotonic()
        self.console.say(f"--- {title}")
        try:
            result = fn()
        except ControlError as exc:
            result = StepResult(name, title, "fail", f"the daemon did not answer: {exc}")
        except SafehouseError as exc:
            result = StepResult(name, title, "fail", str(exc))
        except Exception as exc:  # a bug here must not lose the report of the steps before it
            _LOG.exception("acceptance step %s crashed", name)
            result = StepResult(name, title, "fail", f"{type(exc).__name__}: {exc}")
        result.name, result.title = name, title
        result.seconds = round(time.monotonic() - t0, 1)
        self.console.say(f"    {result.status.upper()}: {result.detail}")
        report.steps.append(result)
        return result

    # --- automatic steps --------------------------------------------------------------------

    def _restart(self) -> StepResult:
        self.service.restart()
        ok, detail = self.service.wait_ready(self.options.ready_timeout)
        if not ok:  # what the daemon said last is usually why
            detail += "".join(f" | {line.strip()[:200]}" for line in self.service.journal()[-3:])
        return StepResult("", "", "pass" if ok else "fail", detail)

    def _run_selftest(self) -> StepResult:
        result = self._call("selftest", timeout=self.options.selftest_timeout)
        self._selftest = result
        checks = result["checks"]
        failed = [c for c in checks if not c["ok"]]
        detail = (f"all {len(checks)} checks passed" if not failed else
                  "; ".join(f"{c['name']}: {c['detail']}" for c in failed))
        ran_as, unit_pid = result.get("ran_as") or {}, self.service.main_pid()
        detail += f" (in pid {ran_as.get('pid')}, user {ran_as.get('user')})"
        wrong = None
        if unit_pid is not None and ran_as.get("pid") != unit_pid:
            wrong = (f"the checks ran in pid {ran_as.get('pid')}, not in the unit's main process {unit_pid}: "
                     "another daemon answers on the control socket")
        elif ran_as.get("uid") == 0 and self.config.device.hardware == "pi":
            wrong = "the daemon runs as root: the unit must run as its own user (User=safehouse)"
        if wrong:
            failed, detail = [*failed, {"name": "process"}], f"{wrong}; {detail}"
        return StepResult("", "", "fail" if failed else "pass", detail,
                          data={"checks": checks, "ran_as": ran_as})

    def _loop(self) -> StepResult:
        if not self.config.microphone.enabled:
            return StepResult("", "", "n/a", "microphone.enabled = false")
        checks = (self._selftest or {}).get("checks", [])
        mic = next((c for c in checks if c["name"] == "microphone"), None)
        if mic is None:
            return StepResult("", "", "fail", "the selftest did not run the microphone check")
        tonal = self.config.buzzer.enabled and self.config.buzzer.tonal
        status = "pass" if mic["ok"] else "fail"
        if mic["ok"] and not tonal and self.config.device.hardware == "pi":
            status = "warn"  # audio arrives, but nothing proved the microphone hears the room
        return StepResult("", "", status, mic["detail"])

    def _snapshots(self) -> StepResult:
        cam = self.config.camera
        if not cam.enabled:
            return StepResult("", "", "n/a", "camera.enabled = false")
        # `timeout` here is the socket's; the daemon waits camera.timeout per snapshot
        result = self._call("snapshots", count=self.options.snapshots, per_shot=cam.timeout,
                            timeout=cam.timeout * (self.options.snapshots + 2) + 10)
        shots = result.get("shots", [])
        if result.get("error"):
            return StepResult("", "", "fail", result["error"], data=result)
        wrong = [s for s in shots if s.get("error") or (s.get("width"), s.get("height"))
                 != (cam.width, cam.height)]
        sizes = ", ".join(s["error"] if s.get("error") else
                          f"{s['width']}x{s['height']} {s['bytes']} B" for s in shots)
        if wrong or len(shots) != self.options.snapshots:
            return StepResult("", "", "fail", f"expected {self.options.snapshots} JPEGs of "
                              f"{cam.width}x{cam.height}, got: {sizes or 'none'}", data=result)
        return StepResult("", "", "pass", sizes, data=result)

    def _record(self) -> StepResult:
        if not self.config.microphone.enabled:
            return StepResult("", "", "n/a", "microphone.enabled = false")
        seconds = self.options.record_seconds
        self._call("record", seconds=seconds)
        deadline = time.monotonic() + seconds * 2 + 30
        while (answer := self._call("record", poll=True))["running"] and time.monotonic() < deadline:
            time.sleep(min(1.0, seconds / 4))
        result = answer.get("result")
        if answer["running"] or result is None:
            return StepResult("", "", "fail", f"no recording within {seconds * 2 + 30:g} s")
        if "error" in result:
            return StepResult("", "", "fail", result["error"], data=result)
        frames, expected, overflows = result["frames"], result["expected_frames"], result["overflows"]
        detail = (f"{frames / result['rate']:.1f} s of {seconds:g} s from {result['device']} at "
                  f"{result['rate']} Hz, level {result['level']:.0f}, overflows "
                  f"{'not counted by this driver' if overflows is None else overflows}")
        if frames < expected or (overflows or 0) > 0 or result["level"] <= 0:
            return StepResult("", "", "fail", detail, data=result)
        return StepResult("", "", "warn" if overflows is None else "pass", detail, data=result)

    def _journal(self) -> StepResult:
        lines = self.service.journal()
        hits = scan_journal(lines)
        if hits:
            shown = " | ".join(line.strip()[:200] for line in hits[:5])
            more = f" (+{len(hits) - 5} more)" if len(hits) > 5 else ""
            return StepResult("", "", "fail", f"{len(hits)} known failure line(s): {shown}{more}",
                              data={"hits": hits[:50], "lines": len(lines)})
        return StepResult("", "", "pass", f"{len(lines)} lines, none with a known failure string",
                          data={"lines": len(lines)})

    def _stayed_up(self) -> StepResult:
        ok, detail = self.service.still_up()
        return StepResult("", "", "pass" if ok else "fail", detail)
