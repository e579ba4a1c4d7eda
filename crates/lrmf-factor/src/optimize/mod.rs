//! Optimized strategies (MATH.md §5b): parameters chosen by minimizing
//! `L = sens(C)²·agg_t ‖B[t, :]‖²` on the workload they are built for.

pub mod blt;
mod blt_bfgs;
pub mod dense;
