"""The CUDA path gives the CPU's numbers: training steps of every method, the sequential test-time update, mixed
precision with the memory maths in fp32, inductor on the GPU and a whole run. Skipped without a CUDA device;
`make test` on a GPU machine runs them (README, Speed)."""

import copy
import json

import pytest
import torch
from fakes import PredictionClips

from repro.config import load_config
from repro.evaluate import evaluate_model, frame_step, signals_step
from repro.models.mnad import MNAD, MNADMethod
from repro.pipeline import execute_run
from repro.runs import RunStore
from repro.train import build_model, compile_networks, train_step

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

CUDA = torch.device("cuda")
TINY = {
    "mnad": ["model.mnad.width=4"],
    "memae": ["model.memae.width=6", "model.memae.num_items=20"],
    "ae3d": ["model.ae3d.width=6"],
    "convlstm": [],
}
SIZE = 32


@pytest.fixture(autouse=True)
def _full_fp32():
    """TF32 convolutions and matrix products (cuDNN's default) round to 10 mantissa bits: compare in full fp32."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def clips_for(method, settings, batch=2):
    layout = method.layout(settings)
    clips = torch.rand(batch, layout.in_frames, 3, SIZE, SIZE) * 2 - 1
    targets = clips[:, -1:] if layout.predict else clips
    return method.to_input(clips), method.to_target(targets)


@pytest.mark.parametrize("name", list(TINY))
def test_a_training_step_on_cuda_equals_the_cpu(name):
    cfg = load_config(None, [f"model.name={name}", f"data.size={SIZE}", *TINY[name]])
    method = cfg.model.method
    cpu = build_model(cfg)
    gpu = copy.deepcopy(cpu).to(CUDA)
    inputs, target = clips_for(method, cfg.model.settings)
    terms = {}
    for where, model in (("cpu", cpu), ("cuda", gpu)):
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)  # Adam's first step is lr * sign(grad): unstable
        device = next(model.parameters()).device
        terms[where] = train_step(method, model, optimizer, inputs.to(device), target.to(device))
    for term, value in terms["cpu"].items():
        torch.testing.assert_close(terms["cuda"][term].cpu(), value, rtol=1e-4, atol=1e-5, msg=term)
    for (key, a), (_, b) in zip(cpu.state_dict().items(), gpu.state_dict().items()):
        torch.testing.assert_close(b.cpu(), a, rtol=1e-4, atol=1e-5, msg=key)


def test_the_sequential_test_time_update_on_cuda_follows_the_cpu():
    cpu = MNAD(width=4).eval()
    gpu = copy.deepcopy(cpu).to(CUDA)
    frames, targets = torch.rand(8, 1, 12, SIZE, SIZE) * 2 - 1, torch.rand(8, 1, 3, SIZE, SIZE) * 2 - 1
    gamma = 0.02  # some frames update the memory, some do not
    traces = {"cpu": [], "cuda": []}
    with torch.no_grad():
        for where, model in (("cpu", cpu), ("cuda", gpu)):
            device = next(model.parameters()).device
            for x, target in zip(frames, targets):
                signals, _ = signals_step(MNADMethod(), model, x.to(device), target.to(device), gamma=gamma)
                traces[where].append(torch.stack([s.cpu() for s in signals]))
    torch.testing.assert_close(torch.stack(traces["cuda"]), torch.stack(traces["cpu"]), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(gpu.memory.items.cpu(), cpu.memory.items, rtol=1e-4, atol=1e-5)
    assert not torch.equal(cpu.memory.items, MNAD(width=4).memory.items)  # the update fired


def test_the_graph_replayed_update_gives_the_op_by_op_numbers():
    model = MNAD(width=4).to(CUDA).eval()
    runs = {
        graphs: evaluate_model(
            model,
            MNADMethod(),
            PredictionClips(),
            CUDA,
            test_time_update=True,
            gamma=0.02,
            cuda_graphs=graphs,
            progress=False,
        )
        for graphs in (False, True)
    }
    for key, value in runs[False].items():
        assert value.shape == runs[True][key].shape, key
        torch.testing.assert_close(torch.as_tensor(runs[True][key]), torch.as_tensor(value), rtol=1e-6, atol=1e-6)
    psnr = runs[True]["psnr"]
    assert len(set(psnr.tolist())) == len(psnr)  # one fresh value per frame, none overwritten by a later replay


def test_a_graph_replay_updates_the_live_items():
    model = MNAD(width=4).to(CUDA).eval()
    x, target = torch.rand(1, 12, SIZE, SIZE, device=CUDA) * 2 - 1, torch.rand(1, 3, SIZE, SIZE, device=CUDA) * 2 - 1
    trained = model.memory.items.clone()
    with torch.no_grad():
        step = frame_step(MNADMethod(), model, "fp32", float("inf"), graphs=True)
        step(x, target)
        graphed = model.memory.items.clone()
        model.memory.items.copy_(trained)
        signals_step(MNADMethod(), model, x, target, gamma=float("inf"))
    assert not torch.equal(graphed, trained)  # one update, not the warm-up's three
    torch.testing.assert_close(graphed, model.memory.items, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_mixed_precision_on_cuda_keeps_the_memory_maths_in_fp32(precision):
    model = MNAD(width=4).to(CUDA)
    inputs, target = clips_for(MNADMethod(), load_config(None).model.settings)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    scaler = torch.amp.GradScaler("cuda", enabled=precision == "fp16")
    terms = train_step(MNADMethod(), model, optimizer, inputs.to(CUDA), target.to(CUDA), precision, scaler)
    assert all(torch.isfinite(v) for v in terms.values())
    assert model.memory.items.dtype == torch.float32
    signals, result = signals_step(MNADMethod(), model.eval(), inputs[:1].to(CUDA), target[:1].to(CUDA), precision)
    assert result.queries.dtype == torch.float32
    assert all(torch.finfo(s.dtype).bits >= 32 for s in signals)  # scores never in half precision


@pytest.mark.slow
def test_inductor_on_cuda_gives_the_eager_output():
    eager = MNAD(width=4).to(CUDA).eval()
    compiled = copy.deepcopy(eager)
    compile_networks(compiled, MNADMethod().eager_parts(compiled), backend="inductor")
    x = torch.rand(2, 12, SIZE, SIZE, device=CUDA) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(compiled(x).output, eager(x).output, rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_a_run_on_cuda_is_deterministic_and_gives_the_cpu_auc(tmp_path):
    aucs = {}
    for device, store in (("cpu", "cpu"), ("cuda", "cuda"), ("cuda", "cuda-again")):
        cfg = load_config(
            "synthetic",
            [
                "data.preset=tiny",
                f"data.root={tmp_path / 'synthetic'}",
                "model.mnad.width=8",
                "train.epochs=2",
                f"exec.device={device}",
            ],
        )
        run = execute_run(cfg, RunStore(tmp_path / store), progress=False)
        aucs[store] = json.loads((run / "metrics.json").read_text())["default"]["auc"]
    assert aucs["cuda-again"] == aucs["cuda"]  # exec.deterministic (the default): the same seed, the same AUC
    assert aucs["cuda"] == pytest.approx(aucs["cpu"], abs=0.01)
