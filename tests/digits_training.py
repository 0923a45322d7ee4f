"""Small training set-ups on the offline digits, shared by the training tests."""

import jax

from configs import digits
from mixjax import training
from mixjax.data import load_dataset, train_batches
from mixjax.models import get_model


def digits_setup(model="small_cnn", learning_rate=0.05, padding=1):
  """Digits, a model (a registry name or a module), its fresh state and augmentation.

  The state is initialised from an "rbg" key: threefry's unrolled hashes, one per
  initialiser, double the init's compile time (the tests compare runs from it)."""
  ds = load_dataset("digits")
  if isinstance(model, str):
    model = get_model(model, ds.num_classes)
  state = training.create_train_state(model, jax.random.key(0, impl="rbg"), ds.image_shape,
                                      training.make_optimizer(learning_rate))
  augment = training.Augment(padding, False, tuple(ds.mean), tuple(ds.std))
  return ds, model, state, augment


def method_step(model, method_name, ds, augment, **kwargs):
  """The train step of ``method_name`` with the digits config's mixer for it."""
  mixer = training.mixer_from_config(digits.get_config(), method_name)
  return training.make_train_step(model, mixer, ds.num_classes, augment, **kwargs,
                                  manifold=method_name in training.MANIFOLD_METHODS)


def parallel_setup(method_name, backend="shard_map", num_devices=4, batch=32,
                   model="small_cnn", compiler_options=None):
  """A ``DataParallel`` of ``method_name`` (the digits config's mixer), its host state
  and 3 batches."""
  ds, model, state, augment = digits_setup(model)
  parallel = training.DataParallel(
      method_step(model, method_name, ds, augment),
      training.make_eval_step(model, augment), backend=backend,
      devices=jax.local_devices()[:num_devices], compiler_options=compiler_options)
  batches = list(train_batches(ds.train_images, ds.train_labels, batch, 0, 0))[:3]
  return ds, state, parallel, batches
