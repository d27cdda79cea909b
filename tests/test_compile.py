"""exec.compile: the networks compiled in place, the memories eager, the same numbers as eager.

The "aot_eager" backend traces forward and backward as inductor does but skips its C++ code generation, so
these tests check the wiring in seconds; `repro bench --compile` measures inductor itself.
"""

import copy

import torch

from repro.models.convlstm import ConvLSTMAE, ConvLSTMMethod
from repro.models.memae import MemAE, MemAEMethod
from repro.models.mnad import MNAD, MNADMethod
from repro.train import compile_networks, train_step


def compile_eagerly_traced(model, method):
    compile_networks(model, method.eager_parts(model), backend="aot_eager")


def _compiled(module: torch.nn.Module) -> bool:
    return getattr(module, "_compiled_call_impl", None) is not None


def test_compile_keeps_parameter_names_and_leaves_memories_eager():
    mnad, memae = MNAD(task="pred", width=4), MemAE(channels=1, width=3, num_items=5)
    names = [list(m.state_dict()) for m in (mnad, memae)]
    compile_eagerly_traced(mnad, MNADMethod())
    compile_eagerly_traced(memae, MemAEMethod())
    assert [list(m.state_dict()) for m in (mnad, memae)] == names  # checkpoints load either way
    assert _compiled(mnad.encoder) and _compiled(mnad.decoder) and not _compiled(mnad.memory)
    assert _compiled(memae.encoder) and _compiled(memae.decoder) and not _compiled(memae.memory)


def test_compiled_mnad_training_step_equals_eager():
    torch.manual_seed(0)
    eager = MNAD(task="pred", width=4)
    compiled = copy.deepcopy(eager)
    compile_eagerly_traced(compiled, MNADMethod())
    x, target = torch.rand(2, 12, 32, 32) * 2 - 1, torch.rand(2, 3, 32, 32) * 2 - 1
    terms = []
    for model in (eager, compiled):
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        terms.append(train_step(MNADMethod(), model, optimizer, x, target))
    for name in terms[0]:
        torch.testing.assert_close(terms[1][name], terms[0][name], rtol=1e-5, atol=1e-6)
    for (name, a), (_, b) in zip(eager.state_dict().items(), compiled.state_dict().items()):
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-6, msg=name)  # weights after the step, memory items


def test_compiled_convlstm_compiles_each_recurrent_layer_and_matches_eager():
    torch.manual_seed(0)
    eager = ConvLSTMAE(channels=1, size=16)
    compiled = copy.deepcopy(eager)
    compile_eagerly_traced(compiled, ConvLSTMMethod())
    assert all(_compiled(layer) for layer in compiled.temporal)  # the ModuleList itself is never called
    x = torch.rand(2, 3, 1, 16, 16) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(compiled(x).output, eager(x).output, rtol=1e-5, atol=1e-6)
