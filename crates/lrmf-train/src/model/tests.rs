//! Oracle tests for the models: every per-example norm and every (clipped) gradient sum is
//! compared with an independent naive loop that runs candle's own autograd (candle `conv2d`,
//! reshape + max pooling, group norm from tensor ops, `candle_nn::loss::cross_entropy`) on one
//! example at a time, and the hand-written backward pass is checked by finite differences.

use candle_core::{D, Device, Tensor, Var};

use super::classifier::SequentialClassifier;
use super::grad::{GradMode, NormStrategy, ParamGrad, clip_weights};
use super::group_norm::GN_EPS;
use super::sequential::{Sequential, Stage};
use super::*;

/// Relative ℓ₂ error ‖a − b‖ ≤ tol·‖b‖ (with a tiny absolute floor for zero vectors).
fn check(what: &str, a: &[f32], b: &[f32], tol: f64) {
    assert_eq!(a.len(), b.len(), "{what}: lengths");
    let diff: f64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| (*x as f64 - *y as f64).powi(2))
        .sum::<f64>()
        .sqrt();
    let norm: f64 = b.iter().map(|y| (*y as f64).powi(2)).sum::<f64>().sqrt();
    assert!(
        diff <= tol * norm + 1e-9,
        "{what}: relative error {} (‖b‖ = {norm})",
        diff / norm.max(1e-300)
    );
}

fn var(data: &[f32], shape: &[usize]) -> Var {
    Var::from_tensor(&Tensor::from_slice(data, shape, &Device::Cpu).unwrap()).unwrap()
}

/// The gradient of one example's loss by candle autograd, through the layers of `seq` applied
/// to `x` (N×C×H×W or N×F), flattened in our parameter order. Returns (grad, loss).
fn candle_grad(
    seq: &Sequential,
    x: Tensor,
    label: u32,
    prefix: Option<&Var>,
) -> (Vec<Vec<f32>>, Tensor, f32) {
    let mut vars: Vec<Var> = Vec::new();
    let mut x = x;
    for s in &seq.stages {
        x = match s {
            Stage::Conv(c) => {
                let w = var(c.weight(), &[c.cout, c.k, c.k, c.cin]);
                let b = var(&c.bias, &[c.cout]);
                let wc = w.as_tensor().permute((0, 3, 1, 2)).unwrap();
                let y = x.conv2d(&wc, c.pad, 1, 1, 1).unwrap();
                let y = y
                    .broadcast_add(&b.as_tensor().reshape((1, c.cout, 1, 1)).unwrap())
                    .unwrap();
                vars.push(w);
                vars.push(b);
                y
            }
            Stage::GroupNorm(g) => {
                let (n, c, h, w) = x.dims4().unwrap();
                let xg = x.reshape((n, g.groups, c / g.groups * h * w)).unwrap();
                let mean = xg.mean_keepdim(D::Minus1).unwrap();
                let xc = xg.broadcast_sub(&mean).unwrap();
                let var_ = xc.sqr().unwrap().mean_keepdim(D::Minus1).unwrap();
                let xhat = xc
                    .broadcast_div(&(var_ + GN_EPS as f64).unwrap().sqrt().unwrap())
                    .unwrap();
                let xhat = xhat.reshape((n, c, h, w)).unwrap();
                let gamma = var(&g.gamma, &[c]);
                let beta = var(&g.beta, &[c]);
                let y = xhat
                    .broadcast_mul(&gamma.as_tensor().reshape((1, c, 1, 1)).unwrap())
                    .unwrap()
                    .broadcast_add(&beta.as_tensor().reshape((1, c, 1, 1)).unwrap())
                    .unwrap();
                vars.push(gamma);
                vars.push(beta);
                y
            }
            Stage::Relu => x.relu().unwrap(),
            Stage::MaxPool2 => {
                let (n, c, h, w) = x.dims4().unwrap();
                x.reshape((n, c, h / 2, 2, w / 2, 2))
                    .unwrap()
                    .max(5)
                    .unwrap()
                    .max(3)
                    .unwrap()
            }
            Stage::Flatten => {
                let n = x.dims()[0];
                x.permute((0, 2, 3, 1)).unwrap().reshape((n, ())).unwrap()
            }
            Stage::Linear(l) => {
                let w = var(&l.weight, &[l.output, l.input]);
                let b = var(&l.bias, &[l.output]);
                let y = x
                    .matmul(&w.as_tensor().t().unwrap())
                    .unwrap()
                    .broadcast_add(b.as_tensor())
                    .unwrap();
                vars.push(w);
                vars.push(b);
                y
            }
        };
    }
    let target = Tensor::new(&[label], &Device::Cpu).unwrap();
    let loss = candle_nn::loss::cross_entropy(&x, &target).unwrap();
    let grads = loss.backward().unwrap();
    let mut out = Vec::new();
    if let Some(p) = prefix {
        out.push(
            grads
                .get(p.as_tensor())
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap(),
        );
    }
    for v in &vars {
        out.push(
            grads
                .get(v.as_tensor())
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap(),
        );
    }
    let l = loss.to_scalar::<f32>().unwrap();
    (out, x, l)
}

/// Per-example oracle gradients (per parameter block) for an image batch through `seq`;
/// `nchw` selects the CNN input layout (else flattened features).
fn oracle_images(seq: &Sequential, batch: &Batch, nchw: bool) -> (Vec<Vec<Vec<f32>>>, f64) {
    let Batch::Images {
        pixels,
        shape: (c, h, w),
        labels,
    } = batch
    else {
        unreachable!()
    };
    let s = c * h * w;
    let mut all = Vec::new();
    let mut loss = 0.0;
    for (i, &y) in labels.iter().enumerate() {
        let px = &pixels[i * s..(i + 1) * s];
        let x = if nchw {
            Tensor::from_slice(px, (1, *c, *h, *w), &Device::Cpu).unwrap()
        } else {
            Tensor::from_slice(px, (1, s), &Device::Cpu).unwrap()
        };
        let (g, _, l) = candle_grad(seq, x, y, None);
        loss += l as f64;
        all.push(g);
    }
    (all, loss)
}

/// Per-example oracle gradients for the text model: the pooled embedding is written as
/// h = c·E with c_v = count(v)/L, so autograd differentiates the table directly.
fn oracle_text(model: &TextClassifier, batch: &Batch) -> (Vec<Vec<Vec<f32>>>, f64) {
    let Batch::Tokens {
        tokens,
        len,
        labels,
    } = batch
    else {
        unreachable!()
    };
    let (emb, head) = model.parts();
    let mut all = Vec::new();
    let mut loss = 0.0;
    for (i, &y) in labels.iter().enumerate() {
        let mut coef = vec![0.0f32; emb.vocab];
        let toks: Vec<u32> = tokens[i * len..(i + 1) * len]
            .iter()
            .copied()
            .filter(|&t| t != 0)
            .collect();
        for &t in &toks {
            coef[t as usize] += 1.0 / toks.len() as f32;
        }
        let table = var(&emb.table, &[emb.vocab, emb.dim]);
        let c = Tensor::from_slice(&coef, (1, emb.vocab), &Device::Cpu).unwrap();
        let x = c.matmul(table.as_tensor()).unwrap();
        let (g, _, l) = candle_grad(head, x, y, Some(&table));
        loss += l as f64;
        all.push(g);
    }
    (all, loss)
}

/// One chunk's forward/backward of a model: (Σ loss, #correct, layer gradients).
type StepFn<'a> = dyn Fn(&Batch, GradMode) -> crate::Result<(f64, usize, Vec<ParamGrad>)> + 'a;

/// Per-layer-block checks of our per-example norms and the (clipped) sums against the oracle.
/// `blocks_per_grad[j]` is how many oracle blocks make up our layer gradient j.
fn compare(
    what: &str,
    model: &dyn DpModel,
    step: &StepFn<'_>,
    batch: &Batch,
    oracle: &[Vec<Vec<f32>>],
    oracle_loss: f64,
    blocks_per_grad: &[usize],
) {
    let n = batch.len();
    // Per-layer per-example norms.
    let (loss, _, grads) = step(batch, GradMode::PerExample).unwrap();
    assert!(
        (loss - oracle_loss).abs() <= 1e-4 * oracle_loss.abs(),
        "{what}: loss {loss} vs {oracle_loss}"
    );
    assert_eq!(grads.len(), blocks_per_grad.len(), "{what}: layer count");
    let mut block = 0;
    let mut total = vec![0.0f64; n];
    for (j, g) in grads.iter().enumerate() {
        let mut sq = vec![0.0f64; n];
        g.add_sq_norms(&mut sq).unwrap();
        let want: Vec<f32> = (0..n)
            .map(|i| {
                oracle[i][block..block + blocks_per_grad[j]]
                    .iter()
                    .flatten()
                    .map(|&x| (x as f64).powi(2))
                    .sum::<f64>() as f32
            })
            .collect();
        let got: Vec<f32> = sq.iter().map(|&x| x as f32).collect();
        for i in 0..n {
            check(
                &format!("{what}: layer {j} example {i} squared norm"),
                &got[i..=i],
                &want[i..=i],
                1e-4,
            );
            total[i] += want[i] as f64;
        }
        block += blocks_per_grad[j];
    }
    let flat: Vec<Vec<f32>> = oracle
        .iter()
        .map(|g| g.iter().flatten().copied().collect())
        .collect();
    // Plain sum.
    let plain = model.clipped_gradient_sum(batch, None).unwrap();
    let want: Vec<f32> = (0..flat[0].len())
        .map(|p| flat.iter().map(|g| g[p]).sum())
        .collect();
    check(&format!("{what}: plain sum"), &plain.grad_sum, &want, 1e-4);
    assert_eq!(plain.clipped, 0);
    // Clipped sum at the median norm: some examples clipped, some not.
    let mut norms: Vec<f64> = total.iter().map(|s| s.sqrt()).collect();
    norms.sort_by(f64::total_cmp);
    let clip = norms[n / 2] as f32;
    let (w, clipped) = clip_weights(&total, clip).unwrap();
    let got = model.clipped_gradient_sum(batch, Some(clip)).unwrap();
    let want: Vec<f32> = (0..flat[0].len())
        .map(|p| flat.iter().zip(&w).map(|(g, w)| g[p] * w).sum())
        .collect();
    check(&format!("{what}: clipped sum"), &got.grad_sum, &want, 1e-4);
    assert_eq!(got.clipped, clipped, "{what}: clipped count");
    assert!(
        clipped > 0 && clipped < n,
        "{what}: the test must clip some but not all examples"
    );
    assert!((got.loss_sum - oracle_loss).abs() <= 1e-4 * oracle_loss.abs());
}

fn image_batch(n: usize, shape: (usize, usize, usize), classes: u32, seed: u64) -> Batch {
    use rand::{RngExt, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let s = shape.0 * shape.1 * shape.2;
    Batch::Images {
        pixels: (0..n * s)
            .map(|_| rng.random::<f32>() * 2.0 - 1.0)
            .collect(),
        shape,
        labels: (0..n).map(|_| rng.random_range(0..classes)).collect(),
    }
}

fn tiny_cnn(group_norm: bool, hidden: Option<usize>) -> CnnConfig {
    CnnConfig {
        in_channels: 3,
        height: 8,
        width: 8,
        classes: 4,
        channels: [8, 16, 32],
        group_norm,
        groups: 4,
        hidden,
    }
}

#[test]
fn cnn_matches_the_autograd_oracle_for_every_strategy() {
    for (gn, hidden) in [(false, None), (true, Some(6))] {
        let mut model = Cnn::new(tiny_cnn(gn, hidden), 11).unwrap();
        let batch = image_batch(5, (3, 8, 8), 4, 3);
        let (oracle, oracle_loss) = oracle_images(model.net(), &batch, true);
        let layers = if gn { 12 } else { 6 } + 1 + usize::from(hidden.is_some());
        let blocks = vec![2; layers];
        for strategy in [
            NormStrategy::Auto,
            NormStrategy::Materialize,
            NormStrategy::Ghost,
        ] {
            model.set_norm_strategy(strategy);
            let what = format!("cnn gn={gn} {strategy:?}");
            compare(
                &what,
                &model,
                &|b, m| model.step(b, m),
                &batch,
                &oracle,
                oracle_loss,
                &blocks,
            );
        }
        // Chunking is exact: two examples per chunk give the same sums.
        let whole = model.clipped_gradient_sum(&batch, Some(0.5)).unwrap();
        model.set_chunk_size(2).unwrap();
        let chunked = model.clipped_gradient_sum(&batch, Some(0.5)).unwrap();
        check(
            "chunked clipped sum",
            &chunked.grad_sum,
            &whole.grad_sum,
            1e-5,
        );
        assert_eq!(
            (chunked.clipped, chunked.correct),
            (whole.clipped, whole.correct)
        );
        let (eval_loss, eval_correct) = model.evaluate(&batch).unwrap();
        assert!((eval_loss - oracle_loss).abs() <= 1e-4 * oracle_loss);
        assert_eq!(eval_correct, whole.correct);
    }
}

#[test]
fn cnn_at_bf16_is_near_f32_and_bounds_what_it_sums() {
    // bf16 inputs (AMX where available, else f32): every strategy's sums stay within a few
    // bf16 roundings of the f32 ones, and clipping bounds the gradients actually summed.
    let mut model = Cnn::new(tiny_cnn(true, Some(6)), 11).unwrap();
    let batch = image_batch(5, (3, 8, 8), 4, 3);
    let want = model.clipped_gradient_sum(&batch, Some(0.5)).unwrap();
    model.set_matmul(Precision::Bf16);
    for strategy in [NormStrategy::Materialize, NormStrategy::Ghost] {
        model.set_norm_strategy(strategy);
        let got = model.clipped_gradient_sum(&batch, Some(0.5)).unwrap();
        check(
            &format!("bf16 {strategy:?} clipped sum"),
            &got.grad_sum,
            &want.grad_sum,
            3e-2,
        );
        let norm = |g: &[f32]| g.iter().map(|&x| (x as f64).powi(2)).sum::<f64>().sqrt();
        for seed in 0..4 {
            let one = image_batch(1, (3, 8, 8), 4, 10 + seed);
            let g = model.clipped_gradient_sum(&one, Some(1e-3)).unwrap();
            assert_eq!(g.clipped, 1);
            assert!(
                norm(&g.grad_sum) <= 1e-3,
                "{strategy:?}: {}",
                norm(&g.grad_sum)
            );
        }
    }
}

#[test]
fn text_model_matches_the_autograd_oracle() {
    let model = TextClassifier::new(
        TextConfig {
            vocab: 23,
            embed_dim: 6,
            classes: 2,
        },
        5,
    )
    .unwrap();
    let len = 7;
    // Repeated tokens, padding, and one all-padding example.
    let tokens: Vec<u32> = vec![
        3, 3, 5, 0, 0, 0, 0, //
        1, 2, 4, 8, 16, 22, 9, //
        0, 0, 0, 0, 0, 0, 0, //
        7, 7, 7, 7, 2, 0, 0, //
        22, 21, 3, 3, 4, 5, 0,
    ];
    let batch = Batch::Tokens {
        tokens,
        len,
        labels: vec![0, 1, 1, 0, 1],
    };
    let (oracle, oracle_loss) = oracle_text(&model, &batch);
    compare(
        "text",
        &model,
        &|b, m| model.step(b, m),
        &batch,
        &oracle,
        oracle_loss,
        &[1, 2],
    );
    // Row 0 (padding) never moves.
    let g = model.clipped_gradient_sum(&batch, Some(0.1)).unwrap();
    assert!(g.grad_sum[..6].iter().all(|&x| x == 0.0));
    let bad = Batch::Tokens {
        tokens: vec![23; 7],
        len,
        labels: vec![0],
    };
    assert!(model.clipped_gradient_sum(&bad, Some(1.0)).is_err());
}

#[test]
fn mlp_and_logistic_match_the_autograd_oracle() {
    let batch = image_batch(6, (1, 3, 4), 3, 9);
    let mlp = Mlp::new(
        MlpConfig {
            inputs: 12,
            hidden: vec![5, 4],
            classes: 3,
        },
        2,
    )
    .unwrap();
    let (oracle, loss) = oracle_images(mlp.net(), &batch, false);
    compare(
        "mlp",
        &mlp,
        &|b, m| mlp.step(b, m),
        &batch,
        &oracle,
        loss,
        &[2, 2, 2],
    );
    let logistic = Mlp::logistic(12, 3, 4).unwrap();
    let (oracle, loss) = oracle_images(logistic.net(), &batch, false);
    compare(
        "logistic",
        &logistic,
        &|b, m| logistic.step(b, m),
        &batch,
        &oracle,
        loss,
        &[2],
    );
}

#[test]
fn backward_matches_finite_differences() {
    // One 8×8 image through a narrow CNN with group norm and a hidden layer: central differences
    // of the summed loss against our plain gradient (conv, group norm, max pool, linear).
    let mut model = Cnn::new(
        CnnConfig {
            channels: [2, 4, 4],
            groups: 2,
            ..tiny_cnn(true, Some(3))
        },
        21,
    )
    .unwrap();
    let batch = image_batch(1, (3, 8, 8), 4, 1);
    let grad = model.clipped_gradient_sum(&batch, None).unwrap().grad_sum;
    let params = model.params();
    let h = 1e-2f32;
    let d = params.len();
    let mut fd = Vec::new();
    let mut an = Vec::new();
    for p in (0..d).step_by(7) {
        let mut q = params.clone();
        q[p] = params[p] + h;
        model.set_params(&q).unwrap();
        let up = model.evaluate(&batch).unwrap().0;
        q[p] = params[p] - h;
        model.set_params(&q).unwrap();
        let down = model.evaluate(&batch).unwrap().0;
        fd.push(((up - down) / (2.0 * h as f64)) as f32);
        an.push(grad[p]);
    }
    check("finite differences", &an, &fd, 2e-2);
}

#[test]
fn bad_inputs_are_errors() {
    let model = Cnn::new(tiny_cnn(false, None), 1).unwrap();
    let batch = image_batch(2, (3, 8, 8), 4, 1);
    assert!(model.clipped_gradient_sum(&batch, Some(0.0)).is_err());
    assert!(
        model
            .clipped_gradient_sum(&batch, Some(f32::INFINITY))
            .is_err()
    );
    let wrong = image_batch(2, (3, 16, 8), 4, 1);
    assert!(model.clipped_gradient_sum(&wrong, None).is_err());
    let Batch::Images { pixels, shape, .. } = batch.clone() else {
        unreachable!()
    };
    let bad_label = Batch::Images {
        pixels: pixels.clone(),
        shape,
        labels: vec![0, 4],
    };
    assert!(model.clipped_gradient_sum(&bad_label, None).is_err());
    let mut nan = pixels.clone();
    nan[5] = f32::NAN;
    assert!(
        model
            .clipped_gradient_sum(
                &Batch::Images {
                    pixels: nan,
                    shape,
                    labels: vec![0, 1]
                },
                None
            )
            .is_err()
    );
    let short = Batch::Images {
        pixels: pixels[1..].to_vec(),
        shape,
        labels: vec![0, 1],
    };
    assert!(model.evaluate(&short).is_err());
    let tokens = Batch::Tokens {
        tokens: vec![1, 2],
        len: 2,
        labels: vec![0],
    };
    assert!(model.evaluate(&tokens).is_err());
    let mut m = model.clone();
    assert!(m.set_params(&[0.0; 3]).is_err());
    let mut p = m.params();
    p[0] = f32::NAN;
    assert!(m.set_params(&p).is_err());
    assert!(m.set_chunk_size(0).is_err());
    assert!(
        Cnn::new(
            CnnConfig {
                height: 12,
                ..tiny_cnn(false, None)
            },
            0
        )
        .is_err()
    );
    assert!(
        Cnn::new(
            CnnConfig {
                groups: 3,
                ..tiny_cnn(true, None)
            },
            0
        )
        .is_err()
    );
    assert!(
        TextClassifier::new(
            TextConfig {
                vocab: 1,
                embed_dim: 4,
                classes: 2
            },
            0
        )
        .is_err()
    );
    assert!(
        Mlp::new(
            MlpConfig {
                inputs: 4,
                hidden: vec![0],
                classes: 2
            },
            0
        )
        .is_err()
    );
    // An empty batch (Poisson sampling can draw one) is a zero gradient, not an error.
    let empty = Batch::Images {
        pixels: vec![],
        shape: (3, 8, 8),
        labels: vec![],
    };
    let g = model.clipped_gradient_sum(&empty, Some(1.0)).unwrap();
    assert!(g.grad_sum.iter().all(|&x| x == 0.0) && g.grad_sum.len() == model.num_params());
}

#[test]
fn cifar_shapes_and_seeded_init() {
    let a = Cnn::new(CnnConfig::cifar10(false), 3).unwrap();
    assert_eq!(a.num_params(), 307_498);
    assert_eq!(
        Cnn::new(CnnConfig::cifar10(true), 3).unwrap().num_params(),
        307_498 + 2 * (2 * 32 + 2 * 64 + 2 * 128)
    );
    let b = Cnn::new(CnnConfig::cifar10(false), 3).unwrap();
    assert_eq!(a.params(), b.params());
    let c = Cnn::new(CnnConfig::cifar10(false), 4).unwrap();
    assert_ne!(a.params(), c.params());
    let mut d = c.clone();
    d.set_params(&a.params()).unwrap();
    assert_eq!(d.params(), a.params());
}
