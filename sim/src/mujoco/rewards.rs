//! The Control Suite's `rewards.tolerance` (dm_control/utils/rewards.py),
//! the shape every task reward is built from. Private copy for the MuJoCo
//! tasks; the native tasks carry their own (to be deduplicated).

/// How the reward falls off outside the bounds (the suite's `sigmoid`
/// argument; only the kinds the benchmark tasks use).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sigmoid {
    /// `exp(-0.5 (d s)^2)` with `s = sqrt(-2 ln value_at_margin)`.
    Gaussian,
    /// `1 - d s` with `s = 1 - value_at_margin`, zero beyond.
    Linear,
    /// `1 - (d s)^2` with `s = sqrt(1 - value_at_margin)`, zero beyond.
    Quadratic,
}

/// 1 inside `[lower, upper]`, else a sigmoid of the distance to the
/// nearest bound in units of `margin` (`margin == 0`: 0 outside).
/// `value_at_margin` is the value at distance `margin`. Costs a few flops.
pub fn tolerance(
    x: f64,
    (lower, upper): (f64, f64),
    margin: f64,
    sigmoid: Sigmoid,
    value_at_margin: f64,
) -> f64 {
    debug_assert!(lower <= upper && margin >= 0.0);
    if lower <= x && x <= upper {
        return 1.0;
    }
    if margin == 0.0 {
        return 0.0;
    }
    let d = if x < lower { lower - x } else { x - upper } / margin;
    match sigmoid {
        Sigmoid::Gaussian => {
            let scale = (-2.0 * value_at_margin.ln()).sqrt();
            (-0.5 * (d * scale).powi(2)).exp()
        }
        Sigmoid::Linear => {
            let s = d * (1.0 - value_at_margin);
            if s.abs() < 1.0 {
                1.0 - s
            } else {
                0.0
            }
        }
        Sigmoid::Quadratic => {
            let s = d * (1.0 - value_at_margin).sqrt();
            if s.abs() < 1.0 {
                1.0 - s * s
            } else {
                0.0
            }
        }
    }
}

/// The suite's default `value_at_margin`.
pub const DEFAULT_VALUE_AT_MARGIN: f64 = 0.1;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inside_bounds_is_one_and_margin_zero_is_indicator() {
        assert_eq!(tolerance(0.5, (0.0, 1.0), 0.0, Sigmoid::Gaussian, 0.1), 1.0);
        assert_eq!(tolerance(1.5, (0.0, 1.0), 0.0, Sigmoid::Gaussian, 0.1), 0.0);
    }

    #[test]
    fn value_at_margin_is_hit_at_one_margin() {
        for (sig, v) in [
            (Sigmoid::Gaussian, 0.1),
            (Sigmoid::Linear, 0.5),
            (Sigmoid::Quadratic, 0.3),
        ] {
            let r = tolerance(3.0, (0.0, 1.0), 2.0, sig, v);
            assert!((r - v).abs() < 1e-12, "{sig:?}: {r} != {v}");
            let below = tolerance(-2.0, (0.0, 1.0), 2.0, sig, v);
            assert!((below - v).abs() < 1e-12, "{sig:?} below: {below}");
        }
    }

    #[test]
    fn linear_and_quadratic_reach_zero() {
        assert_eq!(tolerance(5.0, (0.0, 0.0), 1.0, Sigmoid::Linear, 0.0), 0.0);
        assert_eq!(
            tolerance(-1.0, (0.0, 0.0), 1.0, Sigmoid::Quadratic, 0.0),
            0.0
        );
        assert!((tolerance(0.5, (0.0, 0.0), 1.0, Sigmoid::Quadratic, 0.0) - 0.75).abs() < 1e-15);
    }
}
