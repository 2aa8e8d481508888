"""The recovery engine's commands: auto-recover, explain, the watch that starts it, and the drills that test
it (test-recovery)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, Protocol

import typer

from notification_emergency.cli.options import HOSTS, HOUR, RUN, WEEK, Common, shared
from notification_emergency.cli.render import err, out, render_drills, render_recovery
from notification_emergency.cli.running import act, fail, toolkit
from notification_emergency.cli.signals import stopping
from notification_emergency.errors import EXIT_BAD_INPUT, EXIT_OK, ToolkitError
from notification_emergency.timeutil import iso, utc_now

if TYPE_CHECKING:
    from notification_emergency.api import EmergencyToolkit
    from notification_emergency.probes import Probe
    from notification_emergency.results import ActionResult
    from notification_emergency.watch import Hold, HostState, OnFailure


@shared(RUN)
def auto_recover(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only explain the decision; change nothing.")] = False,
    budget: Annotated[
        float,
        typer.Option(min=10, max=HOUR, help="Seconds the whole run may take; a step that would go past it is stopped."),
    ] = 300.0,
    *,
    opts: Common,
) -> None:
    """Check, classify and run each unhealthy host's recovery plan, verifying after each step; escalate
    (level raised, emergency mode on, operators notified) when the plan is exhausted or the budget runs out.

    When WebSocket delivery cannot be restored (within 60 s of detection), the host is put on flash messages
    (the verified rollback) so users keep getting notifications, and rolled forward to WebSocket once it has
    been healthy for 60 s (by this command's next run, or by the watch). Throttled per failure and host, with
    a circuit breaker per host; other steps that touch data never run automatically. Exits 0 when every host
    is healthy at the end, 3 otherwise (escalated, on flash messages, throttled).
    Example: notification-emergency auto-recover --limit sandbox-01 --dry-run
    """
    act(opts, lambda t: t.auto_recover(opts.limit, dry_run=dry_run, budget_s=budget), render_recovery)


@shared(RUN)
def explain(opts: Common) -> None:
    """What auto-recover would do now and why: failure type, level, each plan step run or skipped (and
    why), the escalation and its notification. Read-only.

    Example: notification-emergency explain --json
    """
    act(opts, lambda t: t.explain(opts.limit), render_recovery)


# -- the watch ---------------------------------------------------------------------------------------------


class Emit(Protocol):
    def __call__(self, kind: str, host: str, **data: Any) -> None: ...


def _emitter(as_json: bool) -> Emit:
    """Print one watch event: a JSON object per line, or a line of text (the time of day, host, event)."""

    def emit(kind: str, host: str, **data: Any) -> None:
        at = iso(utc_now()) or ""
        if as_json:
            print(json.dumps({"at": at, "event": kind, "host": host, **data}, default=str), flush=True)
        else:
            detail = ", ".join(f"{k}={v}" for k, v in data.items() if v not in (None, [], ""))
            out.print(f"{at[11:23]} {host} {kind} {detail}")

    return emit


def _recovering(kit: EmergencyToolkit, emit: Emit, recover: bool) -> OnFailure:
    """What the watch does with a confirmed failure: auto-recover the hosts (unless --no-recover), saying so."""

    def on_failure(hosts: list[str], started_at: dict[str, datetime], detected_at: datetime) -> ActionResult | None:
        if not recover:
            return None
        for host in hosts:
            emit("auto-recover", host, started_at=iso(started_at[host]))
        result = kit.auto_recover(",".join(hosts), started_at=started_at, detected_at=detected_at)
        for host in hosts:
            row = result.hosts.get(host, {})
            ok = row.get("status") in ("recovered", "healthy")
            emit("recovered" if ok else "not-recovered", host, message=f"{host}: {row.get('line', row.get('status'))}")
        return result

    return on_failure


WatchJson = Annotated[bool, typer.Option("--json", help="One JSON object per line for each change.")]


@shared(HOSTS, as_json=WatchJson)
def watch(
    interval: Annotated[float, typer.Option(min=0.05, max=HOUR, help="Seconds between probe rounds.")] = 0.5,
    fail_threshold: Annotated[
        int, typer.Option(min=1, max=1000, help="Failed probes in a row that confirm a failure.")
    ] = 2,
    ok_threshold: Annotated[int, typer.Option(min=1, max=1000, help="Good probes in a row that confirm recovery.")] = 2,
    probe_timeout: Annotated[float, typer.Option(min=0.05, max=60, help="Seconds a probe may take.")] = 1.0,
    recover: Annotated[
        bool, typer.Option("--recover/--no-recover", help="Start auto-recover on a confirmed failure.")
    ] = True,
    duration: Annotated[float | None, typer.Option(min=0.1, max=WEEK, help="Stop after this many seconds.")] = None,
    deep_every: Annotated[
        float,
        typer.Option(
            min=0,
            max=WEEK,
            help="Seconds between deep checks (the health playbook: pending queue, disk, processes), which see "
            "what probes cannot; 0 turns them off.",
        ),
    ] = 30.0,
    tend_every: Annotated[
        float,
        typer.Option(
            min=1,
            max=WEEK,
            help="Seconds between passes over the hosts auto-recover put on flash messages, which are rolled "
            "forward to WebSocket once it has been healthy for 60 s (not with --no-recover).",
        ),
    ] = 10.0,
    *,
    opts: Common,
) -> None:
    """Probe the hosts directly (no playbook) every interval; on a confirmed failure start auto-recover;
    roll hosts that auto-recover put on flash messages forward to WebSocket once it is healthy again.

    Ctrl-C (or SIGTERM, as systemd sends) stops it cleanly after the round in progress; a recovery in
    progress is finished first. Example: notification-emergency watch --interval 0.5 --limit sandbox-01
    """
    emit = _emitter(opts.as_json)

    def on_change(host: str, state: str, probe: Probe) -> None:
        emit(state, host, problems=probe.problems, latency_ms=probe.latency_ms)

    def on_probe(probe: Probe, _state: HostState) -> None:
        if opts.verbose:
            emit("probe", probe.host, status=probe.status, latency_ms=probe.latency_ms, problems=probe.problems)

    def tend(hold: Hold) -> dict[str, str]:
        done = kit.tend_fallbacks(opts.limit, hold=hold)
        for host, line in done.items():
            emit("fallback", host, action=line)
        return done

    try:
        kit = toolkit(opts)
        kit.notifier()  # a bad channels file is refused now, not at the first escalation
        watcher = kit.watcher(
            opts.limit,
            on_failure=_recovering(kit, emit, recover),
            interval=interval,
            fail_threshold=fail_threshold,
            ok_threshold=ok_threshold,
            timeout=probe_timeout,
            on_probe=on_probe,
            on_change=on_change,
            deep_every=deep_every,
            tend=tend if recover else None,
            tend_every=tend_every,
        )
    except ToolkitError as exc:
        fail(exc.message, exc.exit_code, opts.as_json)

    hosts = ", ".join(target.host for target in watcher.targets)
    deep = f", deep check every {deep_every:g} s" if deep_every else ", no deep checks"
    with stopping(watcher.stop):
        err.print(
            f"watching {hosts} every {interval} s (failure after {fail_threshold}, recovery after {ok_threshold}{deep})"
        )
        watcher.run(duration=duration)
    err.print("watch stopped")
    raise typer.Exit(EXIT_OK)


# -- drills ------------------------------------------------------------------------------------------------


@shared(HOSTS)
def test_recovery(
    fault: Annotated[
        list[str] | None, typer.Option("--fault", "-f", help="A fault to inject (repeatable); see --list.")
    ] = None,
    run_all: Annotated[
        bool, typer.Option("--all", help="Run every drill (also what test-recovery without --fault does).")
    ] = False,
    list_faults: Annotated[bool, typer.Option("--list", help="List the drills and exit.")] = False,
    interval: Annotated[float, typer.Option(min=0.05, max=HOUR, help="Seconds between the watch's probes.")] = 0.25,
    *,
    opts: Common,
) -> None:
    """Recovery drills on sandbox hosts: inject a fault, let the watch detect it and auto-recover fix it
    (or escalate), and time it. Without --fault, runs every drill. Refuses hosts that are not sandboxes,
    before any drill runs. Writes a JSON journal per drill.

    Example: notification-emergency test-recovery --limit sandbox-01
    """
    from notification_emergency.drills import FAULTS

    if list_faults:
        for name, item in FAULTS.items():
            out.print(
                f"{name:22} {item.description} (expects {item.expects}, {'recovers' if item.recovers else 'escalates'})"
            )
        raise typer.Exit(EXIT_OK)
    if fault and run_all:
        fail("give either --fault NAME (repeatable) or --all, not both", EXIT_BAD_INPUT, opts.as_json)
    act(opts, lambda t: t.test_recovery(fault or None, opts.limit, interval=interval), render_drills)
