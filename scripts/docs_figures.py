"""Copy the figures that README.md and docs/ show from the reports that make them into docs/figures/.

Run by `make docs-figures` after the targets that write those reports (reproduce-figures, reproduce-memory,
reproduce-collapse), with the same profile, data and overrides, so a figure in docs/figures/ is always one a make
target regenerates. A run's report folder is reports/<table>/runs/<config hash>/; the hash comes from the table's
declaration, so the figure is found by its row and seed, never by a hand-copied hash.
"""

import argparse
import shlex
import shutil
from pathlib import Path

from repro.config import config_hash
from repro.grids import load_table, table_grid

RECIPE = "Pred w/ Mem, uniform supervision, λ_c = λ_s = 0.001 (the study's recipe)"
NO_REMEDY = "Pred w/ Mem, no supervision, λ_c = λ_s = 0.1"
# docs/figures/<name>: (table, its make target's overrides, dataset, model row, seed, the report's file)
PER_RUN = {
    "pred-reconstructions.png": ("figures", "quick", "ped2", "Pred w/ Mem", 0, "reconstruction.png"),
    "recon-reconstructions.png": ("figures", "quick", "ped2", "Recon w/ Mem", 0, "reconstruction.png"),
    "timeline-pred-single.png": ("figures", "quick", "ped2", "Pred w/ Mem", 0, "timeline.png"),
    "memory-pred-cameras.png": ("table8", "memory", "shanghaitech", NO_REMEDY, 0, "memory.png"),
    "memory-pred-cameras-recipe.png": ("table8", "memory", "shanghaitech", RECIPE, 0, "memory.png"),
    "tsne-pred-cameras.png": ("table8", "memory", "shanghaitech", NO_REMEDY, 0, "tsne.png"),
    "tsne-pred-cameras-no-separateness.png": (
        "table8",
        "memory",
        "shanghaitech",
        "Pred w/ Mem, no separateness",
        0,
        "tsne.png",
    ),
}
WHOLE_REPORT = {"collapse-usage-over-epochs.png": Path("collapse/usage_over_epochs.png")}
SEEDS = {"quick": 1, "memory": 3}  # the make targets' --seeds


def overrides(option: str) -> tuple[str, ...]:
    """`--set a=1 --set b=2` (as the Makefile spells QUICK) -> ("a=1", "b=2")."""
    words = shlex.split(option)
    return tuple(word for word in words if word != "--set")


def report_figure(reports: Path, profile: str, data: str | None, sets: dict[str, tuple[str, ...]], spec) -> Path:
    table_name, kind, dataset, model, seed, filename = spec
    table = load_table(table_name)
    (run,) = [
        run
        for run in table_grid(table, profile, SEEDS[kind], data, sets[kind])
        if run.labels == {"dataset": dataset, "model": model} and run.seed == seed
    ]
    return reports / table_name / "runs" / config_hash(run.config) / filename


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="synthetic")
    parser.add_argument("--data", default=None)
    parser.add_argument("--quick", default="", help="the Makefile's QUICK overrides")
    parser.add_argument("--memory", default="", help="the Makefile's memory-study overrides")
    parser.add_argument("--reports", type=Path, default=Path("reports"))
    parser.add_argument("--out", type=Path, default=Path("docs/figures"))
    args = parser.parse_args()
    sets = {"quick": overrides(args.quick), "memory": overrides(args.memory)}
    sources = {name: args.reports / path for name, path in WHOLE_REPORT.items()} | {
        name: report_figure(args.reports, args.profile, args.data, sets, spec) for name, spec in PER_RUN.items()
    }
    missing = [str(path) for path in sources.values() if not path.is_file()]
    if missing:
        raise SystemExit(f"docs-figures: missing {', '.join(missing)}; run the make targets that write them first")
    args.out.mkdir(parents=True, exist_ok=True)
    for name, path in sources.items():
        shutil.copyfile(path, args.out / name)
        print(f"{args.out / name} <- {path}")


if __name__ == "__main__":
    main()
