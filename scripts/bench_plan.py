"""Time planning a sweep over a large run store: what a sweep does for each of its runs before training (is the
run done? which finished run lends it its checkpoints?), on a store made by this script (config.toml,
status.json and metrics.json per folder, nothing trained).

    python scripts/bench_plan.py STORE [--runs 10000] [--sweep 10] [--against CHECKOUT --repeats 2]

The store's runs are the synthetic profile with seeds 0..runs-1; the sweep's runs are seeds 0..sweep-1 with the
test-time update off, so each finds a lender with the same training. With --against, the timing alternates
between CHECKOUT's repro (e.g. a checkout of main) and this one's, each in a fresh process (its own index).
"""

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

SCORES = {"auc": 0.75, "raw_auc": 0.7, "macro_auc": 0.8, "aupr": 0.6, "eer": 0.25}
TIME = "2026-01-01T00:00:00+00:00"
STATUS = {"state": "done", "error": None, "pid": 1, "host": "bench", "created": TIME, "updated": TIME}


def _metrics() -> dict:
    """A metrics.json of two evaluated epochs and three λ, the shape repro.record.RunMetrics reads."""
    epoch = {"lambdas": {lam: SCORES for lam in ("0", "0.6", "1")}, "per_type": {"spatial": 0.7}}
    return {
        "default": {"epoch": 2, "lambda": 0.6, **SCORES, "per_type": {"spatial": 0.7}},
        "oracle": {"epoch": 1, "lambda": 1.0, **SCORES},
        "epochs": {"1": epoch, "2": epoch},
        "timings": {"train_seconds": 60.0, "evaluate_seconds": 5.0},
        "record": {"host": "bench"},
    }


def make_store(store: Path, runs: int) -> None:
    """`runs` finished run folders (skipped if the store has them); plain writes, the store is scratch."""
    from repro.config import config_hash, load_config, to_toml

    if store.is_dir() and sum(1 for _ in store.iterdir()) >= runs:
        return
    metrics = json.dumps(_metrics(), indent=2, sort_keys=True) + "\n"
    status = json.dumps(STATUS, indent=2, sort_keys=True) + "\n"
    for seed in range(runs):
        cfg = load_config(None, [f"seed={seed}"])
        run = store / config_hash(cfg)
        run.mkdir(parents=True, exist_ok=True)
        (run / "config.toml").write_text(to_toml(cfg))
        (run / "status.json").write_text(status)
        (run / "metrics.json").write_text(metrics)


def plan(store: Path, sweep: int) -> dict:
    """Seconds to plan the sweep: is_done and the checkpoint lookup of each run (the configs made beforehand)."""
    import repro
    from repro.config import load_config
    from repro.pipeline import adopt_checkpoints
    from repro.runs import RunStore

    runs = RunStore(store)
    configs = [load_config(None, [f"seed={seed}", "eval.mnad.test_time_update=false"]) for seed in range(sweep)]
    start = time.perf_counter()
    for cfg in configs:
        if not runs.is_done(cfg):
            adopt_checkpoints(cfg, runs.run_dir(cfg), runs)  # the lender has no checkpoint files: nothing is linked
    seconds = time.perf_counter() - start
    return {"code": str(Path(repro.__file__).parent.parent), "sweep": sweep, "seconds": round(seconds, 3)}


def measured(checkout: Path, store: Path, sweep: int) -> dict:
    """`plan` in a fresh process importing the repro of `checkout`."""
    command = [sys.executable, __file__, str(store), "--sweep", str(sweep), "--measure"]
    env = os.environ | {"PYTHONPATH": str(checkout)}
    output = subprocess.run(command, env=env, capture_output=True, text=True, check=True).stdout
    return json.loads(output.splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("store", type=Path)
    parser.add_argument("--runs", type=int, default=10_000, help="finished runs in the store")
    parser.add_argument("--sweep", type=int, default=10, help="runs of the planned sweep")
    parser.add_argument("--against", type=Path, help="another checkout to time alternately with this one")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--measure", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(plan(args.store, args.sweep)))
        return
    make_store(args.store, args.runs)
    here = Path(__file__).resolve().parent.parent
    checkouts = [args.against, here] if args.against else [here]
    for _ in range(args.repeats):
        for checkout in checkouts:
            print(json.dumps(measured(checkout, args.store, args.sweep) | {"store_runs": args.runs}), flush=True)


if __name__ == "__main__":
    main()
