"""The fields every config has, with the CIFAR defaults of the mixup papers.

``python train.py --config=configs/base.py`` trains ERM on CIFAR-10; the recipe
files next to this one override what their paper says.
"""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  # Data: "digits" (offline, ships with scikit-learn) or any TFDS image dataset.
  c.dataset = "cifar10"
  c.data_dir = ml_collections.config_dict.placeholder(str)
  c.padding = 4          # Random crop after zero-padding by this many pixels.
  c.flip = True          # Random horizontal flip.
  # Model: preact_resnet18, preact_resnet34, wide_resnet28_10, small_cnn, mlp.
  c.model = "preact_resnet18"
  # Model options settable from the command line (--config.model_kwargs.NAME=...);
  # None keeps the model's default. dtype comes from c.dtype, mix_layers from
  # c.mix_layers, BatchNorm's axis from c.batch_norm.
  c.model_kwargs = ml_collections.ConfigDict({
      "variant": ml_collections.config_dict.placeholder(str),  # e.g. "mixup_cifar10".
      "init": ml_collections.config_dict.placeholder(str),     # e.g. "pytorch".
      "final_norm": ml_collections.config_dict.placeholder(bool),
      "dropout_rate": ml_collections.config_dict.placeholder(float),
  })
  # BatchNorm statistics: "sync" over the global batch (every device, as the Flax
  # ImageNet example does; the results do not depend on the device count) or
  # "per_device" (each device's shard alone).
  c.batch_norm = "sync"
  c.dtype = "float32"    # "bfloat16" computes in bf16 (params stay float32).
  # Methods, each trained in turn in workdir/<method>: erm, manifold_mixup, or any
  # mixer registered in mixjax.registry (mixup, cutmix, policy, resizemix, ...:
  # mixjax.list_mixers()). Their hyper-parameters come from
  # mixjax.training.PRESETS (else the mixer's own defaults); the fields below and
  # those of c.mix_kwargs override them when set.
  c.methods = ("erm",)
  c.alpha = ml_collections.config_dict.placeholder(float)
  c.prob = ml_collections.config_dict.placeholder(float)
  c.mix_mode = ml_collections.config_dict.placeholder(str)
  c.cutmix_alpha = ml_collections.config_dict.placeholder(float)
  c.switch_prob = ml_collections.config_dict.placeholder(float)
  c.mix_layers = ml_collections.config_dict.placeholder(tuple)
  # Further mixer hyper-parameters (keyword arguments of mixjax.get_mixer), passed
  # to each method that takes them; None keeps the default. n: examples per mix
  # (n-way Mixup / Manifold Mixup); scope: ResizeMix's (min, max) box side ratio;
  # tau_alpha: ResizeMix's τ ~ Beta(α, α) (OpenMixup's use_alpha) instead of U(scope);
  # decay_power, max_soft, spectrum: FMix's; n_holes, hole_aspect_ratio,
  # cut_area_ratio, cut_aspect_ratio: GridMix's (lo, hi) ranges; sigma: SmoothMix's
  # (lo, hi) range of σ/H.
  c.mix_kwargs = ml_collections.ConfigDict({
      "n": ml_collections.config_dict.placeholder(int),
      "scope": ml_collections.config_dict.placeholder(tuple),
      "tau_alpha": ml_collections.config_dict.placeholder(float),
      "decay_power": ml_collections.config_dict.placeholder(float),
      "max_soft": ml_collections.config_dict.placeholder(float),
      "spectrum": ml_collections.config_dict.placeholder(str),
      "n_holes": ml_collections.config_dict.placeholder(tuple),
      "hole_aspect_ratio": ml_collections.config_dict.placeholder(tuple),
      "cut_area_ratio": ml_collections.config_dict.placeholder(tuple),
      "cut_aspect_ratio": ml_collections.config_dict.placeholder(tuple),
      "sigma": ml_collections.config_dict.placeholder(tuple),
  })
  c.label_smoothing = 0.0
  # The loss (mixjax.losses.LOSSES): "ce", soft-target cross-entropy (the Mixup and
  # CutMix code), or "softmax_bce", BCE of the softmax (the Manifold Mixup code).
  c.loss = "ce"
  # Optimisation: SGD, Nesterov momentum 0.9, L2 weight decay (PyTorch-style).
  c.num_epochs = 200
  c.batch_size = 128
  c.eval_batch_size = 500
  c.learning_rate = 0.1
  c.momentum = 0.9
  c.nesterov = True
  c.weight_decay = 1e-4
  c.schedule = "step"    # "step", "cosine" or "constant".
  c.milestones = (100, 150)
  c.gamma = 0.1
  c.warmup_epochs = 0.0
  # Devices, checkpoints, logging.
  c.parallel = "shard_map"  # or "pmap".
  c.num_devices = 0         # 0: all local devices.
  # On CPU the shard_map steps keep convolutions off YNNPACK (1.85x faster for
  # PreActResNet-18; mixjax/training/compiler_options.py). True compiles them with
  # XLA's default options instead. pmap always uses XLA's defaults.
  c.xla_defaults = False
  c.checkpoint_every_steps = 0  # 0: once per epoch.
  c.keep_checkpoints = 3
  c.eval_every_epochs = 1
  c.log_every_epochs = 1
  c.ece_bins = 15
  c.tensorboard = True
  c.seed = 0
  return c


def cifar_recipe(arg: str | None, method: str) -> ml_collections.ConfigDict:
  """The base config for ``method`` on ``"dataset,model"`` (default cifar10,preact_resnet18)."""
  dataset, model = (arg or "cifar10,preact_resnet18").split(",")
  if dataset not in ("cifar10", "cifar100"):
    raise ValueError(f"the CIFAR recipes take cifar10 or cifar100, got {dataset!r}.")
  c = get_config()
  c.dataset, c.model, c.methods = dataset, model, (method,)
  return c
