"""training/loop.py: a tiny GFP-GAN trains on the CPU; every term finite and logged, reconstruction
falls, N straight iterations == N/2 + resume + N/2 bit for bit, the export reloads."""
from __future__ import annotations

import math
from pathlib import Path

import cv2
import pytest
import torch

from training.config import load_config
from training.dataset import ValidationSet
from training.logs import read_log
from training.loop import Trainer
from vidrestore.errors import CheckpointError, ConfigError
from vidrestore.models import GFPGAN

TINY = Path(__file__).resolve().parents[2] / "training" / "configs" / "tiny_cpu.toml"
N = 24


@pytest.fixture(scope="module")
def one_thread():
    # 2 shared cores: one intra-op thread is faster and keeps both runs on identical kernels
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def faces(testdata, tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("faces")
    for name in ("gfpgan_cropped_Adele_512.png", "gfpgan_cropped_Julia_Roberts_512.png"):
        img = cv2.imread(str(testdata / "images" / name))
        cv2.imwrite(str(d / name), cv2.resize(img, (128, 128), interpolation=cv2.INTER_AREA))
    return d


def _cfg(faces: Path, out: Path, *extra: str):
    return load_config(TINY, overrides=[f"data.train_dir={faces}", f"data.val_dir={faces}", f"logging.out_dir={out}",
                                        f"schedule.total_iters={N}", f"logging.save_every={N // 2}",
                                        f"logging.val_every={N // 2}", *extra])


@pytest.fixture(scope="module")
def straight(faces, tmp_path_factory, one_thread):
    """N iterations in chunks of 4, the eval-batch L1 after each chunk."""
    out = tmp_path_factory.mktemp("run_a")
    cfg = _cfg(faces, out)
    tr = Trainer(cfg)
    vs = ValidationSet(cfg.data, cfg.degradation, out_size=cfg.model.out_size)
    lq = torch.stack([vs[i]["lq"] for i in range(len(vs))])
    gt = torch.stack([vs[i]["gt"] for i in range(len(vs))])

    def eval_l1() -> float:
        with torch.no_grad():
            return float((tr.g(lq) - gt).abs().mean())
    curve = [eval_l1()]
    while tr.iteration < N:
        tr.fit(4, save_at_end=False)
        curve.append(eval_l1())
    tr.close()
    return tr, curve, out


def test_every_term_is_finite_and_logged(straight):
    tr, _, out = straight
    rows = read_log(out / "log.csv")
    assert [int(r["iter"]) for r in rows] == list(range(1, N + 1))
    seen = set().union(*rows)
    assert set(tr.loss_keys()) <= seen | {"iter"}, set(tr.loss_keys()) - seen
    for r in rows:
        assert all(math.isfinite(v) for v in r.values()), r
        it = int(r["iter"])
        assert ("l_d_r1" in r) == (it % tr.cfg.losses.d_reg_every == 0)
        assert ("l_p_64" in r) == (it <= tr.cfg.losses.pyramid_loss_iters)
        assert ("val_psnr" in r) == (it % (N // 2) == 0)
        for k in ("l_g_pix", "l_g_percep", "l_g_style", "l_g_gan", "l_g_gan_mouth", "l_g_comp_style", "l_identity",
                  "l_d", "l_d_left_eye"):
            assert r[k] > 0 or k == "l_g_gan_mouth", (k, r[k])
    last = rows[-1]
    assert 5 < last["val_psnr"] < 60 and 0 < last["val_ssim"] <= 1
    assert (out / "samples" / f"val_{N:08d}.png").is_file() and (out / "config.toml").is_file()
    grid = cv2.imread(str(out / "samples" / f"val_{N:08d}.png"))
    assert grid.shape == (2 * 64, 3 * 64, 3)


def test_reconstruction_falls(straight):
    _, curve, _ = straight
    first, last = sum(curve[:2]) / 2, sum(curve[-2:]) / 2
    assert last < 0.8 * first, curve


def test_resume_is_bit_exact(straight, faces, tmp_path, one_thread):
    tr_a, _, out_a = straight
    ckpts = sorted((out_a / "checkpoints").glob("state_*.pt"))
    assert [c.name for c in ckpts] == [f"state_{N // 2:08d}.pt", f"state_{N:08d}.pt"]
    cfg = _cfg(faces, tmp_path / "run_b")
    tr_b = Trainer(cfg, resume=ckpts[0])
    assert tr_b.iteration == N // 2
    tr_b.fit()
    tr_b.close()
    assert tr_b.iteration == N
    a, b = tr_a.state_dict(), tr_b.state_dict()
    for net in ("g", "g_ema", "d", "comps"):
        for k, v in a[net].items():
            assert torch.equal(v, b[net][k]), (net, k)
    for oa, ob in zip(a["optimizers"], b["optimizers"]):
        for pid, st in oa["state"].items():
            assert all(torch.equal(st[k], ob["state"][pid][k]) for k in st)
    assert a["schedulers"] == b["schedulers"]
    assert torch.equal(a["rng"]["torch"], b["rng"]["torch"])
    # another batch size (or world size) continues at the same draw of the data order
    tr_c = Trainer(_cfg(faces, tmp_path / "run_c", "data.batch_size=1"), resume=ckpts[0])
    assert tr_c.samples_seen == N // 2 * 2 and "data continue at draw 24" in tr_c.describe()
    assert tr_c.dataset[0]["index"] == 0
    with pytest.raises(CheckpointError, match="not a training-state"):
        Trainer(_cfg(faces, tmp_path / "run_d"), resume=out_a / "models" / f"net_g_ema_{N:08d}.pth")


def test_init_from_a_training_state(straight, faces, tmp_path):
    tr_a, _, out_a = straight
    state = out_a / "checkpoints" / f"state_{N // 2:08d}.pt"
    saved = torch.load(state, map_location="cpu", weights_only=False)
    tr = Trainer(_cfg(faces, tmp_path), init_from=state)
    assert tr.iteration == 0 and tr.samples_seen == 0
    assert all(not o.state_dict()["state"] for o in tr.optimizers)        # fresh optimisers
    for net in ("g", "g_ema", "d", "comps"):                              # every network, discriminators too
        own = getattr(tr, net).state_dict()
        assert all(torch.equal(v, own[k]) for k, v in saved[net].items()), net
    with pytest.raises(ConfigError, match="exclude"):
        Trainer(_cfg(faces, tmp_path), init_from=state, resume=state)


def test_validation_with_more_metrics(faces, tmp_path):
    tr = Trainer(_cfg(faces, tmp_path, "logging.val_metrics=[\"psnr\", \"ssim\", \"lpips\", \"deg\"]",
                      "logging.val_metric_files.alexnet=random", "logging.val_metric_files.arcface_resnet18=random"))
    values = tr.validate()
    assert set(values) == {"val_psnr", "val_ssim", "val_lpips", "val_deg"} and values["val_deg"] > 0
    assert {"val_lpips", "val_deg"} <= set(tr.loss_keys())
    with pytest.raises(ConfigError, match="unknown metric weights"):
        Trainer(_cfg(faces, tmp_path, "logging.val_metric_files.vgg=x")).validate()


def test_export_reloads(straight):
    tr, _, out = straight
    path = out / "models" / f"net_g_ema_{N:08d}.pth"
    state = torch.load(path, map_location="cpu", weights_only=True)["params_ema"]
    m = tr.cfg.model
    g = GFPGAN(m.out_size, num_style_feat=m.num_style_feat, channel_multiplier=m.channel_multiplier, narrow=m.narrow)
    g.load_state_dict(state, strict=True)
    x = torch.rand(1, 3, 64, 64) * 2 - 1
    with torch.no_grad():
        assert torch.equal(g.eval()(x), tr.g_ema(x))


def test_configuration_errors(faces, tmp_path):
    with pytest.raises(ConfigError, match="vgg_path"):
        Trainer(_cfg(faces, tmp_path, "model.vgg_path=none"))
    with pytest.raises(ConfigError, match="arcface_path"):
        Trainer(_cfg(faces, tmp_path, "model.arcface_path=none"))
    with pytest.raises(ConfigError, match="decoder_path"):
        Trainer(_cfg(faces, tmp_path, "model.freeze_decoder=true"))
    tr = Trainer(_cfg(faces, tmp_path, "losses.perceptual_weight=0", "losses.style_weight=0", "model.vgg_path=none",
                      "losses.identity_weight=0", "model.arcface_path=none", "model.component_discriminators=false",
                      "data.batch_size=3"))
    assert tr.perceptual is None and tr.arcface is None and tr.comps is None
    with pytest.raises(ConfigError, match="larger than the dataset"):
        next(tr.batches())


@pytest.mark.needs_cuda
@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_mixed_precision_on_cuda(faces, tmp_path, precision):
    tr = Trainer(_cfg(faces, tmp_path, "device=cuda", f"precision={precision}", "schedule.total_iters=4",
                      "logging.save_every=4", "logging.val_every=4"))
    assert tr.amp_dtype is not None and tr.scaler.is_enabled() == (precision == "fp16")
    tr.fit()
    tr.close()
    rows = read_log(tmp_path / "log.csv")
    assert len(rows) == 4 and all(math.isfinite(v) for r in rows for v in r.values())
    assert all(p.dtype == torch.float32 and p.is_cuda for p in tr.g.parameters())
