//! dream-mpc trainer (libtorch through tch).
