r"""CutMix on ImageNet with ResNet-50, as github.com/clovaai/CutMix-PyTorch trains it.

Yun et al., 2019, "CutMix" (ICCV), Sec. 4.1.1: 78.6 % top-1 (21.40 % error) for
ResNet-50 + CutMix after 300 epochs. Every value is read from that repository at commit
2d8eb68: its ImageNet command (README.md:58-72) and ``train.py``:

  field                 value          CutMix-PyTorch
  dataset, image_size   imagefolder,   train.py:111-113, 125-129 (ImageFolder of train/ and
                        224            val/; RandomResizedCrop(224), flip); 142-145 (val:
                                       Resize(256), CenterCrop(224): the 0.875 crop)
  padding, flip         0, True        train.py:128-129 (no pad-and-crop)
  model                 resnet50       README.md:61, 65 (--net_type resnet --depth 50);
                                       resnet.py:106-121 (torchvision's layout), 53 (the
                                       stride on the 3×3 conv)
  model_kwargs.init     "pytorch"      resnet.py:123-129 (convs N(0, 2/(k²·C_out)), BN
                                       1/0; the fc keeps PyTorch's default)
  methods               cutmix         train.py:227-240
  mixers.cutmix.alpha   1.0            README.md:69 (--beta 1.0); train.py:230
  mixers.cutmix.prob    1.0            README.md:70 (--cutmix_prob 1.0); train.py:227-228
  mixers.cutmix.mode    "batch"        train.py:227-237 (one λ, box, permutation per batch)
  loss                  "ce"           train.py:171, 240 (CrossEntropyLoss, λ-mixed)
  batch_size            256            README.md:63 (--batch_size 256, over 4 GPUs: 58)
  learning_rate         0.1            README.md:64 (--lr 0.1)
  num_epochs            300            README.md:66 (--epochs 300)
  schedule, step_epochs, step_every,    train.py:369-377 (lr·0.1^(e // 75) for 300 epochs,
  gamma, warmup_epochs  75, 0.1, 0     lr·0.1^(e // 30) for any other count; set at the
                                       start of epoch e: 179-181; no warm-up)
  momentum, nesterov    0.9, True      train.py:42; 173-175 (SGD(nesterov=True))
  weight_decay          1e-4           train.py:44, on every parameter (173)
  eval_batch_size       256            train.py:149 (the val loader's batch; no effect)

Not reproduced: the colour jitter (brightness, contrast, saturation 0.4) and the
AlexNet-style PCA lighting noise (α ~ N(0, 0.1)) of train.py:117-132: mixjax's host
transform is the random-resized crop and flip alone. The paper's baseline and CutMix
rows share them, so they move both. The reference ran 4 GPUs with ``nn.DataParallel``
(BatchNorm over 64 images each); ``batch_norm`` stays "sync" (the global batch).
``step_epochs`` follows ``num_epochs`` as the reference code does: 75 for 300 epochs, 30
for any other count (``--config.num_epochs=90`` decays at 30 and 60):

  python train.py --config=configs/imagenet_cutmix.py --config.data_dir=DATA \
    --config.num_epochs=90 --workdir=runs/cutmix90

On fewer accelerators, keep the global batch and schedule with
``--config.grad_accum_steps=K``;
``--config.dtype=bfloat16`` computes in bf16 (the reference is float32).
"""

from configs import base


def get_config():
  c = base.get_config()
  c.dataset = "imagefolder"
  c.image_size = 224
  c.padding = 0
  c.flip = True
  c.model = "resnet50"
  c.model_kwargs.init = "pytorch"
  c.methods = ("cutmix",)
  c.mixers.cutmix.alpha = 1.0
  c.mixers.cutmix.prob = 1.0
  c.mixers.cutmix.mode = "batch"
  c.loss = "ce"
  c.batch_size = 256
  c.eval_batch_size = 256
  c.learning_rate = 0.1
  c.num_epochs = 300
  c.schedule = "step_every"
  # train.py:374-377: every 75 epochs when epochs == 300, else every 30, computed lazily
  # from num_epochs (ml_collections references): 1 // (|E − 300| + 1) is 1 iff E == 300.
  c.step_epochs = 30 + 45 * (1 // (abs(c.get_ref("num_epochs") - 300) + 1))
  c.gamma = 0.1
  c.warmup_epochs = 0.0
  c.momentum = 0.9
  c.nesterov = True
  c.weight_decay = 1e-4
  c.weight_decay_mask = "all"
  # Input performance only (no effect on the numbers): decoding threads per host.
  c.data_threads = 8
  return c
