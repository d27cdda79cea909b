"""A deployable score (docs/footage.md#the-deployable-score): each signal normalised by its range on normal frames
and a threshold at a declared false-alarm rate on them, so that a frame is scored and flagged the moment it is
decoded, without the rest of its video.

MNAD's score (eqs. 16-17) min-max normalises each signal within each test video: it needs the whole video, and a
fully normal video is stretched over 0 to 1 all the same. Here the same terms (`Signals.terms`: MNAD's λ on
PSNR and 1 - λ on the feature distance, a baseline's error) are normalised by the range they take on normal
frames instead, which a run stores once (calibration.json).

Glossary: f frames.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import runs as run_files
from .config import RunConfig, load_config
from .record import Calibration, RecordError, ScoreTerm

CALIBRATION = "calibration.json"
DEFAULT_FALSE_ALARM_RATE = 0.01  # the share of normal frames flagged


# ----------------------------------------------------------------------------------------- the score
def calibrated_score(signals: Any, terms: tuple[ScoreTerm, ...]) -> np.ndarray:
    """(f,) Σ weight x (sign x signal - low) / (high - low) over the terms: 0 to 1 on the calibration frames'
    range for each term, above it where a frame is more anomalous than any of them."""
    total = np.float64(0)
    for term in terms:
        values = getattr(signals, term.field)
        if values is None:
            raise ValueError(f"the calibration scores signal {term.field!r}, which these signals do not hold")
        values = term.sign * np.asarray(values, dtype=np.float64)
        span = term.high - term.low
        total = total + term.weight * (values - term.low) / (span if span > 0 else 1.0)
    return np.asarray(total, dtype=np.float64)


def fit_calibration(
    signals: Any, lam: float, false_alarm_rate: float, *, epoch: int, source: str, options: dict[str, Any]
) -> Calibration:
    """The calibration of normal frames' `signals` (a method's Signals record of arrays (f,)): each term's range
    and the threshold above which `false_alarm_rate` of them lie."""
    if not 0 < false_alarm_rate < 1:
        raise ValueError(f"the false-alarm rate must lie in (0, 1), got {false_alarm_rate}")
    terms = []
    for field, weight, sign in signals.terms(lam):
        values = sign * np.asarray(getattr(signals, field), dtype=np.float64)
        if values.size == 0 or not np.isfinite(values).all():
            raise ValueError(f"calibration needs finite {field!r} signals of normal frames, got {values.size} values")
        terms.append(ScoreTerm(field, float(weight), sign, float(values.min()), float(values.max())))
    scores = calibrated_score(signals, tuple(terms))
    return Calibration(
        epoch=epoch,
        lam=float(lam),
        terms=tuple(terms),
        threshold=float(np.quantile(scores, 1 - false_alarm_rate)),
        false_alarm_rate=float(false_alarm_rate),
        frames=int(scores.size),
        source=source,
        options=options,
    )


def detection_rates(scores: np.ndarray, labels: np.ndarray, threshold: float) -> tuple[float, float]:
    """(detection rate: the share of anomalous frames flagged, false-alarm rate: the share of normal frames
    flagged) at `threshold`; NaN for a class without frames."""
    flagged, labels = np.asarray(scores) > threshold, np.asarray(labels).astype(bool)

    def share(chosen: np.ndarray) -> float:
        return float(flagged[chosen].mean()) if chosen.any() else float("nan")

    return share(labels), share(~labels)


def training_source(share: float) -> str:
    """Which training frames a run calibrates on (data.calibration_share), in words."""
    if share:
        return f"the last {share:g} of each training video, left out of training (data.calibration_share)"
    return "the run's training split, the frames its checkpoint was trained on (data.calibration_share = 0)"


# -------------------------------------------------------------------------------------- a run's file
def write_calibration(run: Path, calibration: Calibration) -> None:
    """calibration.json of the run, written atomically."""
    run_files.atomic_write_json(Path(run) / CALIBRATION, calibration.to_json())


def read_calibration(run: Path) -> Calibration | None:
    """The run's calibration.json as its typed record, or None where the run has none yet."""
    path = Path(run) / CALIBRATION
    if not path.exists():
        return None
    try:
        return Calibration.from_json(run_files.read_json(path))
    except RecordError as error:
        raise run_files.RunError(
            f"{path} is not a calibration ({error}); delete it and rerun `repro score` to calibrate again"
        ) from None


def calibrate(
    cfg: RunConfig,
    run: Path,
    device: torch.device,
    clips: Any = None,
    source: str | None = None,
    false_alarm_rate: float = DEFAULT_FALSE_ALARM_RATE,
    progress: bool = False,
) -> Calibration:
    """Calibrate the run's last checkpoint on normal `clips` (`source` says what they are; default: the frames of
    `repro.pipeline.calibration_clips`), scored as the method scores a test set (`Method.evaluate_checkpoint`,
    e.g. MNAD's test-time update with its γ), and write calibration.json. The options it scored them with are
    stored for `repro score`."""
    from .models.method import signals_from_arrays
    from .pipeline import calibration_clips, datasets, scorer
    from .train import build_model

    found = run_files.latest_checkpoint(run)
    if found is None:
        raise run_files.RunError(
            f"{run} has no checkpoint to calibrate; train it first: `{run_files.finish_command(run)}`"
        )
    epoch, path = found
    method = cfg.model.method
    model = build_model(cfg, device, compile=False)
    model.load_state_dict(run_files.load_checkpoint(path)["model"])
    training = datasets(cfg)[0]  # as the run's evaluation passes it to the method (MNAD: γ from its quantile)
    if clips is None:
        clips, source = calibration_clips(cfg), training_source(cfg.data.calibration_share)
    used: dict[str, Any] = {}
    evaluate = scorer(cfg, model, device, progress)

    def score(dataset: Any, **options: Any) -> dict[str, np.ndarray]:
        """The run's evaluation of `dataset`, remembering the options the calibration clips are scored with."""
        if dataset is clips:
            used.update(options)
        return evaluate(dataset, **options)

    arrays = method.evaluate_checkpoint(model, score, training, clips, cfg.method_eval, False)
    signals = signals_from_arrays(method.Signals, arrays)
    lam = signals.default_lambda(method.score_lambda(cfg.method_eval))
    options = {key: value.item() if isinstance(value, np.generic) else value for key, value in used.items()}
    calibration = fit_calibration(signals, lam, false_alarm_rate, epoch=epoch, source=source, options=options)
    write_calibration(run, calibration)
    return calibration


def run_config(run: Path) -> RunConfig:
    """The config a run folder was made with (its config.toml)."""
    config = Path(run) / "config.toml"
    if not config.exists():
        raise run_files.RunError(f"{run} is not a run folder (it has no config.toml); give a folder of the run store")
    return load_config(config)
