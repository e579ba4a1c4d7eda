//! The only `unsafe` code of the workspace, kept in one audited place: the AVX-512 matrix-product
//! kernels ([`gemm`]), the opt-in AMX bf16 products ([`amx`]) and the allocator setting that stops glibc from returning the step's large
//! buffers to the kernel between chunks ([`malloc`]). Each unsafe block states its safety
//! argument; everything outside this module stays under the workspace's `unsafe_code = "deny"`.

#![allow(unsafe_code)]

pub(crate) mod amx;
pub(crate) mod gemm;
pub(crate) mod malloc;
