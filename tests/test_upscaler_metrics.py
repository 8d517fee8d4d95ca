"""PSNR-Y and SSIM (``lwgen.eval.sr_metrics``) against hand-computed cases."""

import numpy as np
import pytest

from lwgen.eval.sr_metrics import MAX_PSNR_DB, luminance, psnr_y, score_images, ssim_y


def _constant(value, shape=(1, 16, 16, 3)):
    return np.full(shape, value, np.uint8)


def test_luminance_is_studio_swing_bt601_for_rgb_and_the_channel_for_gray():
    rgb = np.array(
        [[[[0, 0, 0], [255, 255, 255], [255, 0, 0], [0, 255, 0], [0, 0, 255]]]], np.uint8
    )
    np.testing.assert_allclose(luminance(rgb)[0, 0], [16, 235, 81.481, 144.553, 40.966], atol=1e-9)
    np.testing.assert_array_equal(luminance(np.full((1, 2, 2, 1), 7, np.uint8)), 7.0)
    with pytest.raises(ValueError, match="uint8"):
        luminance(np.zeros((2, 2, 3), np.float32))


def test_psnr_y_of_a_constant_offset_and_of_one_wrong_pixel():
    # Gray +10 levels everywhere: MSE 100 → 10 log10(255² / 100).
    pred, truth = _constant(110, (2, 8, 8, 1)), _constant(100, (2, 8, 8, 1))
    np.testing.assert_allclose(psnr_y(pred, truth), 10 * np.log10(255**2 / 100), atol=1e-9)
    # One pixel off by 16 levels in 8x8 = 64 pixels: MSE 4; shaving 1 px removes a border pixel.
    pred = truth.copy()
    pred[0, 0, 0, 0] += 16
    pred[1, 4, 4, 0] += 16
    np.testing.assert_allclose(psnr_y(pred, truth), 10 * np.log10(255**2 / 4), atol=1e-9)
    shaved = psnr_y(pred, truth, shave=1)
    assert shaved[0] == MAX_PSNR_DB
    np.testing.assert_allclose(shaved[1], 10 * np.log10(255**2 / (256 / 36)), atol=1e-9)


def test_psnr_y_weights_rgb_errors_by_luma():
    truth = _constant(100)
    green = truth.copy()
    green[..., 1] += 10  # ΔY = 128.553 / 255 · 10
    expected = 10 * np.log10(255**2 / (128.553 / 255 * 10) ** 2)
    np.testing.assert_allclose(psnr_y(green, truth), expected, atol=1e-9)


def test_ssim_of_constant_images_is_the_luminance_term():
    # σ = 0: SSIM = (2 μx μy + C1) / (μx² + μy² + C1), C1 = (0.01 · 255)² (Wang 2004, eq. 13).
    a, b = _constant(100, (1, 16, 16, 1)), _constant(150, (1, 16, 16, 1))
    c1 = (0.01 * 255) ** 2
    expected = (2 * 100 * 150 + c1) / (100**2 + 150**2 + c1)
    np.testing.assert_allclose(ssim_y(a, b), expected, rtol=1e-9)
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, (2, 16, 16, 3), dtype=np.uint8)
    np.testing.assert_allclose(ssim_y(noise, noise), 1.0)
    assert np.all(ssim_y(noise, noise[::-1]) < 0.2)


def test_score_images_averages_and_rejects_bad_shapes():
    pred, truth = _constant(110, (2, 16, 16, 1)), _constant(100, (2, 16, 16, 1))
    scores = score_images(pred, truth, shave=2)
    assert scores["psnr_y_db"] == pytest.approx(10 * np.log10(255**2 / 100))
    assert 0.0 < scores["ssim"] < 1.0
    with pytest.raises(ValueError, match="shape"):
        psnr_y(pred, truth[:, :8])
    with pytest.raises(ValueError, match="shave"):
        psnr_y(pred, truth, shave=8)


def test_lpips_to_truth_is_zero_for_the_truth_and_handles_gray_tiles():
    from lwgen.eval.sr_report import lpips_to_truth
    from lwgen.models.vgg import made_vgg_weights

    weights = made_vgg_weights((4, 4, 8, 8, 8))
    truth = np.random.default_rng(0).integers(0, 256, (2, 16, 16, 1), dtype=np.uint8)
    exact = truth.astype(np.float32) / 127.5 - 1.0
    assert lpips_to_truth(exact, truth, weights) < 1e-6
    noisy = exact + np.random.default_rng(1).normal(0, 0.3, exact.shape).astype(np.float32)
    assert lpips_to_truth(noisy, truth, weights) > 1e-3
    assert lpips_to_truth(noisy, truth, None) is None
