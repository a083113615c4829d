//! TD-MPC2's discrete regression of rewards and values: a scalar y is
//! encoded as a two-hot distribution over `bins` points spaced evenly in
//! [vmin, vmax] of symlog space, heads output logits, the loss is the soft
//! cross-entropy against the two-hot target, and a head is decoded as
//! `symexp(sum softmax(logits) * bins)` (the controller's
//! `planner::decode` computes the same on the robot). With `bins = 1` the
//! head is a plain scalar and the loss is the squared error.

use tch::{Kind, Tensor};

/// The decoding of a model's reward and Q heads.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TwoHot {
    pub bins: usize,
    pub vmin: f32,
    pub vmax: f32,
}

/// `sign(x) ln(1 + |x|)`.
pub fn symlog(x: &Tensor) -> Tensor {
    x.sign() * x.abs().log1p()
}

/// `sign(x) (exp(|x|) - 1)`.
pub fn symexp(x: &Tensor) -> Tensor {
    x.sign() * x.abs().expm1()
}

impl TwoHot {
    fn step(&self) -> f64 {
        (self.vmax - self.vmin) as f64 / (self.bins - 1) as f64
    }

    /// Two-hot targets `[N, bins]` of scalars `y` (`[N, 1]`), clamped to
    /// the range; weights `1 - f` and `f` on the two nearest bins.
    pub fn encode(&self, y: &Tensor) -> Tensor {
        let (lo, step) = (self.vmin as f64, self.step());
        let pos = (symlog(y).clamp(self.vmin as f64, self.vmax as f64) - lo) / step;
        let idx = pos.floor().clamp(0.0, (self.bins - 1) as f64);
        let frac = &pos - &idx;
        let idx = idx.to_kind(Kind::Int64);
        let upper = (&idx + 1).clamp_max(self.bins as i64 - 1);
        let zeros = Tensor::zeros([y.size()[0], self.bins as i64], (Kind::Float, y.device()));
        // At the top bin idx == upper and the weights 1 - 0 and 0 add up.
        zeros
            .scatter_add(1, &idx, &(1.0 - &frac))
            .scatter_add(1, &upper, &frac)
    }

    /// Decode logits `[N, bins]` to scalars `[N, 1]`.
    pub fn decode(&self, logits: &Tensor) -> Tensor {
        if self.bins == 1 {
            return logits.shallow_clone();
        }
        let centres = Tensor::linspace(
            self.vmin as f64,
            self.vmax as f64,
            self.bins as i64,
            (Kind::Float, logits.device()),
        );
        let s = (logits.softmax(-1, Kind::Float) * centres).sum_dim_intlist(
            [-1i64].as_slice(),
            true,
            Kind::Float,
        );
        symexp(&s)
    }

    /// Per-row loss `[N, 1]` of logits `[N, bins]` against scalars `y`
    /// `[N, 1]`: soft cross-entropy to the two-hot target (squared error
    /// with one bin). Logits of several heads `[E, N, bins]` share one
    /// target (built once, broadcast): `[E, N, 1]`.
    pub fn loss(&self, logits: &Tensor, y: &Tensor) -> Tensor {
        if self.bins == 1 {
            return (logits - y).square();
        }
        let target = self.encode(y);
        -(target * logits.log_softmax(-1, Kind::Float)).sum_dim_intlist(
            [-1i64].as_slice(),
            true,
            Kind::Float,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn th() -> TwoHot {
        TwoHot {
            bins: 101,
            vmin: -10.0,
            vmax: 10.0,
        }
    }

    #[test]
    fn encode_puts_mass_on_the_two_nearest_bins_and_decodes_back() {
        let ys = [0.0f32, 0.3, -2.5, 7.0, 1000.0, 5e5];
        let y = Tensor::from_slice(&ys).view([-1, 1]);
        let t = th().encode(&y);
        let rows =
            Vec::<f32>::try_from(t.sum_dim_intlist([1i64].as_slice(), false, Kind::Float)).unwrap();
        for r in rows {
            assert!((r - 1.0).abs() < 1e-6, "row sum {r}");
        }
        let nonzero = Vec::<i64>::try_from(t.gt(0.0).sum_dim_intlist(
            [1i64].as_slice(),
            false,
            Kind::Int64,
        ))
        .unwrap();
        assert!(nonzero.iter().all(|&n| (1..=2).contains(&n)), "{nonzero:?}");
        // Logits = log of the two-hot decode to the clamped value: the
        // expected symlog is exact for two-hot weights.
        let back = Vec::<f32>::try_from(th().decode(&(t + 1e-12).log()).view([-1])).unwrap();
        for (&y, b) in ys.iter().zip(back) {
            let want = y.min(10f32.exp_m1());
            assert!((b - want).abs() <= 1e-3 * want.abs().max(1.0), "{y} -> {b}");
        }
    }

    #[test]
    fn loss_is_smallest_at_the_target() {
        let y = Tensor::from_slice(&[1.5f32]).view([1, 1]);
        let good = (th().encode(&y) + 1e-9).log();
        let bad = (th().encode(&Tensor::from_slice(&[-1.5f32]).view([1, 1])) + 1e-9).log();
        let lg = th().loss(&good, &y).double_value(&[0, 0]);
        let lb = th().loss(&bad, &y).double_value(&[0, 0]);
        assert!(lg < lb, "{lg} vs {lb}");
        let uniform = Tensor::zeros([1, 101], (Kind::Float, tch::Device::Cpu));
        let d = th().decode(&uniform).double_value(&[0, 0]);
        assert!(d.abs() < 1e-5, "uniform logits decode to {d}");
    }
}
