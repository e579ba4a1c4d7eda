#!/usr/bin/env python3
"""80-digit reference for the analytic Gaussian mechanism (Balle & Wang 2018), written to
analytic_gaussian_reference.json beside this script. Run: python3 analytic_gaussian_reference.py
(needs mpmath: pip install mpmath).

delta(z, eps) = Phi(1/(2z) - eps z) - e^eps Phi(-1/(2z) - eps z), sensitivity 1, noise std z.
* calibrations: for each (eps, delta) on the grid, the exact z* with delta(z*, eps) = delta
  (bisection at 80 digits to relative width 1e-45), printed with 25 significant digits, and
  noise_multiplier_f64_up: the smallest f64 >= z* (a calibrated f64 z is >= z* iff it is >= this).
* epsilon_of: for z = the f64 nearest to z*, the exact eps with delta(z, eps) = delta, and
  epsilon_f64_up, the smallest f64 >= it.
* ln_ndtr: ln Phi(x) on a grid of x, for the accuracy test of the f64 implementation.
"""
import json
import math
import os

from mpmath import mp, mpf, ncdf, exp

mp.dps = 80

EPSILONS = ["1e-3", "3e-3", "1e-2", "3e-2", "0.1", "0.3", "1", "2", "3", "5", "9", "20", "50", "100"]
DELTAS = ["1e-12", "1e-10", "1e-9", "1e-7", "1e-5", "1e-3", "1e-2", "0.1", "0.3", "0.5"]


def delta_of(z, eps):
    return ncdf(1 / (2 * z) - eps * z) - exp(eps) * ncdf(-1 / (2 * z) - eps * z)


def bisect(f, lo, hi):
    """Root of a monotone f on [lo, hi] (f(lo), f(hi) of opposite signs), geometric bisection."""
    flo = f(lo)
    for _ in range(400):
        mid = (lo * hi) ** mpf("0.5") if lo > 0 else (lo + hi) / 2
        fm = f(mid)
        if (fm > 0) == (flo > 0):
            lo, flo = mid, fm
        else:
            hi = mid
        if hi - lo <= mpf("1e-45") * abs(hi):
            break
    return (lo + hi) / 2


def z_star(eps, delta):
    f = lambda z: delta_of(z, eps) - delta  # decreasing in z
    return bisect(f, mpf("1e-7"), mpf("1e7"))


def eps_star(z, delta):
    f = lambda e: delta_of(z, e) - delta  # decreasing in eps
    if f(mpf(0)) <= 0:
        return mpf(0)
    hi = mpf(1)
    while f(hi) > 0:
        hi *= 2
    lo = mpf(0)
    for _ in range(400):
        mid = (lo + hi) / 2
        if f(mid) > 0:
            lo = mid
        else:
            hi = mid
        if hi - lo <= mpf("1e-45") * hi:
            break
    return (lo + hi) / 2


def f64_up(x):
    """The smallest f64 >= x (exact comparison at 80 digits), as Python's shortest repr."""
    f = float(x)
    if mpf(f) < x:
        f = math.nextafter(f, math.inf)
    return repr(f)


def s(x):
    return mp.nstr(x, 25, strip_zeros=False, min_fixed=-1, max_fixed=-1)


def main():
    cal, eps_of = [], []
    for e in EPSILONS:
        for d in DELTAS:
            eps, delta = mpf(e), mpf(d)
            z = z_star(eps, delta)
            cal.append({"epsilon": e, "delta": d, "noise_multiplier": s(z), "noise_multiplier_f64_up": f64_up(z)})
            zf = mpf(float(z))  # the f64 nearest z*, exactly
            es = eps_star(zf, delta)
            eps_of.append({"noise_multiplier": repr(float(z)), "delta": d, "epsilon": s(es), "epsilon_f64_up": f64_up(es)})
    xs = [-38, -37.5, -30, -29.9, -25, -20, -15, -10, -8, -6, -4, -3, -2, -1.5, -1, -0.7, -0.5, -0.25,
          -0.1, -1e-3, 0, 1e-3, 0.1, 0.3, 0.7, 1, 2, 3, 5, 8, 10, 15, 20, 30]
    # ln Phi(x); for x > 0 as log1p(-Phi(-x)), exact where 1 - Phi(x) is below 80 digits.
    def ln_phi(x):
        x = mpf(x)
        return mp.log1p(-ncdf(-x)) if x > 0 else mp.log(ncdf(x))

    lnphi = [{"x": repr(float(x)), "ln_ndtr": s(ln_phi(x))} for x in xs]
    import mpmath

    out = {
        "about": ("analytic Gaussian mechanism (sensitivity 1, noise std z): exact z*(eps, delta) and "
                  "eps*(z, delta), computed with mpmath " + mpmath.__version__ + " at 80 digits; values are "
                  "decimal strings with 25 significant digits"),
        "generator": "crates/lrmf-privacy/tests/data/analytic_gaussian_reference.py",
        "calibrations": cal,
        "epsilon_of": eps_of,
        "ln_ndtr": lnphi,
    }
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "analytic_gaussian_reference.json")
    with open(path, "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
