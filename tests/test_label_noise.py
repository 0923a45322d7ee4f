"""Symmetric label noise (mixjax.data.label_noise) and its way into datasets and the trainer."""

import numpy as np
import pytest
from scipy import stats

from mixjax import data
from mixjax.data.label_noise import flip_labels


@pytest.mark.parametrize("fraction", [0.2, 0.4, 0.6, 1.0])
def test_exactly_the_fraction_is_wrong_and_only_there(fraction):
  labels = np.arange(1000, dtype=np.int32) % 10
  noisy, flipped = flip_labels(labels, 10, fraction, seed=1)
  assert noisy.dtype == np.int32 and flipped.dtype == np.bool_
  assert flipped.sum() == round(fraction * 1000)
  np.testing.assert_array_equal(noisy != labels, flipped)
  assert noisy.min() >= 0 and noisy.max() < 10
  np.testing.assert_array_equal(labels, np.arange(1000) % 10)  # The input is untouched.


def test_new_labels_are_uniform_over_the_other_classes_and_examples_uniformly_chosen():
  """Chi-square tests at fixed seeds (deterministic; each would fail by chance with
  probability 1e-3 for a fresh seed): the shift ``new − old mod K`` is uniform on
  {1, ..., K − 1}, and every class is flipped at the same rate."""
  k = 7
  labels = np.arange(30_000, dtype=np.int32) % k
  noisy, flipped = flip_labels(labels, k, 0.5, seed=4)
  shifts = (noisy[flipped] - labels[flipped]) % k
  counts = np.bincount(shifts, minlength=k)
  assert counts[0] == 0
  assert stats.chisquare(counts[1:]).pvalue > 1e-3, counts
  per_class = np.bincount(labels[flipped], minlength=k)
  assert stats.chisquare(per_class).pvalue > 1e-3, per_class


def test_the_draw_is_a_function_of_the_seed():
  labels = np.arange(500, dtype=np.int32) % 10
  a, fa = flip_labels(labels, 10, 0.3, seed=2)
  b, fb = flip_labels(labels, 10, 0.3, seed=2)
  c, fc = flip_labels(labels, 10, 0.3, seed=3)
  np.testing.assert_array_equal(a, b)
  np.testing.assert_array_equal(fa, fb)
  assert (fa != fc).any()
  zero, none = flip_labels(labels, 10, 0.0, seed=2)
  np.testing.assert_array_equal(zero, labels)
  assert not none.any()


@pytest.mark.parametrize("args, match", [
    ((np.zeros(4, np.int32), 10, 1.5), r"fraction in \[0, 1\], got 1.5"),
    ((np.zeros(4, np.int32), 10, -0.1), r"fraction in \[0, 1\]"),
    ((np.zeros(4, np.int32), 10, None), r"fraction in \[0, 1\], got None"),
    ((np.zeros(4, np.int32), 1, 0.5), "num_classes >= 2, got 1"),
    ((np.array([0, 10], np.int32), 10, 0.5), r"lie in \[0, 10\), got values in \[0, 10\]"),
    ((np.zeros(4, np.float32), 10, 0.5), "integer class ids"),
])
def test_bad_arguments_are_refused(args, match):
  with pytest.raises(ValueError, match=match):
    flip_labels(*args)


def test_load_dataset_flips_training_labels_only():
  clean = data.load_dataset("digits")
  noisy = data.load_dataset("digits", label_noise=0.4, seed=3)
  assert clean.train_flipped is None
  assert noisy.train_flipped.sum() == round(0.4 * clean.num_train) == 575
  np.testing.assert_array_equal(noisy.train_labels != clean.train_labels,
                                noisy.train_flipped)
  np.testing.assert_array_equal(noisy.test_labels, clean.test_labels)
  np.testing.assert_array_equal(noisy.train_images, clean.train_images)
  assert (noisy.mean, noisy.std) == (clean.mean, clean.std)
  # open_source reads the same noisy labels (the trainer's path).
  source = data.open_source("digits", seed=3, label_noise=0.4)
  np.testing.assert_array_equal(source.train.load(np.arange(clean.num_train), 0)[1],
                                noisy.train_labels)


def test_streamed_sources_refuse_label_noise(tmp_path):
  from tests.image_folders import make_folder
  make_folder(tmp_path)
  with pytest.raises(ValueError, match="label_noise applies to datasets read into memory"):
    data.open_source("imagefolder", str(tmp_path), image_size=8, label_noise=0.2)


def test_the_trainer_reads_config_label_noise(tmp_path, monkeypatch):
  """config.label_noise and config.seed reach open_source (stopped there: nothing trains)."""
  from configs import digits
  from mixjax import training
  from mixjax.training import loop

  class Opened(Exception):
    pass

  def record(*args, **kwargs):
    raise Opened(args, kwargs)

  monkeypatch.setattr(loop, "open_source", record)
  config = digits.get_config()
  config.label_noise, config.seed = 0.2, 5
  config.antialias, config.fast_dct = False, True  # tf.data's decoding choices.
  with pytest.raises(Opened) as opened:
    training.compare(config, str(tmp_path))
  args, kwargs = opened.value.args
  assert args[0] == "digits" and args[3] == 5
  assert kwargs == {"label_noise": 0.2,
                    "decoding": data.DecodeOptions(antialias=False, fast_dct=True)}
