"""Pilot a world with headroom: train the control arms of the claims that use a stand-in, on a harder world, and
say whether each control's AUC lands in the target band (docs/claims.md#worlds-with-headroom).

    python scripts/pilot_world.py single --noise 12 --contrast 0.6 --fast 1.5 --square 0.886 \\
        --seeds 2 --runs /tmp/pilot --set train.epochs=4 --set train.checkpoint_every=2

The difficulty given on the command line replaces the `<stand-in>-hard` preset's for this process only (the runs'
hashes carry the world's fingerprint, so each difficulty gets its own runs); once a difficulty puts every control
between --low and --high, write it into repro/data/synthetic.py (HARD or the preset's own) with this command and
its output in the comment, and point the claims at the `-hard` preset ([stand_ins] or a claim's `stand_in`).
It trains, so run it on a quiet machine: each 64x64 control takes about 40 CPU-seconds per epoch-set (docs/claims.md).
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

import numpy as np

from repro.claims import SHIPPED, claim_runs, load_claims
from repro.config import config_hash
from repro.data import synthetic
from repro.pipeline import execute_run
from repro.runs import RunStore, read_record

CONTROL_ARMS = ("control", "arm")


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("stand_in", choices=("single", "busy", "scenes"), help="today's stand-in to make harder")
    defaults = synthetic.HARD
    parser.add_argument("--noise", type=float, default=defaults.noise, help="pixel noise SD, grey levels")
    parser.add_argument("--contrast", type=float, default=defaults.contrast, help="object contrast, (0, 1]")
    parser.add_argument("--fast", type=float, default=defaults.fast, help="temporal anomaly speed factor, > 1")
    parser.add_argument("--square", type=float, default=defaults.square, help="square half side in radii")
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument(
        "--offset", type=int, default=100, help="seeds (and worlds) from the profile's seed + this: not the claims'"
    )
    parser.add_argument("--runs", type=Path, default=Path("runs/pilot"))
    parser.add_argument("--claims", type=Path, default=SHIPPED)
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="config override, repeatable")
    parser.add_argument("--low", type=float, default=70.0)
    parser.add_argument("--high", type=float, default=95.0)
    return parser.parse_args()


def main() -> None:
    args = arguments()
    hard = f"{args.stand_in}-hard"
    difficulty = synthetic.Difficulty(args.noise, args.contrast, args.fast, args.square)
    synthetic.PRESETS[hard] = replace(synthetic.PRESETS[hard], difficulty=difficulty)  # this process only
    claims = [
        replace(claim, stand_in=hard)
        for claim in load_claims(args.claims)
        if claim.stand_in == args.stand_in and claim.metric.startswith("auc")
    ]
    if not claims:
        raise SystemExit(f"no AUC claim of {args.claims} uses the stand-in {args.stand_in!r}")
    store = RunStore(args.runs)
    seeds = {c.id: args.seeds for c in claims}
    runs = claim_runs(claims, "synthetic", None, tuple(args.overrides), seeds, args.offset)
    controls = [run for run in runs if run.labels["arm"] in CONTROL_ARMS]
    folders = {}
    for run in controls:
        key = config_hash(run.config)
        if key not in folders:
            folders[key] = execute_run(run.config, store, progress=False)
    sets = " ".join(f"--set {o}" for o in args.overrides)
    print(f"{hard}: {difficulty}; seeds {args.offset}-{args.offset + args.seeds - 1}; {sets}")
    outside = 0
    for claim in claims:
        mine = [run for run in controls if run.labels["claim"] == claim.id]
        values = [_read(folders[config_hash(run.config)], claim.metric) for run in mine]
        mean = float(np.mean(values))
        inside = args.low <= mean <= args.high
        outside += not inside
        shown = ", ".join(f"{v:.2f}" for v in values)
        print(f"{'ok ' if inside else 'OUT'} {claim.id}: {claim.metric} of the control {mean:.2f} ({shown})")
    print(f"{len(claims) - outside} of {len(claims)} controls in [{args.low:g}, {args.high:g}]")


def _read(run: Path, metric: str) -> float:
    default = read_record(run).default
    if metric == "auc":
        return 100 * default.scores.auc
    return 100 * (default.per_type or {})[metric.removeprefix("auc_")]


if __name__ == "__main__":
    main()
