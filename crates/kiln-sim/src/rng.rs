//! Reproducible randomness without a dependency: SplitMix64 as a hash of
//! a key. Every draw is keyed by what it is about (the scenario's seed, the
//! job, the frame, the attempt), not by the order draws happen in, so a
//! frame keeps its runtime and memory when a policy change starts it at
//! another time or on another host: two runs differ only by the policy.

/// One step of SplitMix64: a well-mixed 64-bit value from any input.
pub fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A key built from the parts of what is drawn for.
#[derive(Debug, Clone, Copy)]
pub struct Key(u64);

impl Key {
    pub fn new(seed: u64) -> Key {
        Key(mix(seed))
    }

    /// The key of a part of this: `key.with(job).with(frame)`.
    pub fn with(self, part: u64) -> Key {
        Key(mix(self.0 ^ mix(part)))
    }

    /// The key of a named part, hashed with FNV-1a (stable across builds,
    /// unlike std's hasher).
    pub fn with_str(self, part: &str) -> Key {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in part.bytes() {
            h = (h ^ b as u64).wrapping_mul(0x0100_0000_01b3);
        }
        self.with(h)
    }

    /// A uniform draw in [0, 1) for the purpose named by `what`.
    pub fn unit(self, what: u64) -> f64 {
        // The top 53 bits make an exactly representable fraction.
        (self.with(what).0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_are_keyed_and_uniform() {
        let k = Key::new(7);
        assert_eq!(k.with(3).unit(1), Key::new(7).with(3).unit(1));
        assert_ne!(k.with(3).unit(1), k.with(4).unit(1));
        assert_ne!(k.unit(1), Key::new(8).unit(1));
        let n = 10_000;
        let mean: f64 = (0..n).map(|i| k.with(i).unit(0)).sum::<f64>() / n as f64;
        assert!((mean - 0.5).abs() < 0.02, "{mean}");
        assert!((0..n).all(|i| (0.0..1.0).contains(&k.with(i).unit(0))));
    }
}
