"""Device batches and augmentation on real images, checked against direct computations."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
import torchvision.transforms.v2.functional as TF

from tinyab.config import AugmentConfig
from tinyab.data import augment as aug
from tinyab.data import eval_batches, load_arrays, train_batches
from tinyab.data.batches import IMAGENET_MEAN, IMAGENET_STD

MEAN = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
STD = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
PLAIN = AugmentConfig(crop="none", flip=False)


@pytest.fixture(scope="module")
def images(mini_zip, tmp_path_factory) -> torch.Tensor:
    """64 real images, uint8 N×64×64×3."""
    cache = tmp_path_factory.mktemp("cache")
    return load_arrays(
        mini_zip, classes=8, train_per_class=8, val_per_class=1, cache_dir=cache, progress=False
    ).train_x


def reference(x: torch.Tensor) -> torch.Tensor:
    """The normalisation written out: (x/255 - mean)/std, N×3×64×64."""
    return (x.permute(0, 3, 1, 2).float() / 255 - MEAN) / STD


def one_batch(images, cfg, *, px=64, seed=0, batch_size=32, augment_on=True):
    """The first batch, with labels = image index so every output can be traced to its source."""
    labels = torch.arange(len(images))
    g = torch.Generator().manual_seed(seed)
    kwargs = dict(batch_size=batch_size, px=px, augment=cfg, augment_on=augment_on, generator=g)
    return next(iter(train_batches(images, labels, **kwargs)))


@pytest.mark.parametrize(
    "cfg", [AugmentConfig(), AugmentConfig(crop="random_resized", color_jitter=0.3, cutmix=1.0)]
)
def test_shapes_dtypes_and_memory_format(images, cfg):
    for px in (64, 40, 32):
        g = torch.Generator().manual_seed(1)
        batches = list(
            train_batches(
                images, torch.arange(64), batch_size=24, px=px, augment=cfg, augment_on=True, generator=g
            )
        )
        assert len(batches) == 2  # 64 // 24, last partial batch dropped
        for b in batches:
            assert b.images.shape == (24, 3, px, px) and b.images.dtype == torch.float32
            assert b.images.is_contiguous(memory_format=torch.channels_last)
            assert b.labels.dtype == torch.int64 and (b.mix is None) == (cfg.cutmix == 0)
    evals = list(eval_batches(images, torch.arange(64), batch_size=24))
    assert [len(b.labels) for b in evals] == [24, 24, 16]
    assert all(b.images.is_contiguous(memory_format=torch.channels_last) for b in evals)


def test_normalisation_matches_manual_computation(images):
    got = torch.cat([b.images for b in eval_batches(images, torch.arange(64), batch_size=20)])
    torch.testing.assert_close(got, reference(images), atol=1e-5, rtol=0)
    plain = one_batch(images, PLAIN)
    torch.testing.assert_close(plain.images, reference(images[plain.labels]), atol=1e-5, rtol=0)


def test_epoch_is_a_permutation_and_seeded(images):
    def epoch(seed):
        g = torch.Generator().manual_seed(seed)
        batches = train_batches(
            images, torch.arange(64), batch_size=16, px=64, augment=PLAIN, augment_on=True, generator=g
        )
        return torch.cat([b.labels for b in batches])

    assert sorted(epoch(0).tolist()) == list(range(64))
    assert torch.equal(epoch(0), epoch(0)) and not torch.equal(epoch(0), epoch(1))


@pytest.mark.parametrize(
    "cfg",
    [
        AugmentConfig(color_jitter=0.4, mixup=0.4, cutmix=1.0),
        AugmentConfig(crop="random_resized", color_jitter=0.4, mixup=0.2),
    ],
)
def test_same_seed_gives_identical_batches(images, cfg):
    a, b, c = (one_batch(images, cfg, px=48, seed=s) for s in (3, 3, 4))
    assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)
    assert torch.equal(a.mix[0], b.mix[0]) and a.mix[1] == b.mix[1]
    assert not torch.equal(a.images, c.images)


def test_flip_mirrors_some_images_and_keeps_others(images):
    batch = one_batch(images, AugmentConfig(crop="none", flip=True), batch_size=64)
    source = reference(images[batch.labels])
    same = [torch.allclose(o, s, atol=1e-5) for o, s in zip(batch.images, source, strict=True)]
    mirrored = [torch.allclose(o, s.flip(-1), atol=1e-5) for o, s in zip(batch.images, source, strict=True)]
    assert all(a or b for a, b in zip(same, mirrored, strict=True))
    assert 10 < sum(mirrored) < 54 and 10 < sum(same) < 54


def test_pad_crop_is_a_shifted_window_of_the_reflect_padded_image(images):
    pad = 4
    batch = one_batch(images, AugmentConfig(crop="pad", pad=pad, flip=False), batch_size=64)
    padded = F.pad(reference(images[batch.labels]), (pad,) * 4, mode="reflect")
    shifts = []
    for out, src in zip(batch.images, padded, strict=True):
        found = [
            (dy, dx)
            for dy in range(2 * pad + 1)
            for dx in range(2 * pad + 1)
            if torch.allclose(out, src[:, dy : dy + 64, dx : dx + 64], atol=1e-5)
        ]
        assert found, "output is not a 64×64 window of the padded image"
        shifts.append(found[0])
    assert len(set(shifts)) > 10 and any(s != (pad, pad) for s in shifts)


def test_random_resized_crop_at_full_scale_is_the_antialiased_resize(images):
    full = one_batch(images, AugmentConfig(crop="random_resized", min_scale=1.0, flip=False))
    torch.testing.assert_close(full.images, reference(images[full.labels]), atol=1e-4, rtol=0)
    small = one_batch(images, AugmentConfig(crop="random_resized", min_scale=1.0, flip=False), px=24)
    src = images[small.labels].permute(0, 3, 1, 2).float()
    expected = (F.interpolate(src, size=(24, 24), mode="bilinear", antialias=True) / 255 - MEAN) / STD
    torch.testing.assert_close(small.images, expected, atol=1e-4, rtol=0)
    cropped = one_batch(images, AugmentConfig(crop="random_resized", min_scale=0.25, flip=False))
    assert (cropped.images - reference(images[cropped.labels])).abs().mean() > 0.1


def test_color_jitter_changes_each_image_within_the_valid_range(images):
    batch = one_batch(images, AugmentConfig(crop="none", flip=False, color_jitter=0.5))
    source = reference(images[batch.labels])
    assert all((o - s).abs().mean() > 1e-3 for o, s in zip(batch.images, source, strict=True))
    low, high = (0 - MEAN) / STD, (1 - MEAN) / STD
    assert (batch.images >= low - 1e-5).all() and (batch.images <= high + 1e-5).all()


def test_jitter_matches_torchvision_adjustments_where_nothing_clips(images):
    x = reference(images[:16]) * STD + MEAN  # back to [0, 1]
    x = (x * 0.5 + 0.25).contiguous(memory_format=torch.channels_last)  # mid-range: no step clips
    g = torch.Generator().manual_seed(0)
    b, c, s = (torch.rand(16, generator=g) * 0.6 + 0.7 for _ in range(3))
    expected = torch.stack(
        [
            TF.adjust_saturation(TF.adjust_contrast(TF.adjust_brightness(xi, bi), ci), si)
            for xi, bi, ci, si in zip(x, b.tolist(), c.tolist(), s.tolist(), strict=True)
        ]
    )
    got = aug.jitter(x * 255, b, c, s) / 255
    torch.testing.assert_close(got, expected, atol=2e-5, rtol=0)


def test_mixup_is_a_convex_combination_of_two_batch_images(images):
    batch = one_batch(images, AugmentConfig(crop="none", flip=False, mixup=0.4))
    labels_b, lam = batch.mix
    assert 0 <= lam <= 1 and not torch.equal(labels_b, batch.labels)
    a, b = reference(images[batch.labels]), reference(images[labels_b])
    torch.testing.assert_close(batch.images, lam * a + (1 - lam) * b, atol=1e-5, rtol=0)


def test_cutmix_pastes_one_box_whose_area_is_one_minus_lam(images):
    batch = one_batch(images, AugmentConfig(crop="none", flip=False, cutmix=1.0), seed=5)
    labels_b, lam = batch.mix
    a, b = reference(images[batch.labels]), reference(images[labels_b])
    from_b = ((batch.images - b).abs().amax(1) < 1e-5) & ((batch.images - a).abs().amax(1) > 1e-5)
    from_a = (batch.images - a).abs().amax(1) < 1e-5
    assert bool((from_a | from_b).all())
    box = from_b.any(0)  # the same box in every image
    assert abs(box.float().mean().item() - (1 - lam)) < 0.01 and 0 < lam < 1


def test_resize_gives_px_and_matches_antialiased_bilinear(images):
    batch = one_batch(images, PLAIN, px=32)
    assert batch.images.shape[-2:] == (32, 32)
    src = images[batch.labels].permute(0, 3, 1, 2).float()
    expected = (F.interpolate(src, size=(32, 32), mode="bilinear", antialias=True) / 255 - MEAN) / STD
    # resized in uint8 (fixed-point weights) on CPU: within one grey level of the float resize
    assert (batch.images - expected).abs().max() <= 1.01 / 255 / min(IMAGENET_STD)


def test_augment_off_disables_crop_flip_jitter_and_mixing(images):
    cfg = AugmentConfig(crop="random_resized", color_jitter=0.5, mixup=1.0, cutmix=1.0)
    batch = one_batch(images, cfg, augment_on=False)
    assert batch.mix is None
    torch.testing.assert_close(batch.images, reference(images[batch.labels]), atol=1e-5, rtol=0)


def test_resize_once_equals_resizing_every_batch_and_eval_batches_take_px(images):
    from tinyab.data.batches import resize_uint8

    small = resize_uint8(images, 32)
    assert small.shape == (64, 32, 32, 3) and small.dtype == torch.uint8 and small.is_contiguous()
    assert resize_uint8(images, 64) is images  # nothing to do at the stored size
    labels = torch.arange(64)
    once = torch.cat([b.images for b in eval_batches(small, labels, batch_size=24)])
    per_batch = torch.cat([b.images for b in eval_batches(images, labels, batch_size=24, px=32)])
    assert torch.equal(once, per_batch)  # on CPU both are the same uint8 resize
    assert once.is_contiguous(memory_format=torch.channels_last)
    # and the same resize as the training batches without augmentation
    plain = one_batch(images, PLAIN, px=32, batch_size=64)
    assert torch.equal(plain.images, once[plain.labels])
    src = images.permute(0, 3, 1, 2).float()
    expected = (F.interpolate(src, size=(32, 32), mode="bilinear", antialias=True) / 255 - MEAN) / STD
    assert (once - expected).abs().max() <= 1.01 / 255 / min(IMAGENET_STD)
