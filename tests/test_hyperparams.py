"""Hyper-parameters as a user gives them (issue 20, "silent surprises"): a Choice whose
mixers draw per example with one set of partners, NumPy scalars and lists wherever Python
numbers and tuples work, a traced α that draws what the static α draws, and what a batch of
one and GridMix's defaults do. Tests are exact unless a tolerance is stated."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import mixjax as mx
from mixjax import sampling

B, H, W, C = 4, 8, 8, 3
K = 4
KEY = jax.random.key(0)
X = jnp.asarray(np.random.default_rng(0).uniform(size=(B, H, W, C)), jnp.float32)
Y = jnp.arange(B, dtype=jnp.int32)


def _is_permutation(perm):
  return np.array_equal(np.sort(np.asarray(perm)), np.arange(len(perm)))


# ---- 1. Choice in elem mode ----------------------------------------------------------------

def test_choice_elem_draws_per_example_with_one_permutation():
  """The README's Choice: each example that chose Mixup has its own λ, each that chose CutMix
  its own box, and the partners are one permutation. B = 64 draws, 4 seeds, one program.
  Two of ~32 Beta(1, 1) float32 draws coincide with probability < 32²·2⁻²⁴ ≈ 6e-5."""
  choice = mx.Choice(mixers=(mx.Mixup(), mx.CutMix()), mode="elem", num_classes=K)
  assert [m.mode for m in choice.mixers] == ["elem", "elem"]
  n = 64
  draws = jax.device_get(jax.jit(jax.vmap(lambda k: choice.sample(k, n, (H, W, C))))(
      jax.random.split(KEY, 4)))
  for perm, lam, boxes in zip(draws.perm, draws.lam, draws.boxes, strict=True):
    assert _is_permutation(perm)
    mixup = lam < 1  # Mixup's rows (λ = 1, the neutral value, on CutMix's).
    assert 8 < mixup.sum() < n - 8  # P(outside) < 1e-8 for Binomial(64, ½).
    assert len(np.unique(lam[mixup])) == mixup.sum(), "one λ per Mixup example"
    cut = boxes[~mixup]
    assert len(np.unique(cut, axis=0)) > 1, "one box per CutMix example"


def test_choice_takes_the_inner_num_classes_and_refuses_conflicts():
  choice = mx.Choice(mixers=(mx.Mixup(num_classes=K), mx.CutMix()), mode="elem")
  assert choice.num_classes == K
  out = jax.eval_shape(choice, KEY, X, Y)  # Integer labels need K: it is there.
  assert out[1].shape == (B, K)
  smooth = mx.Choice(mixers=(mx.Mixup(label_smoothing=0.1), mx.CutMix(label_smoothing=0.1)))
  assert smooth.label_smoothing == 0.1
  with pytest.raises(ValueError, match=r"mixers\[0\] \(Mixup\) has num_classes=10 and "
                                       r"mixers\[1\] \(CutMix\) has num_classes=100"):
    mx.Choice(mixers=(mx.Mixup(num_classes=10), mx.CutMix(num_classes=100)))
  with pytest.raises(ValueError, match=r"the Choice has num_classes=5 and mixers\[0\] "
                                       r"\(Mixup\) has num_classes=10"):
    mx.Choice(mixers=(mx.Mixup(num_classes=10),), num_classes=5)
  with pytest.raises(ValueError, match=r"label_smoothing=0.2 and .*label_smoothing=0.1"):
    mx.Choice(mixers=(mx.Mixup(label_smoothing=0.1),), label_smoothing=0.2)


def test_choice_shares_its_pairing_and_refuses_a_different_one():
  roll = mx.Choice(mixers=(mx.Mixup(), mx.CutMix(mode="elem")), pairing="roll")
  assert [m.pairing for m in roll.mixers] == ["roll", "roll"]
  assert [m.mode for m in roll.mixers] == ["batch", "elem"]  # Batch mode keeps theirs.
  with pytest.raises(ValueError, match=r"pairing='permute', but mixers\[1\] \(CutMix\) has "
                                       r"pairing='flip'"):
    mx.Choice(mixers=(mx.Mixup(), mx.CutMix(pairing="flip")))
  with pytest.raises(ValueError, match=r"n-way Mixup needs 'permute' or 'roll'"):
    mx.Choice(mixers=(mx.Mixup(n=3),), pairing="flip")


@jax.jit
def _partnered_draws(key, x):
  """Mixers drawing with given partners, next to their own draws; one program."""
  nway = mx.Choice(mixers=(mx.Mixup(n=3), mx.CutMix(), mx.Identity()), mode="elem")
  own_cut = mx.CutMix(mode="elem").sample(key, B, x.shape[1:])
  own_sal = mx.SaliencyMix(mode="elem").sample(key, B, x.shape[1:], images=x)
  other = jnp.roll(own_sal.perm, 1)
  return dict(
      nway=nway.sample(key, B, x.shape[1:]), nway_which=nway.choose(
          jax.random.split(key, 5)[0], B),
      partners=mx.sample_partner_sets(jax.random.split(key, 5)[1], B, 2),
      own_cut=own_cut,
      cut=mx.CutMix(mode="elem").sample(key, B, x.shape[1:], partners=own_cut.perm[::-1]),
      own_sal=own_sal,
      sal_own=mx.SaliencyMix(mode="elem").sample(key, B, x.shape[1:], images=x,
                                                 partners=own_sal.perm),
      sal_other=mx.SaliencyMix(mode="elem").sample(key, B, x.shape[1:], images=x,
                                                   partners=other),
      sal_other_ref=mx.sample_saliencymix(key, x, mode="elem", perm=other))


def test_partners_are_shared_by_every_mixer_kind():
  """n-way Mixup in a Choice takes its further partners from the shared draw (every column a
  permutation, distinct partners); a mixer given partners draws the rest as before; SaliencyMix
  given its own partners draws what it draws, and given others, the boxes of
  ``sample_saliencymix(perm=...)`` (centred on those partners' peaks)."""
  d = jax.device_get(_partnered_draws(KEY, X))
  nway, partners, which = d["nway"], d["partners"], d["nway_which"]
  chose = which != 2  # The Identity's rows stay their own partners.
  np.testing.assert_array_equal(nway.perm[chose], partners[chose, 0])
  np.testing.assert_array_equal(nway.more_perms[which == 0, 0], partners[which == 0, 1])
  np.testing.assert_array_equal(nway.perm[~chose], np.arange(B)[~chose])
  assert _is_permutation(partners[:, 0]) and _is_permutation(partners[:, 1])
  assert (partners[:, 0] != np.arange(B)).all() and (partners[:, 0] != partners[:, 1]).all()
  own_cut = d["own_cut"]
  jax.tree.map(np.testing.assert_array_equal, d["cut"],
               own_cut.replace(perm=own_cut.perm[::-1]))
  jax.tree.map(np.testing.assert_array_equal, d["sal_own"], d["own_sal"])
  jax.tree.map(np.testing.assert_array_equal, d["sal_other"], d["sal_other_ref"])


def test_partners_of_the_wrong_shape_are_refused():
  with pytest.raises(ValueError, match=r"partners must be int \[B, k\] with B = 4 and k >= 2"):
    jax.eval_shape(lambda k: mx.Mixup(n=3).sample(k, B, partners=jnp.zeros((B, 1), jnp.int32)),
                   KEY)


# ---- 2. NumPy scalars and arrays work where Python numbers do ------------------------------

NUMPY_KINDS = [np.float32, np.float64, np.array, jnp.float32]
KIND_IDS = ["np.float32", "np.float64", "np.array", "jnp.float32"]


@pytest.mark.parametrize("kind", NUMPY_KINDS, ids=KIND_IDS)
def test_mixers_take_numpy_scalars(kind):
  f = lambda v: kind(v)
  i = lambda v: np.int64(v) if kind is not jnp.float32 else jnp.int32(v)
  built = {
      "mixup": mx.Mixup(alpha=f(0.8), prob=f(0.5), num_classes=i(K), label_smoothing=f(0.1),
                        n=i(2)),
      "mixup3": mx.Mixup(alpha=f(0.8), n=i(3)),
      "cutmix": mx.CutMix(alpha=f(0.8), prob=f(0.5), minmax=np.asarray([0.2, 0.8])),
      "policy": mx.Policy(mixup_alpha=f(0.8), cutmix_alpha=f(1.0), switch_prob=f(0.3)),
      "resizemix": mx.ResizeMix(scope=(f(0.2), f(0.6)), tau_alpha=f(1.0)),
      "fmix": mx.FMix(alpha=f(0.8), decay_power=f(3.0), max_soft=f(0.1)),
      "gridmix": mx.GridMix(alpha=f(0.8), n_holes=i(2), cut_area_ratio=f(0.8)),
      "smoothmix": mx.SmoothMix(sigma=f(0.3)),
      "saliencymix": mx.SaliencyMix(alpha=f(0.8)),
      "choice": mx.Choice(mixers=[mx.Mixup(), mx.CutMix()], probs=[f(0.3), f(0.7)]),
  }
  for name, mixer in built.items():
    for field in dataclasses.fields(mixer):  # Kept as Python numbers and tuples: hashable.
      value = getattr(mixer, field.name)
      assert not isinstance(value, (np.generic, np.ndarray, jax.Array, list)), (name, field)
    hash(mixer)
    mixer = dataclasses.replace(mixer, num_classes=K)
    out = jax.eval_shape(mixer, KEY, X, Y)  # Traced as a call traces it, prob < 1 included.
    assert out[1].shape == (B, K), name
  assert built["mixup"] == mx.Mixup(alpha=float(f(0.8)), prob=float(f(0.5)), num_classes=K,
                                    label_smoothing=float(f(0.1)), n=2)
  # float32 probabilities sum to one only to float32 rounding (here 1 − 7.5e-9).
  assert mx.Choice(mixers=(mx.Mixup(), mx.CutMix(), mx.Identity()),
                   probs=(f(0.1), f(0.2), f(0.7))).probs == tuple(float(f(p))
                                                              for p in (0.1, 0.2, 0.7))


def test_the_issues_mixup_with_a_numpy_alpha_runs():
  x, y = mx.Mixup(alpha=np.float32(0.8), prob=0.5, num_classes=K)(KEY, X, Y)
  assert x.shape == X.shape and y.shape == (B, K)


@pytest.mark.parametrize("kind", NUMPY_KINDS, ids=KIND_IDS)
def test_functions_take_numpy_scalars(kind):
  # Built outside the traced function: a jnp value made while tracing is a tracer.
  i = np.int64 if kind is not jnp.float32 else jnp.int32
  a, k3, n3, eps, half, sigma = kind(0.4), i(K), i(3), kind(0.1), kind(0.5), kind(0.3)
  one, three, two = kind(1.0), kind(3.0), i(2)
  calls = {
      "mixup": lambda k: mx.mixup(k, X, Y, alpha=a, num_classes=k3, n=n3, label_smoothing=eps),
      "cutmix": lambda k: mx.cutmix(k, X, Y, alpha=a, num_classes=k3,
                                    minmax=np.asarray([0.2, 0.8])),
      "resizemix": lambda k: mx.resizemix(k, X, Y, num_classes=k3, scope=np.asarray([.2, .6]),
                                          tau_alpha=one),
      "fmix": lambda k: mx.fmix(k, X, Y, alpha=a, num_classes=k3, decay_power=three),
      "gridmix": lambda k: mx.gridmix(k, X, Y, alpha=a, num_classes=k3, n_holes=two),
      "smoothmix": lambda k: mx.smoothmix(k, X, Y, num_classes=k3, sigma=sigma),
      "saliencymix": lambda k: mx.saliencymix(k, X, Y, alpha=a, num_classes=k3),
      "sample_mixup": lambda k: mx.sample_mixup(k, B, alpha=a, n=n3),
      "sample_dirichlet": lambda k: mx.sample_dirichlet(k, B, n3, a),
      "sample_lambda": lambda k: mx.sample_lambda(k, B, a),
  }
  config = mx.MixConfig(mixup_alpha=a, cutmix_alpha=one, prob=half, num_classes=k3)
  assert config == mx.MixConfig(mixup_alpha=float(a), cutmix_alpha=1.0, prob=0.5, num_classes=K)
  calls["mix"] = lambda k: mx.mix(k, X, Y, config)
  for call in calls.values():
    jax.eval_shape(call, KEY)  # Raises if any check or static argument refuses it.


def test_errors_name_the_field_the_user_set():
  with pytest.raises(ValueError, match=r"^alpha must be > 0"):
    mx.Mixup(alpha=np.float32(-1.0), prob=0.5)
  with pytest.raises(ValueError, match=r"^alpha must be > 0"):
    mx.CutMix(alpha=np.array(0.0), prob=0.5)
  with pytest.raises(ValueError, match=r"^minmax must satisfy"):
    mx.CutMix(minmax=[0.9, 0.1], prob=0.5)
  with pytest.raises(ValueError, match=r"^cutmix_minmax must satisfy"):
    mx.Policy(cutmix_minmax=[0.9, 0.1])
  with pytest.raises(ValueError, match=r"^cutmix_minmax must be a pair"):
    mx.MixConfig(cutmix_minmax=[0.1, 0.5, 0.9])
  with pytest.raises(ValueError, match=r"^mixup_alpha must be >= 0"):
    mx.MixConfig(mixup_alpha=np.float32(-0.5), cutmix_alpha=1.0)
  with pytest.raises(ValueError, match=r"^n \(examples per mix\) must be an int >= 2"):
    mx.Mixup(n=np.float32(2.5))


# ---- 3. Sequences and traced α ------------------------------------------------------------

def test_lists_work_where_tuples_do():
  """A list is the tuple: the same mixer (and hash), the same compiled program, the same mix."""
  assert mx.CutMix(minmax=[0.2, 0.8]) == mx.CutMix(minmax=(0.2, 0.8))
  assert hash(mx.GridMix(n_holes=[2, 3])) == hash(mx.GridMix(n_holes=(2, 3)))
  assert mx.ResizeMix(scope=[0.2, 0.5]).scope == (0.2, 0.5)
  assert mx.SmoothMix(sigma=[0.3, 0.4]).sigma == (0.3, 0.4)
  assert hash(mx.MixConfig(cutmix_minmax=[0.2, 0.8])) == hash(
      mx.MixConfig(cutmix_minmax=(0.2, 0.8)))
  assert mx.get_mixer("cutmix", minmax=[0.2, 0.8]) == mx.CutMix(minmax=(0.2, 0.8))
  listed = mx.cutmix(KEY, X, Y, num_classes=K, minmax=[0.2, 0.8])
  tupled = mx.cutmix(KEY, X, Y, num_classes=K, minmax=(0.2, 0.8))
  jax.tree.map(np.testing.assert_array_equal, listed, tupled)
  for call in (lambda k: mx.resizemix(k, X, Y, num_classes=K, scope=[0.2, 0.6]),
               lambda k: mx.smoothmix(k, X, Y, num_classes=K, sigma=[0.3, 0.4]),
               lambda k: mx.gridmix(k, X, Y, num_classes=K, n_holes=[1, 2])):
    jax.eval_shape(call, KEY)


ALPHAS = (0.2, 0.4, 0.5, 0.7, 1.0)  # Jöhnk, Jöhnk, arcsine, Ulrich, Ulrich.


def test_traced_alpha_draws_what_the_static_alpha_draws():
  """symmetric_beta with α traced (vmapped over α: both samplers in one program) equals the
  static draws, Jöhnk's (α < ½) and Ulrich's (α ≥ ½), bit for bit."""
  static = jax.jit(lambda k: [sampling.symmetric_beta(k, a, (64,)) for a in ALPHAS])(KEY)
  traced = jax.jit(jax.vmap(lambda a: sampling.symmetric_beta(KEY, a, (64,))))(
      jnp.asarray(ALPHAS, jnp.float32))
  for a, s, t in zip(ALPHAS, static, traced, strict=True):
    np.testing.assert_array_equal(np.asarray(t), np.asarray(s), err_msg=f"alpha={a}")


def _alpha_mixes(key, a):
  """cutmix, the Mixup mixer with prob < 1 (drawn through MixConfig) and a Choice, at α = a."""
  return dict(
      cutmix=mx.cutmix(key, X, Y, num_classes=K, alpha=a, mode="elem"),
      mixer=mx.Mixup(alpha=a, num_classes=K, prob=0.5, mode="elem")(key, X, Y),
      choice=mx.Choice(mixers=(mx.Mixup(alpha=a), mx.CutMix(alpha=a)), mode="elem",
                       num_classes=K)(key, X, Y))


def test_a_scheduled_alpha_inside_jit_equals_the_static_alpha():
  """The issue's case, ``jax.jit(lambda key, a: mx.mixup(..., alpha=a))(key, 0.4)``, and
  the same for cutmix, the Mixup mixer (prob < 1 too) and a Choice, bit for bit."""
  traced = jax.jit(lambda key, a: mx.mixup(key, X, Y, num_classes=K, alpha=a))(KEY, 0.4)
  jax.tree.map(np.testing.assert_array_equal, traced,
               mx.mixup(KEY, X, Y, num_classes=K, alpha=0.4))
  traced = jax.jit(_alpha_mixes)(KEY, 0.4)
  static = jax.jit(lambda key: _alpha_mixes(key, 0.4))(KEY)
  for name in static:
    jax.tree.map(lambda t, s, name=name: np.testing.assert_array_equal(t, s, err_msg=name),
                 traced[name], static[name])


def test_only_the_beta_parameters_may_be_traced():
  with pytest.raises(ValueError, match=r"Mixup.prob fixes the compiled program.*only alpha"):
    jax.eval_shape(lambda k, p: mx.Mixup(prob=p, num_classes=K)(k, X, Y), KEY, 0.5)
  with pytest.raises(ValueError, match=r"minmax fixes the compiled program.*only alpha"):
    jax.eval_shape(lambda k, lo: mx.cutmix(k, X, Y, num_classes=K, minmax=(lo, 0.8)), KEY, 0.2)
  with pytest.raises(ValueError, match=r"MixConfig.prob fixes the compiled program"):
    jax.eval_shape(lambda p: mx.MixConfig(prob=p), 0.5)
  # A traced α is checked only when concrete: a known bad one still raises at trace time.
  bad = jnp.float32(-1)
  with pytest.raises(ValueError, match=r"alpha must be > 0"):
    jax.eval_shape(lambda k: mx.mixup(k, X, Y, num_classes=K, alpha=bad), KEY)


# ---- 4. What the README says ---------------------------------------------------------------

ONE = [mx.Mixup(), mx.Mixup(n=3), mx.CutMix(), mx.Policy(cutmix_alpha=1.0), mx.FMix(),
       mx.FMix(max_soft=0.2), mx.GridMix(n_holes=(2, 2)), mx.SmoothMix(), mx.SaliencyMix(),
       mx.ResizeMix(scope=(0.5, 0.8))]


@jax.jit
def _batch_of_one(keys, x, y):
  return [[dataclasses.replace(m, mode="elem", num_classes=K)(k, x, y) for k in keys]
          for m in ONE]


def test_a_batch_of_one_comes_back_unchanged_except_with_resizemix():
  x, y = X[:1], Y[:1]
  outs = jax.device_get(_batch_of_one(jax.random.split(KEY, 2), x, y))
  for mixer, runs in zip(ONE, outs, strict=True):
    for out, labels in runs:
      np.testing.assert_array_equal(labels, np.eye(K)[:1], err_msg=repr(mixer))
      if isinstance(mixer, mx.ResizeMix):  # A shrunk copy of itself in its box.
        assert not np.array_equal(out, x), repr(mixer)
      else:
        np.testing.assert_array_equal(out, x, err_msg=repr(mixer))


def test_gridmix_defaults_need_24_by_24():
  """⌊√(⌊H·W·½⌋/2)⌋ ≥ 12 = 2·6: H·W ≥ 576."""
  for size in ((24, 24), (32, 18), (32, 32)):
    jax.eval_shape(lambda k, size=size: mx.sample_gridmix(k, 2, size), KEY)
  for size in ((23, 23), (24, 23), (16, 16)):
    with pytest.raises(ValueError, match="n_holes must be at most half"):
      jax.eval_shape(lambda k, size=size: mx.sample_gridmix(k, 2, size), KEY)


def test_apply_mix_takes_a_numpy_int_num_classes():
  params = mx.Mixup().sample(jax.random.key(0), 4)
  _, labels = mx.apply_mix(params, jnp.ones((4, 3)), jnp.arange(4), np.int64(5))
  assert labels.shape == (4, 5)
