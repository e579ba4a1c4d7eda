//! Parameter-free layers on channels-last activations: ReLU and the 2×2, stride-2 max pool,
//! written by hand because candle 0.11.1's `max_pool2d` backward scales the gradient by 1/k².
//! The max pool routes each output gradient to the first maximal input of its window
//! (order (0,0), (0,1), (1,0), (1,1)).

use super::sequential::Act;
use crate::{Result, TrainError};

/// ReLU in place: x ← max(x, 0). Returns the mask x > 0 for the backward pass.
///
/// Complexity: O(len).
pub(crate) fn relu_forward(x: &mut [f32]) -> Vec<bool> {
    let mask: Vec<bool> = x.iter().map(|&v| v > 0.0).collect();
    for v in x.iter_mut() {
        *v = v.max(0.0);
    }
    mask
}

/// ReLU backward: dx = dy·[x > 0].
///
/// Complexity: O(len).
pub(crate) fn relu_backward(dy: &mut [f32], mask: &[bool]) {
    for (d, &on) in dy.iter_mut().zip(mask) {
        *d = if on { *d } else { 0.0 };
    }
}

/// The window offset (0..4) of each pooled output, for the backward pass.
pub(crate) struct PoolCache {
    arg: Vec<u8>,
    h: usize,
    w: usize,
}

/// 2×2 max pool, stride 2: y[n, oy, ox, c] = max over the window of x; H and W must be even.
///
/// Complexity: O(N·H·W·C).
pub(crate) fn maxpool_forward(x: &Act) -> Result<(Act, PoolCache)> {
    if !x.h.is_multiple_of(2) || !x.w.is_multiple_of(2) {
        return Err(TrainError::Shape(format!(
            "2×2 max pool needs even height and width, got {}×{}",
            x.h, x.w
        )));
    }
    let (ho, wo, c) = (x.h / 2, x.w / 2, x.c);
    let mut data = vec![0.0f32; x.n * ho * wo * c];
    let mut arg = vec![0u8; data.len()];
    for img in 0..x.n {
        for oy in 0..ho {
            for ox in 0..wo {
                let o = ((img * ho + oy) * wo + ox) * c;
                for ch in 0..c {
                    let mut best = f32::NEG_INFINITY;
                    let mut best_j = 0u8;
                    for j in 0..4u8 {
                        let (dy, dx) = ((j / 2) as usize, (j % 2) as usize);
                        let v = x.data[((img * x.h + 2 * oy + dy) * x.w + 2 * ox + dx) * c + ch];
                        if v > best || j == 0 {
                            best = v;
                            best_j = j;
                        }
                    }
                    data[o + ch] = best;
                    arg[o + ch] = best_j;
                }
            }
        }
    }
    Ok((
        Act {
            data,
            n: x.n,
            h: ho,
            w: wo,
            c,
        },
        PoolCache {
            arg,
            h: x.h,
            w: x.w,
        },
    ))
}

/// Max-pool backward: each output gradient goes to the input that won its window.
///
/// Complexity: O(N·H·W·C).
pub(crate) fn maxpool_backward(cache: &PoolCache, dy: &Act) -> Act {
    let (h, w, c) = (cache.h, cache.w, dy.c);
    let (ho, wo) = (dy.h, dy.w);
    let mut dx = vec![0.0f32; dy.n * h * w * c];
    for img in 0..dy.n {
        for oy in 0..ho {
            for ox in 0..wo {
                let o = ((img * ho + oy) * wo + ox) * c;
                for ch in 0..c {
                    let j = cache.arg[o + ch] as usize;
                    let (ddy, ddx) = (j / 2, j % 2);
                    dx[((img * h + 2 * oy + ddy) * w + 2 * ox + ddx) * c + ch] = dy.data[o + ch];
                }
            }
        }
    }
    Act {
        data: dx,
        n: dy.n,
        h,
        w,
        c,
    }
}
