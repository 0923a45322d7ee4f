r"""DeiT-S on ImageNet with Mixup and CutMix, as github.com/facebookresearch/deit trains it.

Touvron et al., 2021, "Training data-efficient image transformers & distillation through
attention" (ICML): 79.9 % top-1 for DeiT-S (README_deit.md:39). Every value is read from that
repository at commit 7e160fe: its DeiT-S command (README_deit.md:216: 4 processes × 256 images)
and ``main.py``'s defaults (line numbers below):

  field                   value            facebookresearch/deit
  dataset, image_size     imagefolder, 224 main.py:42 (--input-size); datasets.py:82-90
                                           (timm's random-resized crop and flip); 101-105
                                           (eval: Resize(224/0.875), CenterCrop(224))
  padding, flip           0, True          datasets.py:82-90 (no pad-and-crop)
  model                   vit_s16          README_deit.md:216; models.py:78-81 (ViT-S/16)
  model_kwargs.           0.1              main.py:46 (--drop-path 0.1); main.py:44
    drop_path_rate                         (--drop 0.0: no dropout)
  methods                 policy           main.py:255-260 (timm's Mixup: Mixup or CutMix
                                           per batch)
  mixers.policy.          0.8, 1.0, 0.5    main.py:128 (--mixup 0.8), 130 (--cutmix 1.0),
    mixup_alpha,                           136 (--mixup-switch-prob 0.5)
    cutmix_alpha,
    switch_prob
  mixers.policy.prob      1.0              main.py:134 (--mixup-prob 1.0)
  mixers.policy.mode      "batch"          main.py:138 (--mixup-mode batch)
  mixers.policy.pairing   "flip"           timm mixup.py ``_mix_batch`` (x.flip(0): each
                                           example with the mirror one)
  label_smoothing         0.1              main.py:101, 260 (in the mixed targets)
  loss                    "ce"             main.py:359-361 (SoftTargetCrossEntropy)
  random_erasing          0.25             main.py:118-123 (--reprob 0.25, --remode pixel,
                                           --recount 1); datasets.py:88-90
  optimizer               adamw            main.py:56 (--opt adamw), 352
  eps                     1e-8             main.py:58 (--opt-eps; betas: timm's 0.9, 0.999)
  weight_decay            0.05             main.py:66
  weight_decay_mask       "timm"           main.py:352 (timm create_optimizer: no decay on
                                           1-d parameters, pos_embed and cls_token)
  clip_grad_norm          None             main.py:62 (--clip-grad None)
  batch_size              1024             README_deit.md:216 (4 × --batch-size 256)
  learning_rate           5e-4·B/512       main.py:71 (--lr 5e-4), 349-351 (× B/512):
                                           1e-3 at B = 1024, rescaled with batch_size
  num_epochs              300              main.py:35
  schedule, warmup_epochs, deit_cosine, 5, main.py:69, 79, 81, 86 (cosine, warm-up 5
  warmup_lr, min_lr       1e-6, 1e-5       epochs from 1e-6, to 1e-5), 355, 432 (stepped
                                           after each epoch; cool-down epochs unused)
  ema_decay               0.99996          main.py:49-52 (--model-ema on), 337-341;
                                           engine.py:71-72 (after every update)
  dtype                   bfloat16         engine.py:46 (torch.cuda.amp.autocast: 16-bit
                                           compute, float32 weights; float16 there, with
                                           the loss scaling of main.py:353)

Not reproduced:

* **RandAugment** (main.py:98, ``rand-m9-mstd0.5-inc1``) and **repeated augmentation**
  (main.py:105-107, 215-218: each image 3 times per epoch across processes). The paper
  (Sec. 6, Table 8) chose RandAugment over AutoAugment by ablation, and calls repeated
  augmentation "one of the key ingredients" of its procedure, a significant boost. Expect
  DeiT-S below 79.9 % without them.
* **Bicubic** resizing in the random-resized crop (main.py:102) and in the evaluation
  resize (datasets.py:103): ours is antialiased bilinear.
* DeiT mixes each process's 256 images on its own: partners from the same process, and
  one λ and one Mixup-or-CutMix choice per 256 images. mixjax mixes the global batch: the
  same distribution of pairs, but one draw per 1,024 images (``grad_accum_steps=4`` draws
  per 256 again).

EMA: DeiT only checkpoints the EMA (main.py:441, 460; its evaluation is of the raw model,
447); mixjax also evaluates it, ``test_ema_accuracy`` beside ``test_accuracy``.

  python train.py --config=configs/imagenet_deit.py --config.data_dir=DATA \
    --workdir=runs/deit_s
  # 8 accelerators of 32 images: the same global batch and schedule, by accumulation.
  python train.py --config=configs/imagenet_deit.py --config.data_dir=DATA \
    --config.grad_accum_steps=4 --workdir=runs/deit_s
"""

import ml_collections

from configs import base

# main.py:71 and 349-351: lr = 5e-4 · B / 512, B the global batch.
LR_PER_512 = 5e-4


def get_config():
  c = base.get_config()
  c.dataset = "imagefolder"
  c.image_size = 224
  c.padding = 0
  c.flip = True
  c.model = "vit_s16"
  c.model_kwargs.drop_path_rate = 0.1
  c.methods = ("policy",)
  c.mixers.policy.mixup_alpha = 0.8
  c.mixers.policy.cutmix_alpha = 1.0
  c.mixers.policy.switch_prob = 0.5
  c.mixers.policy.prob = 1.0
  c.mixers.policy.mode = "batch"
  c.mixers.policy.pairing = "flip"
  c.label_smoothing = 0.1
  c.loss = "ce"
  c.random_erasing = 0.25
  c.optimizer = "adamw"
  c.eps = 1e-8
  c.weight_decay = 0.05
  c.weight_decay_mask = "timm"
  c.batch_size = 1024
  c.eval_batch_size = 1024
  # Lazily B-scaled: --config.batch_size=256 trains at 2.5e-4; --config.learning_rate
  # sets it outright.
  c.learning_rate = ml_collections.FieldReference(LR_PER_512 / 512) * c.get_ref("batch_size")
  c.num_epochs = 300
  c.schedule = "deit_cosine"
  c.warmup_epochs = 5.0
  c.warmup_lr = 1e-6
  c.min_lr = 1e-5
  c.ema_decay = 0.99996
  c.dtype = "bfloat16"
  # Input performance only (no effect on the numbers): decoding threads per host.
  c.data_threads = 8
  return c
