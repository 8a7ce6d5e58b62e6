"""training/metrics/niqe.py against BasicSR 1.4.2's niqe.py (the implementation face-restoration papers
report), loaded by path from its sdist in the reference cache with its published pristine parameters."""
from __future__ import annotations

import io
import sys
import tarfile
import types
from pathlib import Path

import cv2
import numpy as np
import pytest

from training.metrics import niqe as N

from tests.support.basicsr_ref import basicsr_module, sdist_member


@pytest.fixture(scope="module")
def ref(tmp_path_factory):
    m = basicsr_module("metrics/niqe.py", "basicsr.metrics.niqe")
    folder = tmp_path_factory.mktemp("basicsr_niqe")          # calculate_niqe reads the .npz beside __file__
    (folder / "niqe_pris_params.npz").write_bytes(sdist_member("metrics/niqe_pris_params.npz"))
    m.__file__ = str(folder / "niqe.py")
    return m


@pytest.fixture(scope="module")
def params(tmp_path_factory):
    path = tmp_path_factory.mktemp("niqe") / "niqe_pris_params.npz"
    path.write_bytes(sdist_member("metrics/niqe_pris_params.npz"))
    return N.load_params(path)


def _images(testdata):
    face = cv2.imread(str(testdata / "images" / "gfpgan_cropped_Adele_512.png"))     # BGR
    small = cv2.resize(face, (200, 232), interpolation=cv2.INTER_AREA)
    blurred = cv2.GaussianBlur(small, (0, 0), 2.0)
    noisy = np.clip(small + np.random.default_rng(0).normal(0, 12, small.shape), 0, 255).astype(np.uint8)
    return {"face": small, "blurred": blurred, "noisy": noisy}


def test_matlab_resize_equals_basicsr():
    mf = basicsr_module("utils/matlab_functions.py", "basicsr.utils.matlab_functions")
    img = np.random.default_rng(1).uniform(0, 1, (37, 50))
    ours = N.imresize_half(img)
    theirs = mf.imresize(img[..., None], scale=0.5, antialiasing=True)[..., 0]
    np.testing.assert_allclose(ours, theirs, atol=1e-6)


def test_niqe_equals_basicsr(ref, params, testdata):
    mu, cov, window = params
    values = {}
    for name, bgr in _images(testdata).items():
        theirs = ref.calculate_niqe(bgr.astype(np.float32), crop_border=0, input_order="HWC", convert_to="y")
        ours = N.niqe(bgr[..., ::-1], params)
        values[name] = ours
        assert ours == pytest.approx(float(theirs), rel=1e-4, abs=1e-4), name
    # and it measures something: blur and noise move NIQE away from the clean face's value
    assert values["blurred"] > values["face"] and values["noisy"] > values["face"], values


def test_too_small_is_a_clear_error(params):
    with pytest.raises(ValueError, match="at least 192x192"):
        N.niqe(np.zeros((100, 300, 3)), params)
