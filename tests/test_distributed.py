"""One run over several processes (torchrun, gloo on the CPU): the memory stays identical on every rank and
rank 0 alone writes the run."""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from repro.distributed import Ranks, per_rank_batch
from repro.models.memory import Memory
from repro.models.mnad import MNAD

TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]


def test_gathered_update_equals_the_update_with_every_rank_queries():
    torch.manual_seed(0)
    mine, theirs = F.normalize(torch.randn(6, 8), dim=1), F.normalize(torch.randn(6, 8), dim=1)
    gathered, whole = Memory(4, 8), Memory(4, 8)
    whole.items = gathered.items.clone()
    gathered.gather = lambda queries: torch.cat([queries, theirs])  # what gather_rows gives rank 0 of 2
    gathered.update(mine)
    whole.update(torch.cat([mine, theirs]))
    assert torch.equal(gathered.items, whole.items)


def test_the_batch_is_split_over_the_ranks_or_refused():
    assert per_rank_batch(4, Ranks(0, 2, 0)) == 2
    with pytest.raises(ValueError, match="batch_size=4 does not split over 3 processes"):
        per_rank_batch(4, Ranks(0, 3, 0))


def test_replicas_fed_different_clips_keep_the_same_items_and_weights(tmp_path):
    script = tmp_path / "replica.py"
    script.write_text(
        textwrap.dedent(f"""
        import torch
        from repro.distributed import join, ranks_from_environment
        from repro.models.mnad import MNAD, MNADMethod
        from repro.train import _replicate, train_step

        ranks = ranks_from_environment()
        join(ranks, torch.device("cpu"))
        torch.manual_seed(0)
        model = MNAD(task="recon", width=4)  # the same start on both ranks
        network = _replicate(model, model.memory, torch.device("cpu"), ranks)
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        torch.manual_seed(100 + ranks.rank)  # each rank its own clips
        for _ in range(3):
            x = torch.rand(2, 3, 32, 32) * 2 - 1
            train_step(MNADMethod(), network, optimizer, x, x)
        conv = model.encoder.block1[0].weight.detach()
        torch.save({{"items": model.memory.items, "conv": conv}}, r"{tmp_path}/rank%d.pt" % ranks.rank)
    """)
    )
    done = subprocess.run([*TORCHRUN, str(script)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    rank0, rank1 = (torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1))
    assert torch.equal(rank0["items"], rank1["items"])  # the same gathered queries, in the same order
    torch.testing.assert_close(rank0["conv"], rank1["conv"])  # DDP averaged the gradients
    torch.manual_seed(0)
    assert not torch.equal(rank0["items"], MNAD(task="recon", width=4).memory.items)  # the items did move


def test_torchrun_train_writes_one_run_from_rank_0(tmp_path):
    runs, repro = tmp_path / "runs", Path(sys.executable).parent / "repro"  # the console script of this env
    settings = {
        "data.preset": "tiny",
        "data.root": tmp_path / "synthetic",
        "data.size": 32,
        "model.mnad.width": 4,
        "train.epochs": 2,
        "train.checkpoint_every": 1,
        "exec.threads": 1,
        "exec.device": "cpu",  # gloo on the CPU also where a GPU is present
    }
    sets = [arg for key, value in settings.items() for arg in ("--set", f"{key}={value}")]
    done = subprocess.run(
        [*TORCHRUN, "--no-python", str(repro), "train", *sets, "--runs", str(runs)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    (run,) = runs.iterdir()
    assert json.loads((run / "status.json").read_text())["state"] == "done"
    assert [json.loads(line)["epoch"] for line in (run / "train.jsonl").read_text().splitlines()] == [1, 2]
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["record"]["processes"] == 2 and metrics["default"]["auc"] > 0.6
    assert done.stdout.count("run: ") == 1  # only rank 0 reports
