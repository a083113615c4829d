//! # dream-mpc controller
//!
//! Robot-side half of Dream-MPC: loads a model bundle (ONNX + manifest),
//! compiles its modules into allocation-free forward and backward kernels,
//! and plans with gradient-based MPC at a fixed control rate.
//!
//! This crate must never depend on libtorch (checked by the test suite).
//!
//! The modules form a one-way stack (each imports only those below it;
//! `tests/layers.rs` checks it): `bundle` (format) <- `kernels` (compiler)
//! <- `load` (loading, verification) <- `planner` <- `agent` <- `control`
//! (the tick, no ROS type) <- `msgs` <- `bag` <- `ros` (transport), with
//! `rng` at the bottom. See `controller/README.md`.
#![deny(unsafe_op_in_unsafe_fn)]

/// `impl From<Source> for Error` for each `Variant(Source)` listed: the
/// source error wrapped in that variant of the error enum, so that `?`
/// converts it. Used by the error enums of this workspace:
/// `error_from!(LoadError { Bundle(BundleError), Compile(CompileError) });`
#[macro_export]
macro_rules! error_from {
    ($error:ident { $($variant:ident($source:ty)),+ $(,)? }) => {
        $(
            impl From<$source> for $error {
                fn from(e: $source) -> Self {
                    $error::$variant(e)
                }
            }
        )+
    };
}

/// An error that is its message: `pub struct $name(pub String)`, shown as
/// the message, with `std::error::Error`.
macro_rules! message_error {
    ($(#[$attr:meta])* $name:ident) => {
        $(#[$attr])*
        pub struct $name(pub String);

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl std::error::Error for $name {}
    };
}

pub mod agent;
pub mod bag;
pub mod bundle;
pub mod control;
pub mod kernels;
pub mod load;
pub mod msgs;
pub mod planner;
pub mod rng;
pub mod ros;
