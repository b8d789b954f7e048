"""ISM, SDI, NFSD, ASD and Perp-Neg: the gradient each sends to the image equals its formula (docs/baselines.md),
computed here one sample at a time straight from the UNet, with the same t, ε and generator draws."""

import math

import pytest
import torch

from lods.errors import UserError
from lods.guidance import GuidanceConfig, build_guidance
from lods.guidance.nfsd import REFERENCE_NEGATIVE
from lods.priors.prior import Prior
from lods.priors.tiny_sd import build_tiny_sd, build_tiny_world_prior
from lods.render.cameras import orbit_cameras

PROMPT = "a red cube"
B = 2
T = torch.tensor([120, 730])


@pytest.fixture(scope="module")
def prior(tmp_path_factory):
    return Prior.load(str(build_tiny_sd(tmp_path_factory.mktemp("sd") / "px", latent=False)))


def embed(prior, text):
    ids = prior.tokenizer([text], padding="max_length", max_length=77, truncation=True, return_tensors="pt").input_ids
    with torch.no_grad():
        return prior.text_encoder(ids).last_hidden_state


def eps(prior, z, t, emb):
    """ε for ONE sample z (1, C, H, W) at the integer timestep t."""
    with torch.no_grad():
        return prior.unet(z, torch.tensor([int(t)]), encoder_hidden_states=emb).sample


def abar(prior, t):
    return prior.scheduler.alphas_cumprod[int(t)]


def ddim(z, e, a_from, a_to):
    x0 = (z - (1 - a_from) ** 0.5 * e) / a_from ** 0.5
    return a_to ** 0.5 * x0 + (1 - a_to) ** 0.5 * e


def inputs(seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(B, 3, 32, 32, generator=g).requires_grad_(True)
    noise = torch.randn(B, 3, 32, 32, generator=g)
    return x, noise


def run(guidance, x, noise, t=T, cameras=None, step=0, seed=7):
    out = guidance(x, cameras, step, t=t, noise=noise, generator=torch.Generator().manual_seed(seed))
    out["loss_distill"].backward()
    return x.grad, out


def check(got, grads):
    want = 2 * torch.cat(grads) / B  # z = 2x − 1; d loss_distill / dz = grad / B
    torch.testing.assert_close(got, want, rtol=1e-3, atol=2e-4 * float(want.abs().max()) + 1e-7)


def test_ism(prior):
    x, noise = inputs()
    cfg = GuidanceConfig(method_options={"delta_t": 50, "delta_t_start": 50})
    got, _ = run(build_guidance("ism", prior, PROMPT, cfg), x, noise)
    y, null = embed(prior, PROMPT), embed(prior, "")
    grads = []
    for b in range(B):
        t = int(T[b])
        s = max(t - 50, 0)
        z = 2 * x[b:b + 1].detach() - 1
        zc = abar(prior, 0) ** 0.5 * z + (1 - abar(prior, 0)) ** 0.5 * noise[b:b + 1]
        cur = 0
        while cur < s:  # LucidDreamer's add_noise_with_cfg: steps of xs_delta_t = 200, null prompt
            nxt = min(cur + 200, s)
            zc = ddim(zc, eps(prior, zc, cur, null), abar(prior, cur), abar(prior, nxt))
            cur = nxt
        e_s = eps(prior, zc, s, null)
        z_t = ddim(zc, e_s, abar(prior, s), abar(prior, t))
        e_y, e_n = eps(prior, z_t, t, y), eps(prior, z_t, t, null)
        grads.append((1 - abar(prior, t)) * (e_n + 7.5 * (e_y - e_n) - e_s))
    check(got, grads)


def test_ism_interval_anneals(prior):
    g = build_guidance("ism", prior, PROMPT, GuidanceConfig(method_options={"delta_t_anneal_steps": 100}))
    assert [g.interval(s) for s in (0, 50, 100, 1000)] == [100, 75, 50, 50]


def test_sdi(prior):
    x, noise = inputs(1)
    got, _ = run(build_guidance("sdi", prior, PROMPT), x, noise)
    y, null = embed(prior, PROMPT), embed(prior, "")
    n_moves = math.ceil(730 / 100)  # the batch moves in lockstep: one ε' draw of the batch's shape per move
    gen = torch.Generator().manual_seed(7)
    extra = [torch.randn(B, 3, 32, 32, generator=gen) for _ in range(n_moves)]
    grads = []
    for b in range(B):
        t = int(T[b])
        z = 2 * x[b:b + 1].detach() - 1
        path = [k * 100 for k in range(10) if k * 100 < t] + [t]
        zc = z
        for k, (a, c) in enumerate(zip(path[:-1], path[1:])):
            e_y, e_n = eps(prior, zc, a, y), eps(prior, zc, a, null)
            aa, ac = abar(prior, a), abar(prior, c)
            zc = ddim(zc, e_n - 6.5 * (e_y - e_n), aa, ac)  # threestudio's −7.5 in its CFG form
            sigma = ((1 - aa) / (1 - ac) * (1 - ac / aa)) ** 0.5
            zc = zc + 0.3 * sigma * extra[k][b:b + 1]
        kappa = (zc - abar(prior, t) ** 0.5 * z) / (1 - abar(prior, t)) ** 0.5
        e_y, e_n = eps(prior, zc, t, y), eps(prior, zc, t, null)
        grads.append((1 - abar(prior, t)) * (e_n + 8.5 * (e_y - e_n) - kappa))
    check(got, grads)


def test_sdi_t_anneals_over_the_run(prior):
    g = build_guidance("sdi", prior, PROMPT, GuidanceConfig(min_step_percent=0.25, method_options={"t_anneal_steps": 400}))
    assert [g.annealed_t(s) for s in (0, 200, 400, 800)] == [980, 615, 250, 250]
    x, _ = inputs()
    out = g(x, None, 200, generator=torch.Generator().manual_seed(0))
    assert out["t"].tolist() == [615, 615]


def test_nfsd(prior):
    x, noise = inputs(2)
    g = build_guidance("nfsd", prior, PROMPT)
    assert g.ood_prompt == REFERENCE_NEGATIVE
    got, _ = run(g, x, noise)
    y, null, ood = embed(prior, PROMPT), embed(prior, ""), embed(prior, REFERENCE_NEGATIVE)
    grads = []
    for b in range(B):
        t = int(T[b])
        z = 2 * x[b:b + 1].detach() - 1
        z_t = abar(prior, t) ** 0.5 * z + (1 - abar(prior, t)) ** 0.5 * noise[b:b + 1]
        e_y, e_n, e_o = eps(prior, z_t, t, y), eps(prior, z_t, t, null), eps(prior, z_t, t, ood)
        delta_d = e_n if t < 200 else e_n - e_o
        grads.append((1 - abar(prior, t)) * (delta_d + 7.5 * (e_y - e_n)))
    check(got, grads)


def test_nfsd_falls_back_where_the_vocabulary_lacks_the_negative(tmp_path):
    world = Prior.load(str(build_tiny_world_prior(tmp_path / "w")))
    assert build_guidance("nfsd", world, PROMPT).ood_prompt == ""
    with pytest.raises(UserError, match="does not know"):
        build_guidance("nfsd", world, PROMPT, GuidanceConfig(method_options={"negative_prompt": "blurry"}))


@pytest.mark.parametrize("plus_random", [False, True])
def test_asd(prior, plus_random):
    x, noise = inputs(3)
    g = build_guidance("asd", prior, PROMPT, GuidanceConfig(method_options={"plus_random": plus_random}))
    got, _ = run(g, x, noise)
    shift = (0.1 * (T - 20).float()).clamp(max=(999 - T).float())  # t_min = 20 (2%)
    if plus_random:
        shift = shift * torch.rand(B, generator=torch.Generator().manual_seed(7))  # t and ε were given
    t2 = T + shift.long()
    assert t2[1] > t2[0] + 500 and (not plus_random or not torch.equal(t2, T + (0.1 * (T - 20)).long()))
    y, null = embed(prior, PROMPT), embed(prior, "")
    grads = []
    for b in range(B):
        t, tp = int(T[b]), int(t2[b])
        z = 2 * x[b:b + 1].detach() - 1
        z_t = abar(prior, t) ** 0.5 * z + (1 - abar(prior, t)) ** 0.5 * noise[b:b + 1]
        z_p = abar(prior, tp) ** 0.5 * z + (1 - abar(prior, tp)) ** 0.5 * noise[b:b + 1]
        e_y, e_n, e_p = eps(prior, z_t, t, y), eps(prior, z_t, t, null), eps(prior, z_p, tp, y)
        grads.append((1 - abar(prior, t)) * (e_n + 7.5 * (e_y - e_n) - e_p))
    check(got, grads)


def perp(a, b):
    return a - (a * b).sum() / (b * b).sum() * b


@pytest.mark.parametrize("method", ["sds", "asd"])
def test_perp_neg(prior, method):
    """Perp-Neg (threestudio's weights): front-side at azimuth 30°, side-back at 135°."""
    x, noise = inputs(4)
    cams = orbit_cameras(torch.tensor([10.0, 20.0]), torch.tensor([30.0, 135.0]), 2.5, 40.0)
    cfg = GuidanceConfig(guidance_scale=7.5, perp_neg=True, perp_neg_scale=0.5,
                         method_options={"plus_random": False} if method == "asd" else {})
    got, _ = run(build_guidance(method, prior, PROMPT, cfg), x, noise, cameras=cams)
    view = {v: embed(prior, f"{PROMPT}, {v} view") for v in ("front", "side", "back")}
    null = embed(prior, "")
    f = lambda a, b_, c, r: a * math.exp(-b_ * r) + c  # noqa: E731
    r0, r1 = 1 - 30 / 90, 2 - 135 / 90
    setups = [(r0 * view["front"] + (1 - r0) * view["side"], [view["front"], view["side"]],
               [-f(4, 0.5, -2.426, r0), -f(4, 0.5, -2.426, 1 - r0)], view["front"]),
              (r1 * view["side"] + (1 - r1) * view["back"], [view["side"], view["front"]],
               [-f(1, 0.5, -0.606, r1), -f(1, 0.5, 0.967, r1)], view["back"])]
    grads = []
    for b, (pos, negs, weights, label_emb) in enumerate(setups):
        t = int(T[b])
        z = 2 * x[b:b + 1].detach() - 1
        z_t = abar(prior, t) ** 0.5 * z + (1 - abar(prior, t)) ** 0.5 * noise[b:b + 1]
        e_n = eps(prior, z_t, t, null)
        e_pos = eps(prior, z_t, t, pos) - e_n
        guided = e_pos + sum(0.5 * w * perp(eps(prior, z_t, t, n) - e_n, e_pos) for n, w in zip(negs, weights))
        eps_cfg = e_n + 7.5 * guided
        if method == "sds":
            grads.append((1 - abar(prior, t)) * (eps_cfg - noise[b:b + 1]))
        else:  # ASD's second branch: the view's prompt, no Perp-Neg
            tp = t + int(0.1 * (t - 20))
            z_p = abar(prior, tp) ** 0.5 * z + (1 - abar(prior, tp)) ** 0.5 * noise[b:b + 1]
            grads.append((1 - abar(prior, t)) * (eps_cfg - eps(prior, z_p, tp, label_emb)))
    check(got, grads)


def test_options_are_checked(prior):
    with pytest.raises(UserError, match="unknown ISMOptions"):
        build_guidance("ism", prior, PROMPT, GuidanceConfig(method_options={"delta": 3}))
    with pytest.raises(UserError, match="no method options"):
        build_guidance("sds", prior, PROMPT, GuidanceConfig(method_options={"delta_t": 3}))
    with pytest.raises(UserError, match="view_dependent"):
        build_guidance("sds", prior, PROMPT, GuidanceConfig(perp_neg=True, view_dependent_prompting=False))
    with pytest.raises(UserError, match="inversion_n_steps"):
        build_guidance("sdi", prior, PROMPT, GuidanceConfig(method_options={"inversion_n_steps": 0}))
