"""Tests for the Grain input pipeline, image folders and host decoding (no jit: cheap)."""

import json
import os

import numpy as np
import pytest
from PIL import Image

from mixjax import data
from mixjax.data import decode, imagefolder, pipeline
from tests.image_folders import make_folder


def _toy(num, shape=(2, 3, 1)):
  ids = np.arange(num, dtype=np.int32)
  images = (ids[:, None, None, None] % 256 * np.ones(shape)).astype(np.uint8)
  return images, ids


@pytest.mark.parametrize("rows", [slice(None), slice(4, 8)])
def test_train_dataset_is_train_batches(rows):
  """Element k is step k of the run: epoch k // S's batches of train_batches, these rows."""
  images, labels = _toy(37)
  ds = data.train_dataset(data.ArraySplit(images, labels), 8, seed=5, num_epochs=3, rows=rows)
  assert len(ds) == 3 * 4
  for k in range(len(ds)):
    want = list(data.train_batches(images, labels, 8, 5, k // 4, rows=rows))[k % 4]
    np.testing.assert_array_equal(ds[k]["image"], want["image"])
    np.testing.assert_array_equal(ds[k]["label"], want["label"])


@pytest.mark.parametrize("workers", [0, 1])
def test_train_input_resumes_from_its_saved_state(workers):
  images, labels = _toy(40)
  ds = data.train_dataset(data.ArraySplit(images, labels), 4, seed=1, num_epochs=2)
  full = data.TrainInput(ds, workers=workers)
  seen = [next(full) for _ in range(20)]
  full.close()
  # Resume after batch 7 from the state recorded with it; or restart at a step.
  resumed = data.TrainInput(ds, state=seen[6][1], workers=workers)
  restarted = data.TrainInput(ds, start=7)
  for k in range(7, 20):
    for it in (resumed, restarted):
      batch, _ = next(it)
      np.testing.assert_array_equal(batch["label"], seen[k][0]["label"])
  resumed.close()
  restarted.close()


def test_eval_dataset_pads_and_masks_across_processes():
  images, labels = _toy(11)
  seen = []
  for rows in (slice(0, 2), slice(2, 4)):  # Two processes, global batch 4.
    for batch in pipeline.iterate(data.eval_dataset(data.ArraySplit(images, labels), 4, rows)):
      seen += batch["label"][batch["mask"]].tolist()
      assert not batch["image"][~batch["mask"]].any()
  assert sorted(seen) == list(range(11))


def test_inception_box_statistics_and_fallback():
  rng = np.random.default_rng(0)
  boxes = np.array([decode.inception_box(rng, 300, 400) for _ in range(2000)])
  top, left, h, w = boxes.T
  assert (top >= 0).all() and (left >= 0).all()
  assert (top + h <= 300).all() and (left + w <= 400).all()
  area = h * w / (300 * 400)
  assert area.min() >= 0.07 and area.max() <= 1.0
  aspect = w / h
  inside = (aspect > 3 / 4 - 0.02) & (aspect < 4 / 3 + 0.02)
  assert inside.mean() > 0.95  # Rounding moves the odd box of a few pixels.
  # An image too thin for any box: the centred box of aspect 3/4 (all tries fail).
  assert decode.inception_box(np.random.default_rng(0), 1000, 10, tries=0) == (
      (1000 - 13) // 2, 0, 13, 10)
  assert decode.inception_box(np.random.default_rng(0), 50, 60, tries=0) == (0, 0, 50, 60)


def test_example_rng_is_a_function_of_seed_epoch_index():
  a = decode.example_rng(3, 1, 7).integers(0, 1 << 30, 4)
  np.testing.assert_array_equal(a, decode.example_rng(3, 1, 7).integers(0, 1 << 30, 4))
  assert (a != decode.example_rng(3, 2, 7).integers(0, 1 << 30, 4)).any()


@pytest.fixture
def folder(tmp_path):
  """DATA/{train,val}/<class>/ with JPEGs and PNGs of varied sizes, one colour per class."""
  make_folder(tmp_path)
  return tmp_path


def test_imagefolder_source_labels_and_crops(folder):
  source = data.open_source("imagefolder", str(folder), image_size=16, seed=0)
  assert source.num_classes == 3 and source.image_shape == (16, 16, 3)
  assert (len(source.train), len(source.test)) == (15, 6)
  for split, epoch in ((source.train, 0), (source.test, None)):
    images, labels = split.load(np.arange(len(split)), epoch)
    assert images.shape == (len(split), 16, 16, 3) and images.dtype == np.uint8
    # Each crop has its class's colour (JPEG: within a few levels).
    colour = images.reshape(len(split), -1, 3).mean(axis=1).argmax(axis=1)
    np.testing.assert_array_equal(colour, labels)
  # Training crops depend on (seed, epoch, index) only.
  a, _ = source.train.load(np.array([3, 4]), 2)
  b, _ = source.train.load(np.array([4]), 2)
  np.testing.assert_array_equal(a[1], b[0])


def test_decode_crop_matches_a_full_decode_for_pngs():
  # A smooth image (resampling a box or the whole image differ only at its edge).
  y, x = np.mgrid[0:30, 0:50]
  pixels = np.stack([4 * x, 8 * y, 2 * x + 3 * y], -1).astype(np.uint8)
  import io
  buf = io.BytesIO()
  Image.fromarray(pixels).save(buf, format="PNG")
  out = decode.decode_crop(buf.getvalue(), "x", 20, None)
  (new_h, new_w), box = decode.central_box(30, 50, 20)
  assert (new_h, new_w) == (23, 38)
  want = Image.fromarray(pixels).resize((new_w, new_h), Image.Resampling.BILINEAR)
  top, left = round((new_h - 20) / 2), round((new_w - 20) / 2)
  want = np.asarray(want)[top:top + 20, left:left + 20]
  assert np.abs(out.astype(int) - want.astype(int)).max() <= 2


@pytest.mark.parametrize("damage, match", [
    ("missing_val", "no split folder .*val"),
    ("empty_class", "class folder .*emu holds no images"),
    ("class_mismatch", "must have the train split's 3 class folders.*missing \\['emu'\\]"),
    ("text_file", "notes.txt is not an image file"),
    ("no_classes", "holds no class folders"),
])
def test_imagefolder_layout_errors(folder, damage, match):
  import shutil
  if damage == "missing_val":
    shutil.rmtree(folder / "val")
  elif damage == "empty_class":
    for f in (folder / "train" / "emu").iterdir():
      f.unlink()
  elif damage == "class_mismatch":
    shutil.rmtree(folder / "val" / "emu")
  elif damage == "text_file":
    (folder / "train" / "dog" / "notes.txt").write_text("hello")
  elif damage == "no_classes":
    shutil.rmtree(folder / "val")
    (folder / "val").mkdir()
  (folder / "train" / "cat" / ".DS_Store").write_text("skipped")  # Hidden: ignored.
  with pytest.raises((ValueError, FileNotFoundError), match=match):
    data.open_source("imagefolder", str(folder), image_size=8)


@pytest.mark.parametrize("damage", ["truncated", "not_an_image", "unreadable"])
def test_imagefolder_bad_files_name_the_file(folder, damage):
  path = folder / "train" / "dog" / "0.jpg"
  if damage == "truncated":
    path.write_bytes(path.read_bytes()[:200])
  elif damage == "not_an_image":
    path.write_bytes(b"not a jpeg at all")
  source = data.open_source("imagefolder", str(folder), image_size=8)
  if damage == "unreadable":  # Gone after the scan (chmod would not stop root).
    path.unlink()
  index = source.train.files.index(str(path))
  with pytest.raises(decode.ImageError, match=str(path)):
    source.train.load(np.array([index]), 0)
  # Through Grain's threads too: the error reaches the caller, no hang.
  ds = data.train_dataset(source.train, len(source.train), 0, 1)
  with pytest.raises(decode.ImageError, match=str(path)):
    next(pipeline.iterate(ds, threads=2))
  if damage != "unreadable":
    assert [p for p, _ in imagefolder.find_bad_files(str(folder))] == [str(path)]
  if damage == "not_an_image":  # From a Grain worker process too: raised, never hung.
    it = pipeline.iterate(ds, workers=1)
    with pytest.raises(decode.ImageError, match=str(path)):
      next(it)
    it.close()


def test_train_on_an_image_folder_and_resume_mid_epoch_exactly(folder, tmp_path):
  """train_and_evaluate on an image folder with configs/imagefolder.py (decode threads,
  crops, CutMix, bfloat16); a copy cut back to a mid-epoch checkpoint resumes from its
  saved Grain state to the same end."""
  import shutil

  import jax

  from configs import imagefolder
  from mixjax import training
  c = imagefolder.get_config()  # The README's image-folder config, at a toy scale.
  c.data_dir, c.image_size, c.model, c.data_workers = str(folder), 12, "small_cnn", 0
  c.tensorboard, c.log_every_epochs, c.warmup_epochs = False, 100, 1.0
  c.num_epochs, c.batch_size, c.eval_batch_size = 2, 4, 4
  c.checkpoint_every_steps, c.data_threads, c.keep_checkpoints = 2, 2, 10
  full = tmp_path / "full"
  result = training.train_and_evaluate(c, str(full), "cutmix")
  assert result["steps"] == 2 * (15 // 4)
  cut = tmp_path / "cut"
  shutil.copytree(full, cut)
  for step in os.listdir(cut / "checkpoints"):
    if step.isdigit() and int(step) > 2:  # Keep step 2 of epoch 1's 3.
      shutil.rmtree(cut / "checkpoints" / step)
  # The input's position after step 2's batch, saved by Grain's orbax handler.
  saved = (cut / "checkpoints" / "2" / "input" / "process_0-of-1.json").read_text()
  assert json.loads(saved) == {"next_index": 2}
  resumed = training.train_and_evaluate(c, str(cut), "cutmix", resume=True)
  leaves = lambda s: (s.params, s.opt_state, s.step)
  jax.tree.map(np.testing.assert_array_equal, leaves(resumed["state"]), leaves(result["state"]))
  drop = lambda h: [{k: v for k, v in r.items() if k not in training.TIMING_FIELDS} for r in h]
  assert drop(resumed["history"]) == drop(result["history"])
