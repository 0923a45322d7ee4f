r"""Training from an image folder in ImageNet's layout: a starting point, not a paper's recipe.

DATA/train/<class>/*.jpg and DATA/val/<class>/*.jpg (torchvision's ImageFolder; ImageNet's
1,000 class folders, imagenette's 10, your own). The data settings are those of the
ImageNet recipes (torchvision's reference, the Flax ImageNet example): 224-px
random-resized crops and flips in training, the 0.875 centre crop in evaluation, no
CIFAR pad-and-crop, ImageNet's channel statistics; SGD with momentum 0.9 at 0.1 per 256
images (the linear scaling rule: set learning_rate with batch_size), cosine after 5
warm-up epochs, weight decay 1e-4, 90 epochs, bfloat16 compute.

  python train.py --config=configs/imagefolder.py --config.data_dir=DATA --workdir=runs/in1k
  python train.py --config=configs/imagefolder.py --config.data_dir=DATA \
    --config.methods="('erm','cutmix')" --config.data_threads=16 --workdir=runs/in1k

The network is torchvision's ResNet-50 (``--config.model=resnet18`` for the smaller one;
the CIFAR networks keep the full resolution through their stems, so at 224 px they cost
far more). Every host core decodes about 620 images/s with torchvision's antialiased resize
(the default) and 1,100 with tf.data's choices (``--config.antialias=False
--config.fast_dct=True``; benchmarks/README.md, section 7), so set ``data_threads`` to the
cores a host can spare for its accelerators.
"""

from configs import base


def get_config():
  c = base.get_config()
  c.dataset = "imagefolder"
  c.image_size = 224
  c.padding = 0         # The random-resized crop replaces CIFAR's pad-and-crop.
  c.flip = True
  c.model = "resnet50"
  c.dtype = "bfloat16"
  c.methods = ("erm",)
  c.num_epochs = 90
  c.batch_size = 256
  c.eval_batch_size = 256
  c.learning_rate = 0.1  # Per 256 images: scale it with batch_size.
  c.momentum = 0.9
  c.nesterov = False
  c.weight_decay = 1e-4
  c.schedule = "cosine"
  c.warmup_epochs = 5.0
  # Decoding threads (the decoders release the GIL): as fast as worker processes, without
  # their start-up and pickling (benchmarks/README.md, section 7). Workers: data_workers.
  c.data_workers = 0
  c.data_threads = 8
  c.data_buffer = 2
  c.prefetch_batches = 2
  return c
