"""ParseNet-512 equals facexlib's ParseNet (the authors' architecture file) with random weights saved in
the released checkpoint's format (a plain state dict), and loading failures name the file."""
from __future__ import annotations

import pytest
import torch

from vidrestore.errors import CheckpointError
from vidrestore.models.parsenet import ParseNet, load_parsenet
from tests.support.parse_reference import load_or_skip, randomise_batchnorm


def test_state_dict_layout_equals_the_released_512_model() -> None:
    ref = load_or_skip().ParseNet(in_size=512, out_size=512, parsing_ch=19)   # as facexlib builds it
    a, b = ref.state_dict(), ParseNet().state_dict()
    assert list(a) == list(b)
    assert all(a[k].shape == b[k].shape for k in a)
    assert sum(v.numel() for k, v in b.items() if "num_batches" not in k) > 21_000_000


def test_parity_with_facexlib(tmp_path) -> None:
    """Every block kind (stem, down/up blocks with conv shortcuts, identity body blocks, both heads) at a
    small input: the same numbers from the authors' module and from ours loaded from the saved file."""
    torch.manual_seed(0)
    ref = randomise_batchnorm(load_or_skip().ParseNet(in_size=64, out_size=64, parsing_ch=19))
    path = tmp_path / "parsing_parsenet.pth"
    torch.save(ref.state_dict(), path)
    mine = ParseNet(size=64)
    mine.load_state_dict(torch.load(path, weights_only=True), strict=True)
    mine.eval()
    x = torch.rand(1, 3, 64, 64) * 2 - 1
    with torch.no_grad():
        (ma, ia), (mb, ib) = ref(x), mine(x)
    assert ma.shape == (1, 19, 64, 64) and ia.shape == (1, 3, 64, 64)
    assert ma.abs().max() > 0.05                                # not a degenerate all-zero comparison
    torch.testing.assert_close(mb, ma, rtol=0, atol=1e-5)
    torch.testing.assert_close(ib, ia, rtol=0, atol=1e-5)


def test_load_errors_name_the_file(tmp_path) -> None:
    with pytest.raises(CheckpointError, match="not found") as e:
        load_parsenet(tmp_path / "missing.pth")
    assert e.value.path == str(tmp_path / "missing.pth")
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        load_parsenet(junk)
    other = tmp_path / "other.pth"
    torch.save({"conv.weight": torch.zeros(3, 3, 3, 3)}, other)
    with pytest.raises(CheckpointError, match="not a ParseNet-512"):
        load_parsenet(other)
