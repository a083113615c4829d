//! Plausibility of finite observations: the bundle's
//! `observation.range` (what training saw) widened by a margin. An
//! observation element outside `[low - m w, high + m w]`, with `w` the
//! element's training range (at least its normalization std, so a
//! constant element still has a band), is implausible: the model never saw
//! anything like it, and planning on it (e.g. 1e30) only saturates the
//! actions. The node treats it like an invalid observation.

use super::manifest::ObservationSpec;

/// Per-element bounds, fixed at start-up. Checking costs O(observation
/// size) and allocates nothing.
#[derive(Clone, Debug, PartialEq)]
pub struct ObsBounds {
    low: Vec<f64>,
    high: Vec<f64>,
}

impl ObsBounds {
    /// The bounds of `spec.range` widened by `margin` (a fraction of each
    /// element's range); `None` when the bundle records no range (older or
    /// imported bundles). Start-up only (allocates).
    pub fn new(spec: &ObservationSpec, margin: f64) -> Option<ObsBounds> {
        let r = spec.range.as_ref()?;
        let n = spec.size.min(r.low.len()).min(r.high.len());
        let (mut low, mut high) = (Vec::with_capacity(n), Vec::with_capacity(n));
        for i in 0..n {
            let (lo, hi) = (r.low[i] as f64, r.high[i] as f64);
            let std = spec.std.get(i).copied().unwrap_or(1.0) as f64;
            let w = (hi - lo).max(std);
            low.push(lo - margin * w);
            high.push(hi + margin * w);
        }
        Some(ObsBounds { low, high })
    }

    /// The first element of `obs` outside the bounds (NaN counts as
    /// outside), or `None`. No allocation.
    pub fn first_outside(&self, obs: &[f64]) -> Option<usize> {
        obs.iter()
            .zip(self.low.iter().zip(&self.high))
            .position(|(x, (lo, hi))| !(*x >= *lo && *x <= *hi))
    }

    /// The lower and upper bound of element `i`.
    pub fn bounds(&self, i: usize) -> (f64, f64) {
        (self.low[i], self.high[i])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bundle::manifest::ObservationRange;

    fn spec(range: Option<ObservationRange>) -> ObservationSpec {
        ObservationSpec {
            size: 2,
            mean: vec![0.0; 2],
            std: vec![1.0, 0.5],
            range,
        }
    }

    #[test]
    fn margin_is_a_fraction_of_the_range_with_the_std_as_floor() {
        assert_eq!(ObsBounds::new(&spec(None), 0.5), None);
        let b = ObsBounds::new(
            &spec(Some(ObservationRange {
                low: vec![-2.0, 3.0],
                high: vec![2.0, 3.0],
            })),
            0.5,
        )
        .unwrap();
        assert_eq!(b.bounds(0), (-4.0, 4.0));
        // a constant element: width = its std 0.5
        assert_eq!(b.bounds(1), (2.75, 3.25));
        assert_eq!(b.first_outside(&[3.9, 3.2]), None);
        assert_eq!(b.first_outside(&[4.1, 3.0]), Some(0));
        assert_eq!(b.first_outside(&[0.0, 3.3]), Some(1));
        assert_eq!(b.first_outside(&[1e30, -1e30]), Some(0));
        assert_eq!(b.first_outside(&[0.0, f64::NAN]), Some(1));
    }
}
