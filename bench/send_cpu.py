"""CPU per operation of `Engine.send` against the raw driver on SQLite (process time, not wall).

Wall-clock rates on a shared machine move with everyone else's load; the CPU an operation costs
this process moves much less. Runs the part-1 workload (`bench.workload`) with the engine and with
`raw_sqlite`, alternately, on SQLite `synchronous=NORMAL` (no fsync to wait for), and prints the
medians and the paired engine / raw ratio. To compare two commits, run it from each tree in turn
(`PYTHONPATH=<tree> python -m bench.send_cpu base`), several times, alternating.

    python -m bench.send_cpu perf
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import workload
from bench.contenders.base import Target
from bench.contenders.engine import EngineContender
from bench.contenders.raw_sqlite import RawSqlite


def per_op_us(contender: Any, ops: list[workload.Op]) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        contender.setup(Target("sqlite", Path(tmp), sync="NORMAL"))
        try:
            t0 = time.process_time()
            for op in ops:
                if op.event is None:
                    contender.start(op.instance_id, op.payload)
                else:
                    contender.send(op.instance_id, op.event, op.payload)
            return (time.process_time() - t0) / len(ops) * 1e6
        finally:
            contender.close()


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    label = args[0] if args else "this tree"
    ops = workload.script(4000)
    engine, raw = [], []
    for _ in range(4):
        engine.append(per_op_us(EngineContender(), ops))
        raw.append(per_op_us(RawSqlite(), ops))
    ratio = statistics.median(e / r for e, r in zip(engine, raw, strict=True))
    print(
        f"{label}: engine {statistics.median(engine):.1f} us/op, raw {statistics.median(raw):.1f} us/op,"
        f" engine / raw {ratio:.3f}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
