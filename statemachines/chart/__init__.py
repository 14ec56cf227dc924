"""Statecharts: compound, parallel and history states, run by the SCXML algorithm (pure, no storage).

Modules, one concept each:

- `tree`: the resolved state tree (`Tree`, `Node`, `ChartTransition`): dotted paths, kinds,
  document order, targets resolved from full paths or short names.
- `checks`: every definition problem of a statechart at once (`chart_problems`), called by
  `statemachines.checks.find_problems` when a spec is nested.
- `events`: SCXML event descriptors (`*`, token prefixes, several per key), looked up once per
  event name.
- `content`: executable content (`raise`, `assign`, `if`, `foreach`, `send`, `cancel`, ...), the
  datamodel and `error.execution`; `expressions`: the safe expression language it evaluates.
- `algorithm`: W3C SCXML Appendix D (`microstep`, `select_transitions`, `compute_exit_set`,
  `compute_entry_set`, ...), pure functions over an `Interpretation`.
- `compiled`: `CompiledChart`, built once per definition, the API the engine calls:

  - `enter_initial(ctx_json, event) -> ChartStep` when an instance starts;
  - `step(configuration, history, ctx_json, event) -> ChartStep` for each external event, where
    `configuration` is the tuple of active atomic state paths and `history` maps history
    pseudo-state paths to the state paths they remember (both as stored, both in the result);
  - `ChartStep`: new `configuration`, `active` (every active state), `history`, `context_json` /
    `context`, `exited` / `entered` / `moves` (in the order they ran: cancel timers and effects
    on exit, arm them on entry), `transitions` taken, `done` (a top-level final state reached),
    `microsteps`, and `state` (the one-string summary, `state_label`);
  - lookups by full path: `timers[path]` (the `after` labels), `effects[path]`, `final`,
    `top_final`, `kinds`; `allowed_events(configuration)`; `handlers(configuration, event)` (the
    states that would handle an event: where a callback token binds);
  - `validate_payload(event, payload)`, as for flat machines.

  It raises `EventNotAllowed`, `GuardRejected`, `ActionFailed`, `ContextInvalid` and
  `StepLimitExceeded` (more than `max_microsteps` microsteps in one call) before anything could be
  written: the caller rolls back. The rules are in docs/statecharts.md.
"""

from statemachines.chart.compiled import MAX_MICROSTEPS, ChartStep, CompiledChart, Taken, state_label

__all__ = ["MAX_MICROSTEPS", "ChartStep", "CompiledChart", "Taken", "state_label"]
