r"""The quick run: ERM vs Mixup vs Manifold Mixup vs CutMix on the digits data.

scikit-learn's ``load_digits`` (1,797 real 8×8 handwritten digits, 10 classes)
ships inside the package, so this runs offline. A small CNN trains in seconds
per method on a 2-core CPU; each method uses its paper's CIFAR hyper-parameters
(configs/base.py's config.mixers: mixup α = 1, manifold mixup α = 2, cutmix α = 1
with probability 0.5, the others their mixers' defaults).

  python train.py --config=configs/digits.py
  python train.py --config=configs/digits.py --config.methods="('mixup',)" --config.alpha=0.4
  python train.py --config=configs/digits.py --config.mixers.cutmix.prob=1.0
  python train.py --config=configs/digits.py \
    --config.methods="('fmix','resizemix','saliencymix','gridmix','smoothmix')"
"""

from configs import base


def get_config():
  c = base.get_config()
  c.dataset = "digits"
  c.model = "small_cnn"
  c.methods = ("erm", "mixup", "manifold_mixup", "cutmix")
  c.padding = 1       # Digits are 8×8: shift by at most one pixel.
  c.flip = False      # A mirrored digit is another symbol.
  c.num_epochs = 30
  c.batch_size = 64
  c.eval_batch_size = 360
  c.learning_rate = 0.05
  c.milestones = (20, 26)
  c.weight_decay = 5e-4
  c.log_every_epochs = 10
  # GridMix's CIFAR range of 2-6 holes does not fit 8x8 images: the narrowest crop
  # (half the area, aspect 2) is 4 pixels wide, room for 2 holes (the reference's own
  # check), so digits use 2. The other methods take their papers' defaults.
  c.mixers.gridmix.n_holes = (2, 2)
  return c
