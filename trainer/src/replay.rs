//! Replay of whole episodes of equal agent length, kept on the host (for
//! checkpoints) and mirrored on the learner's device, where batches are
//! gathered: only the sampled indices cross to the device per update.

use crate::config::{io, TrainError};
use dream_mpc::rng::Rng;
use std::path::Path;
use tch::{Device, Kind, Tensor};

/// Episodes of equal agent length: `obs` has `len + 1` rows per episode.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Replay {
    pub obs_size: usize,
    pub action_size: usize,
    pub len: usize,
    pub obs: Vec<f32>,
    pub actions: Vec<f32>,
    pub rewards: Vec<f32>,
}

impl Replay {
    pub fn episodes(&self) -> usize {
        self.rewards.len() / self.len.max(1)
    }

    /// Append one episode (`len + 1` observation rows, `len` actions and
    /// rewards).
    pub fn push_episode(&mut self, obs: &[f32], actions: &[f32], rewards: &[f32]) {
        debug_assert_eq!(rewards.len(), self.len);
        self.obs.extend_from_slice(obs);
        self.actions.extend_from_slice(actions);
        self.rewards.extend_from_slice(rewards);
    }

    /// Draw `b` subsequence starts with `rng` and return the row indices
    /// of their `h + 1` observations (`[h+1, b]` row-major) and of their
    /// `h` actions and rewards (`[h, b]`).
    fn indices(&self, b: usize, h: usize, rng: &mut Rng) -> (Vec<i64>, Vec<i64>) {
        let len = self.len;
        let n_ep = self.episodes();
        let mut oi = vec![0i64; (h + 1) * b];
        let mut ai = vec![0i64; h * b];
        for i in 0..b {
            let ep = rng.below(n_ep);
            let s = rng.below(len + 1 - h);
            for t in 0..=h {
                oi[t * b + i] = (ep * (len + 1) + s + t) as i64;
            }
            for t in 0..h {
                ai[t * b + i] = (ep * len + s + t) as i64;
            }
        }
        (oi, ai)
    }

    /// Rows held (episodes x (len + 1) observations).
    fn obs_rows(&self) -> usize {
        self.episodes() * (self.len + 1)
    }

    /// Per-element min and max of the finite observations held (for the
    /// bundle's `observation.range`); `None` when the buffer is empty or an
    /// element never had a finite value.
    pub fn obs_range(&self) -> Option<dream_mpc::bundle::manifest::ObservationRange> {
        let o = self.obs_size;
        if o == 0 || self.obs.len() < o {
            return None;
        }
        let mut low = vec![f32::INFINITY; o];
        let mut high = vec![f32::NEG_INFINITY; o];
        for row in self.obs.chunks_exact(o) {
            for (i, v) in row.iter().enumerate().filter(|(_, v)| v.is_finite()) {
                low[i] = low[i].min(*v);
                high[i] = high[i].max(*v);
            }
        }
        if low.iter().chain(&high).any(|v| !v.is_finite()) {
            return None;
        }
        Some(dream_mpc::bundle::manifest::ObservationRange { low, high })
    }
}

/// The replay's contents as device tensors (`[rows, obs]`, `[rows, act]`,
/// `[rows]`), appended to lazily when the host replay grew.
pub struct DeviceReplay {
    device: Device,
    episodes: usize,
    obs: Tensor,
    actions: Tensor,
    rewards: Tensor,
}

impl DeviceReplay {
    pub fn new(device: Device, r: &Replay) -> Self {
        let f = (Kind::Float, device);
        let mut d = DeviceReplay {
            device,
            episodes: 0,
            obs: Tensor::zeros([0, r.obs_size as i64], f),
            actions: Tensor::zeros([0, r.action_size as i64], f),
            rewards: Tensor::zeros([0], f),
        };
        d.sync(r);
        d
    }

    /// Copy the episodes the host replay has and the device lacks.
    pub fn sync(&mut self, r: &Replay) {
        let n = r.episodes();
        if n == self.episodes {
            return;
        }
        if n < self.episodes {
            // The host replay was replaced (resume): start over.
            *self = DeviceReplay::new(self.device, &r.clone_shape());
            return self.sync(r);
        }
        let (o, a, len) = (r.obs_size, r.action_size, r.len);
        let e0 = self.episodes;
        let up = |v: &[f32], cols: usize| {
            Tensor::from_slice(v)
                .view([-1, cols as i64])
                .to_device(self.device)
        };
        let obs = up(&r.obs[e0 * (len + 1) * o..n * (len + 1) * o], o);
        let act = up(&r.actions[e0 * len * a..n * len * a], a);
        let rew = Tensor::from_slice(&r.rewards[e0 * len..n * len]).to_device(self.device);
        self.obs = Tensor::cat(&[&self.obs, &obs], 0);
        self.actions = Tensor::cat(&[&self.actions, &act], 0);
        self.rewards = Tensor::cat(&[&self.rewards, &rew], 0);
        self.episodes = n;
        debug_assert_eq!(self.obs.size()[0] as usize, r.obs_rows());
    }

    /// Sample `b` subsequences of `h + 1` observations from `r` (synced
    /// first): tensors `[h+1, b, obs]`, `[h, b, act]`, `[h, b, 1]` on the
    /// device. The draws from `rng` do not depend on the device. Costs one
    /// host-to-device copy of the indices (not waiting for the device) and three
    /// gathers.
    pub fn sample(
        &mut self,
        r: &Replay,
        b: usize,
        h: usize,
        rng: &mut Rng,
    ) -> (Tensor, Tensor, Tensor) {
        self.sync(r);
        let (mut idx, ai) = r.indices(b, h, rng);
        let n_obs = idx.len() as i64;
        idx.extend_from_slice(&ai);
        // One transfer, not waiting for the device: an asynchronous copy
        // from pageable memory is staged by the driver before the call
        // returns (CUDA's documented behaviour), so the host vector may go.
        let idx = Tensor::from_slice(&idx);
        let idx = match self.device {
            Device::Cpu => idx,
            d => idx.to_device_(d, Kind::Int64, true, false),
        };
        let oi = idx.narrow(0, 0, n_obs);
        let ai = idx.narrow(0, n_obs, ai.len() as i64);
        let (bi, hi) = (b as i64, h as i64);
        (
            self.obs.index_select(0, &oi).view([hi + 1, bi, -1]),
            self.actions.index_select(0, &ai).view([hi, bi, -1]),
            self.rewards.index_select(0, &ai).view([hi, bi, 1]),
        )
    }
}

impl Replay {
    /// Same sizes, no data.
    fn clone_shape(&self) -> Replay {
        Replay {
            obs_size: self.obs_size,
            action_size: self.action_size,
            len: self.len,
            ..Default::default()
        }
    }

    pub fn save(&self, path: &Path) -> Result<(), TrainError> {
        let mut bytes =
            Vec::with_capacity(4 * (self.obs.len() + self.actions.len() + self.rewards.len()) + 40);
        for v in [self.obs_size, self.action_size, self.len, self.episodes()] {
            bytes.extend_from_slice(&(v as u64).to_le_bytes());
        }
        for v in self.obs.iter().chain(&self.actions).chain(&self.rewards) {
            bytes.extend_from_slice(&v.to_le_bytes());
        }
        std::fs::write(path, bytes).map_err(io(path))
    }

    pub fn load(path: &Path) -> Result<Replay, TrainError> {
        let bytes = std::fs::read(path).map_err(io(path))?;
        let bad = || TrainError::Resume(format!("{} is truncated or corrupt", path.display()));
        if bytes.len() < 32 {
            return Err(bad());
        }
        let u = |k: usize| u64::from_le_bytes(bytes[8 * k..8 * k + 8].try_into().unwrap()) as usize;
        let (o, a, len, n) = (u(0), u(1), u(2), u(3));
        let counts = [n * (len + 1) * o, n * len * a, n * len];
        if bytes.len() != 32 + 4 * counts.iter().sum::<usize>() {
            return Err(bad());
        }
        let mut it = bytes[32..]
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()));
        let mut take = |k: usize| (&mut it).take(k).collect::<Vec<f32>>();
        Ok(Replay {
            obs_size: o,
            action_size: a,
            len,
            obs: take(counts[0]),
            actions: take(counts[1]),
            rewards: take(counts[2]),
        })
    }
}

#[cfg(test)]
mod range_tests {
    use super::Replay;

    #[test]
    fn obs_range_is_the_per_element_min_and_max() {
        let mut r = Replay {
            obs_size: 2,
            action_size: 1,
            len: 2,
            ..Default::default()
        };
        assert_eq!(r.obs_range(), None);
        r.push_episode(&[1.0, -5.0, 3.0, 2.0, -1.0, 0.5], &[0.0, 0.0], &[0.0, 0.0]);
        let g = r.obs_range().unwrap();
        assert_eq!(g.low, vec![-1.0, -5.0]);
        assert_eq!(g.high, vec![3.0, 2.0]);
    }
}
