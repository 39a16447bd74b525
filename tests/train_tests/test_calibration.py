"""The images int8 quantisation calibrates on (nas.train.calibration_inputs) and is checked
on (heldout_batches), against their oracle: the trainers' own carve and normalisation.
About 5 s (Fashion-MNIST loaded once)."""

import pytest
import torch

from nas.data import image_stats, load_dataset
from nas.train import LoopConfig, calibration_inputs, data_splits, heldout_batches


@pytest.fixture(scope="module")
def splits():
    dataset = load_dataset("fashion-mnist")
    train, val = data_splits(dataset, LoopConfig(val_fraction=0.1, split_seed=0))
    return train, val, image_stats(train)


def _normalised(images: torch.Tensor, stats) -> torch.Tensor:
    mean, std = (torch.tensor(v).view(1, -1, 1, 1) for v in stats)
    return (images.float() / 255 - mean) / std


def test_calibration_images_are_training_images_normalised_as_training(splits):
    train, _, stats = splits
    x = calibration_inputs("fashion-mnist", 12, seed=3)
    assert x.shape == (12, 1, 28, 28) and x.dtype == torch.float32
    # each is one image of the training split less the carve (data_splits, the trainers'
    # own), exactly as the trainers normalise it
    keys = {img.numpy().tobytes(): i for i, img in enumerate(train.images)}
    restored = torch.round((x * torch.tensor(stats[1]).view(1, -1, 1, 1)
                            + torch.tensor(stats[0]).view(1, -1, 1, 1)) * 255).to(torch.uint8)
    index = [keys[img.numpy().tobytes()] for img in restored]
    assert len(set(index)) == 12
    torch.testing.assert_close(x, _normalised(train.images[index], stats), rtol=0, atol=1e-6)
    # a seed draws the same images again, another seed others
    assert torch.equal(calibration_inputs("fashion-mnist", 12, seed=3), x)
    assert not torch.equal(calibration_inputs("fashion-mnist", 12, seed=4), x)


def test_calibration_images_fit_the_network_input():
    x = calibration_inputs("fashion-mnist", 2, resolution=56, channels=3)
    assert x.shape == (2, 3, 56, 56)
    assert torch.equal(x[:, 0], x[:, 1]) and torch.equal(x[:, 0], x[:, 2])  # grey, repeated


def test_heldout_batches_are_the_validation_carve_in_order(splits):
    _, val, stats = splits
    batches = list(heldout_batches("fashion-mnist", batch_size=100, limit=250))
    assert [len(y) for _, y in batches] == [100, 100, 50]
    x = torch.cat([b[0] for b in batches])
    y = torch.cat([b[1] for b in batches])
    assert torch.equal(y, val.labels[:250])
    torch.testing.assert_close(x, _normalised(val.images[:250], stats), rtol=0, atol=1e-6)
