"""Know-your-customer onboarding: three checks in parallel, a deadline over all of them, a
review that can be paused and resumed where it was.

    collecting --SUBMIT--> checks (parallel) ------done.state.checks------> review
                           | identity:  verifying --done/error--> passed | failed
                           | sanctions: screening --done [no hits]--> clear
                           |                      --done (a hit)--> flagged --OFFICER_CLEARED--> clear
                           |                      --error--> unavailable
                           | credit:    scoring   --done/error--> scored | unavailable
                           '--3d (while any check runs)--> escalated --RESOLVE--> review
    review: documents --APPROVE--> risk --APPROVE--> approved
            REJECT --> rejected; PAUSE --> paused --RESUME--> review.resume (history: the
            step the review was in)

- Each check is an `Effect` of the leaf state of its region, retried on `RETRY` (five attempts
  over about an hour and a half); the three run concurrently (one outbox row each) and each
  reports through its own `done.<effect>` or `error.<effect>` event, whose transition action
  records the result in the context. A provider that is down for good ends its check in a final
  `failed`/`unavailable` state: the review sees the error.
- A sanctions hit waits in `flagged` for a compliance officer (`OFFICER_CLEARED`).
- When every region is in a final state the engine raises `done.state.checks` in the same
  transaction: the join. It fires once, whichever check finished last.
- The `3d` timer belongs to `checks`, the parallel state: it is armed when the checks start, left
  alone while the regions move, and cancelled when `checks` is left (the join). If a check still
  hangs after three days (a hit nobody cleared) the application escalates: `checks` is exited,
  which cancels whatever of it is still pending.
- `review.resume` is a history state: `RESUME` goes back to the review step that was active at
  `PAUSE` (`documents` when the review was never entered before).

The providers are simulated and deterministic: `Applicant.fail_first` says how many attempts
of each check fail before it succeeds (`None`: it never succeeds). They count by `call.attempt`
(stored in the database), so a scenario behaves the same in one process or in several workers.

The same machine as data: `kyc.yaml` next to this file (`YAML_PATH`), loaded with `registry`
(`load_definition(YAML_PATH, registry)`); the tests check both have the same version.

Run the scenario: `python -m statemachines.examples.kyc`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from statemachines import (
    Effect,
    Engine,
    ManualClock,
    Registry,
    Retry,
    history,
    machine,
    parallel,
    state,
    transition,
)
from statemachines.examples.driving import drive, print_demo

#: Attempts at 0, 1m, 5m, 21m and 85m (plus up to 10% jitter per wait): a provider that is down
#: for good is given up on after about an hour and a half, well inside the 3-day deadline.
RETRY = Retry(max_attempts=5, initial="1m", backoff=4.0, max="4h")
DEADLINE = "3d"
CHECKS = ("identity", "sanctions", "credit")
YAML_PATH = Path(__file__).with_name("kyc.yaml")


class Applicant(BaseModel):
    name: str
    country: str = "NL"
    #: Simulated providers: attempts of each check that fail first (missing: 0; None: all).
    fail_first: dict[str, int | None] = Field(default_factory=dict)
    on_a_list: bool = False  # the sanctions screening finds a hit
    finished: list[str] = Field(default_factory=list)  # checks whose region is final, in order
    results: dict[str, Any] = Field(default_factory=dict)  # check -> what its provider said
    errors: dict[str, str] = Field(default_factory=dict)  # check -> why it gave up
    escalated_pending: list[str] = Field(default_factory=list)  # checks unfinished at the deadline
    decisions: list[str] = Field(default_factory=list)  # review steps approved, in order


class ProviderUnavailable(Exception):
    pass


class Providers:
    """Three outside services in one sandbox; each answers once per effect key (its own
    idempotency), after failing the first `fail_first` attempts."""

    def __init__(self) -> None:
        self.calls: dict[str, int] = {}  # effect key -> attempts seen
        self.answers: dict[str, dict[str, Any]] = {}  # effect key -> the one answer

    def reset(self) -> None:
        self.calls.clear()
        self.answers.clear()

    def ask(self, check: str, ctx: Applicant, call: Any, answer: dict[str, Any]) -> dict[str, Any]:
        self.calls[call.key] = self.calls.get(call.key, 0) + 1
        fail_first = ctx.fail_first.get(check, 0)
        if fail_first is None or call.attempt <= fail_first:
            raise ProviderUnavailable(f"{check} provider: 503 (attempt {call.attempt})")
        self.answers.setdefault(call.key, {**answer, "attempt": call.attempt})
        return dict(self.answers[call.key])


providers = Providers()


# Effects: each return value is the payload of its done.<effect> event ------------------------------
def verify_identity(ctx: Applicant, call: Any) -> dict[str, Any]:
    return providers.ask("identity", ctx, call, {"verified": True, "document": "passport"})


def screen_sanctions(ctx: Applicant, call: Any) -> dict[str, Any]:
    hits = 1 if ctx.on_a_list else 0
    return providers.ask("sanctions", ctx, call, {"hits": hits, "lists": ["EU", "UN", "OFAC"]})


def score_credit(ctx: Applicant, call: Any) -> dict[str, Any]:
    return providers.ask("credit", ctx, call, {"score": 710 if ctx.country == "NL" else 640})


# Transition actions ---------------------------------------------------------------------------------
def _recorder(check: str) -> Any:
    def record(ctx: Applicant, event: Any) -> None:
        ctx.results[check] = event.payload
        ctx.finished.append(check)

    record.__name__ = f"record_{check}"
    return record


def _error_recorder(check: str) -> Any:
    def record(ctx: Applicant, event: Any) -> None:
        ctx.errors[check] = f"{event.payload['error']} after {event.payload['attempts']} attempts"
        ctx.finished.append(check)

    record.__name__ = f"record_{check}_error"
    return record


#: check -> (its done.<effect> action, its error.<effect> action)
RECORDERS = {check: (_recorder(check), _error_recorder(check)) for check in CHECKS}


def no_hits(ctx: Applicant, event: Any) -> bool:
    return event.payload["hits"] == 0


def record_hit(ctx: Applicant, event: Any) -> None:
    """A sanctions hit: the answer is in, the check is not finished until an officer clears it."""
    ctx.results["sanctions"] = event.payload


def officer_cleared(ctx: Applicant, event: Any) -> None:
    ctx.finished.append("sanctions")


def note_escalation(ctx: Applicant, event: Any) -> None:
    ctx.escalated_pending = [c for c in CHECKS if c not in ctx.finished]


def note_documents(ctx: Applicant, event: Any) -> None:
    ctx.decisions.append("documents")


def note_risk(ctx: Applicant, event: Any) -> None:
    ctx.decisions.append("risk")


registry = Registry()
for _item in (
    Applicant, verify_identity, screen_sanctions, score_credit,
    *(fn for pair in RECORDERS.values() for fn in pair),
    no_hits, record_hit, officer_cleared, note_escalation, note_documents, note_risk,
):  # fmt: skip
    registry.add(_item)


def _check(
    check: str, effect: Any, leaves: tuple[str, str, str], detour: dict[str, Any] | None = None
) -> Any:
    """One region: a busy leaf running the effect, then one of two final states; `detour` (done:
    the transitions of done.<effect>, states: more states) replaces the direct way to `ok`."""
    busy, ok, bad = leaves
    name = effect.__name__
    record, record_error = RECORDERS[check]
    detour = detour or {"done": transition(ok, action=record), "states": {}}
    return state(
        initial=busy,
        states={
            busy: state(
                effect=Effect(effect, retry=RETRY),
                on={f"done.{name}": detour["done"], f"error.{name}": transition(bad, action=record_error)},
            ),
            ok: state(final=True),
            bad: state(final=True),
            **detour["states"],
        },
    )


#: A sanctions hit is not the end of the check: it waits in `flagged` for an officer.
SANCTIONS_HIT = {
    "done": [
        transition("clear", guard=no_hits, action=RECORDERS["sanctions"][0]),
        transition("flagged", action=record_hit),
    ],
    "states": {"flagged": state(on={"OFFICER_CLEARED": transition("clear", action=officer_cleared)})},
}


kyc = machine(
    "kyc",
    context=Applicant,
    initial="collecting",
    description="Identity, sanctions and credit checks in parallel, a 3-day deadline, a pausable review.",
    states={
        "collecting": state(on={"SUBMIT": "checks"}),
        "checks": parallel(
            {
                "identity": _check("identity", verify_identity, ("verifying", "passed", "failed")),
                "sanctions": _check(
                    "sanctions", screen_sanctions, ("screening", "clear", "unavailable"), SANCTIONS_HIT
                ),
                "credit": _check("credit", score_credit, ("scoring", "scored", "unavailable")),
            },
            on={"done.state.checks": "review", "WITHDRAW": "withdrawn"},
            after={DEADLINE: transition("escalated", action=note_escalation)},
        ),
        "escalated": state(on={"RESOLVE": "review", "REJECT": "rejected"}),
        "review": state(
            initial="documents",
            states={
                "documents": state(on={"APPROVE": transition("risk", action=note_documents)}),
                "risk": state(on={"APPROVE": transition("approved", action=note_risk)}),
                "resume": history(default="documents"),
            },
            on={"PAUSE": "paused", "REJECT": "rejected"},
        ),
        "paused": state(on={"RESUME": "review.resume", "REJECT": "rejected"}),
        "approved": state(final=True),
        "rejected": state(final=True),
        "withdrawn": state(final=True),
    },
)



def run(engine: Engine, clock: ManualClock, *, prefix: str = "kyc-") -> dict[str, Any]:
    """Three applicants:

    - `ada`: the identity provider fails once, then answers on the retry a minute later; the
      three checks join, the review is paused at its second step and resumed there, approved.
    - `bob`: the sanctions screening finds a hit and nobody clears it: after 3 days the
      application escalates while that check still hangs; compliance resolves it into review.
    - `cy`: withdraws while the checks run.
    """
    engine.register(kyc)
    providers.reset()  # a fresh sandbox: effect keys repeat when the scenario runs on a new database
    ada, bob, cy = (f"{prefix}{n}" for n in ("ada", "bob", "cy"))
    engine.start(kyc.name, {"name": "Ada", "fail_first": {"identity": 1}}, instance_id=ada)
    engine.start(kyc.name, {"name": "Bob", "on_a_list": True}, instance_id=bob)
    engine.start(kyc.name, {"name": "Cy"}, instance_id=cy)
    for iid in (ada, bob, cy):
        engine.send(iid, "SUBMIT")
    engine.send(cy, "WITHDRAW")

    drive(engine, clock, [ada, bob])
    engine.send(ada, "APPROVE")  # documents -> risk
    engine.send(ada, "PAUSE")
    paused_in = engine.get(ada).state
    engine.send(ada, "RESUME")  # back to review.risk, not review.documents
    resumed_in = engine.get(ada).state
    engine.send(ada, "APPROVE")
    engine.send(bob, "RESOLVE")

    out: dict[str, Any] = {"ada_paused_in": paused_in, "ada_resumed_in": resumed_in}
    for iid in (ada, bob, cy):
        snap = engine.get(iid)
        out[iid] = {
            "state": snap.state,
            "status": snap.status,
            "results": sorted(snap.context.results),
            "escalated_pending": snap.context.escalated_pending,
            "decisions": snap.context.decisions,
            "events": [r.event for r in engine.history(iid)],
        }
    return out


def main() -> None:  # pragma: no cover - manual demo
    print_demo(run)


if __name__ == "__main__":  # pragma: no cover - manual demo
    main()
