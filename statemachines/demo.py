"""`statemachines demo`: one order through a realistic lifecycle, its audit trail, its diagrams.

Each run starts a fresh instance (random id suffix), so the demo can run again on the same
database. Diagrams land next to the SQLite file (or in the current directory for PostgreSQL).
"""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path
from typing import Any

from persistence.urls import parse_url
from statemachines import cli_output as out
from statemachines.engine import Engine
from statemachines.errors import GuardRejected
from statemachines.examples.orders import orders


def run_demo(url: str | None = None) -> int:
    """Run the demo against `url` (default: $STATEMACHINES_DATABASE_URL or ./statemachines.db)."""
    engine = Engine(url)
    try:
        iid = _run_order(engine)
        print(f"\nHistory of {iid} (statemachines history {iid}):")
        print(out.history_table(engine.history(iid)))
        print(f"\nContext now: {out.compact(engine.get(iid).as_dict()['context'], 400)}")
        written = _draw(engine, iid, _output_dir(engine.url))
        if written:
            print("\nDiagrams:")
            for label, path in written:
                print(f"  {label:<10} {path}")
        db = "" if url is None else f" --db {url}"
        print(
            "\nNext, try:"
            f"\n  statemachines{db} history {iid} --json"
            f"\n  statemachines{db} instances --machine {orders.name}"
            f"\n  statemachines{db} --app statemachines.examples.orders start {orders.name}"
            """ --context '{"order_id": "B2", "total": 15}'"""
        )
    finally:
        engine.close()
    return 0


def _run_order(engine: Engine) -> str:
    engine.register(orders)
    iid = f"order-{uuid.uuid4().hex[:8]}"
    print(f"Order lifecycle demo on {engine.url}\n")
    step = _stepper(engine, iid)
    snap = engine.start(orders.name, {"order_id": iid, "total": 40.0}, instance_id=iid, actor="shop")
    print(f"  {'start':<38} -> {snap.state:<11} total 40.00")
    try:
        engine.send(iid, "PAYMENT_RECEIVED", {"amount": 25.0}, idempotency_key="pay-1", actor="stripe")
    except GuardRejected as exc:
        print(f"  {'PAYMENT_RECEIVED amount=25':<38} rejected   in {exc.state}, kept in history")
    step("PAYMENT_RECEIVED amount=40", "PAYMENT_RECEIVED", {"amount": 40.0}, key="pay-2", actor="stripe")
    again = engine.send(iid, "PAYMENT_RECEIVED", {"amount": 40.0}, idempotency_key="pay-2", actor="stripe")
    print(
        f"  {'PAYMENT_RECEIVED again, same key':<38} -> {again.state:<11} (replayed, version {again.version})"
    )
    step("OUT_OF_STOCK", "OUT_OF_STOCK", actor="warehouse")
    step("RESTOCKED", "RESTOCKED", actor="warehouse")
    step("SHIPPED", "SHIPPED", {"carrier": "DHL", "tracking": "JD0001234"}, actor="warehouse")
    run_due = getattr(engine, "run_due", None)
    if callable(run_due):
        n = run_due()
        print(f"  {'run_due(): send_tracking_mail effect':<38} -> {engine.get(iid).state:<11} ({n} item(s))")
    step("DELIVERED", "DELIVERED", actor="carrier")
    return iid


def _stepper(engine: Engine, iid: str) -> Any:
    def step(
        label: str, event: str, payload: Any = None, key: str | None = None, actor: str | None = None
    ) -> None:
        snap = engine.send(iid, event, payload, idempotency_key=key, actor=actor)
        print(f"  {label:<38} -> {snap.state:<11} version {snap.version}")

    return step


def _output_dir(url: str) -> Path:
    parsed = parse_url(url)
    if parsed.backend == "sqlite" and parsed.database:
        return Path(parsed.database).resolve().parent
    return Path.cwd()


def _draw(engine: Engine, iid: str, folder: Path) -> list[tuple[str, Path]]:
    """The definition and the run, as SVG (or DOT without Graphviz) and Mermaid."""
    try:
        import diagrams

        diagrams.save  # noqa: B018 - the API, not just an empty namespace package
    except (ImportError, AttributeError) as exc:
        print(f"\n(diagrams not drawn: {exc})")
        return []
    fmt = ".svg" if shutil.which("dot") else ".dot"
    written = [
        ("definition", diagrams.save(diagrams.draw(orders), folder / f"{orders.name}{fmt}")),
        ("definition", diagrams.save(diagrams.to_mermaid(orders), folder / f"{orders.name}.mmd")),
        ("run", diagrams.save(diagrams.draw_run(engine, iid), folder / f"{iid}-run{fmt}")),
        ("run", diagrams.save(diagrams.run_to_mermaid(engine, iid), folder / f"{iid}-run.mmd")),
    ]
    if fmt == ".dot":
        print("\n(Graphviz `dot` not found: wrote .dot files; install graphviz for SVG)")
    return [(label, Path(p)) for label, p in written]
