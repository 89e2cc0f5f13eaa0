"""survmom's optimisers: AdamW against torch.optim.AdamW, L-BFGS on known minima, and no dynamo import."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from torch import nn

from survmom.core.optim import AdamW, lbfgs_minimize
from survmom.errors import StateError


def _net(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, 1))


def _grads(net: nn.Module, step: int) -> None:
    g = torch.Generator().manual_seed(step)
    x = torch.randn(16, 5, generator=g)
    net.zero_grad(set_to_none=True)
    net(x).square().mean().backward()


@pytest.mark.parametrize("weight_decay", [0.0, 1e-2])
@pytest.mark.parametrize("fused", [None, True, False])
def test_adamw_updates_are_bit_identical_to_torch(weight_decay, fused):
    """Default (None) and True: torch's fused kernel, as torch.optim.AdamW(fused=True) (CPU parameters); False:
    torch.optim.AdamW's default arithmetic."""
    ours_net, torch_net = _net(0), _net(0)
    ours_net[0].bias.requires_grad_(False)  # a frozen parameter: no gradient, no update, no state
    torch_net[0].bias.requires_grad_(False)
    ours = AdamW(ours_net.parameters(), lr=3e-3, weight_decay=weight_decay, fused=fused)
    reference = torch.optim.AdamW(torch_net.parameters(), lr=3e-3, weight_decay=weight_decay,
                                  **({} if fused is False else {"fused": True}))
    for step in range(30):
        _grads(ours_net, step)
        _grads(torch_net, step)
        ours.step()
        reference.step()
    for a, b in zip(ours_net.parameters(), torch_net.parameters()):
        assert torch.equal(a, b)
    assert 1 not in ours.state  # the frozen bias
    assert ours.fused is (fused is not False)


@pytest.mark.parametrize("fused", [True, False])
def test_adamw_matches_torch_when_parameters_took_different_numbers_of_steps(fused):
    """A parameter without a gradient at a step is skipped, so step counts differ between parameters."""
    ours_net, torch_net = _net(3), _net(3)
    ours = AdamW(ours_net.parameters(), lr=3e-3, fused=fused)
    reference = torch.optim.AdamW(torch_net.parameters(), lr=3e-3,
                                  **({"fused": True} if fused else {}))
    for step in range(12):
        for net, optimizer in ((ours_net, ours), (torch_net, reference)):
            _grads(net, step)
            if step % 3 == 1:
                net[2].bias.grad = None
            optimizer.step()
    assert all(torch.equal(a, b) for a, b in zip(ours_net.parameters(), torch_net.parameters()))
    ours_state, torch_state = ours.state_dict()["state"], reference.state_dict()["state"]
    assert [float(ours_state[i]["step"]) for i in sorted(ours_state)] == [12.0, 12.0, 12.0, 8.0]
    assert [float(ours_state[i]["step"]) for i in sorted(ours_state)] == [float(torch_state[i]["step"])
                                                                          for i in sorted(torch_state)]


def test_adamw_is_fused_by_default_only_on_devices_with_a_fused_kernel():
    assert AdamW(_net(0).parameters()).fused is True
    assert AdamW([torch.zeros(3, device="meta", requires_grad=True)]).fused is False


def test_adamw_resumes_from_a_torch_state_dict_and_back():
    torch_net, ours_net = _net(1), _net(1)
    reference = torch.optim.AdamW(torch_net.parameters(), lr=1e-2, weight_decay=1e-4, fused=True)
    for step in range(5):
        _grads(torch_net, step)
        reference.step()
    ours_net.load_state_dict(torch_net.state_dict())
    ours = AdamW(ours_net.parameters(), lr=0.5, weight_decay=0.0)
    ours.load_state_dict(reference.state_dict())  # lr and decay come from the state, as in torch
    assert (ours.lr, ours.weight_decay) == (1e-2, 1e-4)
    for step in range(5, 10):
        _grads(torch_net, step)
        _grads(ours_net, step)
        reference.step()
        ours.step()
    assert all(torch.equal(a, b) for a, b in zip(ours_net.parameters(), torch_net.parameters()))
    again = torch.optim.AdamW(_net(1).parameters())
    again.load_state_dict(ours.state_dict())  # torch accepts ours
    for key, value in reference.state_dict()["state"].items():
        assert torch.equal(again.state_dict()["state"][key]["exp_avg"], value["exp_avg"])


@pytest.mark.parametrize("fused", [True, False])
def test_adamw_state_dict_round_trip_gives_identical_next_steps(fused):
    net, copy = _net(4), _net(4)
    ours = AdamW(net.parameters(), lr=3e-3, fused=fused)
    for step in range(4):
        _grads(net, step)
        ours.step()
    copy.load_state_dict(net.state_dict())
    resumed = AdamW(copy.parameters(), fused=fused)
    resumed.load_state_dict(ours.state_dict())
    for step in range(4, 8):
        for model, optimizer in ((net, ours), (copy, resumed)):
            _grads(model, step)
            optimizer.step()
    assert all(torch.equal(a, b) for a, b in zip(net.parameters(), copy.parameters()))
    assert [float(s["step"]) for s in resumed.state.values()] == [8.0] * 4


def test_adamw_refuses_a_state_for_other_parameters_and_keeps_its_own():
    ours = AdamW(_net(0).parameters())
    with pytest.raises(StateError, match="4 parameters"):
        AdamW([torch.zeros(3, requires_grad=True)]).load_state_dict(ours.state_dict())
    _grads(net := _net(0), 0)
    other = AdamW(net.parameters())
    other.step()
    state = ours.state_dict()
    state["state"] = {i: {"step": torch.tensor(1.0), "exp_avg": torch.zeros(2), "exp_avg_sq": torch.zeros(2)}
                      for i in range(4)}
    with pytest.raises(StateError, match="shape"):
        other.load_state_dict(state)
    assert float(other.state[0]["step"]) == 1.0 and other.state[0]["exp_avg"].shape == (8, 5)


def test_lbfgs_finds_the_rosenbrock_minimum():
    def rosenbrock(p: torch.Tensor) -> torch.Tensor:
        return (1 - p[0]) ** 2 + 100 * (p[1] - p[0] ** 2) ** 2

    solution = lbfgs_minimize(rosenbrock, torch.tensor([-1.2, 1.0], dtype=torch.float64), max_iter=500)
    torch.testing.assert_close(solution, torch.ones(2, dtype=torch.float64), atol=1e-6, rtol=0)


def test_lbfgs_solves_a_quadratic_and_keeps_the_shape():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(6, 6, generator=g, dtype=torch.float64)
    hessian, b = a @ a.T + torch.eye(6, dtype=torch.float64), torch.randn(6, generator=g, dtype=torch.float64)

    def quadratic(p: torch.Tensor) -> torch.Tensor:
        flat = p.reshape(-1)
        return 0.5 * flat @ hessian @ flat - b @ flat

    solution = lbfgs_minimize(quadratic, torch.zeros(2, 3, dtype=torch.float64))
    assert solution.shape == (2, 3)
    torch.testing.assert_close(solution.reshape(-1), torch.linalg.solve(hessian, b), atol=1e-8, rtol=0)


def test_lbfgs_backs_off_where_the_objective_overflows():
    # exp overflows to inf for p > ~709: the first full step lands there and must be halved, not accepted
    solution = lbfgs_minimize(lambda p: torch.exp(p[0]) - 800 * p[0] + p[0] ** 2 * 1e-3,
                              torch.tensor([0.0], dtype=torch.float64))
    value = solution[0].item()
    assert torch.isfinite(solution).all() and abs(torch.exp(solution[0]).item() + 2e-3 * value - 800) < 1e-3


def test_training_never_imports_torch_dynamo():
    """AdamW (torch's functional), torch's clip_grad_norm_ and the EMA (torch's public EMA step) import no
    torch._dynamo: importing it would cost about as long as importing torch."""
    code = (
        "import sys, torch\n"
        "from survmom.training.config import TrainConfig\n"
        "from survmom.training.trainer import Tensors, Trainer\n"
        "g = torch.Generator().manual_seed(0)\n"
        "x = torch.randn(200, 4, generator=g); e = torch.rand(200, generator=g) < 0.6\n"
        "t = torch.rand(200, generator=g) + 0.1\n"
        "for loss in ('cox', 'weibull'):\n"
        "    config = TrainConfig(loss=loss, batch=16, epochs=2, threads=1,"
        " grad_clip=1e-3 if loss == 'cox' else 5.0)\n"  # clipping at every step, and never
        "    trainer = Trainer(config, 4, Tensors(x[:150], e[:150], t[:150]), Tensors(x[150:], e[150:], t[150:]),"
        " torch.device('cpu'))\n"
        "    class Quiet:\n"
        "        def start_epoch(self, *a): pass\n"
        "        def step(self, *a): pass\n"
        "        def end_epoch(self, *a): pass\n"
        "        def start_validated(self, *a): pass\n"
        "    trainer.fit(2, Quiet(), lambda state: None)\n"
        "    trainer.optimizer.load_state_dict(trainer.state_dict()['optimizer'])\n"
        "print('torch._dynamo' in sys.modules)\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert run.stdout.strip() == "False"
