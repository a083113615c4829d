//! The Control Suite's smooth reward shaping, `rewards.tolerance`,
//! re-implemented from its published definition.
//!
//! `tolerance(x)` is 1 inside `[lower, upper]`; outside it falls off with
//! the distance `d` to the nearest bound, measured in units of `margin`,
//! through a sigmoid that equals `value_at_margin` at `d = 1`. With
//! `margin == 0` it is the indicator of the bounds.
//!
//! A `Tolerance` is validated and its sigmoid scale computed once in
//! [`Tolerance::new`]; [`Tolerance::eval`] then costs one or two
//! transcendental functions and never allocates (fine on the control path).

use std::f64::consts::PI;
use std::fmt;

/// Shape of the fall-off outside the bounds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sigmoid {
    /// `exp(-(d s)^2 / 2)`.
    Gaussian,
    /// `1 / cosh(d s)`.
    Hyperbolic,
    /// `1 / ((d s)^2 + 1)`.
    LongTail,
    /// `1 / (|d| s + 1)`.
    Reciprocal,
    /// `(1 + cos(pi d s)) / 2` for `|d s| < 1`, else 0.
    Cosine,
    /// `1 - d s` for `|d s| < 1`, else 0.
    Linear,
    /// `1 - (d s)^2` for `|d s| < 1`, else 0.
    Quadratic,
    /// `1 - tanh(d s)^2`.
    TanhSquared,
}

impl Sigmoid {
    /// Whether `value_at_margin == 0` is allowed (the sigmoid reaches 0 at a
    /// finite distance); the others need it strictly inside (0, 1).
    fn allows_zero(self) -> bool {
        matches!(self, Sigmoid::Cosine | Sigmoid::Linear | Sigmoid::Quadratic)
    }

    /// Scale `s` such that the sigmoid equals `v` at `d = 1`.
    fn scale(self, v: f64) -> f64 {
        match self {
            Sigmoid::Gaussian => (-2.0 * v.ln()).sqrt(),
            Sigmoid::Hyperbolic => (1.0 / v).acosh(),
            Sigmoid::LongTail => (1.0 / v - 1.0).sqrt(),
            Sigmoid::Reciprocal => 1.0 / v - 1.0,
            Sigmoid::Cosine => (2.0 * v - 1.0).acos() / PI,
            Sigmoid::Linear => 1.0 - v,
            Sigmoid::Quadratic => (1.0 - v).sqrt(),
            Sigmoid::TanhSquared => (1.0 - v).sqrt().atanh(),
        }
    }

    /// The sigmoid at distance `d >= 0` (in margins) with scale `s`.
    fn apply(self, d: f64, s: f64) -> f64 {
        let x = d * s;
        match self {
            Sigmoid::Gaussian => (-0.5 * x * x).exp(),
            Sigmoid::Hyperbolic => 1.0 / x.cosh(),
            Sigmoid::LongTail => 1.0 / (x * x + 1.0),
            Sigmoid::Reciprocal => 1.0 / (x.abs() + 1.0),
            Sigmoid::Cosine => {
                if x.abs() < 1.0 {
                    (1.0 + (PI * x).cos()) / 2.0
                } else {
                    0.0
                }
            }
            Sigmoid::Linear => {
                if x.abs() < 1.0 {
                    1.0 - x
                } else {
                    0.0
                }
            }
            Sigmoid::Quadratic => {
                if x.abs() < 1.0 {
                    1.0 - x * x
                } else {
                    0.0
                }
            }
            Sigmoid::TanhSquared => {
                let t = x.tanh();
                1.0 - t * t
            }
        }
    }
}

/// Why a tolerance could not be built.
#[derive(Clone, Debug, PartialEq)]
pub enum ToleranceError {
    /// `lower > upper` (or a bound is NaN).
    Bounds { lower: f64, upper: f64 },
    /// `margin < 0` (or NaN).
    Margin(f64),
    /// `value_at_margin` outside the sigmoid's allowed range.
    ValueAtMargin { sigmoid: Sigmoid, value: f64 },
}

impl fmt::Display for ToleranceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ToleranceError::Bounds { lower, upper } => {
                write!(
                    f,
                    "tolerance bounds [{lower}, {upper}]: lower must be <= upper"
                )
            }
            ToleranceError::Margin(m) => write!(f, "tolerance margin {m} must be >= 0"),
            ToleranceError::ValueAtMargin { sigmoid, value } => write!(
                f,
                "value_at_margin {value} is out of range for the {sigmoid:?} sigmoid \
                 ((0, 1), or [0, 1) for Linear/Quadratic/Cosine)"
            ),
        }
    }
}

impl std::error::Error for ToleranceError {}

/// A validated `tolerance(x, bounds, margin, sigmoid, value_at_margin)`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Tolerance {
    lower: f64,
    upper: f64,
    margin: f64,
    sigmoid: Sigmoid,
    scale: f64,
}

impl Tolerance {
    /// Validate the parameters as the suite does and precompute the scale.
    pub fn new(
        bounds: (f64, f64),
        margin: f64,
        sigmoid: Sigmoid,
        value_at_margin: f64,
    ) -> Result<Self, ToleranceError> {
        let (lower, upper) = bounds;
        // Written so that NaN fails too.
        if lower.is_nan() || upper.is_nan() || lower > upper {
            return Err(ToleranceError::Bounds { lower, upper });
        }
        if margin.is_nan() || margin < 0.0 {
            return Err(ToleranceError::Margin(margin));
        }
        let lo_ok = if sigmoid.allows_zero() {
            value_at_margin >= 0.0
        } else {
            value_at_margin > 0.0
        };
        if !lo_ok || value_at_margin.is_nan() || value_at_margin >= 1.0 {
            return Err(ToleranceError::ValueAtMargin {
                sigmoid,
                value: value_at_margin,
            });
        }
        Ok(Tolerance {
            lower,
            upper,
            margin,
            sigmoid,
            scale: sigmoid.scale(value_at_margin),
        })
    }

    /// The suite's defaults: gaussian with value 0.1 at the margin.
    pub fn gaussian(bounds: (f64, f64), margin: f64) -> Result<Self, ToleranceError> {
        Tolerance::new(bounds, margin, Sigmoid::Gaussian, 0.1)
    }

    /// Reward for `x`, in [0, 1]. Allocation-free; one or two `exp`/`cos`.
    pub fn eval(&self, x: f64) -> f64 {
        if self.lower <= x && x <= self.upper {
            return 1.0;
        }
        if self.margin == 0.0 {
            return 0.0;
        }
        let d = if x < self.lower {
            self.lower - x
        } else {
            x - self.upper
        } / self.margin;
        self.sigmoid.apply(d, self.scale)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [Sigmoid; 8] = [
        Sigmoid::Gaussian,
        Sigmoid::Hyperbolic,
        Sigmoid::LongTail,
        Sigmoid::Reciprocal,
        Sigmoid::Cosine,
        Sigmoid::Linear,
        Sigmoid::Quadratic,
        Sigmoid::TanhSquared,
    ];

    #[test]
    fn one_inside_bounds_and_value_at_margin_at_one_margin() {
        for s in ALL {
            for v in [0.1, 0.5, 0.9] {
                let t = Tolerance::new((-1.0, 2.0), 0.5, s, v).unwrap();
                assert_eq!(t.eval(0.0), 1.0, "{s:?}");
                assert_eq!(t.eval(-1.0), 1.0, "{s:?}");
                assert_eq!(t.eval(2.0), 1.0, "{s:?}");
                // One margin outside on either side.
                assert!((t.eval(2.5) - v).abs() < 1e-12, "{s:?} {v} {}", t.eval(2.5));
                assert!((t.eval(-1.5) - v).abs() < 1e-12, "{s:?} {v}");
                // Monotone fall-off and bounded.
                let (a, b, c) = (t.eval(2.1), t.eval(2.4), t.eval(3.0));
                assert!(1.0 >= a && a > b && b >= c && c >= 0.0, "{s:?} {a} {b} {c}");
            }
        }
    }

    #[test]
    fn known_values() {
        // gaussian, value 0.1 at margin: exp(-0.5 * (d * sqrt(-2 ln 0.1))^2) = 0.1^(d^2)
        let g = Tolerance::gaussian((0.0, 0.0), 1.0).unwrap();
        assert!((g.eval(0.5) - 0.1f64.powf(0.25)).abs() < 1e-12);
        // quadratic with value 0 at margin: 1 - d^2 inside, 0 beyond.
        let q = Tolerance::new((0.0, 0.0), 1.0, Sigmoid::Quadratic, 0.0).unwrap();
        assert!((q.eval(0.5) - 0.75).abs() < 1e-12);
        assert_eq!(q.eval(1.0), 0.0);
        assert_eq!(q.eval(-3.0), 0.0);
        // linear with value 0.5: 1 - d/2.
        let l = Tolerance::new((0.0, 1.0), 2.0, Sigmoid::Linear, 0.5).unwrap();
        assert!((l.eval(2.0) - 0.75).abs() < 1e-12);
        // cosine with value 0: (1 + cos(pi d)) / 2
        let c = Tolerance::new((0.0, 0.0), 1.0, Sigmoid::Cosine, 0.0).unwrap();
        assert!((c.eval(0.5) - 0.5).abs() < 1e-12);
        // reciprocal with value 0.5: 1 / (d + 1)
        let r = Tolerance::new((0.0, 0.0), 1.0, Sigmoid::Reciprocal, 0.5).unwrap();
        assert!((r.eval(3.0) - 0.25).abs() < 1e-12);
        // long tail with value 0.5: 1 / (d^2 + 1)
        let lt = Tolerance::new((0.0, 0.0), 1.0, Sigmoid::LongTail, 0.5).unwrap();
        assert!((lt.eval(2.0) - 0.2).abs() < 1e-12);
    }

    #[test]
    fn zero_margin_is_an_indicator() {
        let t = Tolerance::gaussian((0.99, 1.0), 0.0).unwrap();
        assert_eq!(t.eval(0.995), 1.0);
        assert_eq!(t.eval(0.98), 0.0);
        assert_eq!(t.eval(1.01), 0.0);
    }

    #[test]
    fn bad_parameters_are_errors() {
        assert!(matches!(
            Tolerance::gaussian((1.0, 0.0), 1.0),
            Err(ToleranceError::Bounds { .. })
        ));
        assert!(matches!(
            Tolerance::gaussian((0.0, 1.0), -1.0),
            Err(ToleranceError::Margin(_))
        ));
        assert!(matches!(
            Tolerance::new((0.0, 1.0), 1.0, Sigmoid::Gaussian, 0.0),
            Err(ToleranceError::ValueAtMargin { .. })
        ));
        assert!(Tolerance::new((0.0, 1.0), 1.0, Sigmoid::Quadratic, 0.0).is_ok());
        assert!(Tolerance::gaussian((f64::NAN, 1.0), 1.0).is_err());
        assert!(Tolerance::gaussian((0.0, 1.0), f64::NAN).is_err());
        assert!(Tolerance::new((0.0, 1.0), 1.0, Sigmoid::Linear, f64::NAN).is_err());
        assert!(Tolerance::new((0.0, 1.0), 1.0, Sigmoid::Linear, 1.0).is_err());
        let msg = Tolerance::gaussian((2.0, 1.0), 1.0)
            .unwrap_err()
            .to_string();
        assert!(msg.contains('2') && msg.contains('1'), "{msg}");
    }
}
