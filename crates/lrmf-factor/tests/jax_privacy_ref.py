import json, math, sys, time
# Reference values for crates/lrmf-factor/tests/jax_privacy_blt.json (jax_privacy 2.0.0; see its "command").
import jax; jax.config.update("jax_enable_x64", True)
import jax.numpy as jnp, numpy as np
from jax_privacy.matrix_factorization import buffered_toeplitz as bt, dense, toeplitz
def blt(n, k, err):
    b = n // k
    t0 = time.time()
    B = bt.optimize(n=n, min_sep=b, max_participations=k, error=err)
    jt = time.time() - t0
    c = np.array(B.toeplitz_coefs(n=n)); Cd = np.zeros((n, n))
    for i in range(n): Cd[i, :i + 1] = c[:i + 1][::-1]
    W = np.tril(np.ones((n, n)))
    e = ((W @ np.linalg.inv(Cd)) ** 2).sum(1)
    s2 = float(toeplitz.minsep_sensitivity_squared(jnp.array(c), min_sep=b, max_participations=k, n=n))
    v = math.sqrt(s2 * (e.max() if err == "max" else e.mean()))
    return dict(family="blt", n=n, participations=k, min_sep=b, objective=err + "-se", value=v, secs=round(jt, 2),
                buffers=len(B.buf_decay), theta=[float(x) for x in B.buf_decay], omega=[float(x) for x in B.output_scale])
def dn(n):
    t0 = time.time(); W = np.tril(np.ones((n, n)))
    Cd = np.array(dense.optimize(n, A=jnp.array(W))); jt = time.time() - t0
    e = ((W @ np.linalg.inv(Cd)) ** 2).sum(1); s2 = float((Cd ** 2).sum(0).max())
    return dict(family="dense", n=n, participations=1, objective="mean-se", value=math.sqrt(s2 * e.mean()), secs=round(jt, 2))
for cfg in sys.argv[1:]:
    f, *a = cfg.split(":")
    r = blt(int(a[0]), int(a[1]), a[2]) if f == "blt" else dn(int(a[0]))
    print(json.dumps(r), flush=True)
