"""CS-SFT: first half passes, second half is x * scale + shift; condition branch layout."""
from __future__ import annotations

import torch

from vidrestore.models.sft import ConditionBranch, cs_sft, make_condition_branches


def test_first_half_passes_second_half_modulated() -> None:
    x = torch.randn(2, 8, 4, 4)
    scale, shift = torch.randn(2, 4, 4, 4), torch.randn(2, 4, 4, 4)
    out = cs_sft(x, scale, shift)
    assert out.shape == x.shape
    assert torch.equal(out[:, :4], x[:, :4])
    assert torch.allclose(out[:, 4:], x[:, 4:] * scale + shift)   # scale as is, not 1 + scale


def test_condition_branch_names_and_shapes() -> None:
    branch = ConditionBranch(6)
    assert set(branch.state_dict()) == {"0.weight", "0.bias", "2.weight", "2.bias"}
    assert branch(torch.randn(1, 6, 5, 5)).shape == (1, 6, 5, 5)
    scale, shift = make_condition_branches([4, 2])
    assert len(scale) == len(shift) == 2 and scale[1][2].out_channels == 2
    negative = torch.full((1, 6, 3, 3), -1.0)
    with torch.no_grad():
        for conv in (branch[0], branch[2]):
            conv.weight.zero_()
            conv.bias.zero_()
        branch[0].bias.fill_(-1.0)
        branch[2].weight[:, :, 1, 1] = torch.eye(6)
    assert torch.allclose(branch(negative), torch.full((1, 6, 3, 3), -0.2))  # LeakyReLU(0.2) between
