//! dream-mpc trainer (libtorch through tch): the TD-MPC2-style world model
//! ([`model`]), bundle export with libtorch reference vectors ([`export`]),
//! TD-MPC2 checkpoint import into the same bundle format ([`import`]),
//! an independent tract check of exported bundles ([`verify`]) and online
//! training ([`train`]), split by role: [`config`], [`replay`], [`learner`]
//! (losses and update), [`optim`], [`checkpoint`], [`collect`] (episodes),
//! [`metrics`] and [`plot`], plus task lookup ([`tasks`]); offline
//! training from robot logs ([`offline`]) and starting weights from a
//! checkpoint or a bundle ([`init`]).
//!
//! Imports run one way: train -> {collect, checkpoint, plot} -> learner ->
//! {replay, optim, model} -> config, and model -> optim (the stacked Q
//! ensemble's flat-buffer groups); metrics depends on config only; offline
//! -> {train, init} -> learner.

pub mod checkpoint;
pub mod collect;
pub mod config;
pub mod export;
pub mod import;
pub mod init;
pub mod learner;
pub mod metrics;
pub mod model;
pub mod offline;
pub mod optim;
pub mod plot;
pub mod reference_planner;
pub mod replay;
pub mod tasks;
pub mod train;
pub mod twohot;
pub mod verify;
