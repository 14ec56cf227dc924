"""The PNG of the main comparison: median events/s per contender per database, log scale."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # the backend is chosen first

COLORS = {
    "raw_sqlite": "#4d4d4d",
    "raw_psycopg": "#4d4d4d",
    "engine": "#d62728",
    "orm_transitions": "#1f77b4",
    "orm_python_statemachine": "#9467bd",
    "dbos_workflow": "#ff7f0e",
    "memory_transitions": "#2ca02c",
}
LABELS = {
    "raw_sqlite": "raw driver (physical floor)",
    "raw_psycopg": "raw driver (physical floor)",
    "engine": "statemachines Engine",
    "orm_transitions": "pytransitions + SQLModel",
    "orm_python_statemachine": "python-statemachine + SQLModel",
    "dbos_workflow": "DBOS workflow",
    "memory_transitions": "pytransitions in memory (no durability)",
}
ORDER = ("raw", "engine", "orm_transitions", "orm_python_statemachine", "dbos_workflow", "memory_transitions")


def _slot(name: str) -> str:
    return "raw" if name.startswith("raw_") else name


def draw(
    medians: dict[str, dict[str, float]], title: str, path: Path, notes: dict[str, str] | None = None
) -> None:
    """`medians`: database label -> contender -> median events/s; `notes`: a line under each label."""
    dbs = list(medians)
    fig, ax = plt.subplots(figsize=(11, 6))
    width = 0.8 / len(ORDER)
    seen: set[str] = set()
    for d, db in enumerate(dbs):
        for name, rate in medians[db].items():
            k = ORDER.index(_slot(name))
            x = d + (k - (len(ORDER) - 1) / 2) * width
            label = LABELS[name] if LABELS[name] not in seen else None
            seen.add(LABELS[name])
            ax.bar(x, rate, width * 0.92, color=COLORS[name], label=label)
            ax.text(x, rate * 1.08, f"{rate:,.0f}", ha="center", va="bottom", fontsize=7, rotation=90)
    ax.set_yscale("log")
    ax.set_ylim(top=max(r for m in medians.values() for r in m.values()) * 8)
    notes = notes or {}
    ax.set_xticks(range(len(dbs)), [f"{db}\n{notes[db]}" if db in notes else db for db in dbs], fontsize=9)
    ax.set_ylabel("events/s (median of interleaved rounds, log scale)")
    ax.set_title(title, fontsize=10)
    ax.grid(axis="y", which="both", alpha=0.25)
    ax.legend(fontsize=8, loc="upper left", ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
