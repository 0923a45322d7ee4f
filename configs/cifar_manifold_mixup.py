r"""Manifold Mixup on CIFAR-10/100.

Verma et al., 2019, "Manifold Mixup: Better Representations by Interpolating
Hidden States" (ICML), Sec. 5.1 and github.com/vikasverma1077/manifold_mixup
(supervised/README.md): α = 2, the layer drawn uniformly from {input, after
stage 1, after stage 2}, PreActResNet-18, SGD lr 0.1, momentum 0.9, weight decay
1e-4. The paper trains for 2000 epochs with lr ×0.1 at epochs 500, 1000 and
1500 and batch 100; we keep those numbers. Reported test error
(PreActResNet-18): CIFAR-10 2.89%, CIFAR-100 20.34%.

For a 200-epoch budget comparable with the other recipes:
  python train.py --config=configs/cifar_manifold_mixup.py \
    --config.num_epochs=200 --config.milestones="(100,150)" --config.batch_size=128
"""

from configs import base


def get_config(arg=None):
  c = base.cifar_recipe(arg, "manifold_mixup")
  c.alpha = 2.0
  c.mix_layers = (0, 1, 2)
  c.num_epochs = 2000
  c.milestones = (500, 1000, 1500)
  c.batch_size = 100
  return c
