"""Updates of the less common optimizers (MXNet 1.x formulas), written with array ufuncs.

Unlike ``optim.py`` these are not Numba loops: they are used rarely enough that a few NumPy
passes per step are fine, and NumPy ufuncs (``np.sqrt``, ``np.sign``, ``np.maximum``) applied to
CuPy arrays run on the GPU, so the same functions serve both devices. Each takes the weight, the
gradient and the state buffers (one shape), then plain floats, and updates the weight and the
states in place; ``clip < 0`` means no gradient clipping (NaN stays NaN).
"""
import numpy as np

__all__ = [
    "nag_mom_update", "signsgd_update", "signum_update", "ftml_update", "ftrl_update", "adamax_update",
    "adadelta_update", "nadam_update", "dcasgd_update",
    "dcasgd_mom_update", "lamb_update_phase1", "lamb_update_phase2", "clip",
]


def clip(x, bound):
    """``x`` clipped to [-bound, bound] when bound >= 0 (a new array either way)."""
    if bound >= 0.0:
        return np.minimum(np.maximum(x, -bound), bound)
    return x * 1


def nag_mom_update(w, g, mom, lr, momentum, wd, rescale, clip_gradient):
    """MXNet's ``nag_mom_update`` op, whose state holds lr-scaled steps (as ``sgd_mom_update``):
    ``g' = clip(rescale*g) + wd*w; mom = momentum*mom - lr*g'; w += momentum*mom - lr*g'``
    (the NAG optimizer's fused kernel computes the same)."""
    gi = clip(rescale * g, clip_gradient) + wd * w
    mom[...] = momentum * mom - lr * gi
    w[...] = w + momentum * mom - lr * gi


def signsgd_update(w, g, lr, wd, rescale, clip_gradient):
    """``w = (1 - lr*wd)*w - lr*sign(clip(rescale*g))``."""
    w[...] = (1.0 - lr * wd) * w - lr * np.sign(clip(rescale * g, clip_gradient))


def signum_update(w, g, mom, lr, momentum, wd, rescale, clip_gradient, wd_lh):
    """``mom = momentum*mom - (1-momentum)*(clip(rescale*g) + wd*w);
    w = (1 - lr*wd_lh)*w + lr*sign(mom)`` (the state holds minus the averaged gradient)."""
    mom[...] = momentum * mom - (1.0 - momentum) * (clip(rescale * g, clip_gradient) + wd * w)
    w[...] = (1.0 - lr * wd_lh) * w + lr * np.sign(mom)


def ftml_update(w, g, d, v, z, lr, beta1, beta2, eps, t, wd, rescale, clip_gradient):
    """FTML (Zheng & Kwok 2017): ``g' = clip(rescale*g + wd*w); v = b2*v + (1-b2)*g'^2;
    d_t = (1-b1^t)/lr * (sqrt(v/(1-b2^t)) + eps); z = b1*z + (1-b1)*g' - (d_t - b1*d)*w;
    d = d_t; w = -z/d_t``."""
    gi = clip(rescale * g + wd * w, clip_gradient)
    v[...] = beta2 * v + (1.0 - beta2) * gi * gi
    d_t = (1.0 - beta1 ** t) / lr * (np.sqrt(v / (1.0 - beta2 ** t)) + eps)
    z[...] = beta1 * z + (1.0 - beta1) * gi - (d_t - beta1 * d) * w
    d[...] = d_t
    w[...] = -z / d_t


def ftrl_update(w, g, z, n, lr, lamda1, beta, wd, rescale, clip_gradient):
    """FTRL-proximal (McMahan et al. 2013): ``g' = clip(rescale*g);
    z += g' - (sqrt(n + g'^2) - sqrt(n))*w/lr; n += g'^2;
    w = (sign(z)*lamda1 - z) / ((beta + sqrt(n))/lr + wd) where |z| > lamda1, else 0``."""
    gi = clip(rescale * g, clip_gradient)
    z[...] = z + gi - (np.sqrt(n + gi * gi) - np.sqrt(n)) * w / lr
    n[...] = n + gi * gi
    w[...] = (np.sign(z) * lamda1 - z) / ((beta + np.sqrt(n)) / lr + wd) * (np.abs(z) > lamda1)


def adamax_update(w, g, m, u, lr, beta1, beta2, wd, rescale, clip_gradient):
    """AdaMax (Kingma & Ba, section 7): ``g' = clip(rescale*g + wd*w); m = b1*m + (1-b1)*g';
    u = max(b2*u, |g'|); w -= lr*m/u``; the caller folds ``1/(1-b1^t)`` into lr."""
    gi = clip(rescale * g + wd * w, clip_gradient)
    m[...] = beta1 * m + (1.0 - beta1) * gi
    u[...] = np.maximum(beta2 * u, np.abs(gi))
    w[...] = w - lr * m / u


def adadelta_update(w, g, acc_g, acc_delta, rho, eps, wd, rescale, clip_gradient):
    """AdaDelta (Zeiler 2012) as MXNet 1.x: ``g' = clip(rescale*g); acc_g = rho*acc_g +
    (1-rho)*g'^2; delta = sqrt(acc_delta + eps)/sqrt(acc_g + eps)*g';
    acc_delta = rho*acc_delta + (1-rho)*delta^2; w -= delta + wd*w`` (no learning rate)."""
    gi = clip(rescale * g, clip_gradient)
    acc_g[...] = rho * acc_g + (1.0 - rho) * gi * gi
    delta = np.sqrt(acc_delta + eps) / np.sqrt(acc_g + eps) * gi
    acc_delta[...] = rho * acc_delta + (1.0 - rho) * delta * delta
    w[...] = w - (delta + wd * w)


def nadam_update(w, g, m, v, lr, beta1, beta2, eps, wd, rescale, clip_gradient, mom_t, mom_t1,
                 m_schedule, m_schedule_next, t):
    """Nadam (Dozat 2016) with the momentum schedule computed by the caller:
    ``g' = clip(rescale*g + wd*w)``, Adam moments, then
    ``w -= lr*((1-mom_t)*g'/(1-m_schedule) + mom_t1*m/(1-m_schedule_next)) /
    (sqrt(v/(1-b2^t)) + eps)``."""
    gi = clip(rescale * g + wd * w, clip_gradient)
    m[...] = beta1 * m + (1.0 - beta1) * gi
    v[...] = beta2 * v + (1.0 - beta2) * gi * gi
    m_bar = (1.0 - mom_t) * gi / (1.0 - m_schedule) + mom_t1 * m / (1.0 - m_schedule_next)
    w[...] = w - lr * m_bar / (np.sqrt(v / (1.0 - beta2 ** t)) + eps)


def dcasgd_update(w, g, prev, lr, lamda, wd, rescale, clip_gradient):
    """Delay-compensated SGD (Zheng et al. 2017) without momentum: ``g' = clip(rescale*g);
    w_new = w - lr*(g' + wd*w + lamda*g'^2*(w - prev)); prev = w``."""
    gi = clip(rescale * g, clip_gradient)
    step = -lr * (gi + wd * w + lamda * gi * gi * (w - prev))
    prev[...] = w
    w[...] = w + step


def dcasgd_mom_update(w, g, prev, mom, lr, momentum, lamda, wd, rescale, clip_gradient):
    """DCASGD with momentum: ``mom = momentum*mom - lr*(g' + wd*w + lamda*g'^2*(w - prev));
    prev = w; w += mom``."""
    gi = clip(rescale * g, clip_gradient)
    mom[...] = momentum * mom - lr * (gi + wd * w + lamda * gi * gi * (w - prev))
    prev[...] = w
    w[...] = w + mom


def lamb_update_phase1(w, g, mean, var, out, beta1, beta2, eps, t, bias_correction, wd, rescale,
                       clip_gradient):
    """LAMB (You et al. 2019) phase 1: the moments of ``g' = clip(rescale*g)`` and the step
    direction ``out = m^/(sqrt(v^) + eps) + wd*w`` (m^, v^ bias-corrected when asked)."""
    gi = clip(rescale * g, clip_gradient)
    mean[...] = beta1 * mean + (1.0 - beta1) * gi
    var[...] = beta2 * var + (1.0 - beta2) * gi * gi
    if bias_correction:
        m_hat, v_hat = mean / (1.0 - beta1 ** t), var / (1.0 - beta2 ** t)
    else:
        m_hat, v_hat = mean, var
    out[...] = m_hat / (np.sqrt(v_hat) + eps) + wd * w


def lamb_update_phase2(w, step, r1, r2, lr, lower_bound, upper_bound):
    """LAMB phase 2: the trust ratio ``r1/r2`` (weight norm, clamped to the bounds that are
    > 0, over step norm; 1 when either is 0) scales the rate: ``w -= lr*r1/r2*step``.
    r1 and r2 are 1-element arrays (they stay on the device)."""
    if lower_bound > 0:
        r1 = np.maximum(r1, lower_bound)
    if upper_bound > 0:
        r1 = np.minimum(r1, upper_bound)
    ratio = np.where((r1 == 0) | (r2 == 0), 1.0, r1 / np.where(r2 == 0, 1.0, r2))
    w[...] = w - (lr * ratio).astype(w.dtype).reshape((1,) * w.ndim) * step
