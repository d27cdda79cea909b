"""Tables: published beside ours with the difference, formatted numbers, and Markdown / CSV / LaTeX files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..atomic import atomic_write

MISSING = "-"  # how a missing number is written in every table
LATEX_SPECIAL = str.maketrans(
    {c: rf"\{c}" for c in "&%$#_{}"}
    | {"\\": r"\textbackslash{}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}
)


def format_mean_std(mean: float, std: float, n: int | None = None, decimals: int = 2) -> str:
    """ "mean ± std", or "mean" alone when n == 1 (no spread from one run), "-" when mean is missing."""
    if not np.isfinite(mean):
        return MISSING
    if n == 1 or not np.isfinite(std):
        return f"{mean:.{decimals}f}"
    return f"{mean:.{decimals}f} ± {std:.{decimals}f}"


def format_interval(low: float, high: float, decimals: int = 2) -> str:
    """ "[low, high]", or "-" when either end is missing (e.g. one seed)."""
    if not (np.isfinite(low) and np.isfinite(high)):
        return MISSING
    return f"[{low:.{decimals}f}, {high:.{decimals}f}]"


def to_markdown(df: pd.DataFrame, caption: str | None = None, decimals: int = 2) -> str:
    """A GitHub pipe table, the caption as a paragraph above it."""
    cells = df.map(lambda v: v.replace("|", r"\|") if isinstance(v, str) else v)  # a bare | splits a cell
    cells = cells.astype(object).where(cells.notna(), None)  # tabulate writes None, not NaN, as missingval
    table = cells.to_markdown(index=False, tablefmt="github", floatfmt=f".{decimals}f", missingval=MISSING)
    return (f"{caption}\n\n" if caption else "") + table + "\n"


def to_latex(df: pd.DataFrame, caption: str | None = None, decimals: int = 2) -> str:
    """A booktabs tabular (inside a table with a caption when given); LaTeX special characters escaped."""
    return df.to_latex(
        index=False,
        escape=True,
        na_rep=MISSING,
        float_format=f"%.{decimals}f",
        caption=caption and caption.translate(LATEX_SPECIAL),
        position="h",
    )


def write_table(
    df: pd.DataFrame, out_dir: Path, stem: str, caption: str | None = None, decimals: int = 2
) -> dict[str, Path]:
    """Write stem.md, stem.csv (full precision, parses back with pandas) and stem.tex; return {"md", "csv", "tex"}."""
    out_dir = Path(out_dir)
    return {
        "md": atomic_write(out_dir / f"{stem}.md", to_markdown(df, caption, decimals)),
        "csv": atomic_write(out_dir / f"{stem}.csv", df.to_csv(index=False)),
        "tex": atomic_write(out_dir / f"{stem}.tex", to_latex(df, caption, decimals)),
    }
